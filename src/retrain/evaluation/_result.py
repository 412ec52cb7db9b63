"""The promotion decision's result: its gates, the verdict, and how it reads (report, JSON).

`retrain.evaluation.decision` decides; these are what it returns, with the number formatting
its words share.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "WAIVED_BY_REFRESH",
    "EvaluationResult",
    "Gate",
    "finite",
    "fmt",
    "half_width",
    "zero_width",
]

#: The gate a refresh passes without its evidence (`retrain.evaluation._refresh`).
WAIVED_BY_REFRESH = "recent_improvement"


@dataclass(frozen=True)
class Gate:
    """One check of the promotion decision; `decided` is False when the data cannot settle it."""

    name: str
    passed: bool
    detail: str
    decided: bool = True


@dataclass(frozen=True)
class EvaluationResult:
    """The verdict, why, and the numbers behind it.

    `undecided` is True when the evaluation rows could not settle the comparison: the challenger
    is not blessed, but it was not shown to be worse either.
    """

    blessed: bool
    reason: str
    gates: list[Gate]
    metrics: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    #: The challenger's confusion matrix on recent data (classification only), shaped for KFP
    #: ClassificationMetrics: {"categories": [str, ...], "matrix": rows true x columns predicted}.
    confusion: dict[str, Any] | None = None
    undecided: bool = False

    @property
    def outcome(self) -> str:
        """'blessed', 'rejected' or 'undecided'."""
        return "blessed" if self.blessed else "undecided" if self.undecided else "rejected"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null), with the outcome."""
        return dict(_nan_to_none({**dataclasses.asdict(self), "outcome": self.outcome}))

    def to_json(self) -> str:
        """Strict JSON text of `to_dict`."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    def markdown(self) -> str:
        """A report: verdict, reason, gates and a metrics table."""
        refreshed = bool(self.comparison.get("refresh"))
        lines = [
            f"## Evaluation: {self.outcome}{' (refresh)' if refreshed else ''}",
            "",
            self.reason,
            "",
            "| gate | result | detail |",
            "|---|---|---|",
        ]
        lines += [f"| {g.name} | {_gate_word(g, refreshed)} | {g.detail} |" for g in self.gates]
        columns = [
            (model, holdout)
            for model in ("challenger", "champion")
            for holdout in ("recent", "history")
            if self.metrics.get(model, {}).get(holdout)
        ]
        if columns:
            names: list[str] = []
            for model, holdout in columns:
                names += [m for m in self.metrics[model][holdout] if m not in names]
            lines += [
                "",
                "| metric | " + " | ".join(f"{m} ({h})" for m, h in columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            for name in names:
                cells = [fmt(self.metrics[m][h].get(name)) for m, h in columns]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _gate_word(gate: Gate, refreshed: bool = False) -> str:
    if refreshed and gate.passed and gate.name == WAIVED_BY_REFRESH:
        return "waived (refresh)"
    if not gate.decided:
        return "not judged" if gate.passed else "UNDECIDED"
    return "pass" if gate.passed else "FAIL"


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 1e4 else f"{x:.4g}"


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _nan_to_none(obj.item())
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def zero_width(ci: Any) -> bool:
    """An interval whose two bounds are equal: the models scored every resample alike, so
    nothing in these rows tells them apart."""
    return isinstance(ci, (list, tuple)) and len(ci) == 2 and ci[0] == ci[1]


def half_width(ci: tuple[float, float] | None) -> float | None:
    """Half an interval's width (the minimum detectable gain), None without a finite one."""
    if ci is None or not (finite(ci[0]) and finite(ci[1])):
        return None
    return (ci[1] - ci[0]) / 2.0
