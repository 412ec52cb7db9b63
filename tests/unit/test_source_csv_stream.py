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
from retrain.data.limits import check_frame
from retrain.data.schema import known_columns
from retrain.data.source import read_times, read_window
from retrain.data.windows import parse_window
from retrain.errors import ValidationError
from retrain.settings.limits import InputLimits
from retrain.steps import ingest
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


def events_config(uri: Path | str, **data: Any) -> Config:
    """A config for `events` written as CSV: the default features, other columns ignored."""
    return config(uri=str(uri), format="csv", min_rows=5, extra_columns="ignore", **data)


def stream(cfg: Config, wid: str) -> tuple[pd.DataFrame, Any]:
    window = parse_window(cfg.data, wid)
    return read_window(cfg.data.uri, "csv", cfg.data, window, columns=known_columns(cfg))


@pytest.mark.parametrize("line", [2, 62, 181], ids=["first row", "a middle row", "last row"])
def test_a_row_with_more_fields_than_the_header_is_refused_naming_file_and_line(
    tmp_path: Path, line: int
) -> None:
    """An unquoted separator inside a value ("1,234.5"): the row has 7 fields under a header
    of 6. pandas drops the extra fields of a row when it reads some columns only, and takes
    those of the first row as an index; either way every value after it shifts a column."""
    text = events(weeks=3).to_csv(index=False).splitlines()
    week = int(text[line - 1].split(",")[1])
    text[line - 1] = f"u9999,{week},1,234.5,3,pro,0.3"
    root = tmp_path / "events"
    root.mkdir()
    (root / "part-000.csv").write_text("\n".join(text) + "\n")
    cfg = events_config(root)
    expected = (
        f"{root / 'part-000.csv'} is not a readable csv file: Error tokenizing data. C error: "
        f"Expected 6 fields in line {line}, saw 7"
    )
    with pytest.raises(ValidationError) as whole:
        read_source(cfg.data.uri, "csv")
    assert str(whole.value).strip() == expected
    for wid in [str(week), "9"]:  # the row's window, and one that holds none of the rows
        with pytest.raises(ValidationError) as streamed:
            stream(cfg, wid)
        assert str(streamed.value).strip() == expected


def test_a_row_with_fewer_fields_is_filled_with_missing_values_as_before(tmp_path: Path) -> None:
    text = events(weeks=3).to_csv(index=False).splitlines()
    text[70] = ",".join(text[70].split(",")[:4])  # week 1: no plan, no score
    root = tmp_path / "events"
    root.mkdir()
    (root / "part-000.csv").write_text("\n".join(text) + "\n")
    cfg = events_config(root)
    whole = read_source(cfg.data.uri, "csv")
    assert whole[["plan", "score"]].isna().sum().tolist() == [1, 1]  # the case is what it says
    result = assert_stream_equals_whole(cfg, "1")
    assert isinstance(result, IngestResult) and result.report["rows"] == 60


def test_a_file_with_none_of_the_columns_read_still_counts_its_rows(tmp_path: Path) -> None:
    root = tmp_path / "events"
    write_files(root, events(weeks=2))
    (root / "part-009.csv").write_text("a,b\n1,2\n3,4\n")  # no id, time or feature
    cfg = events_config(root, max_null_rate=1.0)
    for wid in ["0", "1"]:
        result = assert_stream_equals_whole(cfg, wid)
        assert isinstance(result, IngestResult)
        assert result.report["source_rows"] == 122
        warning = "2 source rows have no event time and belong to no window"
        assert warning in result.report["warnings"]
    part, facts = stream(cfg, "1")
    assert facts.rows == 122 and facts.no_time == 2
    assert part["week"].dtype == "float64"  # blanks beside integers, as in the whole read


def test_a_mixed_column_is_text_whatever_the_file_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A numeric column with one text value: the stream makes every value of it a string. So
    does the whole read of a file pandas parses in one block; in a larger file (here 8,192
    rows and more at 64 columns) pandas types it block by block and mixes ints and strings."""
    monkeypatch.setattr(csv_window, "CSV_CHUNK_ROWS", 4096)
    src = events(weeks=160).astype({"visits": object})  # 9,600 rows
    src = src.assign(**{f"f{i}": i for i in range(58)})  # 64 columns, the 58 not read
    src.loc[7990, "visits"] = "unknown"  # in week 133
    for rows, mixed in [(8000, False), (len(src), True)]:
        root = tmp_path / f"rows-{rows}"
        root.mkdir()
        src.iloc[:rows].to_csv(root / "part-000.csv", index=False)
        features = {"amount": "numeric", "visits": "categorical", "plan": "categorical"}
        cfg = events_config(root, features=features)
        if mixed:
            with pytest.warns(pd.errors.DtypeWarning):
                whole = read_source(cfg.data.uri, "csv")
        else:
            whole = read_source(cfg.data.uri, "csv")
        kinds = {type(v).__name__ for v in whole["visits"]}
        assert kinds == ({"int", "str"} if mixed else {"str"})  # the case is what it says
        for wid in ["0", "133"]:
            part, _ = stream(cfg, wid)
            in_window = whole.loc[whole["week"] == int(wid), "visits"]
            assert pd.api.types.is_string_dtype(part["visits"].dtype)
            assert part["visits"].tolist() == in_window.astype(str).tolist()
            if not mixed:
                assert part["visits"].dtype == whole["visits"].dtype


def test_check_frame_limits_the_source_not_the_window_read() -> None:
    window = pd.DataFrame({"id": ["a", "b"], "week": [1, 1]})
    limits = InputLimits(max_rows=10, max_columns=3)
    check_frame(window, "src", limits)  # 2 rows, 2 columns: within
    check_frame(window, "src", limits, columns=["id", "week", "x"], rows=10)
    with pytest.raises(ValidationError, match=r"src: 11 rows, over .*max_rows = 10"):
        check_frame(window, "src", limits, rows=11)
    with pytest.raises(ValidationError, match=r"src: 4 columns, over .*max_columns = 3"):
        check_frame(window, "src", limits, columns=["id", "week", "x", "y"])


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


@pytest.mark.integration
def test_the_ingest_step_limits_the_rows_of_a_gcs_csv_source_not_of_the_window(
    gcs_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``gs://`` source is not scanned before it is read: the limit is checked on the rows
    the stream counted, the whole source's (180), not the window's (60)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    bucket.blob(f"{lake}/events/part-000.csv").upload_from_string(
        events(weeks=3).to_csv(index=False)
    )
    uri = f"gs://{gcs_emulator.bucket}/{lake}/events"

    def run(max_rows: int) -> Any:
        cfg = events_config(uri, limits={"max_rows": max_rows})
        cfg = cfg.model_copy(update={"storage_root": str(tmp_path / f"store-{max_rows}")})
        return ingest(cfg.to_yaml(), "1", "r1", str(tmp_path / f"d-{max_rows}.parquet"))

    with pytest.raises(ValidationError, match=r"180 rows, over the limit data.limits.max_rows"):
        run(179)
    assert run(180).summary.startswith("window 1: 60 rows passed schema checks")
