"""Build the training set: new data mixed with a sample of history, plus two holdouts.

Retraining on the new window alone forgets what the model knew; retraining on everything lets
stale history drown the drift. The mix keeps a configured share of history
(`training.historical_share`, 0.8 by default) and holds out two sets for the evaluation step:

- a *recent* holdout from the new window (is the challenger better where the world is now?), and
- a *history* holdout (did it forget the past?), never used for training.

History rows whose id also appears in the new window are dropped first, so the recent holdout
cannot leak into training through history.

Everything is seeded: the same frames and seed give the same sets, row for row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.errors import ValidationError

__all__ = ["TrainingSet", "build_training_set", "ids_sha256"]

# Independent random streams per sampling step, so changing one step's size does not reshuffle
# the others.
_STREAM_RECENT_HOLDOUT = 1
_STREAM_HISTORY_HOLDOUT = 2
_STREAM_HISTORY_SAMPLE = 3


@dataclass(frozen=True)
class TrainingSet:
    """The frames a training run uses, and how they were made."""

    train: pd.DataFrame
    recent_holdout: pd.DataFrame
    history_holdout: pd.DataFrame | None
    provenance: dict[str, Any] = field(default_factory=dict)


def ids_sha256(ids: pd.Series) -> str:
    """sha256 of the ids as strings, sorted and joined by newlines (order-independent)."""
    text = "\n".join(sorted(ids.astype(str).tolist()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_training_set(
    new: pd.DataFrame, history: pd.DataFrame | None, cfg: Config, seed: int
) -> TrainingSet:
    """Split the new window, hold out history, and mix the rest at the configured share.

    Frames keep only the columns the model contract uses (id, time, features, target), in that
    order, with a fresh index. Rows without a label are dropped and counted in the provenance.
    The history holdout takes `training.history_holdout_rows` rows, but never more than half of
    the usable history.

    Raises:
        ValidationError: a required column is missing, or too few labelled rows remain.
    """
    plan = _MixPlan.from_config(cfg, seed)
    _check_columns(new, list(plan.columns), "new data")
    if history is not None:
        _check_columns(history, list(plan.columns), "history")
    fresh = _split_new(new, plan)
    past = _split_history(history, new[plan.id_column], plan)
    sample = _sample_history(past, fresh, plan)
    train = _mix(sample.rows, fresh.train)
    return TrainingSet(
        train=train,
        recent_holdout=fresh.recent,
        history_holdout=past.holdout,
        provenance=_provenance(plan, fresh, past, sample, train),
    )


@dataclass(frozen=True)
class _MixPlan:
    """What the steps need from the config: the contract's columns, the sizes and the seed."""

    columns: tuple[str, ...]  # id, time, features, target: the order the frames keep
    id_column: str
    target: str
    stratify: bool
    seed: int
    recent_holdout: float
    history_holdout_rows: int
    historical_share: float
    max_history_rows: int | None

    @classmethod
    def from_config(cls, cfg: Config, seed: int) -> _MixPlan:
        return cls(
            columns=(cfg.data.id_column, cfg.data.time_column, *cfg.data.features, cfg.target),
            id_column=cfg.data.id_column,
            target=cfg.target,
            stratify=cfg.task == "classification",
            seed=seed,
            recent_holdout=cfg.training.recent_holdout,
            history_holdout_rows=cfg.training.history_holdout_rows,
            historical_share=cfg.training.historical_share,
            max_history_rows=cfg.training.max_history_rows,
        )

    def strata(self, df: pd.DataFrame) -> np.ndarray | int:
        return _labels(df, self.target, self.stratify)


@dataclass(frozen=True)
class _NewSplit:
    """The new window's labelled rows, split into the recent holdout and the rows to train on."""

    labelled: pd.DataFrame
    unlabelled_dropped: int
    recent: pd.DataFrame
    train: pd.DataFrame


@dataclass(frozen=True)
class _HistorySplit:
    """History's labelled rows not in the new window: the holdout and the pool to sample from.

    `pool` is None when no history was given (or it was empty).
    """

    holdout: pd.DataFrame | None = None
    pool: pd.DataFrame | None = None
    available: int = 0
    unlabelled_dropped: int = 0
    overlapping_new_dropped: int = 0


@dataclass(frozen=True)
class _HistorySample:
    """The history rows drawn for training, how many were wanted and what capped them."""

    rows: pd.DataFrame
    requested_rows: int | None = None
    cap: str | None = None


def _split_new(new: pd.DataFrame, plan: _MixPlan) -> _NewSplit:
    """Drop unlabelled rows and split off the recent holdout (at least one row each side)."""
    labelled, unlabelled = _labelled(new[list(plan.columns)], plan.target)
    if len(labelled) < 2:
        raise ValidationError(
            f"new data has {len(labelled)} labelled row(s) in '{plan.target}'; at least 2 are "
            "needed to split off a recent holdout"
        )
    n_recent = min(max(1, round(len(labelled) * plan.recent_holdout)), len(labelled) - 1)
    positions = _sample_positions(
        plan.strata(labelled), n_recent, _rng(plan.seed, _STREAM_RECENT_HOLDOUT)
    )
    return _NewSplit(
        labelled=labelled,
        unlabelled_dropped=unlabelled,
        recent=_take(labelled, positions),
        train=_drop(labelled, positions),
    )


