"""The `training:` and `model:` config sections: the history/new mix and the estimator."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from retrain.settings._base import Section

__all__ = ["ModelSpec", "TrainingConfig"]


class TrainingConfig(Section):
    historical_share: float = Field(default=0.8, ge=0.0, lt=1.0)
    max_history_rows: int | None = Field(default=None, ge=1)
    evaluation_share: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description=(
            "Share of labelled rows that only ever judge models and never train one: each row's"
            " role is fixed by a hash of its id (salted with the model name), so no champion or"
            " challenger is scored on rows it trained on. 0.2 keeps 80% of the labels for"
            " training; changing it reassigns rows, so change it together with a full retrain."
        ),
    )
    history_holdout_rows: int = Field(
        default=2000,
        ge=10,
        description="Cap on the history evaluation rows the forgetting gate scores (sampled).",
    )

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "recent_holdout" in data:
            raise ValueError(
                "training.recent_holdout was replaced by training.evaluation_share: evaluation"
                " rows are now fixed per row id for all windows; remove recent_holdout and set"
                " evaluation_share (default 0.2) instead"
            )
        return data


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
