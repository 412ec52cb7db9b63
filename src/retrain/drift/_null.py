"""How large a distance gets when nothing drifted: the null threshold of a distance verdict.

A distance between two samples from one distribution is not zero: it shrinks with the sample
sizes and grows with the number of buckets (Jensen-Shannon between two samples of 1,000 rows
over 50 equally likely categories is about 0.13, above the usual 0.1 threshold). A distance
verdict therefore also asks that the distance exceed the (1 - alpha) quantile of its null
distribution for these sample sizes and this reference, so small windows and many categories
stop firing on noise while large windows stay judged by effect size.

- **Wasserstein** (normalised): no simulation. For samples of n and m values from a law F,
  ``sqrt(n m / (n + m)) W1`` tends to ``Z = integral |B(F(x))| dx`` (B a Brownian bridge).
  Z is the norm of a Gaussian process, so Borell-TIS bounds its tail:
  ``P(Z > E Z + u) <= exp(-u^2 / (2 s^2))`` with ``E Z = sqrt(2/pi) integral sqrt(F(1-F)) dx``
  and ``s^2 = sup Var(integral g B dx) over |g| <= 1 = Var(X)`` (the bridge's covariance is
  non-negative, so g = 1 attains it). Both come from the reference sketch in one pass.
  A bound, so conservative: measured false-positive rates sit below alpha
  (`benchmarks/decisions/drift.py`).
- **Bucket methods** (Jensen-Shannon, PSI, L-infinity, on categories or quantile bins): a
  permutation null. Under "no drift" every split of the pooled reference and window rows into
  samples of their two sizes is equally likely, so 1,000 seeded random splits of the pooled
  bucket counts (cell by cell: cost of the order of draws x buckets, the same at any n) give
  the statistic's null distribution, exact whatever the category shares. The threshold is
  the larger of a gamma law's quantile (fitted to the draws' mean and variance: it reaches
  beyond the draws, for Bonferroni-divided alphas) and, when alpha * 1,001 >= 1, the Monte
  Carlo permutation test's own threshold (valid at any size). Each category the reference never
  saw is a cell of its own, and a split that leaves a category without reference rows
  counts it as unseen, as a report does: with many rare categories a window from the same
  law holds categories a small reference missed, and the null knows it.

A registered method the engine does not know gets no null threshold (None): its effect-size
threshold alone decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from retrain.drift._methods import (
    Comparison,
    jensenshannon_of,
    linf_of,
    psi_of,
    shares,
    wasserstein_scale,
)

__all__ = ["NULL_DRAWS", "null_threshold"]

BucketDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Simulated pairs of samples per bucket-method null threshold.
NULL_DRAWS = 1000
_SEED = 20_240_601
# Unseen categories kept as cells of their own in the permutation null.
_MAX_UNSEEN_CELLS = 2000
# Cells of at least this many pooled rows are split by the normal approximation.
_NORMAL_FROM = 30
# The bucket methods by name: distances of share vectors along the last axis.
_BUCKET_METHODS: dict[str, BucketDistance] = {
    "jensenshannon": jensenshannon_of,
    "psi": psi_of,
    "linf": linf_of,
}


def null_threshold(method: str, c: Comparison, alpha: float) -> float | None:
    """The (1 - alpha) quantile of `method`'s statistic when the window has the reference's
    distribution, for these sample sizes; None for a method without a known null."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if method == "wasserstein" and c.kind == "numeric":
        return _wasserstein_null(c, alpha)
    if method in _BUCKET_METHODS:
        return _bucket_null(c, alpha, _BUCKET_METHODS[method])
    return None


def _wasserstein_null(c: Comparison, alpha: float) -> float:
    ref, _ = c.sorted_values()
    n, m = max(c.ref_n, len(ref)), c.cur_n
    scale = wasserstein_scale(c)
    if len(ref) < 2 or n == 0 or m == 0 or scale <= 0.0:
        return 0.0
    weights = np.ones(len(ref)) if c.ref_weights is None else c.ref_weights.astype(float)
    cdf = np.cumsum(weights)[:-1] / weights.sum()
    mean_z = math.sqrt(2.0 / math.pi) * float(np.sum(np.sqrt(cdf * (1.0 - cdf)) * np.diff(ref)))
    # The reference's own standard deviation (the profile's, of the full column).
    spread = c.ref_scale
    bound = mean_z + spread * math.sqrt(2.0 * math.log(1.0 / alpha))
    return math.sqrt(1.0 / n + 1.0 / m) * bound / scale