def _split_history(
    history: pd.DataFrame | None, new_ids: pd.Series, plan: _MixPlan
) -> _HistorySplit:
    """Drop unlabelled rows and rows of the new window, then hold out part of the rest."""
    if history is None or len(history) == 0:
        return _HistorySplit()
    labelled, unlabelled = _labelled(history[list(plan.columns)], plan.target)
    overlap = labelled[plan.id_column].isin(new_ids)
    labelled = labelled.loc[~overlap].reset_index(drop=True)
    # Never hold out more than half of history: the rest must stay available for training.
    n_hold = min(plan.history_holdout_rows, len(labelled) // 2)
    holdout: pd.DataFrame | None = None
    pool = labelled
    if n_hold > 0:
        positions = _sample_positions(
            plan.strata(labelled), n_hold, _rng(plan.seed, _STREAM_HISTORY_HOLDOUT)
        )
        holdout, pool = _take(labelled, positions), _drop(labelled, positions)
    return _HistorySplit(
        holdout=holdout,
        pool=pool,
        available=len(labelled),
        unlabelled_dropped=unlabelled,
        overlapping_new_dropped=int(overlap.sum()),
    )


def _sample_history(past: _HistorySplit, fresh: _NewSplit, plan: _MixPlan) -> _HistorySample:
    """Draw history so it is `historical_share` of the training rows (within the caps)."""
    if past.pool is None:
        return _HistorySample(rows=fresh.labelled.iloc[0:0])
    share = plan.historical_share
    wanted = round(len(fresh.train) * share / (1.0 - share))
    n_hist, cap = _cap(wanted, len(past.pool), plan.max_history_rows)
    positions = _sample_positions(
        plan.strata(past.pool), n_hist, _rng(plan.seed, _STREAM_HISTORY_SAMPLE)
    )
    return _HistorySample(rows=_take(past.pool, positions), requested_rows=wanted, cap=cap)


def _mix(history_rows: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
    """History rows, then new rows, with a fresh index."""
    # Concatenating an empty frame can change column dtypes; skip it.
    if not len(history_rows):
        return new_rows
    return pd.concat([history_rows, new_rows], ignore_index=True)


def _provenance(
    plan: _MixPlan,
    fresh: _NewSplit,
    past: _HistorySplit,
    sample: _HistorySample,
    train: pd.DataFrame,
) -> dict[str, Any]:
    """How the sets were made: sizes, shares, what was dropped and the ids' hashes."""
    n_total, n_hist = len(train), len(sample.rows)
    provenance: dict[str, Any] = {
        "seed": plan.seed,
        "requested_share": plan.historical_share,
        "realised_share": (n_hist / n_total) if n_total else 0.0,
        "history_used": n_hist > 0,
        "train_rows": n_total,
        "history_rows": n_hist,
        "new_rows": len(fresh.train),
        "recent_holdout_rows": len(fresh.recent),
        "history_holdout_rows": 0 if past.holdout is None else len(past.holdout),
        "new_available_rows": len(fresh.labelled),
        "new_unlabelled_dropped": fresh.unlabelled_dropped,
        "history": {
            "available": past.available,
            "unlabelled_dropped": past.unlabelled_dropped,
            "overlapping_new_dropped": past.overlapping_new_dropped,
            "holdout_rows_requested": plan.history_holdout_rows,
            "cap": sample.cap,
            "requested_rows": sample.requested_rows,
        },
        "ids_sha256": {
            "history_rows": ids_sha256(sample.rows[plan.id_column]),
            "new_rows": ids_sha256(fresh.train[plan.id_column]),
            "recent_holdout": ids_sha256(fresh.recent[plan.id_column]),
            "history_holdout": None
            if past.holdout is None
            else ids_sha256(past.holdout[plan.id_column]),
        },
    }
    if past.pool is None:
        provenance["note"] = "no history given: trained on new rows only (historical share 0)"
    if plan.stratify:
        frames = {"train": train, "recent_holdout": fresh.recent, "history_holdout": past.holdout}
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


def _labelled(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    mask = df[target].notna()
    return df.loc[mask].reset_index(drop=True), int((~mask).sum())


def _labels(df: pd.DataFrame, target: str, stratify: bool) -> np.ndarray | int:
    """Per-row stratum codes, or just the row count when not stratifying."""
    if not stratify:
        return len(df)
    codes, _ = pd.factorize(df[target], sort=True)
    return np.asarray(codes)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _sample_positions(strata: np.ndarray | int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of `n` rows drawn without replacement, proportionally per stratum.

    Quotas use largest remainders, so every stratum gets its proportional share to within one
    row and the total is exactly `n`.
    """
    if isinstance(strata, int):
        return np.sort(rng.choice(strata, size=n, replace=False))
    total = len(strata)
    if n >= total:
        return np.arange(total)
    counts = np.bincount(strata)
    exact = counts * (n / total)
    quota = np.floor(exact).astype(int)
    short = n - int(quota.sum())
    if short:
        # Ties go to the larger stratum, then the lower code: deterministic.
        order = np.lexsort((np.arange(len(counts)), -counts, -(exact - quota)))
        quota[order[:short]] += 1
    chosen = [
        rng.choice(np.flatnonzero(strata == k), size=q, replace=False)
        for k, q in enumerate(quota)
        if q
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def _take(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    return df.iloc[positions].reset_index(drop=True)


def _drop(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    keep[positions] = False
    return df.loc[keep].reset_index(drop=True)


def _cap(wanted: int, available: int, max_rows: int | None) -> tuple[int, str | None]:
    n, cap = wanted, None
    if n > available:
        n, cap = available, "available"
    if max_rows is not None and n > max_rows:
        n, cap = max_rows, "max_history_rows"
    return n, cap


def _class_counts(y: pd.Series) -> dict[str, int]:
    counts = y.value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
