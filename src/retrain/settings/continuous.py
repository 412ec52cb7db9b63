"""The `continuous:` config section (incremental updates with replay)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from retrain.settings._base import Section

__all__ = ["DEFAULT_MAX_UPDATES", "ContinuousConfig", "UpdateMethod"]

UpdateMethod = Literal["auto", "partial_fit", "add_trees", "refit"]

# Bounds the update chain: a forest grows by at most `max_updates * grow_by` trees (with
# scikit-learn's 100 default trees and `grow_by` 10, at most twice its size) and the frozen
# preprocessing is refitted at least every `max_updates` windows.
DEFAULT_MAX_UPDATES = 10


class ContinuousConfig(Section):
    """Continuous learning: incremental updates on each window with a replay buffer.

    When enabled, a window updates the champion on the new rows plus a replayed sample of
    history, by the method `retrain.continuous.UPDATE_STRATEGIES` lists for the estimator:
    `partial_fit`, `add_trees` (a forest grows by `grow_by` trees fitted on the update set), or
    `refit` (a full refit on the replay mix, for estimators with no valid incremental path).
    The preprocessing stays as the last full fit left it; a full fit is planned instead when it
    no longer suits the data, the model spec changed, or `max_updates` is hit.
    """

    enabled: bool = Field(
        default=False, description="Update the champion incrementally instead of retraining."
    )
    method: UpdateMethod = Field(
        default="auto",
        description=(
            "How the estimator learns from each window: 'auto' (the estimator's entry in"
            " retrain.continuous.UPDATE_STRATEGIES), or one of 'partial_fit', 'add_trees'"
            " (checked against that entry) or 'refit' (a full refit on the replay mix, valid"
            " for any estimator)."
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
        description="add_trees: trees added to a forest per update.",
    )
    max_updates: int = Field(
        default=DEFAULT_MAX_UPDATES,
        ge=1,
        description=(
            "After this many incremental updates in a row the next window is a full fit"
            " (resets the frozen preprocessing and bounds a forest's growth)."
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
