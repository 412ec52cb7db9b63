"""Build the training set: new data mixed with a sample of history, plus two evaluation sets.

Retraining on the new window alone forgets what the model knew; retraining on everything lets
stale history drown the drift. The mix keeps a configured share of history
(`training.historical_share`, 0.8 by default), in one of two ways (`training.mix`):

- ``sample`` (default): a stratified sample of history sized so it is that share of the rows,
  at least enough for `training.min_train_rows` in all; history beyond the sample is unused.
- ``weighted``: all of history (up to `training.max_history_rows`) with sample weights that
  give it that share of the total weight, the new rows the rest; weights average 1. With
  small windows this trains on ten times the rows at the same promised share.

Either way one training fits at most `training.max_train_rows` rows (1,000,000 by default):
beyond it history and the new window's training rows are both sampled down (stratified,
seeded), history keeping its share of the rows, so the fit's memory is bounded by the cap
however much history is kept.

Every labelled row has a fixed role, from a hash of its id salted with the model name
(`retrain.data.split`, `training.evaluation_share`): evaluation rows never train any model, in
this window or any later one, so the champion and the challenger are both scored on rows
neither has seen. From the evaluation rows come

- the *recent* set: the new window's evaluation rows (is the challenger better where the world
  is now?); when they are fewer than `evaluation.min_rows`, the evaluation rows of up to
  `evaluation.pool_windows` earlier windows are pooled in, most recent first, and recorded
  (never the oldest window of history, which stays for the history set);
- the *history* set: the evaluation rows of older history (did it forget the past?), sampled
  down to `training.history_holdout_rows`.

Training rows are the new window's training rows plus a sample of history's training rows.
History rows whose id also appears in the new window are dropped first.

Everything is seeded: the same frames and seed give the same sets, row for row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config, DataSource
from retrain.data.split import evaluation_mask
from retrain.data.targets import label_keys, reconcile_targets
from retrain.data.windows import window_id_of_slot, window_slots
from retrain.errors import ValidationError
from retrain.training._sampling import (
    cap_rows,
    labelled_rows,
    row_mask,
    sample_positions,
    seeded_rng,
    strata_codes,
    take_rows,
)

__all__ = ["TrainingSet", "build_training_set", "ids_sha256"]

# Independent random streams per sampling step, so changing one step's size does not reshuffle
# the others. Stream 1 (a random recent holdout) is retired: roles now come from the id hash.
_STREAM_HISTORY_HOLDOUT = 2
_STREAM_HISTORY_SAMPLE = 3
_STREAM_NEW_SAMPLE = 5  # (4 is history's load sample, `retrain.data.history`)


@dataclass(frozen=True)
class TrainingSet:
    """The frames a training run uses, and how they were made."""

    train: pd.DataFrame
    recent_holdout: pd.DataFrame
    history_holdout: pd.DataFrame | None
    provenance: dict[str, Any] = field(default_factory=dict)
    sample_weight: np.ndarray | None = None  # per row of `train` (mix 'weighted'), else None


def ids_sha256(ids: pd.Series) -> str:
    """sha256 of the ids as strings, sorted and joined by newlines (order-independent)."""
    text = "\n".join(sorted(ids.astype(str).tolist()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_training_set(
    new: pd.DataFrame, history: pd.DataFrame | None, cfg: Config, seed: int
) -> TrainingSet:
    """Split rows by role, pool and sample the evaluation sets, and mix the training rows.

    Frames keep only the columns the model contract uses (id, time, features, target), in that
    order, with a fresh index. Rows without a label are dropped and counted in the provenance.
    The recent set may be empty (a tiny window with nothing to pool): the evaluation step then
    reports that it cannot decide.

    Raises:
        ValidationError: a required column is missing, a row has no id, or nothing is left to
            train on.
    """
    plan = _MixPlan.from_config(cfg, seed)
    _check_columns(new, list(plan.columns), "new data")
    if history is not None:
        _check_columns(history, list(plan.columns), "history")
    # A target stored as 0/1 in history and "0"/"1" in the new window: one dtype (or refused).
    both = reconcile_targets([new, history], ["the new window", "history"], plan.target)
    new, history = (both[0] if both[0] is not None else new), both[1]
    fresh = _split_new(new, plan)
    past = _split_history(history, new[plan.id_column], plan)
    pooled = _pool_recent(fresh, past, plan)
    holdout = _history_holdout(pooled.history_evaluation, plan)
    sample = _sample_history(past, fresh, plan)
    fresh = _new_rows_within_cap(fresh, len(sample.rows), plan)
    train = _mix(sample.rows, fresh.train)
    if not len(train):
        raise ValidationError(
            f"nothing to train on: the new window's {len(fresh.labelled)} labelled row(s) are all"
            " evaluation rows and there is no history; ingest a larger window"
        )
    weights = _weights(len(sample.rows), len(fresh.train), plan)
    provenance = _provenance(plan, fresh, past, pooled, holdout, sample, train)
    provenance["mix"] = plan.mix
    if weights is not None:
        # The promise is kept by weight; the row share says how much history was used.
        provenance["history_row_share"] = provenance["realised_share"]
        provenance["realised_share"] = float(weights[: len(sample.rows)].sum() / weights.sum())
        provenance["weights"] = {"history": float(weights[0]), "new": float(weights[-1])}
    return TrainingSet(
        train=train,
        recent_holdout=pooled.recent,
        history_holdout=holdout,
        provenance=provenance,
        sample_weight=weights,
    )


def _weights(n_history: int, n_new: int, plan: _MixPlan) -> np.ndarray | None:
    """Per-row weights (history rows first) giving history `historical_share` of the total
    weight; None for the sampled mix, or when one side is empty (nothing to balance)."""
    if plan.mix != "weighted" or not n_history or not n_new:
        return None
    total, share = n_history + n_new, plan.historical_share
    return np.concatenate(
        [
            np.full(n_history, share * total / n_history),
            np.full(n_new, (1.0 - share) * total / n_new),
        ]
    )


@dataclass(frozen=True)
class _MixPlan:
    """What the steps need from the config: the contract's columns, the sizes and the seed."""

    columns: tuple[str, ...]  # id, time, features, target: the order the frames keep
    id_column: str
    time_column: str
    target: str
    stratify: bool
    seed: int
    data: DataSource
    salt: str
    evaluation_share: float
    min_rows: int
    min_positives: int
    pool_windows: int
    history_holdout_rows: int
    historical_share: float
    max_history_rows: int | None
    max_train_rows: int | None
    mix: str
    min_train_rows: int

    @classmethod
    def from_config(cls, cfg: Config, seed: int) -> _MixPlan:
        return cls(
            columns=(cfg.data.id_column, cfg.data.time_column, *cfg.data.features, cfg.target),
            id_column=cfg.data.id_column,
            time_column=cfg.data.time_column,
            target=cfg.target,
            stratify=cfg.task == "classification",
            seed=seed,
            data=cfg.data,
            salt=cfg.name,  # fixed per use case, so a row keeps its role across runs
            evaluation_share=cfg.training.evaluation_share,
            min_rows=cfg.evaluation.min_rows,
            min_positives=cfg.evaluation.min_positives if cfg.task == "classification" else 0,
            pool_windows=cfg.evaluation.pool_windows,
            history_holdout_rows=cfg.training.history_holdout_rows,
            historical_share=cfg.training.historical_share,
            max_history_rows=cfg.training.max_history_rows,
            max_train_rows=cfg.training.max_train_rows,
            mix=cfg.training.mix,
            min_train_rows=cfg.training.min_train_rows,
        )

    def strata(self, df: pd.DataFrame) -> np.ndarray | int:
        return strata_codes(df, self.target, self.stratify)

    def is_evaluation(self, df: pd.DataFrame) -> np.ndarray:
        return evaluation_mask(df[self.id_column], self.evaluation_share, self.salt)


