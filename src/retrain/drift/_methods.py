"""Drift methods: pure functions registered by name, all with one signature.

A method takes a `Comparison` (one feature's reference and current values, prepared once:
sorted non-null values for numeric features, aligned frequency vectors for both kinds) and
returns a `MethodResult` (a statistic and, for tests, a p-value). Config picks methods by name
from `METHODS`; `register_method` adds one.

Preparing once is what makes the engine fast: each current numeric column is sorted once, or
only its seeded sample beyond `drift.max_sample_rows` (the reference arrives sorted, as a
sketch, from its profile); KS then needs `searchsorted` of
the sketch only, Wasserstein a few vectorised passes over the sorted column, bin counts of a sorted
array are `searchsorted` of the bin edges, and categories are integer codes counted with
`bincount`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from retrain.errors import ValidationError
from retrain.settings.drift import (
    METHOD_CATALOGUE,
    MethodInfo,
    check_declaration,
    declare_method,
    forget_method,
    method_names,
)

__all__ = [
    "METHODS",
    "Comparison",
    "DriftMethod",
    "MethodResult",
    "method_names",
    "register_method",
    "unregister_method",
]

# A zero share would make PSI infinite; like Evidently, an empty bucket counts as 0.01 %.
PSI_EMPTY_SHARE = 1e-4
# A reference whose standard deviation is below this share of its magnitude (the largest
# |value|) counts as constant: float rounding alone leaves a std of about 1e-16 of it.
CONSTANT_SHARE = 1e-12
# A constant reference is scaled by this share of its magnitude in Wasserstein (of the current
# window's when the reference is all zeros): relative, so verdicts do not depend on units.
WASSERSTEIN_MIN_SCALE = 1e-3
# `ecdf_area` sums run by run once `b` is this many times longer than `a` (measured: the two
# ways cost the same at 10,000 values of `a` against 1M of `b`).
_RUNS_FROM = 100
# Largest rank product `ecdf_area` computes in int64 (2**62 keeps a margin below overflow).
_MAX_GRID = 2**62
# scipy's ks_2samp computes exact p-values up to this many values per sample.
_KS_EXACT_MAX_N = 10_000


@dataclass(frozen=True)
class Comparison:
    """One feature's reference and current values as the methods see them.

    Attributes:
        kind: "numeric" or "categorical".
        ref_counts, cur_counts: frequency vectors over the same buckets. Numeric: the
            reference-quantile bins, plus one bucket below the reference minimum and one
            above its maximum. Categorical: the reference categories, plus one bucket for
            every category the reference never saw.
        ref_sorted, cur_sorted: numeric only: the non-null values (or their seeded sample,
            `drift.max_sample_rows`), ascending. The reference may be a sketch of a larger
            column: then `ref_weights` holds how many values each entry stands for.
        ref_weights: integer counts of `ref_sorted`'s entries; None counts each once.
        ref_n: non-null reference values behind `ref_sorted` (p-values use this size): the
            sample's size when the reference column was sampled.
        ref_scale: numeric only: the reference standard deviation (population, full column).
        cur_unseen: categorical only: rows per category the reference never saw (their sum
            is the last entry of `cur_counts`), for the null threshold; None if unknown.
    """

    kind: str
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    ref_sorted: np.ndarray | None = None
    cur_sorted: np.ndarray | None = None
    ref_weights: np.ndarray | None = None
    ref_n: int = 0
    ref_scale: float = 1.0
    cur_unseen: np.ndarray | None = None

    @property
    def cur_n(self) -> int:
        """Non-null current values."""
        if self.cur_sorted is not None:
            return len(self.cur_sorted)
        return int(self.cur_counts.sum())

    def sorted_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(reference, current) sorted values; ValidationError for a categorical feature."""
        if self.ref_sorted is None or self.cur_sorted is None:
            raise ValidationError(f"this method needs numeric values, not a {self.kind} feature")
        return self.ref_sorted, self.cur_sorted


@dataclass(frozen=True)
class MethodResult:
    """A method's answer: the statistic and, for a statistical test, its p-value."""

    statistic: float
    p_value: float | None = None


MethodFn = Callable[[Comparison], MethodResult]


