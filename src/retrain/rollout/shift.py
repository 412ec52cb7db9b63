"""Distances between the champion's and the canary's prediction distributions.

Both work on histogram counts over the same bins, which is what Prometheus histograms give
(`counts_from_buckets`) and what `score_histograms` makes from raw scores. A small floor on
empty bins keeps PSI finite (as Evidently and NannyML do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "MIN_PREDICTIONS",
    "SHIFT_METHODS",
    "counts_from_buckets",
    "js_distance",
    "psi",
    "score_histograms",
    "shift",
]

#: Fewer predictions on either side give no shift value (a histogram of 5 scores says little).
MIN_PREDICTIONS = 20
_EPS = 1e-4


def _probabilities(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    c = np.clip(c, 0.0, None)
    total = c.sum()
    if total <= 0:
        raise ValueError("a histogram with no counts has no distribution")
    p = np.maximum(c / total, _EPS)
    return np.asarray(p / p.sum())


def js_distance(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon distance (base 2): 0 for equal histograms, 1 for disjoint ones."""
    p, q = _probabilities(a), _probabilities(b)
    m = (p + q) / 2
    div = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(np.sqrt(max(div, 0.0)))


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """Population stability index of `current` against `reference` (0.1 slight, 0.25 major)."""
    p, q = _probabilities(reference), _probabilities(current)
    return float(np.sum((q - p) * np.log(q / p)))


SHIFT_METHODS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "js": js_distance,
    "psi": psi,
}


def shift(method: str, reference: np.ndarray, current: np.ndarray) -> float:
    """The named distance between two histograms over the same bins."""
    return SHIFT_METHODS[method](reference, current)


def score_histograms(
    reference: np.ndarray, current: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples over the reference's quantile bins.

    Quantile edges give every bin reference mass, so the distance reacts to where the canary
    moves scores rather than to empty tails. Discrete scores (few unique values) are counted
    per value instead.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    values = np.unique(np.concatenate([ref, cur]))
    if len(values) <= bins:
        return (
            np.array([np.sum(ref == v) for v in values], dtype=float),
            np.array([np.sum(cur == v) for v in values], dtype=float),
        )
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_idx = np.searchsorted(inner, ref, side="right")
    cur_idx = np.searchsorted(inner, cur, side="right")
    n = len(inner) + 1
    return (
        np.bincount(ref_idx, minlength=n).astype(float),
        np.bincount(cur_idx, minlength=n).astype(float),
    )


def counts_from_buckets(buckets: Sequence[tuple[float, float]]) -> np.ndarray:
    """Per-bin counts from cumulative ``(le, count)`` buckets of a Prometheus histogram."""
    ordered = sorted(buckets, key=lambda b: b[0])
    cumulative = np.array([max(c, 0.0) for _, c in ordered], dtype=float)
    # Counters reset or rate extrapolation can make a cumulative series dip; never go negative.
    cumulative = np.maximum.accumulate(cumulative)
    return np.diff(np.concatenate([[0.0], cumulative]))
