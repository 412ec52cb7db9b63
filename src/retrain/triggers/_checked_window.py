"""Which window a monitor check judges when none is named: the newest that is over.

A window still open at the check (the days of this week so far) is a partial sample of a
periodic stream: its mix of weekdays, hours or paydays differs from the reference's whole
windows by construction, so its drift verdict is a false positive waiting to happen, and a
metric measured on it is measured on a biased slice. So, as the scheduled run's ``resolve``
(`retrain.steps.resolve_rules`) trains only a window that is over, the monitor judges only one:

- time windows (``time_kind`` timestamp or date): the newest window with events whose end is
  at or before the monitor's clock; newer windows with events are still open and not judged.
  Unlike ``resolve`` it does not stop at a clock window without events (a stalled source): the
  monitor judges the newest ended window the source holds, as it did before;
- ``time_kind: period`` (no clock relates periods to time): the newest window with events
  that is not the source's last, which may still be filling.

`labels.delay` plays no part in the choice: the labelled check searches back from the judged
window for one whose labels have arrived (`retrain.triggers._labelled_window`), at least one
window past `labels.delay`.

When no window with events is over yet (the first window after a model is deployed or added
to a fleet; a period source with a single window), nothing is judged: that is a normal state,
not an error. The check says so (rule ``none ended``, ``judged`` false) and names the newest
window, which the signals that judge nothing (schedule, new data) carry: a due schedule or
enough new rows wait for it to end (the policy's ``waits_for_window_end``), since a window
trains once and a run of the open one would keep it partial.

``triggers.judge_open_window: true`` judges the newest window with events, open or not: for
a stream without a cycle inside the window (no weekday or hour pattern), or where the open
window must be watched before it ends (daily fraud windows checked hourly). Its report says
the window is still open. An explicit ``--window`` is judged as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from retrain.config import DataSource
from retrain.data.windows import parse_window
from retrain.errors import ValidationError

__all__ = ["CheckedWindow", "checked_window"]


@dataclass(frozen=True)
class CheckedWindow:
    """The window a check judges, how it was chosen, and the newer windows left unjudged.

    With `judged` false no window is over yet: `id` is the newest window with events, still
    open, which drift and performance are not judged on.
    """

    id: str
    rule: str  # "as given", "newest ended", "newest (open windows judged)", "none ended"
    reason: str
    open_windows: tuple[str, ...] = ()  # newer windows with events, not over yet
    judged: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "reason": self.reason,
            "open_windows": list(self.open_windows),
            "judged": self.judged,
        }


def _instant(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _is_open(data: DataSource, window_id: str, ids: Sequence[str], now: pd.Timestamp) -> bool:
    if data.time_kind == "period":
        return bool(ids) and window_id == ids[-1]
    return bool(parse_window(data, window_id).end > now)


def checked_window(
    data: DataSource,
    ids: Sequence[str],
    now: datetime,
    *,
    given: str | None = None,
    judge_open: bool = False,
    source: str = "the data source",
) -> CheckedWindow:
    """The window a check judges: `given` as given, else the newest that is over at `now`.

    `ids` are the source's windows with events, in time order. When (without `judge_open`)
    no window with events is over yet, the result is not `judged`: its reason names the open
    windows and the settings that would judge one.

    Raises:
        ValidationError: the source holds no events.
    """
    at = pd.Timestamp(now)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    if given is not None:
        win = parse_window(data, given)
        still = " (still open at the check)" if _is_open(data, win.id, ids, at) else ""
        return CheckedWindow(win.id, "as given", f"window {win.id} as given{still}")
    if not ids:
        raise ValidationError(f"data source {source} holds no events")
    if data.time_kind == "period":
        ended = list(ids[:-1])
        clock = "the source's last window may still be filling"
    else:
        ended = [w for w in ids if parse_window(data, w).end <= at]
        clock = f"the check's clock is {_instant(at)}"
    newest = ids[-1]
    if judge_open:
        still = " (still open: triggers.judge_open_window)" if newest not in ended else ""
        return CheckedWindow(
            newest,
            "newest (open windows judged)",
            f"window {newest}: the newest with events{still}",
        )
    if not ended:  # a normal state (a new model, a first window): nothing judged yet
        return CheckedWindow(
            newest,
            "none ended",
            f"no window of {source} is over yet ({clock}; windows with events: "
            f"{', '.join(ids)}): a window still open is a partial sample, so drift and "
            "performance are not judged (name one with --window, or set "
            "triggers.judge_open_window: true); a due schedule or enough new rows wait for "
            f"window {newest} to end",
            tuple(ids),
            judged=False,
        )
    chosen = ended[-1]
    newer = tuple(w for w in ids if w not in ended)
    win = parse_window(data, chosen)
    span = f"[{_instant(win.start)}, {_instant(win.end)})"
    reason = f"window {chosen} {span}: the newest with events that is over ({clock})"
    if newer:
        reason += f"; window {', '.join(newer)} still open, not judged"
    return CheckedWindow(chosen, "newest ended", reason, newer)
