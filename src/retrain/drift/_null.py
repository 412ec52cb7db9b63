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
- **Bucket methods** (Jensen-Shannon, PSI, L-infinity, on categories or quantile bins):
  500 seeded draws of both samples' bucket counts (independent Poisson counts, which cost
  the same at any n) from the reference's shares, and a gamma law fitted to the draws'
  mean and variance (of the squared distance for Jensen-Shannon and L-infinity, which behave
  like chi-square variables). Categories the reference never saw are part of the null: a
  reference of n rows misses about (categories seen once) / n of the mass (Good-Turing), so
  a current window from the same law puts that share in the unseen bucket; the draws do too.

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
NULL_DRAWS = 500
_SEED = 20_240_601
# Per bucket method: the distance function and the power at which it is roughly chi-square.
_BUCKET_METHODS: dict[str, tuple[BucketDistance, float]] = {
    "jensenshannon": (jensenshannon_of, 1.0),
    "psi": (psi_of, 1.0),
    "linf": (linf_of, 1.0),
}


def null_threshold(method: str, c: Comparison, alpha: float) -> float | None:
    """The (1 - alpha) quantile of `method`'s statistic when the window has the reference's
    distribution, for these sample sizes; None for a method without a known null."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if method == "wasserstein" and c.kind == "numeric":
        return _wasserstein_null(c, alpha)
    if method in _BUCKET_METHODS:
        fn, power = _BUCKET_METHODS[method]
        return _bucket_null(c, alpha, fn, power)
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


def _bucket_null(c: Comparison, alpha: float, fn: BucketDistance, power: float) -> float:
    from scipy.special import gammainccinv

    ref = np.asarray(c.ref_counts, dtype=float)
    n, m = float(ref.sum()), float(c.cur_n)
    if n == 0 or m == 0:
        return 0.0
    law = ref / n
    categorical = c.kind == "categorical"
    if categorical:
        # Good-Turing: the mass of the categories the reference missed is about the share of
        # its rows in categories seen once. Part of it is already missed by the redrawn
        # references (a category of share p is missed with chance exp(-n p)); the rest goes
        # to categories no redrawn reference sees: the unseen bucket, current side only.
        missing = float(np.sum(ref == 1)) / n
        law = law * (1.0 - missing)
        missed = float(np.sum(law * np.exp(-n * law)))
        law[-1] = max(missing - missed, 0.0)
    else:
        # Beyond the reference range lies a share of about 1 / (n + 1) on each side.
        outside = ref == 0
        law = np.where(outside, 1.0 / (n + 1.0), law * (1.0 - 2.0 / (n + 1.0)))
    ref_law = np.where(ref > 0, law, 0.0)  # the reference has no rows outside its buckets
    rng = np.random.default_rng(_SEED)
    a = rng.poisson(n * ref_law, size=(NULL_DRAWS, len(law))).astype(float)
    b = rng.poisson(m * law, size=(NULL_DRAWS, len(law))).astype(float)
    if categorical:
        # A category a redrawn reference missed counts as unseen, as it would in a report.
        gone = (a == 0) & (ref > 0)
        b[:, -1] += np.where(gone, b, 0.0).sum(axis=1)
        b[gone] = 0.0
    stat = np.asarray(fn(shares(a), shares(b)), dtype=float) ** power
    mean, var = float(stat.mean()), float(stat.var())
    if mean <= 0.0:
        return 0.0
    if var <= 0.0:
        return mean ** (1.0 / power)
    shape, theta = mean * mean / var, var / mean
    return float(gammainccinv(shape, alpha) * theta) ** (1.0 / power)
