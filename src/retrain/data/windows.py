"""Data windows: the slice of event time one pipeline run ingests.

A window is half-open, ``[start, end)``, and is named by an id that is also its immutable
snapshot id (KFP caches on inputs, so a run must name its window, never "latest"):

- ``time_kind: period``: the id is an integer period ``N``; the window is ``[N, N + window_size)``.
- ``time_kind: timestamp | date``: the id is an ISO date or datetime (UTC unless it carries an
  offset); the window spans ``window_size`` seconds (a duration such as ``'7d'``).

`window_ids_in` lays windows on a fixed grid that does not depend on the data: it starts at
`data.window_anchor` when set (e.g. the first event, so the first window is a whole one), else
at period 0 or Monday 1970-01-05 00:00 UTC for time windows, so backfilled history never renames
a window and weekly windows start on Mondays. `drop_small_leading_windows` skips a leading
window too small to pass ingest, and `off_grid_warning` flags a window id that is not on the
grid (it overlaps two grid windows, so their rows would be ingested twice).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import DataSource, parse_duration
from retrain.errors import ValidationError, sample_text

__all__ = [
    "Window",
    "as_of_text",
    "drop_small_leading_windows",
    "event_time_slots",
    "event_times",
    "next_window_id",
    "off_grid_warning",
    "parse_as_of",
    "parse_window",
    "window_id_of_slot",
    "window_ids_in",
    "window_mask",
    "window_slots",
    "window_sort_key",
    "windows_between",
]

# A Monday: weekly windows on this grid are ISO weeks, and day-sized windows start at midnight.
_GRID_ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")
_ISO_START = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?$"
)
_PERIOD = re.compile(r"^[+-]?\d+$")
_DAY = 86400


@dataclass(frozen=True)
class Window:
    """A half-open window of event time, ``[start, end)``.

    ``start`` and ``end`` are ints for period windows and UTC ``pd.Timestamp`` otherwise.
    """

    id: str
    start: Any
    end: Any

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for reports and metadata."""
        return {
            "id": self.id,
            "start": _jsonable_bound(self.start),
            "end": _jsonable_bound(self.end),
        }


def _jsonable_bound(value: Any) -> Any:
    return _format_instant(value) if isinstance(value, pd.Timestamp) else value


def _format_instant(ts: pd.Timestamp) -> str:
    if ts == ts.normalize():
        return ts.strftime("%Y-%m-%d")
    if ts.microsecond or ts.nanosecond:
        return ts.isoformat().replace("+00:00", "Z")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _window_seconds(data: DataSource) -> int:
    try:
        seconds = parse_duration(data.window_size)
    except ValueError as err:
        raise ValidationError(f"data.window_size: {err}") from None
    if data.time_kind == "date" and seconds % _DAY:
        raise ValidationError(
            f"data.window_size {data.window_size!r} must be a whole number of days "
            "when time_kind is 'date'"
        )
    return seconds


def _time_origin(data: DataSource) -> pd.Timestamp:
    """Where the grid of time windows starts: `data.window_anchor`, else the fixed origin."""
    if data.window_anchor is None:
        return _GRID_ORIGIN
    return _parse_start(str(data.window_anchor), "timestamp")


def _period_origin(data: DataSource) -> int:
    return int(data.window_anchor) if data.window_anchor is not None else 0


def _period_size(data: DataSource) -> int:
    if not isinstance(data.window_size, int):
        raise ValidationError(
            f"data.window_size {data.window_size!r} must be an integer number of periods "
            "when time_kind is 'period'"
        )
    return data.window_size


def _parse_start(window_id: str, time_kind: str) -> pd.Timestamp:
    text = window_id.strip()
    hint = "an ISO date like 2024-01-01 or a datetime like 2024-01-01T00:00:00Z"
    if not _ISO_START.match(text):
        raise ValidationError(f"window id {window_id!r} is not {hint}")
    try:
        parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError as err:
        raise ValidationError(f"window id {window_id!r} is not {hint}: {err}") from None
    ts = pd.Timestamp(parsed)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if time_kind == "date" and ts != ts.normalize():
        raise ValidationError(
            f"window id {window_id!r} must be a date (midnight UTC) for time_kind 'date'"
        )
    return ts


def parse_window(data: DataSource, window_id: str) -> Window:
    """The window named by `window_id` under the data source's time settings.

    Raises:
        ValidationError: the id does not fit the time kind (e.g. '2024-01-01' for periods).
    """
    if data.time_kind == "period":
        text = str(window_id).strip()
        if not _PERIOD.match(text):
            raise ValidationError(
                f"window id {window_id!r} is not an integer period (time_kind is 'period')"
            )
        start = int(text)
        return Window(id=str(start), start=start, end=start + _period_size(data))
    size = _window_seconds(data)
    ts = _parse_start(str(window_id), data.time_kind)
    return Window(id=_format_instant(ts), start=ts, end=ts + pd.Timedelta(seconds=size))


