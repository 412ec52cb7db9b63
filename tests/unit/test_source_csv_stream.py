"""A CSV source streamed window by window gives what the whole read gave; ingest reads only the
columns it keeps and checks the others by name.

Every window is read twice: whole (`read_source`, as ingest read a CSV source before) and
streamed (`read_window` with ingest's columns) in chunks of a few rows, so that chunks type
the same column differently and have to be reconciled. The raw rows (values, order, dtypes),
the dataset and its hash, the schema and the reports must be equal.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import retrain.data._csv_window as csv_window
from retrain.config import Config
from retrain.data.ingest import EmptyWindow, IngestResult, ingest_window
from retrain.data.io import content_sha256, read_source
from retrain.data.schema import known_columns
from retrain.data.source import read_times, read_window
from retrain.data.windows import parse_window
from retrain.errors import ValidationError
from tests.unit.test_ingest import config, events

FILE_ROWS = 100  # 60 rows a week: weeks 1, 3 and 4 span two files


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 rows: many per file and per window, not aligned with either."""
    monkeypatch.setattr(csv_window, "CSV_CHUNK_ROWS", 7)


def awkward_events() -> pd.DataFrame:
    """Events whose columns pandas types differently chunk by chunk."""
    src = events(weeks=6).astype({"week": "object", "visits": "object", "score": "object"})
    # Quoted fields: separators, quotes and line breaks inside values.
    src.loc[src.index % 9 == 0, "plan"] = 'pro, "annual"\nbilled'
    src.loc[[3, 250], "week"] = np.nan  # no event time
    src.loc[[4, 251, 300], "week"] = ["soon", "later", "soon"]  # unreadable event time
    src.loc[330, "visits"] = np.nan  # an integer column with one blank: float64 whole
    src.loc[340, "score"] = "unknown"  # one text in a numeric column: text whole
    src["member"] = np.where(src.index % 2 == 0, "True", "False")
    src.loc[[20, 200], "member"] = np.nan  # booleans beside blanks: objects whole
    src["note"] = "x"  # not a model input
    return src


def write_files(root: Path, src: pd.DataFrame) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, len(src), FILE_ROWS)):
        src.iloc[start : start + FILE_ROWS].to_csv(root / f"part-{k:03d}.csv", index=False)


def csv_config(root: Path, **data: Any) -> Config:
    features = {"amount": "numeric", "visits": "numeric", "plan": "categorical"}
    data.setdefault("uri", str(root))
    return config(
        format="csv",
        min_rows=5,
        max_null_rate=0.5,
        features={**features, "member": "categorical"},
        **data,
    )


def outcome(cfg: Config, source: pd.DataFrame, wid: str, facts: Any = None) -> Any:
    window = parse_window(cfg.data, wid)
    try:
        return ingest_window(cfg, source, window, None, facts=facts)
    except ValidationError as err:
        return type(err), str(err), err.problems


def assert_stream_equals_whole(cfg: Config, wid: str) -> Any:
    """The streamed read and its ingest outcome equal the whole read's; that outcome."""
    window = parse_window(cfg.data, wid)
    whole = read_source(cfg.data.uri, "csv")
    part, facts = read_window(cfg.data.uri, "csv", cfg.data, window, columns=known_columns(cfg))
    assert facts is not None and list(facts.columns or ()) == list(whole.columns)
    wanted = [c for c in whole.columns if c in known_columns(cfg)]
    if cfg.data.time_column in whole.columns:
        times = pd.to_numeric(whole[cfg.data.time_column], errors="coerce")
        inside = ((times >= window.start) & (times < window.end)).to_numpy(dtype=bool)
        expected = whole.loc[inside, wanted].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, expected)  # values, order and dtypes
    before, after = outcome(cfg, whole, wid), outcome(cfg, part, wid, facts)
    if not isinstance(before, IngestResult):
        assert after == before
        return after
    assert isinstance(after, IngestResult)
    pd.testing.assert_frame_equal(after.data, before.data)
    assert content_sha256(after.data) == content_sha256(before.data)
    assert after.schema.fingerprint() == before.schema.fingerprint()
    assert after.report == before.report
    assert after.markdown == before.markdown
    return after


def test_streamed_windows_equal_the_whole_read(tmp_path: Path) -> None:
    src = awkward_events()
    write_files(tmp_path / "events", src)
    cfg = csv_config(tmp_path / "events", ignore_columns=["note"])
    whole = read_source(cfg.data.uri, "csv")
    # The case is what it claims: the whole read types these columns as below.
    assert whole["visits"].dtype == "float64"
    assert whole["member"].dtype == object and whole["member"].iloc[0] is True
    # `score` is text in the file holding "unknown" (row 340), numbers in the others.
    assert isinstance(whole["score"].iloc[341], str) and isinstance(whole["score"].iloc[0], float)
    for wid in ["0", "1", "3", "4", "5"]:
        result = assert_stream_equals_whole(cfg, wid)
        assert result is not None and result.report["ignored_columns"] == ["note"]
    assert result.report["warnings"][:2] == [
        "2 source rows have no event time and belong to no window",
        "3 source rows have an unreadable 'week' and belong to no window, e.g. 'soon', 'later'",
    ]
    assert result.data["plan"].str.contains('pro, "annual"\nbilled', regex=False).any()