def _bucket_null(c: Comparison, alpha: float, fn: BucketDistance) -> float:
    from scipy.special import gammainccinv

    ref = np.asarray(c.ref_counts, dtype=np.int64)
    cur = np.asarray(c.cur_counts, dtype=np.int64)
    n, m = int(ref.sum()), int(cur.sum())
    if n == 0 or m == 0:
        return 0.0
    categorical = c.kind == "categorical"
    if categorical and c.cur_unseen is not None and len(c.cur_unseen):
        # Each category the reference never saw is a cell of its own: a redrawn split may
        # give it reference rows, and then it is not unseen any more.
        unseen = np.asarray(c.cur_unseen, dtype=np.int64)
        unseen = _capped(unseen, cur[-1])
        ref = np.concatenate([ref[:-1], np.zeros(len(unseen) + 1, np.int64)])
        cur = np.concatenate([cur[:-1], unseen, [0]])
    pooled = ref + cur
    a = _split(pooled, n / (n + m))
    b = pooled - a
    if categorical:
        # As in a report: a category the redrawn reference lacks counts in the unseen bucket.
        gone = a == 0
        lumped = np.where(gone, b, 0).sum(axis=1)
        b = np.where(gone, 0, b)
        b[:, -1] += lumped
    stat = np.asarray(fn(shares(a.astype(float)), shares(b.astype(float))), dtype=float)
    mean, var = float(stat.mean()), float(stat.var())
    if mean <= 0.0:
        return 0.0
    if var <= 0.0:
        return mean
    shape, theta = mean * mean / var, var / mean
    # A gamma law's tail is exponential: at or beyond the statistic's own (a square root
    # of a chi-square-like divergence for Jensen-Shannon), so the quantile errs high.
    fitted = float(gammainccinv(shape, alpha) * theta)
    # Where alpha allows it, also the Monte Carlo permutation test's own threshold: with
    # p = (1 + draws at or above) / (draws + 1), p <= alpha holds with chance at most alpha
    # whatever the law, so the larger of the two keeps the rate where the fit's tail is thin.
    allowed = math.floor(alpha * (NULL_DRAWS + 1))
    if allowed >= 1:
        # Strictly above the allowed-th largest draw (verdicts fire at or above a threshold).
        exact = float(np.nextafter(np.sort(stat)[NULL_DRAWS - allowed], np.inf))
        return max(fitted, exact)
    return fitted


def _split(pooled: np.ndarray, share: float) -> np.ndarray:
    """`NULL_DRAWS` random splits of the pooled rows: each row to the reference with chance
    `share`. Cell by cell and independent (binomial thinning: as exact as the permutation's
    hypergeometric draws at these sizes, and vectorised); cells of at least `_NORMAL_FROM`
    rows by the normal approximation, a fifth of the binomial's cost."""
    rng = np.random.default_rng(_SEED)
    big = pooled >= _NORMAL_FROM
    a = np.empty((NULL_DRAWS, len(pooled)), dtype=np.int64)
    small = pooled[~big]
    a[:, ~big] = rng.binomial(small, share, size=(NULL_DRAWS, len(small)))
    mean = pooled[big] * share
    sd = np.sqrt(mean * (1.0 - share))
    z = rng.standard_normal((NULL_DRAWS, int(big.sum())))
    a[:, big] = np.clip(np.rint(mean + sd * z), 0, pooled[big]).astype(np.int64)
    return a


def _capped(unseen: np.ndarray, total: int) -> np.ndarray:
    """The unseen categories' counts, the smallest merged beyond `_MAX_UNSEEN_CELLS` (a window
    of ids posing as categories would otherwise cost a cell per row), and any rows the counts
    miss as one more cell."""
    unseen = np.sort(unseen[unseen > 0])[::-1]
    if len(unseen) > _MAX_UNSEEN_CELLS:
        unseen = np.append(unseen[: _MAX_UNSEEN_CELLS - 1], unseen[_MAX_UNSEEN_CELLS - 1 :].sum())
    rest = total - int(unseen.sum())
    return np.append(unseen, rest) if rest > 0 else unseen