def next_window_id(data: DataSource, window_id: str) -> str:
    """The id of the window that starts where `window_id` ends."""
    window = parse_window(data, window_id)
    if isinstance(window.end, pd.Timestamp):
        return _format_instant(window.end)
    return str(window.end)


def window_sort_key(data: DataSource, window_id: str) -> Any:
    """A key that orders window ids by time (an int period or a UTC timestamp).

    Ids do not sort as text ('10' < '9'; '2024-01-01T06:00:00Z' vs '2024-01-01').
    """
    return parse_window(data, window_id).start


def windows_between(data: DataSource, earlier: str | None, later: str | None) -> float | None:
    """How many windows `later` starts after `earlier` (negative if before), in window sizes;
    None if either id is missing or does not fit the data source's time settings (a model
    card written under another `data.time_kind`, say)."""
    if earlier is None or later is None:
        return None
    try:
        a, b = parse_window(data, earlier), parse_window(data, later)
    except ValidationError:
        return None
    if isinstance(a.start, pd.Timestamp) and isinstance(b.start, pd.Timestamp):
        return float((b.start - a.start) / pd.Timedelta(seconds=_window_seconds(data)))
    return float((int(b.start) - int(a.start)) / _period_size(data))


def _examples(values: pd.Series, limit: int = 3) -> str:
    return sample_text(pd.unique(values.astype(object)), limit=limit)


def event_times(series: pd.Series, time_kind: str, *, errors: str = "raise") -> pd.Series:
    """Event times as comparable values: floats for periods, UTC timestamps otherwise.

    Missing values stay missing (NaN/NaT). With ``errors="raise"`` values that cannot be read
    as the time kind raise a ValidationError naming the column and showing examples, rather
    than silently falling out of every window; ``errors="coerce"`` makes them missing.
    A column of the wrong type altogether (numbers for timestamps) always raises.
    """
    name = series.name if series.name is not None else "time"
    out: pd.Series  # floats (periods) or UTC timestamps
    if time_kind == "period":
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
            raise ValidationError(
                f"time column {name!r} has dtype {series.dtype}; time_kind 'period' needs integers"
            )
        out = pd.to_numeric(series, errors="coerce").astype("float64")
        # inf is a number to to_numeric but lies in no window: unreadable, not silently lost.
        out = out.where(~np.isinf(out.to_numpy()))
    elif time_kind in ("timestamp", "date"):
        if pd.api.types.is_numeric_dtype(series) and not series.isna().all():
            raise ValidationError(
                f"time column {name!r} holds numbers (dtype {series.dtype}); time_kind "
                f"{time_kind!r} needs datetimes or ISO strings (use time_kind 'period' for "
                "integer periods)"
            )
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            out = series.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(series):
            out = series.dt.tz_localize("UTC")
        else:
            out = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
    else:
        raise ValidationError(f"unknown time_kind {time_kind!r}; use timestamp, date or period")
    bad = out.isna() & series.notna()
    if errors == "raise" and bad.any():
        raise ValidationError(
            f"time column {name!r} has {int(bad.sum())} values that are not valid for time_kind "
            f"{time_kind!r}, e.g. {_examples(series[bad])}"
        )
    return out


def window_mask(series: pd.Series, window: Window, time_kind: str) -> np.ndarray:
    """Boolean mask of the rows whose event time falls in ``[window.start, window.end)``."""
    times = event_times(series, time_kind)
    inside = (times >= window.start) & (times < window.end)
    return np.asarray(inside.fillna(False), dtype=bool)


def window_slots(data: DataSource, times: pd.Series) -> np.ndarray:
    """Each row's grid window as a slot number (consecutive windows differ by 1); NaN if no time.

    Unreadable times count as missing: this only groups rows that were ingested already.
    """
    return event_time_slots(data, event_times(times, data.time_kind, errors="coerce"))


def event_time_slots(data: DataSource, values: pd.Series) -> np.ndarray:
    """`window_slots` of times already read by `event_times` (floats, or UTC timestamps)."""
    if data.time_kind == "period":
        shifted = values.to_numpy(dtype=float) - _period_origin(data)
        return np.asarray(np.floor(shifted / _period_size(data)))
    step = pd.Timedelta(seconds=_window_seconds(data))
    slots = (values - _time_origin(data)) // step
    return np.asarray(slots.astype("float64").to_numpy(dtype=float, na_value=np.nan))


