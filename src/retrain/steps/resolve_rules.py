"""Resolving ``"auto"`` run parameters: which window a scheduled run trains, and its run id.

KFP v2 does not expand ``[[ScheduledTime]]`` macros in run parameters, so recurring runs pass
``window_id="auto"`` and ``run_id="auto"`` (`retrain.triggers.schedule`) and the pipeline's
first task turns them into real ids. This module holds the pure rules;
`retrain.steps.resolve.resolve_run` reads the data source, applies them and records the outcome.

The rules:

- window ``auto``, time windows (``time_kind`` timestamp or date): the newest window on the
  grid that is over at the run's time, i.e. the last one whose end is at or before ``now``.
  Only the clock decides, so a late or stalled source cannot shift the choice; a chosen window
  without events is an error (the source is behind), never a silent step back to an older one.
- window ``auto``, ``time_kind: period`` (no clock relates periods to time): the newest window
  with events that is not the source's last, since the last may still be filling.
- ``labels.delay`` (labels arrive late): time windows are chosen at ``now - delay`` instead of
  ``now``; period windows must end at least ``delay`` periods before the source's last window
  starts (with one-period windows: ``delay`` more windows back). Otherwise a scheduled run
  would always pick a window whose labels are not in yet and fail label coverage.
- run id ``auto``: ``w<window>-<job id>``, from the KFP job id (the run's UUID on Kubeflow, so
  the run id names the KFP run; a random number under kfp.local), so two runs never share
  ``runs/<run_id>/``. When the window could not be resolved the run still needs a folder for
  its failure record: ``auto-<job id>``.
- a retried resolve task (same job) whose first attempt took the run lease does not resolve
  again: the source or the clock may have moved on meanwhile, and another window would mean
  another run id. It reuses the run id and window of its job's lease (`LEASE_RULE`, applied in
  `retrain.steps.resolve_run`), so it records into the same folder and trains the same window.
- event times that cannot be read as the time kind are ignored (and counted in the reason),
  as ingest ignores them: one bad row in an old file must not block every scheduled run.

Only the exact lowercase keyword ``auto`` is resolved; spellings such as ``AUTO`` or
``autox`` are refused rather than passed on as ids.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from retrain.config import DataSource, LabelSource
from retrain.data.source import WindowCounts
from retrain.data.windows import Window, parse_window, window_ids_in
from retrain.errors import ValidationError, sample_text

__all__ = [
    "AUTO",
    "LEASE_RULE",
    "PERIOD_DELAY_RULE",
    "PERIOD_RULE",
    "TIME_DELAY_RULE",
    "TIME_RULE",
    "WindowChoice",
    "auto_run_id",
    "check_keyword",
    "clock_window",
    "newest_complete_window",
    "newest_counted_window",
    "utc_instant",
]

#: The run-parameter value that asks the pipeline to choose the id.
AUTO = "auto"

#: Rule names, as recorded in the resolve step's report.
TIME_RULE = "newest window whose end is at or before the run's time"
PERIOD_RULE = "newest period window with events that is not the source's last (still filling)"
TIME_DELAY_RULE = "newest window whose end is at or before the run's time minus labels.delay"
PERIOD_DELAY_RULE = (
    "newest period window with events that ends at least labels.delay periods before the "
    "source's last window (still filling) starts"
)
LEASE_RULE = (
    "the window of this job's run lease: a retried resolve keeps what its first attempt chose"
)

_SAFE = re.compile(r"[^A-Za-z0-9]+")
_MAX_JOB_CHARS = 40  # a KFP job UUID is 36 characters


@dataclass(frozen=True)
class WindowChoice:
    """The window ``auto`` resolved to, the rule that chose it and why, in words."""

    window: Window
    rule: str
    reason: str
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "rule": self.rule,
            "reason": self.reason,
            "rows": self.rows,
        }


def check_keyword(name: str, value: str) -> None:
    """Refuse near-misses of the keyword: a typo must not become a window or a run id.

    For `window_id` any value starting with "auto" (any case, spaces around) other than
    ``auto`` itself is refused; no window id of any time kind starts that way. For `run_id`
    only other spellings of the keyword itself (``AUTO``, `` auto``) are refused: explicit run
    ids such as ``automl-7`` stay valid.
    """
    if not isinstance(value, str) or value == AUTO:
        return
    folded = value.strip().lower()
    near_miss = folded.startswith(AUTO) if name == "window_id" else folded == AUTO
    if near_miss:
        raise ValidationError(
            f"{name} {value!r} is neither an id nor the keyword {AUTO!r} (exactly, lowercase) "
            "that asks the pipeline to resolve it"
        )


def utc_instant(now: datetime) -> pd.Timestamp:
    """`now` as a UTC timestamp; a naive datetime is read as UTC."""
    ts = pd.Timestamp(now)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _describe(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def newest_complete_window(
    data: DataSource,
    times: pd.Series,
    now: datetime,
    *,
    source: str = "the data source",
    delay: str | int = 0,
) -> WindowChoice:
    """The window ``window_id="auto"`` means at `now`, given the source's event `times`.

    `newest_counted_window` on the counts of `times` (a test holds both ways equal).

    Raises:
        ValidationError: as `newest_counted_window`.
    """
    _lag(data, delay)  # a misfit delay is named before the times are read
    # Coerced once, as ingest does: one unreadable time in an old file must not block every
    # scheduled run. A column of the wrong type altogether still raises.
    counts = WindowCounts.of_times(data, times)
    return newest_counted_window(data, counts, now, source=source, delay=delay)


def newest_counted_window(
    data: DataSource,
    counts: WindowCounts,
    now: datetime,
    *,
    source: str = "the data source",
    delay: str | int = 0,
) -> WindowChoice:
    """The window ``window_id="auto"`` means at `now`, given the source's events per window.

    `delay` is ``labels.delay``: a duration (timestamp, date) or a number of periods. Times
    that cannot be read as the time kind belong to no window and are ignored for both rules;
    the reason (or the error) says how many.

    Raises:
        ValidationError: no window qualifies, or the chosen one holds no events; the message
            names the window, the rule and what the source holds.
    """
    lag = _lag(data, delay)
    ignored = _ignored_note(counts.unreadable, data.time_column)
    if data.time_kind == "period":
        return _newest_period_window(data, counts, lag, source, ignored)
    return _newest_time_window(data, counts, utc_instant(now), lag, delay, source, ignored)


def _lag(data: DataSource, delay: str | int) -> int:
    """``labels.delay`` in the time kind's units (seconds or periods)."""
    try:
        return LabelSource.delay_units(delay, data.time_kind)
    except ValueError as err:
        raise ValidationError(str(err)) from None


