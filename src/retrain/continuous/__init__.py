"""Continuous learning: incremental updates on each window, with replay of history.

The names below live in `retrain.continuous.update` and are imported on first use:
`retrain.config` imports this package's `settings` module, and importing the update code (which
needs the config) eagerly here would make that import circular.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("retrain.continuous.update"), name)
    raise AttributeError(f"module 'retrain.continuous' has no attribute {name!r}")
