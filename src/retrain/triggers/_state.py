"""What the trigger policy sees and remembers: signals, decisions, launch records and the
policy's state, with its JSON form (`retrain.triggers.policy` decides on them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from retrain.errors import ValidationError

__all__ = [
    "MAX_LAUNCHES",
    "SIGNAL_KINDS",
    "Decision",
    "LaunchRecord",
    "PolicyState",
    "Signal",
    "iso",
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
MAX_LAUNCHES = 200


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
            "at": iso(self.at),
        }


@dataclass(frozen=True)
class LaunchRecord:
    """One launch: when, by which rule, for which snapshot."""

    at: datetime
    rule: str
    snapshot: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at), "rule": self.rule, "snapshot": self.snapshot}


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

    `drift_backoff` counts the drift launches whose challenger was not deployed since the
    serving champion last changed or a labelled drop was confirmed; `drift_pending` holds the
    drift launches whose outcome is not known yet, oldest first, and `drift_serving` the
    launch that made the serving champion as the last drift signal said (``serving_from``).
    `retrain.triggers._backoff` says how they change.
    """

    launches: tuple[LaunchRecord, ...] = ()
    drift_streak: int = 0
    drift_last_snapshot: str | None = None
    schedule_checked_at: datetime | None = None
    snapshots: Mapping[str, str] = field(default_factory=dict)
    catch_up: str | None = None
    catch_up_from: float | None = None
    catch_up_metric: str | None = None
    drift_backoff: int = 0
    drift_pending: tuple[str, ...] = ()
    drift_serving: str | None = None

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
            "schedule_checked_at": iso(self.schedule_checked_at),
            "snapshots": dict(self.snapshots),
            "catch_up": self.catch_up,
            "catch_up_from": self.catch_up_from,
            "catch_up_metric": self.catch_up_metric,
            "drift_backoff": self.drift_backoff,
            "drift_pending": list(self.drift_pending),
            "drift_serving": self.drift_serving,
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
                drift_backoff=_count(doc.get("drift_backoff", 0), "drift_backoff"),
                drift_pending=_texts(doc.get("drift_pending", []), "drift_pending"),
                drift_serving=_optional_text(doc.get("drift_serving"), "drift_serving"),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ValidationError(f"{where} is malformed: {err}") from None


def _optional_text(value: Any, name: str = "catch_up") -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be text or null")
    return value


def _texts(value: Any, name: str) -> tuple[str, ...]:
    if value is None or isinstance(value, str):  # one snapshot or none, as first written
        return () if value is None else (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a list of snapshot ids")
    return tuple(value)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{name} must be a whole number of at least 0")
    return value


def _optional_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("catch_up_from must be a number or null")
    return float(value)


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return t
