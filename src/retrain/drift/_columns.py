"""Per-feature reference profiles: numeric (bins, moments, sorted sketch) and categorical.

The sketch is described in `retrain.drift._profile`; arrays of floats are stored as base64
of little-endian float64, exact and about a third the size of decimal text.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.data.schema import as_category_strings
from retrain.drift._identifiers import IdentifierProfile
from retrain.errors import ValidationError, sample_text

__all__ = [
    "CategoricalProfile",
    "ColumnProfile",
    "FiniteColumn",
    "NumericProfile",
    "bin_counts",
    "categorical_profile",
    "category_counts",
    "category_text",
    "decode_floats",
    "encode_floats",
    "finite_column",
    "json_float",
    "json_scalar",
    "nan_if_none",
    "numeric_profile",
    "numeric_values",
    "opt_float",
    "sorted_finite",
    "sorted_quantiles",
]

#: Salts of the sample seed, so that the reference and a window draw independent positions.
REFERENCE_SIDE, CURRENT_SIDE = 0, 1


# --- columns -------------------------------------------------------------------------------------


def numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """A numeric column as float64; missing and non-finite values become NaN.

    Raises:
        ValidationError: naming the column if it holds values that are not numbers.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            values = pd.to_numeric(series, errors="raise").to_numpy(dtype=float, na_value=np.nan)
        except (ValueError, TypeError):
            bad = pd.to_numeric(series, errors="coerce").isna() & series.notna()
            examples = sample_text(str(v) for v in series[bad].unique()[:3])
            raise ValidationError(
                f"column {name!r}: a numeric feature holds values that are not numbers, "
                f"e.g. {examples}"
            ) from None
    values = np.asarray(values, dtype=float)
    # +-inf is no position on the axis: count it with the missing values. (A new array: the
    # caller's frame may share this memory.)
    return np.where(np.isfinite(values), values, np.nan)


def sorted_finite(series: pd.Series, name: str) -> tuple[np.ndarray, int]:
    """(the column's finite values, ascending; how many rows are missing, NaN or +-inf).

    One sort of one copy of the column: NaN sorts last and the infinities next to it, so the
    finite values are a slice of the sorted copy, with no masked copy before the sort.

    Raises:
        ValidationError: naming the column if it holds values that are not numbers.
    """
    return _sorted_finite(_float_values(series, name))


def _float_values(series: pd.Series, name: str) -> np.ndarray:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        return np.asarray(series.to_numpy(copy=False))  # NaN is already NaN: no converted copy
    return numeric_values(series, name)


def _sorted_finite(values: np.ndarray) -> tuple[np.ndarray, int]:
    ordered = np.sort(values)
    lo = int(np.searchsorted(ordered, -np.inf, side="right"))
    hi = int(np.searchsorted(ordered, np.inf, side="left"))
    return ordered[lo:hi].astype(float, copy=False), len(ordered) - (hi - lo)


@dataclass(frozen=True, eq=False)
class FiniteColumn:
    """A numeric column as the drift statistics see it.

    Attributes:
        sorted: the finite values ascending; for a column of more than the cap's finite
            values, a seeded uniform sample of `cap` of them (without replacement), sorted.
        n: finite values in the whole column.
        nulls: rows missing, NaN or +-inf.
        finite: the whole column's finite values (unsorted) when `sorted` is a sample, for
            the moments and the range; None when `sorted` holds them all.
    """

    sorted: np.ndarray
    n: int
    nulls: int
    finite: np.ndarray | None = None

    @property
    def sampled(self) -> bool:
        return self.finite is not None


