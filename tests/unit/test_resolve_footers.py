"""``resolve`` reads each Parquet file's footer once: the input-limit check and the window
count share what the first of them read.

Local footer reads are counted where this package's reads reach pyarrow: a `ParquetFile`
opened without its metadata reads the footer, and so does every Parquet dataset fragment
made (it reads its footer once, when first asked its schema). A ``gs://`` object's footer
reads are counted at the object: a footer read is a read that reaches the object's last byte
(data pages lie before the footer).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from retrain import steps
from retrain.config import config_from_dict
from retrain.data.footers import ParquetFooters
from retrain.data.io import read_source
from retrain.data.limits import check_source
from retrain.data.source import WindowCounts, window_counts
from retrain.errors import ValidationError
from retrain.steps import _resolve as resolve_module
from retrain.storage import GCSStorage

UTC = timezone.utc
MONDAY = pd.Timestamp("2024-01-01", tz="UTC")


def week_events(start: pd.Timestamp, hours: int, first_id: int) -> pd.DataFrame:
    times = start + pd.to_timedelta(np.arange(hours) * 2, unit="h")  # one event every 2 h
    return pd.DataFrame(
        {
            "id": [f"e{first_id + i}" for i in range(hours)],
            "at": times,
            "amount": np.linspace(0.0, 1.0, hours),
        }
    )


def source_parts(text: bool = False) -> list[pd.DataFrame]:
    """Four files over the weeks of Jan 1 to Jan 22 2024; the third spans two weeks.

    With `text`, the times are ISO text (which statistics cannot place), one of them unreadable.
    """
    parts = [
        week_events(MONDAY, 84, 0),  # the week of Jan 1, whole
        week_events(MONDAY + pd.Timedelta(days=7), 84, 100),  # Jan 8
        week_events(MONDAY + pd.Timedelta(days=13), 24, 200),  # Jan 14 to Jan 15: two weeks
        week_events(MONDAY + pd.Timedelta(days=21), 60, 300),  # Jan 22, through Jan 26 22:00
    ]
    if text:
        for part in parts:
            part["at"] = part["at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        parts[1].loc[5, "at"] = "not a time"
    return parts


def write_parts(root: Path, parts: list[pd.DataFrame]) -> list[Path]:
    root.mkdir(parents=True)
    paths = []
    for k, part in enumerate(parts):
        path = root / f"part-{k}.parquet"
        # Groups of up to 42 rows: the spanning file's one group holds both weeks' events.
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), path, row_group_size=42)
        paths.append(path)
    return paths


def raw_config(tmp_path: Path, uri: str) -> dict[str, Any]:
    return {
        "name": "shop",
        "task": "classification",
        "target": "churned",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": uri,
            "id_column": "id",
            "time_column": "at",
            "time_kind": "timestamp",
            "window_size": "7d",
            "features": {"amount": "numeric"},
        },
        "labels": {"uri": str(tmp_path / "labels"), "id_column": "id", "label_column": "churned"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "shop"},
    }


@pytest.fixture
def footer_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Footer reads by local path, through pyarrow's `ParquetFile` and dataset fragments."""
    reads: Counter[str] = Counter()

    class CountedParquetFile(pq.ParquetFile):
        def __init__(self, source: Any, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("metadata") is None:  # no footer given: it is read
                reads[str(source)] += 1
            super().__init__(source, *args, **kwargs)

    class CountedFormat(ds.ParquetFileFormat):
        def make_fragment(self, file: Any, *args: Any, **kwargs: Any) -> Any:
            reads[str(file)] += 1
            return super().make_fragment(file, *args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", CountedParquetFile)
    monkeypatch.setattr(pq.core, "ParquetFile", CountedParquetFile)  # pq.read_metadata's
    monkeypatch.setattr(ds, "ParquetFileFormat", CountedFormat)
    yield reads


@pytest.mark.parametrize("text", [False, True], ids=["timestamps", "text-times"])
def test_resolve_reads_each_local_footer_once(
    tmp_path: Path, footer_reads: Counter[str], text: bool
) -> None:
    parts = source_parts(text)
    paths = write_parts(tmp_path / "events", parts)
    config = yaml.safe_dump(raw_config(tmp_path, str(tmp_path / "events")))
    now = datetime(2024, 1, 29, 6, tzinfo=UTC)  # the week of Jan 22 has ended
    out = steps.resolve_run(config, "auto", "auto", "7", now=now, kfp_run=False)
    assert footer_reads == {str(p): 1 for p in paths}
    times = pd.to_datetime(pd.concat([p["at"] for p in parts]), utc=True, errors="coerce")
    in_window = (times >= MONDAY + pd.Timedelta(days=21)) & (times < MONDAY + pd.Timedelta(days=28))
    assert out.window_id == "2024-01-22"
    assert out.details["window"]["rows"] == int(in_window.sum()) == 60
    read = out.details["source_read"]
    if text:
        assert read["time_column"] == "every file read"
    else:
        # The spanning row group was read (its time column) without reading its footer again.
        assert (read["row_groups_time_column_read"], read["row_groups_from_statistics"]) == (1, 6)


def test_resolve_reads_each_local_footer_once_when_it_counts_the_whole_source(
    tmp_path: Path, footer_reads: Counter[str]
) -> None:
    """The clock's window is empty: the limits of every file are checked and the whole source
    counted, and the error names the newest event, with no footer read twice."""
    paths = write_parts(tmp_path / "events", source_parts())
    config = yaml.safe_dump(raw_config(tmp_path, str(tmp_path / "events")))
    later = datetime(2024, 2, 14, tzinfo=UTC)  # the week of Feb 5 ended empty
    with pytest.raises(ValidationError, match=r"window 2024-02-05 .*newest event is at 2024-01-26"):
        steps.resolve_run(config, "auto", "auto", "8", now=later, kfp_run=False)
    assert footer_reads == {str(p): 1 for p in paths}


@pytest.mark.parametrize("text", [False, True], ids=["timestamps", "text-times"])
def test_a_count_from_the_checks_footers_equals_a_count_that_reads_them(
    tmp_path: Path, text: bool
) -> None:
    write_parts(tmp_path / "events", source_parts(text))
    uri = str(tmp_path / "events")
    cfg = config_from_dict(raw_config(tmp_path, uri))
    footers = ParquetFooters()
    check_source(uri, "parquet", cfg.data.limits, footers=footers)
    shared = window_counts(uri, "parquet", cfg.data, footers=footers)
    fresh = window_counts(uri, "parquet", cfg.data)
    whole = WindowCounts.of_times(cfg.data, read_source(uri, "parquet")["at"])
    assert shared.rows == fresh.rows == whole.rows
    assert shared.newest == fresh.newest == whole.newest
    assert shared.unreadable.tolist() == fresh.unreadable.tolist() == whole.unreadable.tolist()
    assert shared.unreadable.tolist() == (["not a time"] if text else [])
    assert shared.read == fresh.read


def test_limits_refuse_the_same_files_with_footers_kept(tmp_path: Path) -> None:
    write_parts(tmp_path / "events", source_parts())
    (tmp_path / "events" / "part-5.parquet").write_bytes(b"\xff not parquet \x00" * 8)
    uri = str(tmp_path / "events")
    cfg = config_from_dict(raw_config(tmp_path, uri))
    limits = cfg.data.limits
    messages = []
    for footers in (None, ParquetFooters()):
        with pytest.raises(ValidationError) as err:
            check_source(uri, "parquet", limits, footers=footers)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"{tmp_path / 'events' / 'part-5.parquet'} is not a readable")


class TailReads:
    """A reader of one object that counts the reads reaching its last byte (footer reads)."""

    def __init__(self, inner: BinaryIO, on_tail: Any) -> None:
        self._inner = inner
        self._on_tail = on_tail
        self._size = inner.seek(0, 2)
        inner.seek(0)

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data and self._inner.tell() >= self._size:
            self._on_tail()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.integration
def test_resolve_reads_each_gcs_footer_once_when_it_counts_the_whole_source(
    gcs_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    local = write_parts(tmp_path / "events", source_parts())
    for path in local:
        bucket.blob(f"{lake}/events/{path.name}").upload_from_filename(str(path))
    reads: Counter[str] = Counter()
    open_read = GCSStorage.open_read

    def counted(self: GCSStorage, key: str) -> BinaryIO:
        def tail() -> None:
            reads[key.rsplit("/", 1)[-1]] += 1

        return TailReads(open_read(self, key), tail)  # type: ignore[return-value]

    monkeypatch.setattr(GCSStorage, "open_read", counted)
    raw = raw_config(tmp_path, f"gs://{gcs_emulator.bucket}/{lake}/events")
    later = datetime(2024, 2, 14, tzinfo=UTC)  # the clock's window is empty: the whole source
    with pytest.raises(ValidationError, match=r"newest event is at 2024-01-26"):
        steps.resolve_run(yaml.safe_dump(raw), "auto", "auto", "9", now=later, kfp_run=False)
    assert reads == {p.name: 1 for p in local}


def write_plain(path: Path, frame: pd.DataFrame) -> None:
    """Uncompressed, no dictionary: a file of as many rows has the same byte layout. Written
    beside and renamed over, as writers replace a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp, row_group_size=42, compression="none", use_dictionary=False)
    tmp.replace(path)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        # Another byte layout: the old footer's offsets fall inside the new file's pages.
        (week_events(MONDAY + pd.Timedelta(days=20, hours=12), 12, 200), 60),
        # The same layout: its first group lies in one week (statistics), its second spans two.
        (week_events(MONDAY + pd.Timedelta(days=15), 84, 200), 84),
    ],
    ids=["other-layout", "same-layout"],
)
def test_resolve_counts_a_file_replaced_after_the_check_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: pd.DataFrame, then: int
) -> None:
    """A file replaced between the limit check and the count is counted from its new footer,
    not from the kept one with the new file's bytes."""
    events = tmp_path / "events"
    events.mkdir()
    write_plain(events / "part-0.parquet", week_events(MONDAY, 84, 0))
    write_plain(events / "part-1.parquet", week_events(MONDAY + pd.Timedelta(days=7), 84, 100))
    write_plain(events / "part-2.parquet", first)
    later = first["at"].iloc[0] + pd.Timedelta(days=3)
    replacement = week_events(later, then, 200)
    check = resolve_module.check_source

    def check_then_replace(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        write_plain(events / "part-2.parquet", replacement)

    monkeypatch.setattr(resolve_module, "check_source", check_then_replace)
    config = yaml.safe_dump(raw_config(tmp_path, str(events)))
    now = datetime(2024, 1, 29, 6, tzinfo=UTC)  # the week of Jan 22 has ended
    out = steps.resolve_run(config, "auto", "auto", "7", now=now, kfp_run=False)
    times = read_source(str(events), "parquet")["at"]
    week = (times >= MONDAY + pd.Timedelta(days=21)) & (times < MONDAY + pd.Timedelta(days=28))
    assert out.window_id == "2024-01-22"
    assert out.details["window"]["rows"] == int(week.sum())


@pytest.mark.integration
def test_resolve_counts_a_gcs_object_replaced_between_its_counts_as_it_is(
    gcs_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock's window is empty, so resolve counts the whole source again after its first
    count: an object replaced in between (a new generation) is read from its new footer."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    for path in write_parts(tmp_path / "events", source_parts()[:3]):
        bucket.blob(f"{lake}/events/{path.name}").upload_from_filename(str(path))
    # The third object's events move to the week of Jan 22: more rows, another byte layout.
    newer = write_parts(tmp_path / "newer", [week_events(MONDAY + pd.Timedelta(days=20), 60, 200)])
    count = resolve_module.window_counts
    counts = []

    def count_then_replace(*args: Any, **kwargs: Any) -> Any:
        counts.append(count(*args, **kwargs))
        if len(counts) == 1:
            bucket.blob(f"{lake}/events/part-2.parquet").upload_from_filename(str(newer[0]))
        return counts[-1]

    monkeypatch.setattr(resolve_module, "window_counts", count_then_replace)
    raw = raw_config(tmp_path, f"gs://{gcs_emulator.bucket}/{lake}/events")
    later = datetime(2024, 2, 14, tzinfo=UTC)  # the week of Feb 5: empty
    # The newest event of the source as it is now: the replacement's last, Jan 25 22:00.
    with pytest.raises(ValidationError, match=r"newest event is at 2024-01-25T22:00:00Z"):
        steps.resolve_run(yaml.safe_dump(raw), "auto", "auto", "9", now=later, kfp_run=False)
    assert len(counts) == 2  # the whole source was counted again, after the replacement


def test_a_time_column_named_like_a_struct_field_counts_its_own_statistics(
    tmp_path: Path,
) -> None:
    """A top-level time column ``a.b`` after a struct ``a`` with a field ``b``: both leaves
    have the path ``a.b``; the count uses the time column's statistics, not the struct's."""
    times = pd.date_range("2024-01-22", periods=10, freq="h", tz="UTC")
    table = pa.table(
        {
            "a": pa.array([{"b": pd.Timestamp("2000-01-01", tz="UTC"), "c": 1}] * 10),
            "id": [f"e{i}" for i in range(10)],
            "a.b": pa.array(times),
            "amount": [1.0] * 10,
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    raw = raw_config(tmp_path, str(path))
    raw["data"]["time_column"] = "a.b"
    cfg = config_from_dict(raw)
    counts = window_counts(str(path), "parquet", cfg.data)
    assert dict(counts.rows) == {"2024-01-22": 10}