def window_id_of_slot(data: DataSource, slot: int) -> str:
    """The id of the grid window numbered `slot` by `window_slots`."""
    if data.time_kind == "period":
        return str(slot * _period_size(data) + _period_origin(data))
    return _format_instant(_time_origin(data) + slot * pd.Timedelta(seconds=_window_seconds(data)))


def window_ids_in(data: DataSource, times: pd.Series) -> list[str]:
    """Ids of every grid window holding at least one of `times`, in time order.

    Windows without events are left out: there is nothing to ingest for them.
    """
    values = event_times(times, data.time_kind).dropna()
    if values.empty:
        return []
    if data.time_kind == "period":
        size, origin = _period_size(data), _period_origin(data)
        slots = np.unique(np.floor((values.to_numpy() - origin) / size).astype(np.int64))
        return [str(int(k) * size + origin) for k in slots]
    step, origin_ts = pd.Timedelta(seconds=_window_seconds(data)), _time_origin(data)
    slots = np.unique(((values - origin_ts) // step).to_numpy(dtype=np.int64))
    return [_format_instant(origin_ts + int(k) * step) for k in slots]


def drop_small_leading_windows(
    data: DataSource, times: pd.Series, window_ids: list[str]
) -> tuple[list[str], list[str]]:
    """`window_ids` without leading windows of fewer than `data.min_rows` events, and a
    message per window dropped.

    A grid that does not start at the first event often begins with a sliver of a window,
    which ingest would refuse; later small windows are kept (and fail loudly): a gap in the
    middle of the data is news.

    Raises:
        ValidationError: no window holds `data.min_rows` events: the windows are too small
            for the setting, not misaligned (the message says so, rather than skipping all).
    """
    values = event_times(times, data.time_kind, errors="coerce")
    kept = list(window_ids)
    messages = []
    windows = [parse_window(data, k) for k in kept]
    counts = [int(((values >= w.start) & (values < w.end)).fillna(False).sum()) for w in windows]
    if counts and max(counts) < data.min_rows:
        raise ValidationError(
            f"every window has fewer than data.min_rows {data.min_rows} events (the largest of "
            f"the {len(counts)} windows of data.window_size {data.window_size!r} has "
            f"{max(counts)}): lower data.min_rows or widen data.window_size"
        )
    for window, rows in zip(windows, counts, strict=True):
        if rows >= data.min_rows:
            break
        messages.append(
            f"skipped leading window {window.id}: {rows} rows, fewer than data.min_rows "
            f"{data.min_rows} (set data.window_anchor to the first event to align the grid)"
        )
        kept.pop(0)
    return kept, messages


def off_grid_warning(data: DataSource, window: Window) -> str | None:
    """Why a window id is not on the grid, naming the grid windows it overlaps; else None."""
    if data.time_kind == "period":
        slot = (int(window.start) - _period_origin(data)) / _period_size(data)
    else:
        step = pd.Timedelta(seconds=_window_seconds(data))
        slot = (window.start - _time_origin(data)) / step
    if float(slot).is_integer():
        return None
    first = window_id_of_slot(data, int(np.floor(slot)))
    second = window_id_of_slot(data, int(np.floor(slot)) + 1)
    return (
        f"window {window.id} is not on the window grid: it overlaps windows {first} and "
        f"{second}, so rows it shares with them would be ingested twice (use a grid window id, "
        "or set data.window_anchor)"
    )


def parse_as_of(data: DataSource, value: str) -> Any:
    """A run's "as of" time in the units of the time kind: a period number, or a UTC instant.

    A period source takes a period number (a run at period ``p`` knows what was dated ``p`` or
    earlier); timestamp and date sources take an ISO date or datetime (UTC unless it carries an
    offset).

    Raises:
        ValidationError: the value does not fit the time kind; the message names ``as_of``.
    """
    text = str(value).strip()
    if data.time_kind == "period":
        if not _PERIOD.match(text):
            raise ValidationError(
                f"as_of {value!r} is not a period number (data.time_kind is 'period')"
            )
        return int(text)
    hint = "an ISO date like 2024-01-08 or a datetime like 2024-01-08T00:00:00Z"
    if not _ISO_START.match(text):
        raise ValidationError(f"as_of {value!r} is not {hint}")
    try:
        return _parse_start(text, "timestamp")
    except ValidationError:
        raise ValidationError(f"as_of {value!r} is not {hint}") from None


def as_of_text(value: Any) -> str:
    """The run-parameter spelling of an as-of time from `parse_as_of` (or a window bound)."""
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").isoformat().replace("+00:00", "Z")
    return str(int(value))