def test_an_empty_window_an_extra_or_a_missing_column_fail_as_before(tmp_path: Path) -> None:
    write_files(tmp_path / "events", awkward_events())
    kind, _, problems = assert_stream_equals_whole(csv_config(tmp_path / "events"), "1")
    assert kind is ValidationError and problems[0].startswith("unexpected columns: 'note'")
    # An empty window names the whole source's rows and time range.
    empty = assert_stream_equals_whole(csv_config(tmp_path / "events", extra_columns="ignore"), "9")
    assert empty[0] is EmptyWindow
    assert empty[2] == [
        "no rows with 'week' in the window; the source has 360 rows spanning 0 to 5"
    ]
    write_files(tmp_path / "no-time", awkward_events().drop(columns=["week"]))
    kind, message, _ = assert_stream_equals_whole(csv_config(tmp_path / "no-time"), "1")
    assert kind is ValidationError and "the source has no time column 'week'" in message


def test_numbers_in_a_timestamp_column_are_refused_as_before(tmp_path: Path) -> None:
    write_files(tmp_path / "events", events(weeks=2))
    cfg = config(
        uri=str(tmp_path / "events"), format="csv", time_kind="timestamp", window_size="7d"
    )
    window = parse_window(cfg.data, "2024-01-01")
    before = outcome(cfg, read_source(cfg.data.uri, "csv"), "2024-01-01")
    assert before[0] is ValidationError and "holds numbers (dtype int64)" in before[1]
    with pytest.raises(ValidationError) as err:
        read_window(cfg.data.uri, "csv", cfg.data, window, columns=known_columns(cfg))
    assert str(err.value) == before[1]


def test_columns_ingest_does_not_keep_are_not_read(tmp_path: Path) -> None:
    """A Parquet column that fails to load if read: ingest never reads it, and its output is
    the output of a source without that column."""
    src = events(weeks=3).assign(blob=[f"payload {i}" * 20 for i in range(180)])
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pandas(src, preserve_index=False), path, row_group_size=60)
    meta = pq.ParquetFile(path).metadata
    at = meta.schema.to_arrow_schema().get_field_index("blob")
    raw = bytearray(path.read_bytes())
    for i in range(meta.num_row_groups):
        chunk = meta.row_group(i).column(at)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        raw[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(raw))
    with pytest.raises((ValidationError, OSError)):
        read_source(str(path), "parquet")  # the whole read fails on the broken column
    cfg = config(uri=str(path), ignore_columns=["blob"], min_rows=10)
    window = parse_window(cfg.data, "1")
    part, facts = read_window(cfg.data.uri, "parquet", cfg.data, window, columns=known_columns(cfg))
    assert "blob" not in part.columns and facts is not None and "blob" in (facts.columns or ())
    got = ingest_window(cfg, part, window, None, facts=facts)
    want = ingest_window(cfg, src, window, None)  # the intact source, read whole
    pd.testing.assert_frame_equal(got.data, want.data)
    assert content_sha256(got.data) == content_sha256(want.data)
    assert got.report == want.report and got.report["ignored_columns"] == ["blob"]
    with pytest.raises(ValidationError) as err:  # not ignored: the same failure as before
        ingest_window(config(uri=str(path), min_rows=10), part, window, None, facts=facts)
    with pytest.raises(ValidationError) as before:
        ingest_window(config(uri=str(path), min_rows=10), src, window, None)
    assert str(err.value) == str(before.value)
    assert "unexpected columns: 'blob'" in err.value.problems[0]


@pytest.mark.integration
def test_gcs_csv_windows_stream_by_range_and_equal_the_whole_read(gcs_emulator: Any) -> None:
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    src = awkward_events()
    for k, start in enumerate(range(0, len(src), FILE_ROWS)):
        text = src.iloc[start : start + FILE_ROWS].to_csv(index=False)
        bucket.blob(f"{lake}/events/part-{k:03d}.csv").upload_from_string(text)
    uri = f"gs://{gcs_emulator.bucket}/{lake}/events"
    cfg = csv_config(Path("unused"), uri=uri, ignore_columns=["note"])
    whole = read_source(uri, "csv", client=client)
    for wid in ["1", "4"]:
        window = parse_window(cfg.data, wid)
        part, facts = read_window(
            uri, "csv", cfg.data, window, columns=known_columns(cfg), client=client
        )
        before = ingest_window(cfg, whole, window, None)
        after = ingest_window(cfg, part, window, None, facts=facts)
        assert content_sha256(after.data) == content_sha256(before.data)
        assert after.report == before.report
    # resolve's read of the time column streams the objects too
    pd.testing.assert_series_equal(read_times(uri, "csv", "week", client=client), whole["week"])
