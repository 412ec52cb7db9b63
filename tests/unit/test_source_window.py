"""Reading one window or one column of a source gives what reading the whole source gave.

Each window is ingested twice: from `read_source` (the whole source) and from `read_window`
(pruned by row-group statistics); data, dataset hash and report must be equal. Pruning itself
is shown by corrupting the row groups outside the window: reading them would fail.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from retrain.config import Config
from retrain.data.ingest import IngestResult, ingest_window
from retrain.data.io import content_sha256, read_source
from retrain.data.source import read_times, read_window, source_facts
from retrain.data.windows import parse_window
from retrain.errors import ValidationError
from tests.unit.test_ingest import config, events

GROUP_ROWS = 20  # three row groups per week of 60 rows


def write_weeks(root: Path, src: pd.DataFrame, column: str, fmt: str = "parquet") -> None:
    """One file per two weeks (a window never matches a whole file), small row groups."""
    root.mkdir(parents=True, exist_ok=True)
    pairs = (
        src[column].fillna(0).to_numpy() // 2 if column == "week" else np.arange(len(src)) // 120
    )
    for k in np.unique(pairs):
        part = src.loc[pairs == k].reset_index(drop=True)
        if fmt == "csv":
            part.to_csv(root / f"part-{int(k):03d}.csv", index=False)
        else:
            table = pa.Table.from_pandas(part, preserve_index=False)
            pq.write_table(table, root / f"part-{int(k):03d}.parquet", row_group_size=GROUP_ROWS)


def both(cfg: Config, wid: str) -> tuple[IngestResult, IngestResult]:
    window = parse_window(cfg.data, wid)
    whole = ingest_window(cfg, read_source(cfg.data.uri, cfg.data.format), window, None)
    part, facts = read_window(cfg.data.uri, cfg.data.format, cfg.data, window)
    return whole, ingest_window(cfg, part, window, None, facts=facts)


def assert_same(whole: IngestResult, pruned: IngestResult) -> None:
    pd.testing.assert_frame_equal(whole.data, pruned.data)
    assert content_sha256(whole.data) == content_sha256(pruned.data)
    assert whole.report == pruned.report
    assert whole.markdown == pruned.markdown


def period_events() -> pd.DataFrame:
    src = events(weeks=6).astype({"week": "float64"})
    src.loc[[5, 130], "week"] = np.nan  # rows that belong to no window: counted in warnings
    return src


def test_period_windows_read_by_statistics_equal_the_whole_source(tmp_path: Path) -> None:
    src = period_events()
    write_weeks(tmp_path / "events", src, "week")
    cfg = config(uri=str(tmp_path / "events"), min_rows=10)
    for wid in ["0", "1", "2", "3", "5"]:
        whole, pruned = both(cfg, wid)
        assert_same(whole, pruned)
    assert "2 source rows have no event time" in pruned.report["warnings"][0]
    facts = source_facts(cfg.data.uri, "parquet", cfg.data)
    assert facts is not None and (facts.rows, facts.no_time) == (len(src), 2)
    assert (facts.time_min, facts.time_max) == (0.0, 5.0)


def add_channel(path: Path) -> None:
    """Give one file of the source a column the others lack (ignored by the config)."""
    extra = pq.read_table(path).append_column("channel", pa.array(["web"] * 120))
    pq.write_table(extra, path, row_group_size=GROUP_ROWS)


def empty_window_messages(cfg: Any) -> list[str]:
    """Ingest's problems for a window past the data (period 10), from the whole read and from
    the read by statistics, in that order."""
    empty = parse_window(cfg.data, "10")
    messages = []
    for frame, facts in [
        (read_source(cfg.data.uri, "parquet"), None),
        read_window(cfg.data.uri, "parquet", cfg.data, empty),
    ]:
        with pytest.raises(ValidationError) as err:
            ingest_window(cfg, frame, empty, None, facts=facts)
        messages.append(repr(err.value.problems))
    return messages


@pytest.mark.parametrize("schemas", ["one schema", "one file with another column"])
def test_infinite_periods_are_unreadable_on_the_statistics_path_too(
    tmp_path: Path, schemas: str
) -> None:
    src = period_events()
    src.loc[[9, 200], "week"] = [np.inf, -np.inf]  # in the first and second file
    write_weeks(tmp_path / "events", src, "rows")  # three files of 120 rows
    if schemas != "one schema":
        add_channel(tmp_path / "events" / "part-002.parquet")
    cfg = config(uri=str(tmp_path / "events"), min_rows=10, ignore_columns=["channel"])
    warning = "2 source rows have an unreadable 'week' and belong to no window, e.g. inf, -inf"
    for wid in ["0", "3"]:
        whole, pruned = both(cfg, wid)
        assert warning in whole.report["warnings"]
        assert pruned.report["warnings"] == whole.report["warnings"]
    messages = empty_window_messages(cfg)
    assert "spanning 0 to 5" in messages[0] and messages[1] == messages[0]
    facts = source_facts(cfg.data.uri, "parquet", cfg.data)
    assert facts is not None and (facts.unreadable, facts.no_time) == (2, 2)
    assert (facts.time_min, facts.time_max) == (0.0, 5.0)


def keep_nan(path: Path, null_row: int | None = None) -> None:
    """Store the file's missing weeks as NaN values, not nulls (as pandas writes them), but
    `null_row`: Parquet statistics count the nulls only, and leave NaN out of min and max."""
    table = pq.read_table(path)
    weeks = table["week"].to_numpy()
    mask = np.arange(len(weeks)) == null_row
    column = pa.array(weeks, mask=mask, from_pandas=False)
    table = table.set_column(table.schema.get_field_index("week"), "week", column)
    pq.write_table(table, path, row_group_size=GROUP_ROWS)


@pytest.mark.parametrize("schemas", ["one schema", "one file with another column"])
def test_nan_periods_are_missing_times_on_the_statistics_path_too(
    tmp_path: Path, schemas: str
) -> None:
    src = events(weeks=6).astype({"week": "float64"})
    # the whole first row group (week 0 keeps 40 rows), and one row of each later file
    src.loc[[*range(GROUP_ROWS), 150, 230], "week"] = np.nan
    src.loc[200, "week"] = np.inf
    write_weeks(tmp_path / "events", src, "rows")  # three files of 120 rows
    root = tmp_path / "events"
    keep_nan(root / "part-000.parquet", null_row=60)
    keep_nan(root / "part-001.parquet")
    keep_nan(root / "part-002.parquet")
    if schemas != "one schema":
        add_channel(root / "part-002.parquet")
    stored = pq.read_table(root / "part-000.parquet")["week"]
    assert stored.null_count == 1 and pc.sum(pc.is_nan(stored)).as_py() == GROUP_ROWS
    cfg = config(uri=str(root), min_rows=10, ignore_columns=["channel"])
    no_time = "23 source rows have no event time and belong to no window"
    for wid in ["0", "3"]:
        whole, pruned = both(cfg, wid)
        assert no_time in whole.report["warnings"]
        assert pruned.report["warnings"] == whole.report["warnings"]
    messages = empty_window_messages(cfg)
    assert "spanning 0 to 5" in messages[0] and messages[1] == messages[0]
    facts = source_facts(cfg.data.uri, "parquet", cfg.data)
    assert facts is not None and (facts.rows, facts.no_time, facts.unreadable) == (360, 23, 1)
    assert (facts.time_min, facts.time_max) == (0.0, 5.0)


def test_timestamp_windows_read_by_statistics_equal_the_whole_source(tmp_path: Path) -> None:
    src = events(weeks=4).drop(columns=["week"])
    hours = np.arange(len(src)) * 2  # 12 rows a day, 60 rows spread over five days
    src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    src.loc[7, "at"] = pd.NaT
    write_weeks(tmp_path / "events", src, "at")
    cfg = config(
        uri=str(tmp_path / "events"),
        time_kind="timestamp",
        time_column="at",
        window_size="1d",
        min_rows=5,
    )
    for wid in ["2024-01-01", "2024-01-04", "2024-01-10"]:
        assert_same(*both(cfg, wid))
    empty = parse_window(cfg.data, "2025-01-01")
    messages = []
    for frame, facts in [
        (read_source(cfg.data.uri, "parquet"), None),
        read_window(cfg.data.uri, "parquet", cfg.data, empty),
    ]:
        with pytest.raises(ValidationError) as err:
            ingest_window(cfg, frame, empty, None, facts=facts)
        messages.append(str(err.value) + repr(err.value.problems))
    assert messages[0] == messages[1]
    assert "spanning 2024-01-01T00:00:00+00:00 to 2024-01-20T22:00:00+00:00" in messages[0]


def corrupt_groups_outside(path: Path, column: str, keep: int) -> None:
    """Overwrite the data pages of every row group but `keep` (the footer stays intact)."""
    meta = pq.read_metadata(path)
    raw = bytearray(path.read_bytes())
    for i in range(meta.num_row_groups):
        if i == keep:
            continue
        group = meta.row_group(i)
        for j in range(group.num_columns):
            chunk = group.column(j)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            raw[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(raw))


def test_row_groups_outside_the_window_are_never_read(tmp_path: Path) -> None:
    src = events(weeks=3)
    src["week"] = np.repeat([0, 1, 2], 60)
    root = tmp_path / "events"
    root.mkdir()
    pq.write_table(
        pa.Table.from_pandas(src, preserve_index=False), root / "all.parquet", row_group_size=60
    )
    expected = ingest_window(
        config(uri=str(root)),
        read_source(str(root), "parquet"),
        parse_window(config().data, "1"),
        None,
    )
    corrupt_groups_outside(root / "all.parquet", "week", keep=1)
    cfg = config(uri=str(root))
    with pytest.raises(Exception):  # noqa: B017 - any failure shows the bytes are broken
        read_source(str(root), "parquet")
    window = parse_window(cfg.data, "1")
    part, facts = read_window(str(root), "parquet", cfg.data, window)
    assert_same(expected, ingest_window(cfg, part, window, None, facts=facts))


def test_csv_and_text_times_keep_working_and_match(tmp_path: Path) -> None:
    src = period_events()
    write_weeks(tmp_path / "csv", src, "week", fmt="csv")
    cfg = config(uri=str(tmp_path / "csv"), format="csv", min_rows=10)
    assert_same(*both(cfg, "2"))
    text = events(weeks=2).drop(columns=["week"])
    text["at"] = [f"2024-01-0{1 + i // 60}T{i % 24:02d}:00:00Z" for i in range(len(text))]
    write_weeks(tmp_path / "text", text, "at")
    tcfg = config(
        uri=str(tmp_path / "text"),
        time_kind="timestamp",
        time_column="at",
        window_size="1d",
        min_rows=5,
    )
    assert_same(*both(tcfg, "2024-01-02"))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_read_times_is_the_time_column_of_the_whole_source(tmp_path: Path, fmt: str) -> None:
    src = period_events()
    write_weeks(tmp_path / "events", src, "week", fmt=fmt)
    uri = str(tmp_path / "events")
    pd.testing.assert_series_equal(read_times(uri, fmt, "week"), read_source(uri, fmt)["week"])
    with pytest.raises(ValidationError, match="no time column 'when'"):
        read_times(uri, fmt, "when")


@pytest.mark.integration
def test_gcs_windows_read_by_range_equal_the_whole_source(gcs_emulator: Any) -> None:
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    src = period_events()
    pairs = src["week"].fillna(0).to_numpy() // 2
    for k in np.unique(pairs):
        sink = pa.BufferOutputStream()
        part = pa.Table.from_pandas(src.loc[pairs == k], preserve_index=False)
        pq.write_table(part, sink, row_group_size=GROUP_ROWS)
        bucket.blob(f"{lake}/events/p{int(k)}.parquet").upload_from_string(
            sink.getvalue().to_pybytes()
        )
    uri = f"gs://{gcs_emulator.bucket}/{lake}/events"
    cfg = config(uri=uri, min_rows=10)
    for wid in ["1", "4"]:
        window = parse_window(cfg.data, wid)
        whole = ingest_window(cfg, read_source(uri, "parquet", client=client), window, None)
        part, facts = read_window(uri, "parquet", cfg.data, window, client=client)
        assert facts is not None
        assert_same(whole, ingest_window(cfg, part, window, None, facts=facts))
    pd.testing.assert_series_equal(
        read_times(uri, "parquet", "week", client=client),
        read_source(uri, "parquet", client=client)["week"],
    )