@dataclass(frozen=True)
class _NewSplit:
    """The new window's labelled rows, split by role into evaluation and training rows."""

    labelled: pd.DataFrame
    unlabelled_dropped: int
    evaluation: pd.DataFrame
    train: pd.DataFrame
    training_available: int = 0  # training rows before `max_train_rows` sampled them down


@dataclass(frozen=True)
class _HistorySplit:
    """History's labelled rows not in the new window, split by role.

    `pool` (training rows) and `evaluation` are None when no history was given (or it was empty).
    """

    evaluation: pd.DataFrame | None = None
    pool: pd.DataFrame | None = None
    available: int = 0
    unlabelled_dropped: int = 0
    overlapping_new_dropped: int = 0


@dataclass(frozen=True)
class _Pooled:
    """The recent evaluation set, the windows that lent rows to it, and history's remainder."""

    recent: pd.DataFrame
    windows: list[str]
    history_evaluation: pd.DataFrame | None


@dataclass(frozen=True)
class _HistorySample:
    """The history rows drawn for training, how many were wanted and what capped them."""

    rows: pd.DataFrame
    requested_rows: int | None = None
    cap: str | None = None


def _split_new(new: pd.DataFrame, plan: _MixPlan) -> _NewSplit:
    """Drop unlabelled rows and split the rest by role."""
    labelled, unlabelled = labelled_rows(new[list(plan.columns)], plan.target)
    if not len(labelled):
        raise ValidationError(
            f"new data has no labelled row in '{plan.target}': nothing to train or evaluate on"
        )
    evaluation = plan.is_evaluation(labelled)
    return _NewSplit(
        labelled=labelled,
        unlabelled_dropped=unlabelled,
        evaluation=labelled.loc[evaluation].reset_index(drop=True),
        train=labelled.loc[~evaluation].reset_index(drop=True),
        training_available=int((~evaluation).sum()),
    )


