"""Hive-style partitions of a source: directories that name the event time their files hold.

Directory names are trusted only when the config declares the layout (`data.partitioning`):

- ``window``: ``events/window=<id>/part-0.parquet`` holds the events of ``[start, end)`` of
  the window ``<id>`` on the grid of `data.partition_size` (the span the partitions were
  written with, kept apart from `data.window_size` so a change of cadence does not shrink
  them), anchored at `data.window_anchor`;
- ``date``: ``events/date=<YYYY-MM-DD>/…`` holds the events of that UTC day.

Under a declared layout, ingest reads only the files whose partitions overlap its window: the
others are not opened, not even their footers. Both keys are read wherever they appear (any
depth below the root); a value that does not parse, a window id off the partition grid, or
keys that promise no common time (``window=2024-03-04/date=2024-03-20``) are refused: a
partition that promises nothing or the impossible would otherwise lose events silently.
Files outside any such directory are always read. With ``partitioning: none`` (the default)
every file is opened; row-group statistics still skip the pages of other windows, so
correctness never depends on directory names. Writers that put an event under the wrong
partition break the promise: its window will not see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pandas as pd

from retrain.config import DataSource
from retrain.data.io import SourceFile
from retrain.data.windows import Window, off_grid_warning, parse_window
from retrain.errors import ValidationError

__all__ = ["PARTITION_KEYS", "PartitionPruning", "partition_span", "prune_partitions"]

#: Directory keys that name event time.
PARTITION_KEYS = ("window", "date")

_DAY = pd.Timedelta(days=1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_READ_ALL = (
    "or set data.partitioning: none (every file is then opened; row-group statistics still "
    "skip other windows' pages)"
)


@dataclass(frozen=True)
class PartitionPruning:
    """The files left to read and how many partitioned files were skipped unopened."""

    files: list[SourceFile]
    skipped: int


def _refuse(path: str, part: str, why: str, fix: str) -> ValidationError:
    return ValidationError(f"{path}: partition directory {part!r} {why}; {fix}, {_READ_ALL}")


def _partition_grid(data: DataSource) -> DataSource | None:
    """The source's settings with the partitions' span as the window size (None: no grid)."""
    if data.partitioning != "window" or data.partition_size is None:
        return None
    return data.model_copy(update={"window_size": data.partition_size})


def _span_of(
    data: DataSource, grid: DataSource | None, path: str, key: str, value: str
) -> tuple[Any, Any]:
    part = f"{key}={value}"
    if key == "window":
        if grid is None:
            raise _refuse(
                path,
                part,
                f"names a window but data.partitioning is {data.partitioning!r}",
                "set data.partitioning: window and data.partition_size to the span it holds",
            )
        try:
            window = parse_window(grid, value)
        except ValidationError as err:
            raise _refuse(path, part, f"does not parse: {err}", "rename it") from None
        if off_grid_warning(grid, window) is not None:
            raise _refuse(
                path,
                part,
                f"is not on the grid of data.partition_size {data.partition_size!r} "
                f"(anchor {data.window_anchor!r})",
                "rename it to the start of its partition, or set data.partition_size and "
                "data.window_anchor to the grid it was written with",
            )
        return window.start, window.end
    if data.time_kind == "period" or not _DATE.match(value):
        raise _refuse(
            path, part, "is not a UTC day (YYYY-MM-DD) of a timestamp or date source", "rename it"
        )
    try:
        day = pd.Timestamp(value, tz="UTC")
    except ValueError as err:
        raise _refuse(path, part, f"is not a date: {err}", "rename it") from None
    return day, day + _DAY


def _keys(relative_path: str) -> list[tuple[str, str]]:
    # The last segment is the file's name; hive values are URI-encoded (':' as %3A).
    found = []
    for segment in relative_path.split("/")[:-1]:
        key, sep, value = segment.partition("=")
        if sep and key in PARTITION_KEYS:
            found.append((key, unquote(value)))
    return found


def partition_span(
    data: DataSource, relative_path: str, *, where: str | None = None
) -> tuple[Any, Any] | None:
    """The event-time range ``[start, end)`` a file's partition directories promise, or None
    (no layout declared, or no partition directory on the path).

    Several keys on one path (``window=.../date=...``) promise the intersection. `where`
    names the file in errors (default: `relative_path`).

    Raises:
        ValidationError: under a declared layout, a partition name that does not parse, is
            off the partition grid, or contradicts another on the same path.
    """
    return _promise(data, _partition_grid(data), relative_path, where or relative_path)


def _promise(
    data: DataSource, grid: DataSource | None, relative_path: str, where: str
) -> tuple[Any, Any] | None:
    if data.partitioning == "none":
        return None
    keys = _keys(relative_path)
    if not keys:
        return None
    spans = [_span_of(data, grid, where, k, v) for k, v in keys]
    start, end = max(s[0] for s in spans), min(s[1] for s in spans)
    if not start < end:
        names = "/".join(f"{k}={v}" for k, v in keys)
        raise _refuse(
            where, names, "promises no common time (its keys contradict)", "move the file"
        )
    return start, end


def prune_partitions(files: list[SourceFile], data: DataSource, window: Window) -> PartitionPruning:
    """The files that may hold events of `window`: those whose partitions overlap it.

    Raises:
        ValidationError: a partition name is refused (`partition_span`).
    """
    kept = []
    grid = _partition_grid(data)
    for f in files:
        span = _promise(data, grid, f.relative, f.uri)
        if span is None or (span[0] < window.end and window.start < span[1]):
            kept.append(f)
    return PartitionPruning(kept, len(files) - len(kept))
