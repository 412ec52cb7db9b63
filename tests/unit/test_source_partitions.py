"""A source in hive-style partitions is read only from the partitions that overlap the window.

A partition that must not be read holds a file of garbage (not even a footer): opening it in
any way fails, so a read that succeeds never touched it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from retrain import steps
from retrain.data.ingest import EmptyWindow, ingest_window
from retrain.data.io import content_sha256, read_source
from retrain.data.partitions import partition_span
from retrain.data.source import read_window
from retrain.data.windows import parse_window
from retrain.errors import ValidationError
from tests.unit.test_ingest import config, events

GARBAGE = b"\xff\xfe not a data file \x00" * 10


def write_partitioned(root: Path, src: pd.DataFrame, keys: pd.Series, name: str, fmt: str) -> None:
    for value in pd.unique(keys):
        part = src.loc[keys == value].reset_index(drop=True)
        where = root / f"{name}={value}"
        where.mkdir(parents=True)
        if fmt == "csv":
            part.to_csv(where / "part-0.csv", index=False)
        else:
            table = pa.Table.from_pandas(part, preserve_index=False)
            pq.write_table(table, where / "part-0.parquet")


def break_partition(root: Path, directory: str, fmt: str) -> None:
    (root / directory).mkdir(parents=True, exist_ok=True)
    (root / directory / f"part-0.{fmt}").write_bytes(GARBAGE)
    (root / directory / f"part-1.{fmt}").write_bytes(GARBAGE)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_period_windows_read_only_their_partition(tmp_path: Path, fmt: str) -> None:
    src = events(weeks=5)
    flat = tmp_path / "flat"
    flat.mkdir()
    if fmt == "parquet":
        src.to_parquet(flat / "all.parquet", index=False)
    else:
        src.to_csv(flat / "all.csv", index=False)
    root = tmp_path / "events"
    write_partitioned(root, src, src["week"], "window", fmt)
    break_partition(root, "window=3", fmt)  # a later window whose files are unreadable
    break_partition(root, "window=0", fmt)
    cfg_flat = config(uri=str(flat), format=fmt)
    cfg = config(uri=str(root), format=fmt, partitioning="window", partition_size=1)
    with pytest.raises(Exception):  # noqa: B017 - any failure shows the bytes are broken
        read_source(str(root), fmt)
    for wid in ["1", "2", "4"]:
        window = parse_window(cfg.data, wid)
        want = ingest_window(cfg_flat, read_source(str(flat), fmt), window, None)
        part, facts = read_window(str(root), fmt, cfg.data, window)
        got = ingest_window(cfg, part, window, None, facts=facts)
        pd.testing.assert_frame_equal(got.data, want.data)
        assert content_sha256(got.data) == content_sha256(want.data)
        assert got.report["features"] == want.report["features"]
        assert got.report["source_rows"] == 60  # the partition read, not the source


def test_day_partitions_of_weekly_windows(tmp_path: Path) -> None:
    src = events(weeks=3).drop(columns=["week"])
    hours = np.arange(len(src)) * 8  # three rows a day over 60 days
    src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    days = src["at"].dt.strftime("%Y-%m-%d")
    root = tmp_path / "events"
    write_partitioned(root, src, days, "date", "parquet")
    break_partition(root, "date=2024-01-29", "parquet")  # a Monday: the next window's first day
    break_partition(root, "date=2024-01-21", "parquet")  # a Sunday: the window before
    cfg = config(
        uri=str(root),
        time_kind="timestamp",
        time_column="at",
        window_size="7d",
        min_rows=10,
        partitioning="date",
    )
    window = parse_window(cfg.data, "2024-01-22")
    part, facts = read_window(str(root), "parquet", cfg.data, window)
    got = ingest_window(cfg, part, window, None, facts=facts)
    inside = src[(src["at"] >= window.start) & (src["at"] < window.end)]
    assert got.data["id"].tolist() == inside["id"].tolist()
    assert facts is not None and facts.rows == 21  # seven day partitions of three rows


def test_a_window_without_a_partition_is_empty_and_says_what_the_source_holds(
    tmp_path: Path,
) -> None:
    src = events(weeks=2)
    root = tmp_path / "events"
    write_partitioned(root, src, src["week"], "window", "parquet")
    cfg = config(uri=str(root), partitioning="window", partition_size=1)
    window = parse_window(cfg.data, "7")
    part, facts = read_window(str(root), "parquet", cfg.data, window)
    with pytest.raises(EmptyWindow, match="window 7") as err:
        ingest_window(cfg, part, window, None, facts=facts)
    assert "the source has 120 rows spanning 0 to 1" in repr(err.value.problems)


def test_what_a_partition_promises() -> None:
    period = config(partitioning="window", partition_size=1).data
    weekly = config(
        time_kind="timestamp", time_column="at", window_size="7d", partitioning="date"
    ).data
    assert partition_span(period, "window=3/part.parquet") == (3, 4)
    assert partition_span(period, "x/window=3/y/part.parquet") == (3, 4)
    assert partition_span(period, "part.parquet") is None
    assert partition_span(period, "Week=3/part.parquet") is None
    day = pd.Timestamp("2024-01-02", tz="UTC")
    assert partition_span(weekly, "date=2024-01-02/p.parquet") == (day, day + pd.Timedelta(days=1))
    six = pd.Timestamp("2024-01-01T06:00:00Z")
    hourly = weekly_partitions(window_size="1h", partition_size="6h")
    assert partition_span(hourly, "window=2024-01-01T06%3A00%3A00Z/p.parquet") == (
        six,
        six + pd.Timedelta(hours=6),
    )  # as Arrow's hive writer spells an instant
    with pytest.raises(ValidationError, match=r"names a window but data\.partitioning is 'date'"):
        partition_span(weekly, "window=2024-01-01/p.parquet")
    # Undeclared, directory names promise nothing: every file is read.
    undeclared = config(time_kind="timestamp", time_column="at", window_size="7d").data
    assert partition_span(undeclared, "date=2024-01-02/p.parquet") is None
    assert partition_span(config().data, "window=3/p.parquet") is None


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("window=soon/part.parquet", "does not parse"),
        ("date=2024-01-01/part.parquet", "not a UTC day"),  # periods have no calendar
    ],
)
def test_a_declared_period_partition_that_promises_nothing_is_refused(path: str, why: str) -> None:
    period = config(partitioning="window", partition_size=1).data
    with pytest.raises(ValidationError, match=why) as err:
        partition_span(period, path, where=f"/lake/{path}")
    assert f"/lake/{path}" in str(err.value) and "data.partitioning: none" in str(err.value)


def weekly_partitions(**data: Any) -> Any:
    return config(
        **{
            "time_kind": "timestamp",
            "time_column": "at",
            "partitioning": "window",
            "partition_size": "7d",
            **data,
        }
    ).data


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("window=2024-03-06/p.parquet", "not on the grid of data.partition_size '7d'"),
        ("window=2024-03-04/date=2024-03-20/p.parquet", "promises no common time"),
        ("date=2024-1-2/p.parquet", "not a UTC day"),
        ("date=2024-02-30/p.parquet", "not a date"),
    ],
)
def test_off_grid_contradictory_and_malformed_partitions_are_refused(path: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        partition_span(weekly_partitions(window_size="7d"), path)


def test_a_cadence_change_keeps_the_partitions_true_span(tmp_path: Path) -> None:
    src = events(weeks=3).drop(columns=["week"])
    hours = np.arange(len(src)) * 8  # three rows a day over 60 days from Monday 2024-01-01
    src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    mondays = src["at"].dt.normalize() - pd.to_timedelta(src["at"].dt.day_of_week, unit="D")
    weeks = mondays.dt.strftime("%Y-%m-%d")
    root = tmp_path / "events"
    write_partitioned(root, src, weeks, "window", "parquet")  # written under 7d windows
    assert (root / "window=2024-01-08").is_dir()
    daily = weekly_partitions(uri=str(root), window_size="1d", min_rows=1)
    for day in ["2024-01-08", "2024-01-09", "2024-01-14"]:
        window = parse_window(daily, day)
        part, _ = read_window(str(root), "parquet", daily, window)
        inside = src[(src["at"] >= window.start) & (src["at"] < window.end)]
        assert len(inside) == 3
        assert part["id"].tolist() == inside["id"].tolist(), day


def test_window_partitions_need_their_size_declared() -> None:
    with pytest.raises(ValidationError, match="needs partition_size"):
        config(time_kind="timestamp", time_column="at", window_size="7d", partitioning="window")
    with pytest.raises(ValidationError, match="partitioning 'date' needs a timestamp"):
        config(partitioning="date")


def resolve_config(tmp_path: Path, root: Path) -> str:
    cfg = {
        "name": "shop",
        "task": "classification",
        "target": "churned",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": str(root),
            "id_column": "id",
            "time_column": "at",
            "time_kind": "timestamp",
            "window_size": "7d",
            "features": {"amount": "numeric"},
            "partitioning": "date",
        },
        "labels": {"uri": str(tmp_path / "labels"), "id_column": "id", "label_column": "churned"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "shop"},
    }
    return yaml.safe_dump(cfg)


def test_resolve_reads_only_the_partitions_of_the_window_the_clock_chooses(
    tmp_path: Path,
) -> None:
    src = events(weeks=3).drop(columns=["week"])
    hours = np.arange(len(src)) * 8  # three rows a day over 60 days from Monday 2024-01-01
    src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    root = tmp_path / "events"
    write_partitioned(root, src, src["at"].dt.strftime("%Y-%m-%d"), "date", "parquet")
    break_partition(root, "date=2024-01-05", "parquet")  # the week before the one chosen
    text = resolve_config(tmp_path, root)
    monday = datetime(2024, 1, 22, 9, tzinfo=timezone.utc)
    out = steps.resolve_run(text, "auto", "auto", "1", now=monday)
    assert out.window_id == "2024-01-15"
    assert out.details["window"]["rows"] == 21
    assert out.details["source_read"]["partitions_skipped"] == 60 - 7 + 1  # the broken one too
    # An empty chosen window counts the whole source (footers) to name its newest event.
    (root / "date=2024-01-05" / "part-0.parquet").unlink()
    (root / "date=2024-01-05" / "part-1.parquet").unlink()
    later = datetime(2024, 4, 2, tzinfo=timezone.utc)
    with pytest.raises(ValidationError, match="its newest event is at 2024-02-29T16:00:00Z"):
        steps.resolve_run(text, "auto", "auto", "2", now=later)


@pytest.mark.integration
def test_gcs_partitions_outside_the_window_are_never_fetched(gcs_emulator: Any) -> None:
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.bucket)
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    src = events(weeks=3)
    for week in range(3):
        sink = pa.BufferOutputStream()
        part = pa.Table.from_pandas(src[src["week"] == week], preserve_index=False)
        pq.write_table(part, sink)
        bucket.blob(f"{lake}/events/window={week}/part-0.parquet").upload_from_string(
            sink.getvalue().to_pybytes()
        )
    bucket.blob(f"{lake}/events/window=5/part-0.parquet").upload_from_string(GARBAGE)
    uri = f"gs://{gcs_emulator.bucket}/{lake}/events"
    cfg = config(uri=uri, partitioning="window", partition_size=1)
    window = parse_window(cfg.data, "1")
    part, facts = read_window(uri, "parquet", cfg.data, window, client=client)
    got = ingest_window(cfg, part, window, None, facts=facts)
    assert got.data["id"].tolist() == src.loc[src["week"] == 1, "id"].tolist()
    assert facts is not None and facts.rows == 60


def test_resolve_checks_the_whole_sources_limits_before_its_empty_window_fallback(
    tmp_path: Path,
) -> None:
    src = events(weeks=3).drop(columns=["week"])
    hours = np.arange(len(src)) * 8  # 180 rows, three a day from Monday 2024-01-01
    src["at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    root = tmp_path / "events"
    write_partitioned(root, src, src["at"].dt.strftime("%Y-%m-%d"), "date", "parquet")
    raw = yaml.safe_load(resolve_config(tmp_path, root))
    raw["data"]["limits"] = {"max_rows": 100}  # the chosen window is empty; the source is not
    later = datetime(2024, 4, 2, tzinfo=timezone.utc)
    with pytest.raises(ValidationError, match=r"max_rows = 100"):
        steps.resolve_run(yaml.safe_dump(raw), "auto", "auto", "1", now=later)