@dataclass(frozen=True)
class DriftMethod:
    """A registered method: the function and how to judge its output."""

    name: str
    fn: MethodFn
    kinds: frozenset[str]
    test: str
    default_threshold: float
    default_warn: float | None
    description: str

    def __call__(self, comparison: Comparison) -> MethodResult:
        if comparison.kind not in self.kinds:
            raise ValidationError(
                f"drift method {self.name!r} does not apply to {comparison.kind} features"
            )
        return self.fn(comparison)


#: Every implemented method by name (the config's catalogue, `METHOD_CATALOGUE`, declares them).
METHODS: dict[str, DriftMethod] = {}


def _implementation(info: MethodInfo, fn: MethodFn) -> DriftMethod:
    return DriftMethod(
        name=info.name,
        fn=fn,
        kinds=frozenset(info.kinds),
        test=info.test,
        default_threshold=float(info.default_threshold),
        default_warn=info.default_warn,
        description=info.description or (fn.__doc__ or info.name).strip().splitlines()[0],
    )


def _implements(name: str) -> Callable[[MethodFn], MethodFn]:
    """Implement a method the settings' catalogue declares (the built-ins)."""

    def decorate(fn: MethodFn) -> MethodFn:
        METHODS[name] = _implementation(METHOD_CATALOGUE[name], fn)
        return fn

    return decorate


def unregister_method(name: str) -> None:
    """Remove a method registered with `register_method` (its implementation and its name)."""
    METHODS.pop(name, None)
    forget_method(name)


def register_method(
    name: str,
    *,
    kinds: tuple[str, ...],
    test: str,
    default_threshold: float,
    default_warn: float | None = None,
    description: str = "",
    replace: bool = False,
) -> Callable[[MethodFn], MethodFn]:
    """Register `fn(comparison) -> MethodResult` under `name` (use as a decorator).

    The name is declared in the config's catalogue too, so configs may name it from then on.

    Args:
        kinds: the feature kinds it applies to ("numeric", "categorical").
        test: "distance" (drift when the statistic is at or above the threshold) or
            "p_value" (drift when the p-value is below the, possibly corrected, alpha).
        default_threshold: the threshold (distance) or alpha (p-value) when config names none.
        default_warn: a distance below the threshold that is reported as a warning.
        replace: allow replacing a method of the same name.
    """
    info = MethodInfo(
        name=name,
        kinds=frozenset(kinds),
        test=test,
        default_threshold=float(default_threshold),
        default_warn=default_warn,
        description=description,
    )
    check_declaration(info, replace=replace)

    def decorate(fn: MethodFn) -> MethodFn:
        method = _implementation(info, fn)
        declare_method(dataclasses.replace(info, description=method.description), replace=True)
        METHODS[name] = method
        return fn

    return decorate


# --- building blocks (shared with the tests' reading of scipy) ----------------------------------


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (along the last axis; all zeros stay zeros)."""
    total = np.sum(counts, axis=-1, keepdims=True)
    return np.asarray(counts / np.where(total > 0, total, 1))


def _ranks(a: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Cumulative counts before each value of `a` and after the last (length len(a) + 1)."""
    if weights is None:
        return np.arange(len(a) + 1, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(weights, dtype=np.int64)])


