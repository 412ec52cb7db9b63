"""Seeded, stratified row sampling for the training mix (`retrain.training.mix`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrain.data.quotas import proportional_quotas

__all__ = [
    "cap_rows",
    "labelled_rows",
    "row_mask",
    "sample_positions",
    "seeded_rng",
    "strata_codes",
    "take_rows",
]


def labelled_rows(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    mask = df[target].notna()
    return df.loc[mask].reset_index(drop=True), int((~mask).sum())


def strata_codes(df: pd.DataFrame, target: str, stratify: bool) -> np.ndarray | int:
    """Per-row stratum codes, or just the row count when not stratifying."""
    if not stratify:
        return len(df)
    codes, _ = pd.factorize(df[target], sort=True)
    return np.asarray(codes)


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def sample_positions(strata: np.ndarray | int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of `n` rows drawn without replacement, proportionally per stratum.

    Quotas by `retrain.data.quotas.proportional_quotas`: largest remainders, so the total is
    exactly `n` and every stratum gets its proportional share to within one row, but for one
    rule: when `n` is at least the number of strata, every stratum keeps at least one row (a
    class of 3 rows in 10,000 is not sampled away at a cap of 1,000), the rows this needs
    coming from the strata furthest above their share.
    """
    if isinstance(strata, int):
        return np.sort(rng.choice(strata, size=n, replace=False))
    total = len(strata)
    if n >= total:
        return np.arange(total)
    counts = np.bincount(strata)
    quota = proportional_quotas(counts, n)
    chosen = [
        rng.choice(np.flatnonzero(strata == k), size=q, replace=False)
        for k, q in enumerate(quota)
        if q
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def row_mask(df: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    return df.loc[mask].reset_index(drop=True)


def take_rows(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    return df.iloc[positions].reset_index(drop=True)


def cap_rows(wanted: int, available: int, max_rows: int | None) -> tuple[int, str | None]:
    n, cap = wanted, None
    if n > available:
        n, cap = available, "available"
    if max_rows is not None and n > max_rows:
        n, cap = max_rows, "max_history_rows"
    return n, cap
