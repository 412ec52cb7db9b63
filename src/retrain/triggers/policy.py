"""The trigger policy: a pure function from (signal, state, lease, now) to a decision.

Nothing here reads a clock or a store. `decide` takes the time it is told, the state as last
saved and the run lease as last read, and returns what to do and the state to save; the
controller (`retrain.triggers.controller`) does the I/O around it. The rules, in the order they
are checked:

1. the signal's own rule: a cron schedule is due; drift seen in ``drift_windows`` consecutive
   windows (hysteresis; a window counts once, and, given the windows' order, only if newer
   than the last counted; an older window does not launch on the streak the newer ones built:
   ``not_counted``), twice as many after each drift launch in a row whose challenger was
   not deployed, up to ``drift_backoff_limit`` (`retrain.triggers._backoff`); a
   performance drop above ``performance_drop`` (for rmse and mae a
   share of the ``reference`` in the signal's details; without one they never fire) whose
   interval (``drop_lower``, when given) lies above zero, as the drift engine's labelled
   signal judges it; at least
   ``new_data_rows`` untrained rows; a manual request always qualifies; the labels of a
   window whose run failed on label coverage now reach ``labels.min_coverage`` (``labels``;
   labels the label join refuses never do: ``labels_refused``);
   catching up (``catch_up``): a performance signal on a newer labelled window while the
   serving champion is the model of the last launch that a confirmed labelled drop started
   (or that continued such a chain), see `PolicyState.catch_up`; a due schedule or enough
   new rows on a window still open (the monitor's ``window_open`` detail: no window is over
   yet) wait for it to end (``waits_for_window_end``; the schedule stays due for the next
   check), as a window trains once;
2. dedupe: a data snapshot that was launched never launches again, unless its run failed;
3. lease: never while another run holds the lease (manual requests included);
4. cooldown: not within ``cooldown`` of the last launch (manual requests skip this one);
5. budget: at most ``budget_runs`` launches in any ``budget_period``;
6. a drift launch that passed all of these gives way to the performance signal of the same
   check (its ``performance`` detail) when that one launches by its own rule and its window
   has not trained (``deferred``: that run trains at once on the labelled window it
   measured).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from retrain.errors import RetrainError, ValidationError
from retrain.evaluation.metrics import GREATER_IS_BETTER
from retrain.settings.cron import parse_cron
from retrain.settings.evaluation import performance_drop_threshold
from retrain.settings.triggers import TriggerConfig
from retrain.triggers._backoff import (
    after_launch,
    drift_windows_needed,
    learn_outcomes,
    shown_drop,
)
from retrain.triggers._state import (
    MAX_LAUNCHES,
    SIGNAL_KINDS,
    Decision,
    LaunchRecord,
    PolicyState,
    Signal,
    iso,
)
from retrain.triggers.lease import Lease

__all__ = [
    "SIGNAL_KINDS",
    "Decision",
    "LaunchRecord",
    "PolicyState",
    "Signal",
    "WindowKey",
    "decide",
]

#: Orders window ids by time (`retrain.data.windows.window_sort_key` bound to a data source).
WindowKey = Callable[[str], Any]


def _fmt_delta(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("the policy clock must give timezone-aware times")
    return now.astimezone(timezone.utc)


def _newer_window(snapshot: str, last: str | None, window_key: WindowKey | None) -> bool:
    """Whether a drift window counts for the hysteresis: a first, or one newer than the last
    counted. Without `window_key` (snapshots that are not window ids), or when the two cannot
    be ordered (the last counted under another window grid), any other snapshot counts."""
    if last is None:
        return True
    if snapshot == last:
        return False
    if window_key is None:
        return True
    try:
        return bool(window_key(snapshot) > window_key(last))
    except (RetrainError, TypeError, ValueError):
        return True


def _signal_rule(
    signal: Signal,
    state: PolicyState,
    cfg: TriggerConfig,
    now: datetime,
    window_key: WindowKey | None = None,
) -> tuple[bool, str, str, PolicyState]:
    """Whether the signal's own rule qualifies: (ok, rule, reason, state after seeing it)."""
    if signal.kind == "manual":
        who = signal.details.get("requested_by")
        return True, "manual", "manual request" + (f" by {who}" if who else ""), state

    if signal.kind == "labels":
        return (*_labels_rule(signal, state), state)

    if signal.kind == "schedule":
        since = state.schedule_checked_at or now - timedelta(minutes=1)
        state = replace(state, schedule_checked_at=now)
        due = [
            (fired, s.name)
            for s in cfg.schedules
            if s.enabled and (fired := parse_cron(s.cron).first_between(since, now)) is not None
        ]
        if not due:
            return False, "not_due", "no schedule was due since the last check", state
        fired, name = min(due)
        cron = next(s.cron for s in cfg.schedules if s.name == name)
        reason = f"schedule {name!r} ({cron}) was due at {iso(fired)}"
        waits = _waits_for_window_end(signal)
        if waits is not None:  # still due at the next check: looked for again from `since`
            return (
                False,
                "waits_for_window_end",
                reason + waits,
                replace(state, schedule_checked_at=since),
            )
        return True, "schedule", reason, state

    if signal.kind == "drift":
        if not cfg.drift:
            return False, "disabled", "drift triggers are off (triggers.drift: false)", state
        state = learn_outcomes(signal, state)
        # Hysteresis counts windows, not events: the same window seen twice counts once, and
        # an older one (a window counted while open, then judged once over) not again.
        last = state.drift_last_snapshot
        counted = _newer_window(signal.snapshot, last, window_key)
        if counted:
            streak = state.drift_streak + 1 if signal.drifted else 0
            state = replace(state, drift_streak=streak, drift_last_snapshot=signal.snapshot)
        streak = state.drift_streak
        what = f" ({signal.value:.0%} of features drifted)" if signal.value is not None else ""
        older = not counted and signal.snapshot != last
        if older:
            what += f"; not counted: window {last} is newer and counted already"
        if not signal.drifted:
            return False, "no_drift", f"window {signal.snapshot} did not drift{what}", state
        need, why = drift_windows_needed(signal, state, cfg)
        if streak < need:
            return (
                False,
                "hysteresis" if need == cfg.drift_windows else "backoff",
                f"window {signal.snapshot} drifted{what}: {streak} of {need} consecutive drifted"
                f" windows needed{why}",
                state,
            )
        if older:  # the streak is the newer windows': a run of this one would train the wrong one
            return (
                False,
                "not_counted",
                f"window {signal.snapshot} drifted{what}: the streak of {streak} drifted windows"
                f" up to {last} launches a run of {last}, not of an older window",
                state,
            )
        return (
            True,
            "drift",
            f"drift in {streak} consecutive windows up to {signal.snapshot}{what}",
            state,
        )

    if signal.kind == "performance":
        if cfg.performance_drop is None:
            return False, "disabled", "performance triggers are off", state
        drop = signal.value if signal.value is not None else float("nan")
        metric = str(signal.details.get("metric", "the primary metric"))
        given = signal.details.get("reference")
        reference = None if given is None else float(given)
        trigger = performance_drop_threshold(metric, cfg.performance_drop, reference)
        at = f"{trigger:.4g}"
        if reference is not None and trigger != cfg.performance_drop:
            at += f", {cfg.performance_drop:g} of the reference {reference:.4g}"
        if math.isinf(trigger):
            at = f"a share of a reference the signal does not carry ({metric})"
        lower = signal.details.get("drop_lower")
        # Shown beyond noise, launching or not: the drift is not harmless (the back-off ends).
        state = shown_drop(state, lower)
        moved = _moved(metric, drop)
        if not drop > trigger:  # NaN (no measurement) never fires
            ok, rule, reason = (
                False,
                "below_threshold",
                f"{metric} {moved}, not above the trigger of {at}",
            )

        elif lower is not None and not float(lower) > 0.0:  # a drop sampling noise explains
            ok, rule, reason = (
                False,
                "within_noise",
                f"{metric} {moved}, but its interval reaches {float(lower):+.4f}:"
                " sampling noise of the labelled rows explains it",
            )
        else:
            return True, "performance", f"{metric} {moved} (trigger at {at})", state
        chain = state.catch_up
        if (
            cfg.catch_up
            and chain is not None
            and signal.details.get("champion_from") == chain
            and signal.snapshot != chain
        ):
            behind = _behind_the_old_level(signal, state, cfg)
            if behind is not None:
                # The labelled windows: the snapshots in the monitor; in a backtest the
                # snapshots are the replayed windows, which launch on older labelled ones.
                measured = signal.details.get("window") or signal.snapshot
                launched = signal.details.get("champion_window") or chain
                return (
                    True,
                    "catch_up",
                    f"{reason}; the model launched for {launched} after a confirmed drop serves,"
                    f" and on the newer labelled window {measured} {behind}: catching up on the"
                    " new regime",
                    state,
                )
            # Back near the old level, or not shown beyond noise to be behind it: it ends.
            state = replace(state, catch_up=None, catch_up_from=None, catch_up_metric=None)
        return ok, rule, reason, state

    # new_data
    if cfg.new_data_rows is None:
        return False, "disabled", "new-data triggers are off", state
    rows = int(signal.value or 0)
    if rows < cfg.new_data_rows:
        return (
            False,
            "below_threshold",
            f"{rows} untrained rows, fewer than the trigger of {cfg.new_data_rows}",
            state,
        )
    reason = f"{rows} untrained rows (trigger at {cfg.new_data_rows})"
    waits = _waits_for_window_end(signal)
    if waits is not None:
        return False, "waits_for_window_end", reason + waits, state
    return True, "new_data", reason, state


