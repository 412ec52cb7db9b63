"""Counting events per window (what ``resolve`` needs) from footers gives what the whole source
gives, and reads no data page where the statistics place a row group in one window.

Reading is shown by corruption: data pages overwritten with garbage (footers intact) fail any
read of them, so a count that still succeeds did not read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from retrain import steps
from retrain.data.io import read_source
from retrain.data.source import WindowCounts, window_counts
from tests.unit.test_ingest import config, events
from tests.unit.test_resolve import MON, write_case
from tests.unit.test_source_window import period_events, write_weeks


def corrupt_pages(path: Path, columns: set[str] | None = None) -> None:
    """Overwrite the data pages of `columns` (all when None) in every row group."""
    meta = pq.read_metadata(path)
    names = meta.schema.to_arrow_schema().names
    raw = bytearray(path.read_bytes())
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            if columns is not None and names[j] not in columns:
                continue
            chunk = group.column(j)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            raw[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(raw))


def assert_counts_equal(got: WindowCounts, want: WindowCounts) -> None:
    assert got.rows == want.rows
    assert got.newest == want.newest
    assert got.unreadable.tolist() == want.unreadable.tolist()


def whole(cfg_uri: str, fmt: str, data: object, column: str) -> WindowCounts:
    return WindowCounts.of_times(data, read_source(cfg_uri, fmt)[column])  # type: ignore[arg-type]


def test_integer_periods_counted_from_statistics_alone(tmp_path: Path) -> None:
    src = events(weeks=6)  # int64 weeks, 60 rows each; a file per two weeks
    write_weeks(tmp_path / "events", src, "week")
    cfg = config(uri=str(tmp_path / "events"))
    want = whole(cfg.data.uri, "parquet", cfg.data, "week")
    assert want.rows == {str(w): 60 for w in range(6)}
    files = sorted((tmp_path / "events").glob("*.parquet"))
    for f in files:
        corrupt_pages(f)  # every column, the time column too: only footers remain readable
    with pytest.raises(Exception):  # noqa: B017 - any failure shows the bytes are broken
        read_source(cfg.data.uri, "parquet")
    got = window_counts(cfg.data.uri, "parquet", cfg.data)
    assert_counts_equal(got, want)
    assert got.read == {
        "files": 3,
        "row_groups": 18,
        "row_groups_from_statistics": 18,
        "row_groups_time_column_read": 0,
    }


@pytest.mark.parametrize(
    ("kind", "column"), [("period", "week"), ("timestamp", "at")], ids=["periods", "timestamps"]
)
def test_statistics_are_read_as_times_at_once_not_row_group_by_row_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, column: str
) -> None:
    """Counting from statistics converts the row groups' bounds in one pass: the conversions
    are as many for 60 row groups as for 6, so a source of many windows costs its footers
    and little more (a conversion per row group made resolve grow with the source)."""
    import retrain.data._counts as counts_module

    conversions: list[int] = []
    convert = counts_module.event_times

    def counting(series: pd.Series, *args: object, **kwargs: object) -> pd.Series:
        conversions.append(len(series))
        return convert(series, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(counts_module, "event_times", counting)
    calls = {}
    for weeks in (2, 20):  # 6 row groups of 20 rows against 60
        src = events(weeks=weeks)
        if kind == "timestamp":
            src = src.drop(columns=["week"])
            minutes = (np.arange(len(src)) // 60) * 24 * 60 + np.arange(len(src)) % 60
            src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(minutes, "min")
        root = tmp_path / f"{kind}-{weeks}"
        write_weeks(root, src, column)
        extra = {"time_kind": kind, "time_column": column, "window_size": "1d"}
        cfg = config(uri=str(root), **(extra if kind == "timestamp" else {}))
        want = whole(str(root), "parquet", cfg.data, column)
        conversions.clear()
        got = window_counts(str(root), "parquet", cfg.data)
        assert got.read["row_groups"] == weeks * 3
        assert got.read["row_groups_from_statistics"] == weeks * 3
        assert_counts_equal(got, want)
        assert len(got.rows) == weeks
        calls[weeks] = len(conversions)
    assert calls[20] == calls[2]


def test_row_groups_spanning_windows_read_their_time_column_only(tmp_path: Path) -> None:
    src = events(weeks=4)
    root = tmp_path / "events"
    root.mkdir()
    # 50-row groups over 60-row weeks: some groups lie in one week, others span two.
    table = pa.Table.from_pandas(src, preserve_index=False)
    pq.write_table(table, root / "all.parquet", row_group_size=50)
    cfg = config(uri=str(root))
    want = whole(str(root), "parquet", cfg.data, "week")
    corrupt_pages(root / "all.parquet", set(src.columns) - {"week"})
    got = window_counts(str(root), "parquet", cfg.data)
    assert_counts_equal(got, want)
    assert got.read["row_groups"] == 5
    assert 0 < got.read["row_groups_from_statistics"] < 5


def test_timestamps_with_missing_times_counted_from_statistics(tmp_path: Path) -> None:
    src = events(weeks=4).drop(columns=["week"])
    hours = np.arange(len(src)) * 2  # 12 rows a day
    src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    src.loc[[7, 100], "at"] = pd.NaT
    root = tmp_path / "events"
    root.mkdir()
    pq.write_table(
        pa.Table.from_pandas(src, preserve_index=False), root / "all.parquet", row_group_size=12
    )
    cfg = config(uri=str(root), time_kind="timestamp", time_column="at", window_size="1d")
    want = whole(str(root), "parquet", cfg.data, "at")
    corrupt_pages(root / "all.parquet")
    got = window_counts(str(root), "parquet", cfg.data)
    assert_counts_equal(got, want)
    assert got.read["row_groups_from_statistics"] == got.read["row_groups"] == 20
    assert got.rows["2024-01-01"] == 11 and got.newest == src["at"].max()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_float_csv_and_text_times_are_read_and_equal(tmp_path: Path, fmt: str) -> None:
    src = period_events()  # float weeks with missing ones: statistics cannot count NaN
    write_weeks(tmp_path / "events", src, "week", fmt=fmt)
    cfg = config(uri=str(tmp_path / "events"), format=fmt)
    got = window_counts(cfg.data.uri, fmt, cfg.data)
    assert_counts_equal(got, whole(cfg.data.uri, fmt, cfg.data, "week"))
    if fmt == "parquet":
        assert got.read["row_groups_from_statistics"] == 0
    text = events(weeks=2).drop(columns=["week"])
    text["at"] = [f"2024-01-0{1 + i // 60}T{i % 24:02d}:00:00Z" for i in range(len(text))]
    text.loc[3, "at"] = "not a time"
    write_weeks(tmp_path / "text", text, "at", fmt=fmt)
    tcfg = config(
        uri=str(tmp_path / "text"), format=fmt, time_kind="timestamp", time_column="at",
        window_size="1d",
    )  # fmt: skip
    counted = window_counts(tcfg.data.uri, fmt, tcfg.data)
    assert_counts_equal(counted, whole(tcfg.data.uri, fmt, tcfg.data, "at"))
    assert counted.unreadable.tolist() == ["not a time"]


def test_resolve_chooses_from_footers_and_records_what_it_read(tmp_path: Path) -> None:
    config_text = write_case(tmp_path, [0, 0, 1, 1, 2, 2])
    path = tmp_path / "events" / "events.parquet"
    pq.write_table(pq.read_table(path), path, row_group_size=2)  # a row group per week
    before = steps.resolve_run(config_text, "auto", "auto", "1", now=MON)
    corrupt_pages(path)
    fresh = yaml.safe_load(config_text)
    fresh["storage_root"] = str(tmp_path / "store-2")
    after = steps.resolve_run(yaml.safe_dump(fresh), "auto", "auto", "1", now=MON)
    assert after.details["window"] == before.details["window"]
    assert after.window_id == "1"
    assert after.details["source_read"]["row_groups_from_statistics"] == 3


def test_a_struct_column_before_the_time_column_does_not_shift_its_statistics(
    tmp_path: Path,
) -> None:
    """A struct column has one column chunk per field: the time column's statistics are found
    by its path, not by its place among the top-level columns (which read the struct's second
    field's statistics: every event counted in window 0)."""
    from retrain.data.source import source_facts

    root = tmp_path / "nested"
    root.mkdir()
    table = pa.table(
        {
            "id": [str(i) for i in range(9)],
            "extra": [{"a": 1, "b": 0}] * 9,
            "week": pa.array([0, 0, 1, 1, 1, 1, 2, 2, 3], pa.int64()),
            "x": np.arange(9, dtype=float),
        }
    )
    pq.write_table(table, root / "part.parquet")
    cfg = config(uri=str(root))
    got = window_counts(str(root), "parquet", cfg.data)
    assert got.rows == {"0": 2, "1": 4, "2": 2, "3": 1}
    assert_counts_equal(got, whole(str(root), "parquet", cfg.data, "week"))
    facts = source_facts(str(root), "parquet", cfg.data)
    assert facts is not None and (facts.time_min, facts.time_max) == (0, 3)