def finite_column(
    series: pd.Series, name: str, cap: int | None, seed: int, side: int
) -> FiniteColumn:
    """The column's finite values, sorted, or a sorted uniform sample of `cap` of them.

    A column of at most `cap` finite values (or any column, with `cap` None) is sorted whole,
    as `sorted_finite`. A longer one is never sorted: `cap` of its finite values are drawn
    without replacement, seeded by `seed`, the feature's `name` (crc32: stable across
    processes, unlike `hash`) and the `side` (reference or current window, so the two sides
    draw independently), and only they are sorted. The same column and seed give the same
    sample, so a re-run gives the same report.

    Raises:
        ValidationError: naming the column if it holds values that are not numbers.
    """
    values = _float_values(series, name)
    if cap is None or len(values) <= cap:
        ordered, nulls = _sorted_finite(values)
        return FiniteColumn(ordered, len(ordered), nulls)
    keep = np.isfinite(values)
    n = int(np.count_nonzero(keep))
    finite = values if n == len(values) else values[keep]
    if n <= cap:
        return FiniteColumn(np.sort(finite), n, len(values) - n)
    rng = np.random.default_rng([seed % 2**63, zlib.crc32(name.encode("utf-8")), side])
    # numpy draws the positions by a partial shuffle of the index range (Floyd's algorithm
    # for a small share): about 1 ms for 100,000 of 1,000,000, where sorting the column
    # costs 11-70 ms (numpy 2 / 1.26). `shuffle=False`: the sort discards their order.
    picked = rng.choice(n, cap, replace=False, shuffle=False)
    return FiniteColumn(np.sort(finite[picked]), n, len(values) - n, finite)


