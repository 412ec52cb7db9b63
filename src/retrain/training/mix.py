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
    columns = [cfg.data.id_column, cfg.data.time_column, *cfg.data.features, cfg.target]
    stratify = cfg.task == "classification"
    _check_columns(new, columns, "new data")
    if history is not None:
        _check_columns(history, columns, "history")

    new_l, new_unlabelled = _labelled(new[columns], cfg.target)
    if len(new_l) < 2:
        raise ValidationError(
            f"new data has {len(new_l)} labelled row(s) in '{cfg.target}'; at least 2 are needed "
            "to split off a recent holdout"
        )
    n_recent = min(max(1, round(len(new_l) * cfg.training.recent_holdout)), len(new_l) - 1)
    recent_pos = _sample_positions(
        _labels(new_l, cfg.target, stratify), n_recent, _rng(seed, _STREAM_RECENT_HOLDOUT)
    )
    recent = _take(new_l, recent_pos)
    new_train = _drop(new_l, recent_pos)

    history_holdout: pd.DataFrame | None = None
    hist_train = new_l.iloc[0:0]
    hist_notes: dict[str, Any] = {
        "available": 0,
        "unlabelled_dropped": 0,
        "overlapping_new_dropped": 0,
        "holdout_rows_requested": cfg.training.history_holdout_rows,
        "cap": None,
        "requested_rows": None,
    }
    share = cfg.training.historical_share
    if history is not None and len(history) > 0:
        hist_l, hist_unlabelled = _labelled(history[columns], cfg.target)
        overlap = hist_l[cfg.data.id_column].isin(new[cfg.data.id_column])
        hist_l = hist_l.loc[~overlap].reset_index(drop=True)
        hist_notes.update(
            available=len(hist_l),
            unlabelled_dropped=hist_unlabelled,
            overlapping_new_dropped=int(overlap.sum()),
        )
        # Never hold out more than half of history: the rest must stay available for training.
        n_hold = min(cfg.training.history_holdout_rows, len(hist_l) // 2)
        if n_hold > 0:
            hold_pos = _sample_positions(
                _labels(hist_l, cfg.target, stratify),
                n_hold,
                _rng(seed, _STREAM_HISTORY_HOLDOUT),
            )
            history_holdout = _take(hist_l, hold_pos)
            pool = _drop(hist_l, hold_pos)
        else:
            pool = hist_l
        wanted = round(len(new_train) * share / (1.0 - share))
        n_hist, cap = _cap(wanted, len(pool), cfg.training.max_history_rows)
        hist_notes["cap"] = cap
        hist_notes["requested_rows"] = wanted
        sample_pos = _sample_positions(
            _labels(pool, cfg.target, stratify), n_hist, _rng(seed, _STREAM_HISTORY_SAMPLE)
        )
        hist_train = _take(pool, sample_pos)

    # Concatenating an empty frame can change column dtypes; skip it.
    train = pd.concat([hist_train, new_train], ignore_index=True) if len(hist_train) else new_train
    n_total = len(train)
    provenance: dict[str, Any] = {
        "seed": seed,
        "requested_share": share,
        "realised_share": (len(hist_train) / n_total) if n_total else 0.0,
        "history_used": len(hist_train) > 0,
        "train_rows": n_total,
        "history_rows": len(hist_train),
        "new_rows": len(new_train),
        "recent_holdout_rows": len(recent),
        "history_holdout_rows": 0 if history_holdout is None else len(history_holdout),
        "new_available_rows": len(new_l),
        "new_unlabelled_dropped": new_unlabelled,
        "history": hist_notes,
        "ids_sha256": {
            "history_rows": ids_sha256(hist_train[cfg.data.id_column]),
            "new_rows": ids_sha256(new_train[cfg.data.id_column]),
            "recent_holdout": ids_sha256(recent[cfg.data.id_column]),
            "history_holdout": None
            if history_holdout is None
            else ids_sha256(history_holdout[cfg.data.id_column]),
        },
    }
    if history is None or len(history) == 0:
        provenance["note"] = "no history given: trained on new rows only (historical share 0)"
    if stratify:
        frames = {"train": train, "recent_holdout": recent, "history_holdout": history_holdout}
        provenance["class_balance"] = {
            name: _class_counts(frame[cfg.target])
            for name, frame in frames.items()
            if frame is not None
        }
    return TrainingSet(
        train=train, recent_holdout=recent, history_holdout=history_holdout, provenance=provenance
    )


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