def _ignored_note(unreadable: pd.Series, column: str) -> str:
    """``"; N unreadable ... ignored"`` for reasons and errors, or "" when all times read."""
    if unreadable.empty:
        return ""
    examples = sample_text(pd.unique(unreadable.astype(object)))
    return (
        f"; {len(unreadable)} unreadable event time(s) in column {column!r} ignored (they "
        f"belong to no window), e.g. {examples}"
    )


def _newest_period_window(
    data: DataSource, counts: WindowCounts, lag: int, source: str, ignored: str
) -> WindowChoice:
    column = data.time_column
    rule = PERIOD_DELAY_RULE if lag else PERIOD_RULE
    ids = list(counts.rows)
    if len(ids) < 2:
        held = f"only window {ids[0]} has events" if ids else "no window has events"
        raise ValidationError(
            f"window_id 'auto' found no complete window in {source}: {held} in column "
            f"{column!r}, and the last window may still be filling{ignored} (rule: {rule})"
        )
    last = parse_window(data, ids[-1])
    # Grid windows never overlap, so with no delay every earlier window qualifies.
    cutoff = last.start - lag
    ready = [w for w in (parse_window(data, i) for i in ids[:-1]) if w.end <= cutoff]
    if not ready:
        raise ValidationError(
            f"window_id 'auto' found no window in {source} whose labels have arrived: "
            f"labels.delay is {lag} period(s), so a window must end by period {cutoff} (the "
            f"source's last window {last.id} starts at period {last.start}); windows with "
            f"events: {', '.join(ids)}{ignored} (rule: {rule})"
        )
    window = ready[-1]
    rows = counts.rows[window.id]
    if lag:
        reason = (
            f"window {window.id}: the newest with events that ended by period {cutoff}, "
            f"labels.delay {lag} period(s) before window {last.id} (the source's last, which "
            f"may still be filling), so its labels have had time to arrive; {rows} events"
        )
    else:
        reason = (
            f"window {window.id}: the newest with events before window {last.id} (the "
            f"source's last, which may still be filling); {rows} events"
        )
    return WindowChoice(window, rule, reason + ignored, rows)