def _split_history(
    history: pd.DataFrame | None, new_ids: pd.Series, plan: _MixPlan
) -> _HistorySplit:
    """Drop unlabelled rows and rows of the new window, then split the rest by role."""
    if history is None or len(history) == 0:
        return _HistorySplit()
    labelled, unlabelled = labelled_rows(history[list(plan.columns)], plan.target)
    overlap = labelled[plan.id_column].isin(new_ids)
    labelled = labelled.loc[~overlap].reset_index(drop=True)
    evaluation = plan.is_evaluation(labelled)
    return _HistorySplit(
        evaluation=labelled.loc[evaluation].reset_index(drop=True),
        pool=labelled.loc[~evaluation].reset_index(drop=True),
        available=len(labelled),
        unlabelled_dropped=unlabelled,
        overlapping_new_dropped=int(overlap.sum()),
    )


def _pool_recent(fresh: _NewSplit, past: _HistorySplit, plan: _MixPlan) -> _Pooled:
    """The new window's evaluation rows, topped up from the latest windows while too few
    (fewer than `min_rows`, or fewer than `min_positives` of the rarer class)."""
    hist = past.evaluation
    short = _Shortfall(fresh, past, plan)
    if hist is None or plan.pool_windows == 0 or not short(fresh.evaluation):
        return _Pooled(fresh.evaluation, [], hist)
    slots = window_slots(plan.data, hist[plan.time_column])
    latest = np.sort(np.unique(slots[np.isfinite(slots)]))[::-1]
    # The oldest window is never pooled, so the forgetting gate always keeps some history.
    poolable = latest[: min(plan.pool_windows, len(latest) - 1)]
    taken = np.zeros(len(hist), dtype=bool)
    windows: list[str] = []
    for slot in poolable:
        if not short(fresh.evaluation, hist.loc[taken]):
            break
        taken |= slots == slot
        windows.append(window_id_of_slot(plan.data, int(slot)))
    recent = _mix(fresh.evaluation, row_mask(hist, taken))  # the new window's rows first
    return _Pooled(recent, windows, row_mask(hist, ~taken))


class _Shortfall:
    """Whether evaluation rows are too few for the gates to decide on: fewer than `min_rows`,
    or (classification) fewer than `min_positives` labels of the rarer class, counted over
    every class the new window and history hold (a class missing from the rows counts 0), as
    the gates count them."""

    def __init__(self, fresh: _NewSplit, past: _HistorySplit, plan: _MixPlan) -> None:
        self._plan = plan
        self._classes: set[Any] = set()
        if plan.min_positives > 0:
            for frame in (fresh.labelled, past.evaluation, past.pool):
                if frame is not None:
                    self._classes.update(label_keys(frame[plan.target]).unique())

    def __call__(self, *frames: pd.DataFrame) -> bool:
        if sum(len(f) for f in frames) < self._plan.min_rows:
            return True
        if self._plan.min_positives == 0 or len(self._classes) < 2:
            return False
        counts: dict[Any, int] = dict.fromkeys(self._classes, 0)
        for f in frames:
            for key, n in label_keys(f[self._plan.target]).value_counts().items():
                counts[key] = counts.get(key, 0) + int(n)
        return min(counts.values()) < self._plan.min_positives


def _history_holdout(evaluation: pd.DataFrame | None, plan: _MixPlan) -> pd.DataFrame | None:
    """A reproducible, class-stratified sample of history's evaluation rows, up to the cap."""
    if evaluation is None or not len(evaluation):
        return None
    n = min(plan.history_holdout_rows, len(evaluation))
    positions = sample_positions(
        plan.strata(evaluation), n, seeded_rng(plan.seed, _STREAM_HISTORY_HOLDOUT)
    )
    return take_rows(evaluation, positions)