def _waits_for_window_end(signal: Signal) -> str | None:
    """Why a due schedule or new-data signal on a window still open waits (the monitor's
    ``window_open`` detail: no window is over yet), in words; None when it does not wait.

    A window trains once (its history dataset is written once, a snapshot launches once), so
    a run of the open window would keep it partial for good: the launch waits for it to end.
    """
    if not signal.details.get("window_open"):
        return None
    ends = signal.details.get("window_end")
    at = f" (it ends at {ends})" if ends else ""
    return (
        f", but window {signal.snapshot} is still open{at}: the run waits for it to end, since"
        " a window trains once and a run now would keep it partial"
    )


def _labelled_launch_instead(
    signal: Signal, state: PolicyState, cfg: TriggerConfig, now: datetime
) -> str | None:
    """Why a qualifying drift launch gives way to the performance signal of the same check
    (the drift signal's ``performance`` detail), in words; None when it does not.

    Asked once the drift launch has passed dedupe, lease, cooldown and budget. It gives way
    when that signal launches by its own rule (a labelled drop, or catching up) and its
    snapshot has not trained: that run trains at once on the window whose labels were
    measured, where the drift launch's newest window usually waits for its labels. Both face
    the same lease, cooldown and budget, so the performance signal, handed next, launches
    whenever the drift signal would have; the drift window still counted.
    """
    given = signal.details.get("performance")
    if not isinstance(given, Mapping) or given.get("kind") != "performance":
        return None
    if not given.get("snapshot"):
        return None  # not a signal the monitor built
    value = given.get("value")
    perf = Signal(
        "performance",
        str(given["snapshot"]),
        value=None if value is None else float(value),
        details=dict(given.get("details") or {}),
    )
    ok, rule, reason, _ = _signal_rule(perf, state, cfg, now)
    status = state.snapshots.get(perf.snapshot)
    if not ok or (status is not None and status != "failed"):
        return None
    return f"the labelled window {perf.snapshot} launches instead ({rule}: {reason})"


