"""Events per grid window of a source: counted row group by row group, from the footers'
time statistics where a row group lies within one window (`retrain.data.source.window_counts`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from retrain.config import DataSource
from retrain.data.footers import Footer, column_position
from retrain.data.windows import event_time_slots, event_times, window_id_of_slot

__all__ = ["Tally", "WindowCounts", "count_row_groups"]


@dataclass(frozen=True)
class WindowCounts:
    """Events per grid window of a source, and how much of the source was read to count them.

    ``rows`` maps the id of every grid window holding events to their number, in time order;
    ``newest`` is the newest readable event time (`event_times` units; None without one);
    ``unreadable`` holds the raw time values that could not be read as the time kind; ``read``
    says what was read (files, row groups counted from statistics, row groups whose time
    column was read, or the whole time column).
    """

    rows: dict[str, int]
    newest: Any
    unreadable: pd.Series
    read: dict[str, Any]

    @classmethod
    def of_times(
        cls, data: DataSource, times: pd.Series, read: dict[str, Any] | None = None
    ) -> WindowCounts:
        """The counts of a column of raw event times (unreadable ones belong to no window)."""
        tally = Tally(data)
        tally.add_times(times)
        return tally.counts(read if read is not None else {"time_column": "whole source"})


class Tally:
    """Counts per grid slot, added to row group by row group."""

    def __init__(self, data: DataSource) -> None:
        self.data = data
        self.by_slot: Counter[int] = Counter()
        self.newest: Any = None
        self.unreadable: list[pd.Series] = []

    def _newest(self, value: Any) -> None:
        if self.newest is None or value > self.newest:
            self.newest = value

    def add_times(self, times: pd.Series) -> None:
        parsed = event_times(times, self.data.time_kind, errors="coerce")
        bad = parsed.isna() & times.notna()
        if bad.any():
            self.unreadable.append(times[bad])
        slots = event_time_slots(self.data, parsed)
        slots = slots[~np.isnan(slots)].astype(np.int64)
        found, counts = np.unique(slots, return_counts=True)
        self.by_slot.update(dict(zip(found.tolist(), counts.tolist(), strict=True)))
        known = parsed.dropna()
        if len(known):
            self._newest(known.max())

    def add_ranges(self, lows: list[Any], highs: list[Any], rows: list[int]) -> np.ndarray:
        """Count ``rows[k]`` events known to lie in ``[lows[k], highs[k]]`` where that range is
        one window; which ranges were (the others are left to `add_times`).

        The bounds of every range are read as times in one conversion, not one per range, so
        counting a source's row groups from their statistics costs little more per row group
        than reading its footer.
        """
        if not lows:
            return np.zeros(0, dtype=bool)
        kind = self.data.time_kind
        low = event_times(pd.Series(lows), kind, errors="coerce")
        high = event_times(pd.Series(highs), kind, errors="coerce")
        first = event_time_slots(self.data, low)
        last = event_time_slots(self.data, high)
        placed: np.ndarray = np.asarray(~np.isnan(first) & (first == last), dtype=bool)
        if placed.any():
            slots = first[placed].astype(np.int64)
            counted = np.asarray(rows, dtype=np.int64)[placed]
            for slot, n in zip(slots.tolist(), counted.tolist(), strict=True):
                self.by_slot[slot] += n
            self._newest(high[placed].max())
        return placed

    def counts(self, read: dict[str, Any]) -> WindowCounts:
        rows = {window_id_of_slot(self.data, k): n for k, n in sorted(self.by_slot.items()) if n}
        unreadable = (
            pd.concat(self.unreadable, ignore_index=True)
            if self.unreadable
            else pd.Series([], dtype=object)
        )
        return WindowCounts(rows, self.newest, unreadable, read)


def count_row_groups(footers: list[Footer], data: DataSource) -> WindowCounts:
    """`WindowCounts` of Parquet files whose time columns have one type (their other columns
    may differ), from their footers, reading the time column of a row group only when its
    statistics do not place it in one window.

    Float times are always read: Parquet statistics leave NaN out of min/max and null counts.
    """
    column = data.time_column
    field_type = footers[0].schema.field(column).type
    by_stats = pa.types.is_integer(field_type) or pa.types.is_timestamp(field_type)
    tally = Tally(data)
    groups: list[tuple[Footer, int]] = []
    ranged: list[int] = []  # the groups whose statistics give a range of times
    lows: list[Any] = []
    highs: list[Any] = []
    rows: list[int] = []
    for footer in footers:
        meta = footer.metadata
        position = column_position(meta, column)  # other columns may come before it
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            stats = group.column(position).statistics
            if by_stats and stats is not None and stats.has_null_count and stats.has_min_max:
                ranged.append(len(groups))
                lows.append(stats.min)
                highs.append(stats.max)
                rows.append(group.num_rows - stats.null_count)
            groups.append((footer, i))
    placed = tally.add_ranges(lows, highs, rows)
    counted = {k for k, done in zip(ranged, placed.tolist(), strict=True) if done}
    for k, (footer, i) in enumerate(groups):  # in source order, as read_source reads them
        if k not in counted:
            table = footer.read_row_group(i, [column])
            tally.add_times(table.to_pandas()[column])
    from_stats = len(counted)
    read = {
        "files": len(footers),
        "row_groups": len(groups),
        "row_groups_from_statistics": from_stats,
        "row_groups_time_column_read": len(groups) - from_stats,
    }
    return tally.counts(read)