def _clock_windows(data: DataSource, by: pd.Timestamp) -> tuple[Window, Window]:
    """The newest grid window over by `by`, and the one still open then (holding `by`)."""
    current = parse_window(data, window_ids_in(data, pd.Series([by]))[0])
    before = current.start - (current.end - current.start)
    return parse_window(data, window_ids_in(data, pd.Series([before]))[0]), current


def clock_window(data: DataSource, now: datetime, delay: str | int = 0) -> Window | None:
    """The window the time rule chooses at `now` whatever the source holds; None for periods.

    Labels of windows that ended after ``now - delay`` may still be missing, so the newest
    window over by then is the one. Only its events need counting (`newest_counted_window`).

    Raises:
        ValidationError: `delay` does not fit the time kind.
    """
    if data.time_kind == "period":
        return None
    by = utc_instant(now) - pd.Timedelta(seconds=_lag(data, delay))
    return _clock_windows(data, by)[0]


def _newest_time_window(
    data: DataSource,
    counts: WindowCounts,
    at: pd.Timestamp,
    lag: int,
    delay: str | int,
    source: str,
    ignored: str,
) -> WindowChoice:
    column = data.time_column
    rule = TIME_DELAY_RULE if lag else TIME_RULE
    by = at - pd.Timedelta(seconds=lag)
    window, current = _clock_windows(data, by)
    rows = counts.rows.get(window.id, 0)
    span = f"[{_describe(window.start)}, {_describe(window.end)})"
    when = (
        f"{_describe(by)} (the run's time {_describe(at)} minus labels.delay {delay})"
        if lag
        else _describe(at)
    )
    if rows == 0:
        newest = counts.newest
        latest = "no events" if newest is None else f"its newest event is at {_describe(newest)}"
        raise ValidationError(
            f"window_id 'auto' resolved to window {window.id} {span} at {when}, but "
            f"{source} has no events in it ({latest}; column {column!r}{ignored}): the source "
            f"is behind or stopped (rule: {rule})"
        )
    if lag:
        reason = (
            f"window {window.id} {span}: the newest that ended by {when}, so its labels have "
            f"had time to arrive; {rows} events"
        )
    else:
        reason = (
            f"window {window.id} {span}: the newest that ended by {when} (window "
            f"{current.id} is still open); {rows} events"
        )
    return WindowChoice(window, rule, reason + ignored, rows)


def _job_part(job_id: str | None) -> tuple[str, bool]:
    """A safe form of the job id, and whether there was one (else a random stand-in)."""
    text = str(job_id or "")
    safe = _SAFE.sub("-", text).strip("-")[:_MAX_JOB_CHARS].strip("-")
    if not safe or "{{" in text:  # missing, or a placeholder the runner left unexpanded
        return uuid.uuid4().hex[:12], False
    return safe, True


def auto_run_id(window_id: str | None, job_id: str | None) -> tuple[str, str]:
    """The run id for ``run_id="auto"`` and how it was derived, in words.

    `window_id` None means the window could not be resolved (the run's failure still needs a
    folder). The same job and window give the same id. A retried resolve task whose first
    attempt took the run lease does not call this again: it keeps the run id (and window) of
    its job's lease while that is held (`retrain.steps.resolve_run`), so it records into the
    same folder. The result passes `retrain.steps.check_run_id`.
    """
    job, given = _job_part(job_id)
    prefix = "auto" if window_id is None else "w" + _SAFE.sub("-", window_id)[:60]
    how = f"from job id {job_id}" if given else "no job id, so a random suffix"
    return f"{prefix}-{job}", how
