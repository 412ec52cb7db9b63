"""A window is judged on the files that hold its rows, not on every column of the source.

One file of a source (last year's) names a column differently (``amount_usd`` for ``amount``)
or carries one more column. A window whose rows all come from the other files ingests as it
would without that file; a window that reads it fails naming the file and its columns. Both
CSV (streamed) and Parquet (row groups pruned, file by file where the schemas differ) sources.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from retrain import steps
from retrain.config import Config
from retrain.data.ingest import IngestResult, ingest_window
from retrain.data.io import content_sha256, read_source
from retrain.data.schema import known_columns
from retrain.data.source import WindowCounts, read_window, window_counts
from retrain.data.windows import parse_window
from retrain.errors import ValidationError
from tests.unit.test_ingest import ROWS, config, events
from tests.unit.test_resolve_footers import MONDAY, raw_config, source_parts
from tests.unit.test_source_window import corrupt_groups_outside

FILES = {
    "part-0": (0, 2 * ROWS + 30),
    "part-1": (2 * ROWS + 30, 4 * ROWS),
    "part-2": (4 * ROWS, None),
}
ODD = "part-0"  # weeks 0 and 1 and the first half of week 2: the old file


def write(root: Path, parts: dict[str, pd.DataFrame], fmt: str, group_rows: int = 20) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        if fmt == "csv":
            part.to_csv(root / f"{name}.csv", index=False)
        else:
            table = pa.Table.from_pandas(part, preserve_index=False)
            pq.write_table(table, root / f"{name}.parquet", row_group_size=group_rows)


def split(src: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {
        name: src.iloc[start:end].reset_index(drop=True) for name, (start, end) in FILES.items()
    }


def odd_source(tmp_path: Path, fmt: str, odd: str) -> tuple[Path, Path]:
    """The source with its odd file, and a copy of it without (the files the later windows
    read); six weeks of events, three files."""
    parts = split(events(weeks=6))
    if odd == "renamed":
        parts[ODD] = parts[ODD].rename(columns={"amount": "amount_usd"})
    else:
        parts[ODD]["channel"] = "web"
    source, good = tmp_path / "events", tmp_path / "good"
    write(source, parts, fmt)
    good.mkdir()
    for f in source.iterdir():
        if not f.name.startswith(ODD):
            shutil.copy(f, good / f.name)
    return source, good


def ingest_read(cfg: Config, wid: str) -> IngestResult:
    """Read and check a window as the ingest step does (its columns only)."""
    window = parse_window(cfg.data, wid)
    data = cfg.data
    part, facts = read_window(data.uri, data.format, data, window, columns=known_columns(cfg))
    return ingest_window(cfg, part, window, None, facts=facts)


@pytest.mark.parametrize("odd", ["renamed", "extra"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_windows_outside_the_odd_file_ingest_as_without_it(
    tmp_path: Path, fmt: str, odd: str
) -> None:
    source, good = odd_source(tmp_path, fmt, odd)
    cfg = config(uri=str(source), format=fmt, min_rows=10)
    alone = config(uri=str(good), format=fmt, min_rows=10)
    for wid in ["3", "4", "5"]:
        window = parse_window(cfg.data, wid)
        got = ingest_read(cfg, wid)
        expected = ingest_window(alone, read_source(str(good), fmt), window, None)
        pd.testing.assert_frame_equal(got.data, expected.data)
        assert content_sha256(got.data) == content_sha256(expected.data)
        assert got.schema.fingerprint() == expected.schema.fingerprint()
        assert len(got.data) == ROWS


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_window_reading_a_renamed_column_names_the_file(tmp_path: Path, fmt: str) -> None:
    source, _ = odd_source(tmp_path, fmt, "renamed")
    cfg = config(uri=str(source), format=fmt, min_rows=10)
    odd_file = str(source / f"{ODD}.{fmt}")
    for wid in ["1", "2"]:  # week 2 spans the odd file and the next one
        with pytest.raises(ValidationError) as err:
            ingest_read(cfg, wid)
        problems = err.value.problems
        assert len(problems) == 2, problems  # nothing about the null 'amount' of its rows
        missing, unexpected = problems
        assert missing.startswith(f"missing columns: 'amount' in file {odd_file} (")
        assert "rewrite the file with the configured names" in missing
        assert unexpected.startswith(f"unexpected columns: 'amount_usd' in file {odd_file} (")
        assert "part-1" not in missing + unexpected


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_window_reading_an_extra_column_names_the_file(tmp_path: Path, fmt: str) -> None:
    source, _ = odd_source(tmp_path, fmt, "extra")
    cfg = config(uri=str(source), format=fmt, min_rows=10)
    with pytest.raises(ValidationError) as err:
        ingest_read(cfg, "2")
    assert err.value.problems == [
        f"unexpected columns: 'channel' in file {source / f'{ODD}.{fmt}'} (not the id, time, a "
        "configured feature or the prediction column); if they are not model inputs, list "
        "them in data.ignore_columns (e.g. ignore_columns: ['channel']) or set "
        "data.extra_columns: ignore; add them to data.features only if the model should "
        "learn from them"
    ]
    ignoring = config(uri=str(source), format=fmt, min_rows=10, ignore_columns=["channel"])
    assert len(ingest_read(ignoring, "2").data) == ROWS


def test_files_of_differing_schemas_are_read_by_row_group(tmp_path: Path) -> None:
    """Only the window's row groups are read from files whose schemas differ (the others are
    corrupt), and the window equals the one the whole read of those files gives."""
    src = events(weeks=4)
    parts = {"part-0": src.iloc[: 2 * ROWS], "part-1": src.iloc[2 * ROWS :].copy()}
    parts["part-1"]["visits"] = parts["part-1"]["visits"].astype("float64")  # another type
    parts["part-1"]["channel"] = "web"
    root = tmp_path / "events"
    write(root, parts, "parquet", group_rows=ROWS)  # one row group a week
    cfg = config(uri=str(root), min_rows=10, ignore_columns=["channel"])
    window = parse_window(cfg.data, "2")
    expected = ingest_window(cfg, read_source(str(root), "parquet"), window, None)
    corrupt_groups_outside(root / "part-0.parquet", "week", keep=-1)  # every group of it
    corrupt_groups_outside(root / "part-1.parquet", "week", keep=0)
    with pytest.raises(Exception):  # noqa: B017 - any failure shows the bytes are broken
        read_source(str(root), "parquet")
    part, facts = read_window(str(root), "parquet", cfg.data, window)
    got = ingest_window(cfg, part, window, None, facts=facts)
    pd.testing.assert_frame_equal(got.data, expected.data)
    assert content_sha256(got.data) == content_sha256(expected.data)
    assert got.report == expected.report


def test_counts_of_files_of_differing_schemas_come_from_statistics(tmp_path: Path) -> None:
    parts = dict(enumerate(source_parts()))
    parts[0] = parts[0].rename(columns={"amount": "amount_usd"})
    root = tmp_path / "events"
    write(root, {f"part-{k}": p for k, p in parts.items()}, "parquet", group_rows=42)
    cfg = config(uri=str(root), time_column="at", time_kind="timestamp", window_size="7d")
    counts = window_counts(str(root), "parquet", cfg.data)
    whole = WindowCounts.of_times(cfg.data, read_source(str(root), "parquet")["at"])
    assert (counts.rows, counts.newest) == (whole.rows, whole.newest)
    assert counts.read["row_groups_from_statistics"] == 6  # no file read whole


def test_resolve_and_ingest_pass_over_an_old_file_with_a_renamed_column(tmp_path: Path) -> None:
    parts = source_parts()
    parts[0] = parts[0].rename(columns={"amount": "amount_usd"})  # the week of Jan 1
    root = tmp_path / "events"
    write(root, {f"part-{k}": p for k, p in enumerate(parts)}, "parquet", group_rows=42)
    raw: dict[str, Any] = raw_config(tmp_path, str(root))
    raw["data"]["min_rows"] = 10
    cfg = yaml.safe_dump(raw)
    now = datetime(2024, 1, 29, 6, tzinfo=timezone.utc)  # the week of Jan 22 has ended
    out = steps.resolve_run(cfg, "auto", "auto", "7", now=now, kfp_run=False)
    assert out.window_id == "2024-01-22"
    done = steps.ingest(cfg, out.window_id, "run-1", str(tmp_path / "ds.parquet"))
    assert done.details["rows"] == 60
    first = MONDAY.strftime("%Y-%m-%d")
    with pytest.raises(ValidationError, match=rf"'amount' in file {root / 'part-0.parquet'}"):
        steps.ingest(cfg, first, "run-2", str(tmp_path / "ds2.parquet"))
