"""Hive-style partitions of a source: directories that name the event time their files hold.

A source laid out as ``events/window=2024-03-04/part-0.parquet`` or
``events/date=2024-03-05/part-0.parquet`` (below the source's root, any depth) promises that
each directory holds only events of that window or that UTC day:

- ``window=<id>``: a window id under the source's time settings (`parse_window`), so the
  events of ``[start, end)`` of that window (a period number for period sources);
- ``date=<YYYY-MM-DD>``: the events of that UTC day (timestamp and date sources only).

Ingest reads only the files whose partitions overlap its window: the others are not opened,
not even their footers. A value that does not parse under the source's settings promises
nothing and its files are always read; so are files outside any such directory. Writers that
put an event under the wrong partition break the promise: its window will not see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from retrain.config import DataSource
from retrain.data.io import SourceFile
from retrain.data.windows import Window, parse_window
from retrain.errors import ValidationError

__all__ = ["PARTITION_KEYS", "PartitionPruning", "partition_span", "prune_partitions"]

#: Directory keys that name event time.
PARTITION_KEYS = ("window", "date")

_HIVE = ds.partitioning(pa.schema([(k, pa.string()) for k in PARTITION_KEYS]), flavor="hive")
_DAY = pd.Timedelta(days=1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class PartitionPruning:
    """The files left to read and how many partitioned files were skipped unopened."""

    files: list[SourceFile]
    skipped: int


def _span_of(data: DataSource, key: str, value: str) -> tuple[Any, Any] | None:
    try:
        if key == "window":
            window = parse_window(data, value)
            return window.start, window.end
        if data.time_kind == "period" or not _DATE.match(value):
            return None  # no calendar relates a day to periods
        day = pd.Timestamp(value, tz="UTC")
        return day, day + _DAY
    except (ValidationError, ValueError):
        return None


def partition_span(data: DataSource, relative_path: str) -> tuple[Any, Any] | None:
    """The event-time range ``[start, end)`` a file's partition directories promise, or None.

    Several keys on one path (``date=.../window=...``) promise the intersection.
    """
    # The last segment is the file's name: Arrow's hive parser reads directories only.
    keys = ds.get_partition_keys(_HIVE.parse(relative_path)) if "/" in relative_path else {}
    spans = [s for k, v in keys.items() if (s := _span_of(data, k, str(v))) is not None]
    if not spans:
        return None
    return max(s[0] for s in spans), min(s[1] for s in spans)


def prune_partitions(files: list[SourceFile], data: DataSource, window: Window) -> PartitionPruning:
    """The files that may hold events of `window`: those whose partitions overlap it."""
    kept = []
    for f in files:
        span = partition_span(data, f.relative)
        if span is None or (span[0] < window.end and window.start < span[1]):
            kept.append(f)
    return PartitionPruning(kept, len(files) - len(kept))
