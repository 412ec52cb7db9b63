"""The `evaluation:` config section: the gates a challenger passes before it is deployed."""

from __future__ import annotations

from pydantic import Field

from retrain.settings._base import Section

__all__ = ["EvaluationConfig"]


class EvaluationConfig(Section):
    metric: str | None = Field(
        default=None, description="Primary metric; defaults to roc_auc (classification) or rmse."
    )
    floor: float | None = Field(default=None, description="Absolute minimum of the metric.")
    max_recent_regression: float = Field(
        default=0.0,
        ge=0.0,
        description="Largest allowed drop vs the champion on recent data (metric units).",
    )
    max_history_loss: float = Field(
        default=0.02, ge=0.0, description="Largest allowed drop vs the champion on history."
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "A challenger replaces the champion only if the lower bound of the confidence interval"
            " of its gain on recent data exceeds this (metric units): better, not merely equal."
        ),
    )
    bootstrap_samples: int = Field(default=200, ge=20, le=10000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
