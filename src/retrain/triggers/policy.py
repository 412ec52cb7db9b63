"""The trigger policy: a pure function from (signal, state, lease, now) to a decision.

Nothing here reads a clock or a store. `decide` takes the time it is told, the state as last
saved and the run lease as last read, and returns what to do and the state to save; the
controller (`retrain.triggers.controller`) does the I/O around it. The rules, in the order they
are checked:

1. the signal's own rule: a cron schedule is due; drift seen in ``drift_windows`` consecutive
   windows (hysteresis); a performance drop above ``performance_drop`` (for rmse and mae a
   share of the ``reference`` in the signal's details; without one they never fire) whose
   interval (``drop_lower``, when given) lies above zero, as the drift engine's labelled
   signal judges it; at least
   ``new_data_rows`` untrained rows; a manual request always qualifies; the labels of a
   window whose run failed on label coverage now reach ``labels.min_coverage`` (``labels``);
   catching up (``catch_up``): a performance signal on a newer labelled window while the
   serving champion is the model of the last launch that a confirmed labelled drop started
   (or that continued such a chain), see `PolicyState.catch_up`;
2. dedupe: a data snapshot that was launched never launches again, unless its run failed;
3. lease: never while another run holds the lease (manual requests included);
4. cooldown: not within ``cooldown`` of the last launch (manual requests skip this one);
5. budget: at most ``budget_runs`` launches in any ``budget_period``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from retrain.errors import ValidationError
from retrain.evaluation.metrics import GREATER_IS_BETTER
from retrain.settings.cron import parse_cron
from retrain.settings.evaluation import performance_drop_threshold
from retrain.settings.triggers import TriggerConfig
from retrain.triggers.lease import Lease

__all__ = [
    "SIGNAL_KINDS",
    "Decision",
    "LaunchRecord",
    "PolicyState",
    "Signal",
    "decide",
]

SignalKind = Literal["schedule", "drift", "performance", "new_data", "manual", "labels"]
SIGNAL_KINDS: tuple[str, ...] = (
    "schedule",
    "drift",
    "performance",
    "new_data",
    "manual",
    "labels",
)

# Bounded memory: the state object must stay small however long the monitor runs.
_MAX_SNAPSHOTS = 1000
_MAX_LAUNCHES = 200


@dataclass(frozen=True)
class Signal:
    """Something that may warrant a retrain.

    Args:
        kind: schedule | drift | performance | new_data | manual | labels.
        snapshot: the immutable data snapshot a run would train on (the window id).
        drifted: for drift signals, whether this window drifted.
        value: the strength: share of drifted features, metric drop, untrained rows, or (labels)
            the window's label coverage now.
        details: anything worth keeping in the decision record (JSON-serialisable).
    """

    kind: SignalKind
    snapshot: str
    drifted: bool = False
    value: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SIGNAL_KINDS:
            raise ValidationError(
                f"signal kind {self.kind!r} is unknown; use one of {', '.join(SIGNAL_KINDS)}"
            )
        if not isinstance(self.snapshot, str) or not self.snapshot:
            raise ValidationError("a signal needs a data snapshot id (the window id)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "snapshot": self.snapshot,
            "drifted": self.drifted,
            "value": self.value,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Decision:
    """Launch or not, which rule decided, and why in words."""

    launch: bool
    rule: str
    reason: str
    signal: Signal
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "launch": self.launch,
            "rule": self.rule,
            "reason": self.reason,
            "signal": self.signal.to_dict(),
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class LaunchRecord:
    """One launch: when, by which rule, for which snapshot."""

    at: datetime
    rule: str
    snapshot: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "rule": self.rule, "snapshot": self.snapshot}


@dataclass(frozen=True)
class PolicyState:
    """What the policy remembers between signals (persisted by the controller).

    `snapshots` maps a snapshot id to the status of its run: launched, succeeded, failed or
    skipped (decided while launching was switched off).

    `catch_up` is the snapshot of the last launch that a confirmed labelled drop started or
    that continued its chain (``triggers.catch_up``), and `catch_up_from` the metric the
    model that dropped had recorded at training (the level before the change), in
    `catch_up_metric` (a check in another metric, after a config change, is not compared). While the
    serving champion is that launch's model (the caller says so in a performance signal's
    ``champion_from``) and its metric on a newer labelled window (``current``) is still
    further below that level than ``performance_drop`` allows, that window launches again.
    Any other launch ends the chain; so does a challenger that was not deployed (the champion
    then stays the earlier model) and a champion back within the trigger of the old level.
    """

    launches: tuple[LaunchRecord, ...] = ()
    drift_streak: int = 0
    drift_last_snapshot: str | None = None
    schedule_checked_at: datetime | None = None
    snapshots: Mapping[str, str] = field(default_factory=dict)
    catch_up: str | None = None
    catch_up_from: float | None = None
    catch_up_metric: str | None = None

    @property
    def last_launch(self) -> LaunchRecord | None:
        return self.launches[-1] if self.launches else None

    def with_snapshot_status(self, snapshot: str, status: str) -> PolicyState:
        """A copy recording the run status of a snapshot."""
        snaps = {k: v for k, v in self.snapshots.items() if k != snapshot}
        snaps[snapshot] = status  # re-inserted last: the newest stay when trimming
        return replace(self, snapshots=dict(list(snaps.items())[-_MAX_SNAPSHOTS:]))

    def to_json(self) -> str:
        doc = {
            "launches": [r.to_dict() for r in self.launches],
            "drift_streak": self.drift_streak,
            "drift_last_snapshot": self.drift_last_snapshot,
            "schedule_checked_at": _iso(self.schedule_checked_at),
            "snapshots": dict(self.snapshots),
            "catch_up": self.catch_up,
            "catch_up_from": self.catch_up_from,
            "catch_up_metric": self.catch_up_metric,
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "trigger state") -> PolicyState:
        try:
            doc = json.loads(text)
            launches = tuple(
                LaunchRecord(at=_parse_time(r["at"]), rule=str(r["rule"]), snapshot=r["snapshot"])
                for r in doc.get("launches", [])
            )
            checked = doc.get("schedule_checked_at")
            snapshots = doc.get("snapshots", {})
            if not isinstance(snapshots, dict):
                raise TypeError("snapshots must be an object")
            return cls(
                launches=launches,
                drift_streak=int(doc.get("drift_streak", 0)),
                drift_last_snapshot=doc.get("drift_last_snapshot"),
                schedule_checked_at=_parse_time(checked) if checked else None,
                snapshots={str(k): str(v) for k, v in snapshots.items()},
                catch_up=_optional_text(doc.get("catch_up")),
                catch_up_from=_optional_number(doc.get("catch_up_from")),
                catch_up_metric=_optional_text(doc.get("catch_up_metric"), "catch_up_metric"),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ValidationError(f"{where} is malformed: {err}") from None


def _optional_text(value: Any, name: str = "catch_up") -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be text or null")
    return value


def _optional_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("catch_up_from must be a number or null")
    return float(value)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return t


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


def _signal_rule(
    signal: Signal, state: PolicyState, cfg: TriggerConfig, now: datetime
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
        return True, "schedule", f"schedule {name!r} ({cron}) was due at {_iso(fired)}", state

    if signal.kind == "drift":
        if not cfg.drift:
            return False, "disabled", "drift triggers are off (triggers.drift: false)", state
        # Hysteresis counts windows, not events: the same window seen twice counts once.
        if signal.snapshot != state.drift_last_snapshot:
            streak = state.drift_streak + 1 if signal.drifted else 0
            state = replace(state, drift_streak=streak, drift_last_snapshot=signal.snapshot)
        streak = state.drift_streak
        what = f" ({signal.value:.0%} of features drifted)" if signal.value is not None else ""
        if not signal.drifted:
            return False, "no_drift", f"window {signal.snapshot} did not drift{what}", state
        if streak < cfg.drift_windows:
            return (
                False,
                "hysteresis",
                f"window {signal.snapshot} drifted{what}: {streak} of {cfg.drift_windows} "
                "consecutive drifted windows needed",
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
        if not drop > trigger:  # NaN (no measurement) never fires
            ok, rule, reason = (
                False,
                "below_threshold",
                f"{metric} dropped by {drop:.4f}, not above the trigger of {at}",
            )
        elif lower is not None and not float(lower) > 0.0:  # a drop sampling noise explains
            ok, rule, reason = (
                False,
                "within_noise",
                f"{metric} dropped by {drop:.4f}, but its interval reaches {float(lower):+.4f}:"
                " sampling noise of the labelled rows explains it",
            )
        else:
            return True, "performance", f"{metric} dropped by {drop:.4f} (trigger at {at})", state
        chain = state.catch_up
        if (
            cfg.catch_up
            and chain is not None
            and signal.details.get("champion_from") == chain
            and signal.snapshot != chain
        ):
            behind = _behind_the_old_level(signal, state, cfg)
            if behind is not None:
                return (
                    True,
                    "catch_up",
                    f"{reason}; the model launched for {chain} after a confirmed drop serves, and"
                    f" on the newer labelled window {signal.snapshot} {behind}: catching up on"
                    " the new regime",
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
    return True, "new_data", f"{rows} untrained rows (trigger at {cfg.new_data_rows})", state


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
) -> tuple[Decision, PolicyState]:
    """Decide whether `signal` launches a run. Pure: returns the decision and the new state.

    `lease` is the run lease as last read from the store (None if never taken).
    """
    now = _check_now(now)
    ok, rule, reason, state = _signal_rule(signal, state, cfg, now)

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
            f"{reason}, but run {lease.run_id} holds the lease until {_iso(lease.expires_at)}",
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

    # Keep what the cooldown and budget rules can still need, and a bounded tail.
    keep = max(period, cooldown)
    launches = [r for r in state.launches if now - r.at < keep][-_MAX_LAUNCHES:]
    launches.append(LaunchRecord(at=now, rule=rule, snapshot=signal.snapshot))
    # A launch re-arms the drift hysteresis: the new model starts a fresh count. A confirmed
    # labelled drop starts (or a catch-up continues) a chain; any other launch ends it.
    chained = rule in ("performance", "catch_up") or bool(signal.details.get("labelled_fired"))
    origin = state.catch_up_from if rule == "catch_up" else signal.details.get("reference")
    chained = chained and origin is not None
    metric = state.catch_up_metric if rule == "catch_up" else signal.details.get("metric")
    # A re-run of the chain's own snapshot (its labels arrived, or by hand) keeps the chain.
    if signal.snapshot == state.catch_up and rule in ("labels", "manual"):
        chained, origin, metric = True, state.catch_up_from, state.catch_up_metric
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