def _moved(metric: str, drop: float) -> str:
    """A performance drop in words, in the metric's own direction: roc_auc "dropped by 0.03",
    rmse "rose by 4.2" (worse either way), and a negative drop "improved by" the amount."""
    if drop < 0:
        return f"improved by {-drop:.4f}"
    return (
        f"rose by {drop:.4f}"
        if not GREATER_IS_BETTER.get(metric, True)
        else (f"dropped by {drop:.4f}")
    )


def _behind_the_old_level(signal: Signal, state: PolicyState, cfg: TriggerConfig) -> str | None:
    """How far the champion still is below the level before the chain's drop, in words, when
    further than ``performance_drop`` allows (None: within it, or not measurable)."""
    origin, current = state.catch_up_from, signal.details.get("current")
    metric = str(signal.details.get("metric", ""))
    if origin is None or current is None or metric not in GREATER_IS_BETTER:
        return None
    if state.catch_up_metric is not None and metric != state.catch_up_metric:
        return None  # the level was recorded in another metric: not comparable
    if cfg.performance_drop is None:
        return None
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    behind = sign * (origin - float(current))
    trigger = performance_drop_threshold(metric, cfg.performance_drop, origin)
    if not behind > trigger:  # NaN never launches
        return None
    # As the performance rule: beyond sampling noise too. The drop's interval is against the
    # champion's own reference; shifted to the old level, its lower bound must lie above zero.
    lower, reference = signal.details.get("drop_lower"), signal.details.get("reference")
    if lower is not None and reference is not None:
        behind_lower = float(lower) + sign * (origin - float(reference))
        if not behind_lower > 0.0:
            return None
    return (
        f"its {metric} {float(current):.4g} is still {behind:.4g} worse than the {origin:.4g}"
        f" recorded before the drop (trigger at {trigger:.4g})"
    )


