"""The `continuous:` config section (incremental updates with replay)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from retrain.settings._base import Section

__all__ = ["ContinuousConfig", "UpdateMethod"]

UpdateMethod = Literal["auto", "partial_fit", "warm_start"]


class ContinuousConfig(Section):
    """Continuous learning: incremental updates on each window with a replay buffer.

    When enabled, a window updates the champion (`partial_fit`, or `warm_start` growth of a tree
    ensemble) on the new rows plus a replayed sample of history, instead of training from
    scratch. The preprocessing stays as the last full fit left it; a full fit is planned
    instead when it no longer suits the data, the model spec changed, or `max_updates` is hit.
    """

    enabled: bool = Field(
        default=False, description="Update the champion incrementally instead of retraining."
    )
    method: UpdateMethod = Field(
        default="auto",
        description=(
            "How the estimator learns more: 'partial_fit' (SGD, MLP, naive Bayes), 'warm_start'"
            " (a tree ensemble grows by `grow_by` members), or 'auto': partial_fit when the"
            " estimator has it, otherwise warm_start."
        ),
    )
    replay_share: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of each update drawn from history (replay buffer); default: the same as"
            " training.historical_share. 0 disables replay."
        ),
    )
    replay_max_rows: int | None = Field(
        default=None,
        ge=1,
        description="Cap on replayed rows per update; default: training.max_history_rows.",
    )
    passes: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="partial_fit epochs over each update set (reshuffled every pass).",
    )
    grow_by: int = Field(
        default=10,
        ge=1,
        description="warm_start: trees (or boosting iterations) added per update.",
    )
    max_updates: int | None = Field(
        default=None,
        ge=1,
        description=(
            "After this many incremental updates in a row the next window is a full fit"
            " (resets the frozen preprocessing and bounds an ensemble's growth); none: no limit."
        ),
    )
    full_fit_below_floor: bool = Field(
        default=True,
        description=(
            "Plan a full fit when the champion scores below evaluation.floor on the new window:"
            " after an abrupt concept change an update, held back by replay, cannot catch up."
        ),
    )
    max_unseen_category_share: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "A full fit is planned when more of a categorical column's values than this are"
            " unknown to the frozen one-hot encoder (they would be encoded as all zeros)."
        ),
    )
    max_numeric_shift: float = Field(
        default=1.0,
        ge=0.0,
        description=(
            "A full fit is planned when a numeric feature's mean moves more than this many"
            " standard deviations (as the frozen scaler measures them)."
        ),
    )
