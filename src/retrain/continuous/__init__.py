"""Continuous learning: incremental updates on each window, with replay of history.

The `continuous:` config section is `retrain.settings.continuous`; the update code is
`retrain.continuous.update`; how each estimator may learn from a window is
`retrain.continuous.strategies`.
"""

from __future__ import annotations

from retrain.continuous.strategies import (
    UPDATE_STRATEGIES,
    Method,
    UpdateStrategy,
    model_size,
    update_strategy,
)
from retrain.continuous.update import (
    Challenger,
    ContinuousUpdate,
    UpdatePlan,
    continuous_update,
    plan_update,
    preprocessing_drift,
    replay_config,
    train_or_update,
    update_model,
    updates_since_full_fit,
)

__all__ = [
    "UPDATE_STRATEGIES",
    "Challenger",
    "ContinuousUpdate",
    "Method",
    "UpdatePlan",
    "UpdateStrategy",
    "continuous_update",
    "model_size",
    "plan_update",
    "preprocessing_drift",
    "replay_config",
    "train_or_update",
    "update_model",
    "update_strategy",
    "updates_since_full_fit",
]
