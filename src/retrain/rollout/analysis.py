"""One canary analysis: what the metrics provider observed, and the analysis as recorded in the
rollout state (when, where, the verdict and why)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from retrain.rollout.checks import CheckResult

__all__ = ["Analysis", "Observations", "from_iso", "iso"]


@dataclass(frozen=True)
class Observations:
    """What a metrics provider saw for one analysis.

    Attributes:
        ready: whether the canary is serving; a canary that is not is not analysed.
        metrics: flat metric names (see `retrain.rollout.checks.METRICS`) to values; None (or a
            missing key) means the provider could not measure it.
        source: where the numbers came from, in words (for reports).
        exhausted: empty while later analyses of the step can bring new labelled evidence;
            otherwise why none can, in words (the replay provider has used every evaluation
            row it draws from). The step's quality checks are then judged on the evidence
            pooled so far instead of waiting for labels that cannot come.
        population: what the step's draws come from (the replay's windows), named by the
            step's first analysis that had any; the rollout state keeps it, and later
            analyses of the step are asked for the same (`ObserveRequest.population`).
        more: with `exhausted`, what would bring more labels, in words (e.g. "raise
            rollout.replay.max_windows"); empty: the provider does not say.
        lost: empty while the step's evidence can go on; otherwise why it cannot, in words
            (what the step drew from is gone, and drawing from the rest would count rows
            already pooled again): the step ends `inconclusive` at once.
    """

    ready: bool
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    source: str = ""
    exhausted: str = ""
    population: tuple[str, ...] = ()
    more: str = ""
    lost: str = ""


@dataclass(frozen=True)
class Analysis:
    """One analysis: when, at which step, what was measured and the verdict in words."""

    at: datetime
    step: int
    traffic: int
    verdict: Literal["passed", "failed", "waiting", "not_ready", "manual"]
    reason: str
    checks: tuple[CheckResult, ...] = ()
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "step": self.step,
            "traffic": self.traffic,
            "verdict": self.verdict,
            "reason": self.reason,
            "checks": [c.as_dict() for c in self.checks],
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Analysis:
        return cls(
            at=datetime.fromisoformat(raw["at"]),
            step=int(raw["step"]),
            traffic=int(raw["traffic"]),
            verdict=raw["verdict"],
            reason=str(raw["reason"]),
            checks=tuple(CheckResult.from_dict(c) for c in raw.get("checks", [])),
            metrics=dict(raw.get("metrics", {})),
            source=str(raw.get("source", "")),
        )


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def iso(value: datetime | None) -> str | None:
    """`value` as ISO 8601 text, or None (for the persisted rollout state)."""
    return value.isoformat() if value is not None else None


def from_iso(value: Any) -> datetime | None:
    """The datetime `iso` wrote, or None for an empty value."""
    return datetime.fromisoformat(value) if value else None