def sketch(sorted_values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, counts) standing for a sorted column in at most `size` runs; see the module.

    A column of at most `size` values is returned whole, with counts None (one each).
    """
    n = len(sorted_values)
    if n <= size:
        return sorted_values, None
    q = (1.0 - np.cos(np.pi * np.arange(size + 1) / size)) / 2.0
    cuts = np.unique(np.round(q * n).astype(np.int64))  # 0 first, n last
    counts = np.diff(cuts)
    means = np.add.reduceat(sorted_values, cuts[:-1]) / counts
    # Within its run's range, so the sketch stays sorted; and a run of one repeated value is
    # that value exactly (a rounded mean a hair off it would move the whole tie across a
    # comparison and change a KS statistic by the tie's mass).
    return np.clip(means, sorted_values[cuts[:-1]], sorted_values[cuts[1:] - 1]), counts


def sorted_quantiles(sorted_values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """`np.quantile(sorted_values, q)` (its default, linear rule) of an ascending array.

    The same arithmetic as numpy's, read off the sorted array by index: np.quantile would
    partition the column again, a pass as long as the sort's copy.
    """
    n = len(sorted_values)
    virtual = (n - 1) * np.asarray(q, dtype=float)
    below = np.floor(virtual)
    lo = below.astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    lo[virtual >= n - 1] = n - 1
    a, b, t = sorted_values[lo], sorted_values[hi], virtual - below
    diff = b - a
    out = np.add(a, diff * t)
    # numpy interpolates from the nearer end, so a quantile at a value's own rank is exact.
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return np.asarray(out, dtype=float)


def bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted values in the buckets (-inf, e0), [e0, e1), ..., [ek, inf)."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate([[0], cuts, [len(sorted_values)]])).astype(np.int64)


def category_text(series: pd.Series) -> pd.Series:
    """Category labels as text, the same way ingest writes them (3.0 -> '3')."""
    return as_category_strings(series)


def _value_counts(series: pd.Series) -> tuple[np.ndarray, pd.Series, int]:
    """(rows per distinct value; the text label of each value; rows missing).

    One counting pass over the codes: a categorical column has them already, any other dtype
    is factorized first. Only the distinct values are turned into text, so the per-row work
    stays in compiled code whatever the dtype (text, integers, categorical).
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques: Any = series.cat.categories
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    counted = np.bincount(np.add(codes, 1, dtype=np.intp), minlength=len(uniques) + 1)
    names = category_text(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
    return counted[1:].astype(np.int64), names, int(counted[0])


def category_counts(
    series: pd.Series, categories: pd.Index
) -> tuple[np.ndarray, int, int, dict[str, int]]:
    """Rows per reference category, then rows in categories it never saw; missing rows; and
    the unseen values by name (returned as counts, length ``len(categories) + 1``)."""
    per_value, names, nulls = _value_counts(series)
    lookup = pd.Index(names.to_numpy(dtype=object))
    mapping = np.asarray(categories.get_indexer(lookup), dtype=np.int64)
    missing = names.isna().to_numpy()  # a value whose label is missing counts as missing
    nulls += int(per_value[missing].sum())
    known = (mapping >= 0) & ~missing
    counts = np.bincount(mapping[known], weights=per_value[known], minlength=len(categories))
    unseen: dict[str, int] = {}
    for i in np.flatnonzero((mapping == -1) & ~missing):
        if per_value[i]:
            unseen[str(names.iloc[i])] = unseen.get(str(names.iloc[i]), 0) + int(per_value[i])
    out = np.append(counts.astype(np.int64), sum(unseen.values()))
    return out, int(out[-1]), nulls, unseen


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """One numeric column of the reference (finite values only; the rest are `nulls`)."""

    n: int
    nulls: int
    mean: float | None
    std: float
    min: float | None
    max: float | None
    edges: np.ndarray
    counts: np.ndarray
    sample: np.ndarray
    weights: np.ndarray | None = None
    sample_n: int | None = None

    kind = "numeric"

    @property
    def judged_n(self) -> int:
        """The values `counts`, `sample` and `weights` stand for: the statistics' size."""
        return self.n if self.sample_n is None else self.sample_n

    def to_dict(self) -> dict[str, Any]:
        d = {
            "kind": self.kind,
            "n": self.n,
            "nulls": self.nulls,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "sample": encode_floats(self.sample),
            "weights": None if self.weights is None else [int(w) for w in self.weights],
        }
        if self.sample_n is not None:
            # Only when sampled: an unsampled profile reads as profiles always did.
            d["sample_n"] = self.sample_n
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericProfile:
        edges = np.asarray(d["edges"], dtype=float)
        counts = np.asarray(d["counts"], dtype=np.int64)
        sample = decode_floats(d["sample"])
        # Absent from unsampled profiles and from those written before sampling existed.
        sample_n = d.get("sample_n")
        if sample_n is not None and (
            isinstance(sample_n, bool)
            or not isinstance(sample_n, int)
            or not 1 <= sample_n < int(d["n"])
        ):
            raise ValueError("sample_n must be an integer from 1 to below n")
        judged = int(d["n"]) if sample_n is None else sample_n
        if len(counts) != len(edges) + 1 or int(counts.sum()) != judged:
            raise ValueError(
                "counts must have one more entry than edges and sum to n (sample_n if sampled)"
            )
        if len(sample) and not (np.diff(sample) >= 0).all():
            raise ValueError("sample must be sorted")
        weights = None
        if d.get("weights") is not None:
            weights = np.asarray(d["weights"], dtype=np.int64)
            if len(weights) != len(sample) or (weights < 1).any():
                raise ValueError("weights must be one count >= 1 per sample value")
            if int(weights.sum()) != judged:
                raise ValueError("weights must sum to n (sample_n if sampled)")
        return cls(
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            mean=opt_float(d["mean"]),
            std=float(d["std"]),
            min=opt_float(d["min"]),
            max=opt_float(d["max"]),
            edges=edges,
            counts=counts,
            sample=sample,
            weights=weights,
            sample_n=sample_n,
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """One categorical column of the reference: categories, most frequent first."""

    n: int
    nulls: int
    categories: tuple[str, ...]
    counts: np.ndarray

    kind = "categorical"

    @property
    def index(self) -> pd.Index:
        return pd.Index(list(self.categories), dtype=object)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "nulls": self.nulls,
            "categories": list(self.categories),
            "counts": [int(c) for c in self.counts],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalProfile:
        categories = tuple(d["categories"])
        counts = np.asarray(d["counts"], dtype=np.int64)
        if not all(isinstance(c, str) for c in categories) or len(set(categories)) != len(
            categories
        ):
            raise ValueError("categories must be distinct strings")
        if len(counts) != len(categories) or int(counts.sum()) != int(d["n"]):
            raise ValueError("counts must match the categories and sum to n")
        return cls(n=int(d["n"]), nulls=int(d["nulls"]), categories=categories, counts=counts)


ColumnProfile = NumericProfile | CategoricalProfile | IdentifierProfile


def numeric_profile(
    values: np.ndarray,
    bins: int,
    sample_size: int,
    *,
    cap: int | None = None,
    seed: int = 0,
    name: str = "values",
) -> NumericProfile:
    """Profile a float column (NaN = missing): quantile edges, counts, a sorted sketch.

    The edges are the reference minimum, its inner quantiles at 1/bins, 2/bins, ... and the
    next float above its maximum (repeated values merged), so values below or above the
    reference range land in buckets of their own, with a reference share of zero. A column
    of more than `cap` finite values is judged on a seeded sample of `cap` (`finite_column`).
    """
    column = finite_column(pd.Series(values, copy=False), name, cap, seed, REFERENCE_SIDE)
    return column_profile(column, bins, sample_size)


def column_profile(column: FiniteColumn, bins: int, sample_size: int) -> NumericProfile:
    """The profile of a prepared column (`finite_column`).

    When the column was sampled, the quantile edges, bin counts and sketch are the sample's
    (`sample_n` records its size), while n, nulls, mean, std and the range are the whole
    column's: they cost one pass, and ingest's value reference reads the range. The outer
    edges are the whole column's minimum and the float above its maximum.
    """
    s, nulls = column.sorted, column.nulls
    if len(s) == 0:
        empty = np.array([], dtype=float)
        return NumericProfile(0, nulls, None, 0.0, None, None, empty, np.zeros(1, np.int64), empty)
    whole = s if column.finite is None else column.finite
    lowest, highest = (
        (float(s[0]), float(s[-1]))
        if column.finite is None
        else (
            float(whole.min()),
            float(whole.max()),
        )
    )
    inner = sorted_quantiles(s, np.arange(1, bins) / bins)
    top = np.nextafter(highest, np.inf)
    edges = np.unique(np.concatenate([[lowest], inner, [top] if np.isfinite(top) else []]))
    sample, weights = sketch(s, sample_size)
    return NumericProfile(
        n=column.n,
        nulls=nulls,
        mean=float(np.mean(whole)),
        std=float(np.std(whole)),
        min=lowest,
        max=highest,
        edges=edges,
        counts=bin_counts(s, edges),
        sample=sample.copy(),  # not a view of the column: the profile outlives it
        weights=weights,
        sample_n=len(s) if column.sampled else None,
    )


def categorical_profile(series: pd.Series) -> CategoricalProfile:
    """Profile a categorical column: category counts, most frequent first (ties by name)."""
    per_value, names, _ = _value_counts(series)
    present = names.notna().to_numpy()
    # Distinct values can share a label (3 and 3.0 are both '3'): add them up.
    counts = pd.Series(per_value[present]).groupby(names[present].to_numpy(dtype=object)).sum()
    counts = counts[counts > 0]
    labels = counts.index.to_numpy(dtype=object).astype(str)
    order = np.lexsort((labels, -counts.to_numpy()))
    return CategoricalProfile(
        n=int(counts.sum()),
        nulls=int(len(series) - counts.sum()),
        categories=tuple(str(labels[i]) for i in order),
        counts=counts.to_numpy(dtype=np.int64)[order],
    )


def encode_floats(values: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(values, dtype="<f8").tobytes()
    return {"dtype": "<f8", "base64": base64.b64encode(data).decode("ascii")}


def decode_floats(d: dict[str, Any]) -> np.ndarray:
    if d.get("dtype") != "<f8":
        raise ValueError(f"unsupported sample dtype {d.get('dtype')!r}")
    data = base64.b64decode(d["base64"], validate=True)
    if len(data) % 8:
        raise ValueError("sample bytes are not whole float64 values")
    return np.frombuffer(data, dtype="<f8").astype(float)


def json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def nan_if_none(value: Any) -> float:
    return float("nan") if value is None else float(value)


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