def ecdf_gap(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Largest gap between the empirical CDFs of two sorted samples (the KS statistic).

    `weights` are integer counts of the values of `a` (a sketch); None counts each once.
    Between two consecutive values of `a` its CDF is flat while the other one rises, so the
    gap is largest at a value of `a` or just below it: four `searchsorted` calls of the size
    of `a`, none of the size of `b`.
    """
    ranks = _ranks(a, weights)
    total, n = ranks[-1], len(b)
    below_a = ranks[np.searchsorted(a, a, side="left")] / total
    upto_a = ranks[np.searchsorted(a, a, side="right")] / total
    below_b = np.searchsorted(b, a, side="left") / n
    upto_b = np.searchsorted(b, a, side="right") / n
    return float(max(np.max(np.abs(upto_a - upto_b)), np.max(np.abs(below_a - below_b))))


def ecdf_area(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area between the empirical CDFs of two sorted samples (the Wasserstein-1 distance).

    `weights` are integer counts of the values of `a` (a sketch); None counts each once.
    Computed as the area between the quantile functions, on a common integer grid of ranks:
    `a` has `total` of them and `b` has `n`, value j of `a` spans ``[ranks[j]*n,
    ranks[j+1]*n)`` and value i of `b` spans ``[i*total, (i+1)*total)``; each value of `a`
    pairs with the values of `b` whose ranks overlap its own. The weights stay exact
    integers. Two ways to add it up, the same number: `_area_by_values` (a few passes over
    `b`, fastest while `b` is up to about 100 times longer than `a`) and `_area_by_runs`
    (one summing pass over `b`, the rest of the size of `a`: faster beyond).
    """
    ranks = _ranks(a, weights)
    total, n = int(ranks[-1]), len(b)
    if weights is not None and total * n > _MAX_GRID:
        # The grid would overflow int64 (a sketch of ~1e13 values against millions): scale
        # the counts down, each kept >= 1. The area then moves by about the rounding of the
        # counts (a share of 1 / (_MAX_GRID / n) per run), far below any drift threshold.
        scaled = np.maximum(1, np.round(np.asarray(weights) * (_MAX_GRID / (total * n))))
        return ecdf_area(a, b, scaled.astype(np.int64))
    if n > _RUNS_FROM * len(a):
        return _area_by_runs(a, b, ranks, total, n)
    return _area_by_values(a, b, ranks, total, n)


def _area_by_values(a: np.ndarray, b: np.ndarray, ranks: np.ndarray, total: int, n: int) -> float:
    """Each value of `b` counted whole against the value of `a` whose span holds its start,
    then corrected where a span of `a` begins inside a value of `b` (at most once per value
    of `a`)."""
    grid = ranks * n
    start, end = grid[:-1], grid[1:]
    # Value i of b goes to the value of a whose span holds i*total: ceil(end) - ceil(start).
    counts = -(-end // total) - -(-start // total)
    # One temporary, worked in place: a fresh array per step would fault its pages in again.
    paired = np.repeat(a, counts)
    np.subtract(b, paired, out=paired)
    area = float(np.abs(paired, out=paired).sum()) * total
    inner = np.flatnonzero(start % total)  # spans of a that begin inside a value of b
    if len(inner):
        value = start[inner] // total
        owner = np.searchsorted(start, value * total, side="right") - 1
        share = np.minimum(end[inner], (value + 1) * total) - start[inner]
        moved = np.abs(b[value] - a[inner]) - np.abs(b[value] - a[owner])
        area += float(np.sum(share * moved))
    return area / (total * n)


def _area_by_runs(a: np.ndarray, b: np.ndarray, ranks: np.ndarray, total: int, n: int) -> float:
    """Each value of `a` against the run of `b` inside its span, split where `b` passes it:
    two sums per run from one `np.add.reduceat` pass; the values of `b` at a run's two ends
    count by their overlap."""
    m = len(a)
    grid = ranks * n
    start, end = grid[:-1], grid[1:]
    first = start // total  # the values of b at the two ends of each run of a
    last = (end - 1) // total
    lo = first + 1  # the values of b wholly inside the run: [lo, hi)
    hi = np.maximum(last, lo)
    split = np.clip(np.searchsorted(b, a, side="left"), lo, hi)
    cuts = np.empty(3 * m + 1, dtype=np.int64)
    cuts[0:-1:3], cuts[1::3], cuts[2::3], cuts[-1] = lo, split, hi, n
    starts = cuts[:-1]
    sums = np.zeros(3 * m)
    inside = int(np.searchsorted(starts, n))  # segments that start at n are empty
    if inside:
        sums[:inside] = np.add.reduceat(b, starts[:inside])  # the last one ends at n
    sums[cuts[1:] <= starts] = 0.0  # reduceat gives b[i] for an empty segment
    # sum |b - a[j]| over the run = a[j] * (#below - #above) - sum(below) + sum(above)
    whole = a * (2 * split - lo - hi) - sums[0::3] + sums[1::3]
    one = first == last  # the run lies within a single value of b
    w_first = np.where(one, end - start, lo * total - start)
    w_last = np.where(one, 0, end - last * total)
    ends = w_first * np.abs(b[first] - a) + w_last * np.abs(b[last] - a)
    return (float(np.sum(whole)) * total + float(np.sum(ends))) / (total * n)


# --- the built-in methods ------------------------------------------------------------------------


@_implements("ks")
def ks(c: Comparison) -> MethodResult:
    """Two-sample Kolmogorov-Smirnov: largest ECDF gap, with scipy's two-sided p-value."""
    ref, cur = c.sorted_values()
    d = ecdf_gap(ref, cur, c.ref_weights)
    n, m = max(c.ref_n, len(ref)), len(cur)
    if c.ref_weights is None and len(ref) == n and max(n, m) <= _KS_EXACT_MAX_N:
        # Small samples: scipy's exact distribution (what ks_2samp's 'auto' mode does).
        from scipy.stats import ks_2samp

        p = float(ks_2samp(ref, cur).pvalue)
    else:
        from scipy.stats import kstwo

        big, small = max(n, m), min(n, m)
        p = float(np.clip(kstwo.sf(d, np.round(big * small / (big + small))), 0.0, 1.0))
    return MethodResult(d, p)


def wasserstein_scale(c: Comparison) -> float:
    """What `wasserstein` divides by: the reference std, or for a constant reference a share
    of its magnitude (of the current window's if the reference is all zeros); 0 if both are
    all zeros. Never an absolute floor: scaling a column by any factor keeps the verdict."""
    ref, cur = c.sorted_values()
    magnitude = max(abs(float(ref[0])), abs(float(ref[-1]))) if len(ref) else 0.0
    if c.ref_scale > CONSTANT_SHARE * magnitude and c.ref_scale > 0.0:
        return c.ref_scale
    if magnitude == 0.0 and len(cur):
        magnitude = max(abs(float(cur[0])), abs(float(cur[-1])))
    return WASSERSTEIN_MIN_SCALE * magnitude


@_implements("wasserstein")
def wasserstein(c: Comparison) -> MethodResult:
    """Wasserstein-1 distance divided by the reference standard deviation."""
    ref, cur = c.sorted_values()
    distance = ecdf_area(ref, cur, c.ref_weights)
    scale = wasserstein_scale(c)
    return MethodResult(distance / scale if scale > 0.0 else 0.0)


# The bucket methods work on shares along the last axis: one row here, many rows when the
# null distribution is simulated (`retrain.drift._null`).


def psi_of(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """PSI of share vectors along the last axis (empty buckets count as `PSI_EMPTY_SHARE`)."""
    p = np.where(p == 0.0, PSI_EMPTY_SHARE, p)
    q = np.where(q == 0.0, PSI_EMPTY_SHARE, q)
    return np.asarray(np.sum((q - p) * np.log(q / p), axis=-1))


def jensenshannon_of(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2) of share vectors along the last axis."""
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
        right = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum((left + right) / (2.0 * math.log(2.0)), 0.0)))


def linf_of(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Largest change of a share along the last axis."""
    return np.asarray(np.max(np.abs(p - q), axis=-1))


@_implements("psi")
def psi(c: Comparison) -> MethodResult:
    """Population stability index over reference-quantile bins or categories."""
    return MethodResult(float(psi_of(shares(c.ref_counts), shares(c.cur_counts))))


@_implements("jensenshannon")
def jensenshannon(c: Comparison) -> MethodResult:
    """Jensen-Shannon distance (square root of the divergence, base 2: from 0 to 1)."""
    return MethodResult(float(jensenshannon_of(shares(c.ref_counts), shares(c.cur_counts))))


@_implements("linf")
def linf(c: Comparison) -> MethodResult:
    """L-infinity distance: the largest change in any category's share."""
    return MethodResult(float(linf_of(shares(c.ref_counts), shares(c.cur_counts))))


@_implements("chi2")
def chi2(c: Comparison) -> MethodResult:
    """Pearson's chi-square on the 2 x k table of category counts (no continuity correction)."""
    from scipy.special import chdtrc

    table = np.vstack([c.ref_counts, c.cur_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]  # a category neither sample has is no evidence
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return MethodResult(0.0, 1.0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return MethodResult(stat, float(chdtrc(table.shape[1] - 1, stat)))


# Every name the config may choose must have an implementation here.
_unimplemented = sorted(set(METHOD_CATALOGUE) - set(METHODS))
if _unimplemented:
    raise ImportError(f"drift methods declared without an implementation: {_unimplemented}")