def _labels_rule(signal: Signal, state: PolicyState) -> tuple[bool, str, str]:
    """A window whose run failed on label coverage runs again once its labels cover enough."""
    window = signal.snapshot
    if state.snapshots.get(window) != "failed":
        return False, "not_failed", f"window {window} has no failed run to re-run"
    need = float(signal.details.get("min_coverage", 1.0))
    coverage = signal.value if signal.value is not None else float("nan")
    failed = signal.details.get("failed_run")
    run = f"run {failed}" if failed else "its run"
    if signal.details.get("refused"):  # a re-run would fail on them, not on coverage
        return (
            False,
            "labels_refused",
            f"the label join refused the labels of window {window} "
            f"({signal.details['refused']}): {run} waits for labels that pass",
        )
    if not coverage >= need:  # NaN (not measured) never fires
        return (
            False,
            "coverage_short",
            f"labels of window {window} cover {coverage:.1%}, below labels.min_coverage "
            f"{need:.1%}: {run} waits for them",
        )
    return (
        True,
        "labels",
        f"labels of window {window} now cover {coverage:.1%} (labels.min_coverage "
        f"{need:.1%}); {run} had failed for too few labels",
    )


def decide(
    signal: Signal,
    state: PolicyState,
    cfg: TriggerConfig,
    now: datetime,
    lease: Lease | None = None,
    *,
    window_key: WindowKey | None = None,
) -> tuple[Decision, PolicyState]:
    """Decide whether `signal` launches a run. Pure: returns the decision and the new state.

    `lease` is the run lease as last read from the store (None if never taken). `window_key`
    orders the drift signals' snapshots as windows in time (`window_sort_key` of the
    config's data source): the hysteresis counts a drift window only if newer than the last
    counted. Without it (snapshots that are not window ids) any other snapshot counts.
    """
    now = _check_now(now)
    ok, rule, reason, state = _signal_rule(signal, state, cfg, now, window_key)

    def no(rule: str, reason: str) -> tuple[Decision, PolicyState]:
        return Decision(False, rule, reason, signal, now), state

    if not ok:
        return no(rule, reason)
    status = state.snapshots.get(signal.snapshot)
    if status is not None and status != "failed":
        return no(
            "duplicate",
            f"{reason}, but snapshot {signal.snapshot} was already {status}: "
            "a snapshot trains once",
        )
    if lease is not None and lease.held(now):
        return no(
            "lease",
            f"{reason}, but run {lease.run_id} holds the lease until {iso(lease.expires_at)}",
        )
    last = state.last_launch
    cooldown = cfg.cooldown_delta
    if signal.kind != "manual" and last is not None and now - last.at < cooldown:
        return no(
            "cooldown",
            f"{reason}, but the last launch was {_fmt_delta(now - last.at)} ago "
            f"(cooldown {_fmt_delta(cooldown)})",
        )
    period = cfg.budget_delta
    recent = [r for r in state.launches if now - r.at < period]
    if len(recent) >= cfg.budget_runs:
        return no(
            "budget",
            f"{reason}, but the budget of {cfg.budget_runs} runs per {_fmt_delta(period)} is spent",
        )
    # A drift launch that would happen gives way to the same check's labelled drop.
    instead = _labelled_launch_instead(signal, state, cfg, now) if rule == "drift" else None
    if instead is not None:
        return no("deferred", f"{reason}, but {instead}")

    # Keep what the cooldown and budget rules can still need, and a bounded tail.
    keep = max(period, cooldown)
    launches = [r for r in state.launches if now - r.at < keep][-MAX_LAUNCHES:]
    launches.append(LaunchRecord(at=now, rule=rule, snapshot=signal.snapshot))
    # A launch re-arms the drift hysteresis: the new model starts a fresh count. A confirmed
    # labelled drop starts (or a catch-up continues) a chain; any other launch ends it.
    confirmed = rule in ("performance", "catch_up") or bool(signal.details.get("labelled_fired"))
    origin = state.catch_up_from if rule == "catch_up" else signal.details.get("reference")
    chained = confirmed and origin is not None
    metric = state.catch_up_metric if rule == "catch_up" else signal.details.get("metric")
    # A re-run of the chain's own snapshot (its labels arrived, or by hand) keeps the chain.
    if signal.snapshot == state.catch_up and rule in ("labels", "manual"):
        chained, origin, metric = True, state.catch_up_from, state.catch_up_metric
    # The drift back-off (`retrain.triggers._backoff`): a labelled drop resets it, a drift
    # launch waits for its outcome.
    state = after_launch(state, rule, signal.snapshot, confirmed)
    state = replace(
        state,
        launches=tuple(launches),
        drift_streak=0,
        catch_up=signal.snapshot if chained else None,
        catch_up_from=float(origin) if chained and origin is not None else None,
        catch_up_metric=str(metric) if chained and metric is not None else None,
    )
    state = state.with_snapshot_status(signal.snapshot, "launched")
    return Decision(True, rule, reason, signal, now), state
