"""Evaluation: metrics, bootstrap intervals, and the pure promotion gates."""

from __future__ import annotations

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
