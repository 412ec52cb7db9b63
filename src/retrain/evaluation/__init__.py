"""Evaluation: metrics, bootstrap intervals, and the pure promotion gates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrain._exports import lazy_exports

if TYPE_CHECKING:
    from retrain.evaluation._baseline import target_constant
    from retrain.evaluation.bootstrap import bootstrap_difference
    from retrain.evaluation.gates import (
        EvaluationResult,
        Gate,
        GateInputs,
        decide,
        evaluate_challenger,
    )
    from retrain.evaluation.metrics import (
        GREATER_IS_BETTER,
        compute_metrics,
        confusion,
    )

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "_baseline": ("target_constant",),
            "bootstrap": ("bootstrap_difference",),
            "gates": ("EvaluationResult", "Gate", "GateInputs", "decide", "evaluate_challenger"),
            "metrics": ("GREATER_IS_BETTER", "compute_metrics", "confusion"),
        },
    )

__all__ = [
    "GREATER_IS_BETTER",
    "EvaluationResult",
    "Gate",
    "GateInputs",
    "bootstrap_difference",
    "compute_metrics",
    "confusion",
    "decide",
    "evaluate_challenger",
    "target_constant",
]
