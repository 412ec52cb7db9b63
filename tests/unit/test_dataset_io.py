from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.data.io import (
    METADATA_KEY,
    content_sha256,
    dataset_metadata,
    from_parquet_bytes,
    read_source,
    to_parquet_bytes,
)
from retrain.errors import ValidationError


def frame(start: int = 0, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"e{i}" for i in range(start, start + n)],
            "week": np.arange(start, start + n, dtype=np.int64),
            "x": np.linspace(0.0, 1.0, n) + start,
        }
    )


def sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", None],
            "x": [1.5, -0.0, np.nan],
            "n": [1, 2, 3],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        }
    )


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_parquet_bytes(df, {}))


# --- read_source -------------------------------------------------------------------------


def test_reads_a_single_parquet_file_and_a_csv_file(tmp_path: Path) -> None:
    write_parquet(tmp_path / "one.parquet", frame())
    got = read_source(str(tmp_path / "one.parquet"), "parquet")
    pd.testing.assert_frame_equal(got, frame())
    frame(5).to_csv(tmp_path / "one.csv", index=False)
    got = read_source(f"file://{tmp_path / 'one.csv'}", "csv")
    assert got["id"].tolist() == ["e5", "e6", "e7"]
    assert got["week"].tolist() == [5, 6, 7]


def test_reads_every_file_of_the_format_below_a_directory_in_path_order(tmp_path: Path) -> None:
    write_parquet(tmp_path / "b.parquet", frame(10))
    write_parquet(tmp_path / "a.parquet", frame(0))
    write_parquet(tmp_path / "nested" / "c.parquet", frame(20))
    write_parquet(tmp_path / "_staging" / "d.parquet", frame(30))  # writer's scratch space
    write_parquet(tmp_path / ".e.parquet", frame(40))  # hidden temporary file
    (tmp_path / "_SUCCESS").write_text("")
    frame(50).to_csv(tmp_path / "other.csv", index=False)
    got = read_source(str(tmp_path), "parquet")
    assert got["week"].tolist() == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert got.index.tolist() == list(range(9))


