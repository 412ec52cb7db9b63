"""The `training:` and `model:` config sections: the history/new mix and the estimator."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from retrain.settings._base import Section

__all__ = ["ModelSpec", "TrainingConfig"]


class TrainingConfig(Section):
    historical_share: float = Field(default=0.8, ge=0.0, lt=1.0)
    max_history_rows: int | None = Field(default=None, ge=1)
    recent_holdout: float = Field(default=0.25, gt=0.0, lt=1.0)
    history_holdout_rows: int = Field(default=2000, ge=10)
    evaluation_share: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description="Share of ids (by a hash of the id) kept for evaluation only: never trained "
        "on",
    )


class ModelSpec(Section):
    estimator: str = Field(description="Dotted path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if "." not in v or not v.startswith("sklearn."):
            raise ValueError(
                f"'{v}' is not a scikit-learn estimator path"
                " like sklearn.linear_model.LogisticRegression"
            )
        return v
