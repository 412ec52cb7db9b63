"""What a replay records: one record per window under one policy, and the policy's result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PolicyResult", "WindowRecord"]


@dataclass
class WindowRecord:
    """What happened in one window under one policy."""

    index: int
    window: str
    champion: str | None = None
    metric: float | None = None
    rows_scored: int = 0
    drift: bool | None = None
    retrained: bool = False
    trained_on: str | None = None
    version: str | None = None
    blessed: bool | None = None
    refreshed: bool = False  # blessed as a refresh (`evaluation.refresh_after`): no gain shown
    deployed: str | None = None
    promoted: str | None = None
    train_seconds: float = 0.0
    cache_hit: bool = False
    skipped: str | None = None  # why a window the serving model should have scored was not
    # An unexpected error (not one of retrain's own) the baseline met in this window, with its
    # type, message and where it was raised: recorded and shown, the replay going on.
    failed: str | None = None
    provisional_rows: int = 0  # labelled rows of windows not in history it also trained on
    notes: list[str] = field(default_factory=list)


@dataclass
class PolicyResult:
    """A policy's replay: one record per window plus its costs."""

    policy: str
    metric: str
    greater_is_better: bool
    windows: list[WindowRecord]
    labels_consumed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "labels_consumed": self.labels_consumed,
            "seconds": round(self.seconds, 3),
            "windows": [asdict(w) for w in self.windows],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PolicyResult:
        return cls(
            policy=doc["policy"],
            metric=doc["metric"],
            greater_is_better=doc["greater_is_better"],
            windows=[WindowRecord(**w) for w in doc["windows"]],
            labels_consumed=doc["labels_consumed"],
            seconds=doc["seconds"],
        )