def test_missing_or_empty_sources_are_validation_errors_naming_the_uri(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ValidationError, match=f"not found: {missing}"):
        read_source(str(missing), "parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match=r"no \.parquet files"):
        read_source(str(tmp_path / "empty"), "parquet")
    with pytest.raises(ValidationError, match="unknown data format 'json'"):
        read_source(str(tmp_path), "json")
    with pytest.raises(ValidationError, match="unsupported data source URI"):
        read_source("s3://bucket/events", "parquet")


def test_a_corrupt_file_is_named(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", frame())
    (tmp_path / "b.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValidationError, match=r"b\.parquet is not a readable parquet file"):
        read_source(str(tmp_path), "parquet")


# --- Parquet bytes with metadata ----------------------------------------------------------


def test_parquet_bytes_round_trip_frame_and_metadata() -> None:
    df = sample().set_index(pd.Index([10, 20, 30]))
    meta = {"rows": 3, "source_snapshot": "week-7", "nested": {"a": [1, 2]}}
    data = to_parquet_bytes(df, meta)
    got, got_meta = from_parquet_bytes(data)
    assert got_meta == meta
    pd.testing.assert_frame_equal(got, df.reset_index(drop=True))
    assert METADATA_KEY in data  # stored as Parquet key-value metadata


def test_parquet_without_our_metadata_reads_empty_and_garbage_is_refused() -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame(), preserve_index=False), sink)
    got, meta = from_parquet_bytes(sink.getvalue())
    assert meta == {}
    assert got["id"].tolist() == ["e0", "e1", "e2"]
    with pytest.raises(ValidationError, match="not a readable Parquet dataset"):
        from_parquet_bytes(b"definitely not parquet")


def test_parquet_bytes_are_deterministic() -> None:
    assert to_parquet_bytes(sample(), {"a": 1}) == to_parquet_bytes(sample(), {"a": 1})


# --- content hash -------------------------------------------------------------------------


def test_content_hash_is_pinned_across_runs() -> None:
    # A change here changes every dataset's recorded hash: do it only on purpose.
    assert content_sha256(sample()) == (
        "f42a9ad4b1746670c202a7e56137db41d82ad1a553e4787748cf0e0d9a5f58cb"
    )


@pytest.mark.parametrize("kind", ["str", "string", "category", "object"])
def test_text_columns_encode_to_the_same_bytes_as_value_by_value(kind: str) -> None:
    """The per-distinct-value path for text columns against the plain per-value encoding."""
    from retrain.data.io import _column_bytes, _value_text

    rng = np.random.default_rng(3)
    words = np.array(["a", "b:c", "ümlaut", "", "None", "x\x1fy", "12", "long" * 20], dtype=object)
    values = words[rng.integers(0, len(words), 500)]
    values[rng.random(500) < 0.1] = None
    series = pd.Series(values, dtype=object).astype(kind)
    expected = "\x1f".join(_value_text(v) for v in series.astype(object).to_numpy()).encode()
    assert _column_bytes(series) == expected


def test_content_hash_ignores_the_index_but_not_content() -> None:
    base = content_sha256(sample())
    assert content_sha256(sample().set_index(pd.Index([7, 8, 9]))) == base
    filtered = pd.concat([sample(), sample()]).iloc[3:]  # index 0..2 again, but from a concat
    assert content_sha256(filtered) == base
    changed = sample()
    changed.loc[0, "x"] = 1.5000001
    assert content_sha256(changed) != base
    assert content_sha256(sample().rename(columns={"n": "m"})) != base
    assert content_sha256(sample().astype({"n": "float64"})) != base
    assert content_sha256(sample().iloc[::-1]) != base
    assert content_sha256(sample()[["x", "id", "n", "t"]]) != base
    nulls = sample()
    nulls.loc[0, "id"] = "None"  # the text 'None' is not a missing value
    assert content_sha256(nulls) != content_sha256(sample().assign(id=[None, "b", None]))


def test_content_hash_normalises_negative_zero_and_survives_parquet() -> None:
    plus_zero = sample().assign(x=[1.5, 0.0, np.nan])
    assert content_sha256(plus_zero) == content_sha256(sample())
    back, _ = from_parquet_bytes(to_parquet_bytes(sample(), {}))
    assert content_sha256(back) == content_sha256(sample())


def test_dataset_metadata_records_lineage() -> None:
    df = frame(4, n=5)
    meta = dataset_metadata(df, time_column="week", source_snapshot="4", schema_fingerprint="abc")
    assert meta == {
        "rows": 5,
        "columns": ["id", "week", "x"],
        "event_time_min": 4,
        "event_time_max": 8,
        "schema_fingerprint": "abc",
        "sha256": content_sha256(df),
        "source_snapshot": "4",
    }
    times = sample()
    meta = dataset_metadata(times, time_column="t", source_snapshot="s", schema_fingerprint="f")
    assert meta["event_time_min"] == "2024-01-01T00:00:00+00:00"
    assert meta["event_time_max"] == "2024-01-03T00:00:00+00:00"
    json.dumps(meta, allow_nan=False)
    with pytest.raises(ValidationError, match="'when'"):
        dataset_metadata(df, time_column="when", source_snapshot="s", schema_fingerprint="f")


# --- gs:// against a real GCS emulator (the session's fake-gcs-server, tests/conftest.py) -----


@pytest.mark.integration
def test_reads_gcs_files_and_prefixes(gcs_emulator: Any) -> None:
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    for name, df in [
        ("events/w1.parquet", frame(10)),
        ("events/w0.parquet", frame(0)),
        ("events/_SUCCESS", None),
        ("events/.staging/w2.parquet", frame(20)),  # a writer's hidden scratch space
        ("events.bak/w9.parquet", frame(90)),  # a sibling prefix, not a child
    ]:
        data = b"" if df is None else to_parquet_bytes(df, {})
        bucket.blob(f"{lake}/{name}").upload_from_string(data)
    root = f"gs://{gcs_emulator.bucket}/{lake}"
    got = read_source(f"{root}/events", "parquet", client=client)
    assert got["week"].tolist() == [0, 1, 2, 10, 11, 12]
    one = read_source(f"{root}/events/w1.parquet", "parquet", client=client)
    assert one["week"].tolist() == [10, 11, 12]
    with pytest.raises(ValidationError, match=f"not found: {root}/labels"):
        read_source(f"{root}/labels", "parquet", client=client)
