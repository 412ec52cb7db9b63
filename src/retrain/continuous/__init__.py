"""Continuous learning: incremental updates on each window, with replay of history.

The `continuous:` config section is `retrain.settings.continuous`; the update code is
`retrain.continuous.update`.
"""

from __future__ import annotations

from retrain.continuous.update import (
    Challenger,
    ContinuousUpdate,
    UpdatePlan,
    continuous_update,
    plan_update,
    preprocessing_drift,
    replay_config,
    train_or_update,
    update_method,
    update_model,
    updates_since_full_fit,
)

__all__ = [
    "Challenger",
    "ContinuousUpdate",
    "UpdatePlan",
    "continuous_update",
    "plan_update",
    "preprocessing_drift",
    "replay_config",
    "train_or_update",
    "update_method",
    "update_model",
    "updates_since_full_fit",
]