def _sample_history(past: _HistorySplit, fresh: _NewSplit, plan: _MixPlan) -> _HistorySample:
    """Draw history so it is `historical_share` of the training rows (within the caps), or
    all of it for the weighted mix."""
    if past.pool is None:
        return _HistorySample(rows=fresh.labelled.iloc[0:0])
    share = plan.historical_share
    if plan.mix == "weighted":
        wanted = len(past.pool)
    else:
        wanted = round(len(fresh.train) * share / (1.0 - share))
        wanted = max(wanted, plan.min_train_rows - len(fresh.train))
    n_hist, cap = cap_rows(wanted, len(past.pool), plan.max_history_rows)
    limit, n_new = plan.max_train_rows, len(fresh.train)
    if limit is not None and n_hist + n_new > limit:
        # History keeps its share of the capped rows, or fills what the new rows cannot.
        capped = min(n_hist, max(round(limit * share), limit - n_new))
        if capped < n_hist:  # else only the new rows are cut (their count is recorded)
            n_hist, cap = capped, "max_train_rows"
    positions = sample_positions(
        plan.strata(past.pool), n_hist, seeded_rng(plan.seed, _STREAM_HISTORY_SAMPLE)
    )
    return _HistorySample(rows=take_rows(past.pool, positions), requested_rows=wanted, cap=cap)


def _new_rows_within_cap(fresh: _NewSplit, n_history: int, plan: _MixPlan) -> _NewSplit:
    """`fresh` with its training rows sampled down (stratified, seeded) to what
    `max_train_rows` leaves beside `n_history` history rows; as given when they fit."""
    limit = plan.max_train_rows
    if limit is None or n_history + len(fresh.train) <= limit:
        return fresh
    n = max(limit - n_history, 0)
    positions = sample_positions(
        plan.strata(fresh.train), n, seeded_rng(plan.seed, _STREAM_NEW_SAMPLE)
    )
    return replace(fresh, train=take_rows(fresh.train, positions))


def _mix(history_rows: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
    """History rows, then new rows, with a fresh index."""
    # Concatenating an empty frame can change column dtypes; skip it.
    if not len(history_rows):
        return new_rows
    if not len(new_rows):
        return history_rows
    return pd.concat([history_rows, new_rows], ignore_index=True)


def _provenance(
    plan: _MixPlan,
    fresh: _NewSplit,
    past: _HistorySplit,
    pooled: _Pooled,
    holdout: pd.DataFrame | None,
    sample: _HistorySample,
    train: pd.DataFrame,
) -> dict[str, Any]:
    """How the sets were made: sizes, shares, roles, what was dropped and the ids' hashes."""
    n_total, n_hist = len(train), len(sample.rows)
    provenance: dict[str, Any] = {
        "seed": plan.seed,
        "requested_share": plan.historical_share,
        "realised_share": (n_hist / n_total) if n_total else 0.0,
        "history_used": n_hist > 0,
        "train_rows": n_total,
        "history_rows": n_hist,
        "new_rows": len(fresh.train),
        "recent_holdout_rows": len(pooled.recent),
        "history_holdout_rows": 0 if holdout is None else len(holdout),
        "new_available_rows": len(fresh.labelled),
        "new_unlabelled_dropped": fresh.unlabelled_dropped,
        "evaluation": {
            "share": plan.evaluation_share,
            "salt": plan.salt,
            "new_window_rows": len(fresh.evaluation),
            "new_window_training_rows": len(fresh.train),
            "new_window_training_rows_available": fresh.training_available,
            "min_rows": plan.min_rows,
            "min_positives": plan.min_positives,
            "pool_windows": plan.pool_windows,
            "pooled_windows": pooled.windows,
            "pooled_rows": len(pooled.recent) - len(fresh.evaluation),
            "history_rows_available": 0
            if pooled.history_evaluation is None
            else len(pooled.history_evaluation),
            "history_training_rows_available": 0 if past.pool is None else len(past.pool),
        },
        "history": {
            "available": past.available,
            "unlabelled_dropped": past.unlabelled_dropped,
            "overlapping_new_dropped": past.overlapping_new_dropped,
            "holdout_rows_requested": plan.history_holdout_rows,
            "cap": sample.cap,
            "requested_rows": sample.requested_rows,
            "max_train_rows": plan.max_train_rows,
        },
        "ids_sha256": {
            "history_rows": ids_sha256(sample.rows[plan.id_column]),
            "new_rows": ids_sha256(fresh.train[plan.id_column]),
            "recent_holdout": ids_sha256(pooled.recent[plan.id_column]),
            "history_holdout": None if holdout is None else ids_sha256(holdout[plan.id_column]),
        },
    }
    if past.pool is None:
        provenance["note"] = "no history given: trained on new rows only (historical share 0)"
    if plan.stratify:
        frames = {"train": train, "recent_holdout": pooled.recent, "history_holdout": holdout}
        provenance["class_balance"] = {
            name: _class_counts(frame[plan.target])
            for name, frame in frames.items()
            if frame is not None
        }
    return provenance


def _check_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{what} lacks columns the config requires (data.id_column, data.time_column, "
            "data.features, target)",
            [f"missing column '{c}'" for c in missing],
        )


def _class_counts(y: pd.Series) -> dict[str, int]:
    counts = y.value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
