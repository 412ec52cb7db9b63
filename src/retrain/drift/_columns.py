"""Per-feature reference profiles: numeric (bins, moments, sorted sketch) and categorical.

The sketch is described in `retrain.drift._profile`; arrays of floats are stored as base64
of little-endian float64, exact and about a third the size of decimal text.
"""

from __future__ import annotations

import base64
import math
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
    "NumericProfile",
    "bin_counts",
    "categorical_profile",
    "category_counts",
    "category_text",
    "decode_floats",
    "encode_floats",
    "json_float",
    "json_scalar",
    "nan_if_none",
    "numeric_profile",
    "numeric_values",
    "opt_float",
    "sorted_finite",
    "sorted_numeric_profile",
    "sorted_quantiles",
]


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
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        values = series.to_numpy(copy=False)  # NaN is already NaN: no converted copy
    else:
        values = numeric_values(series, name)
    ordered = np.sort(values)
    lo = int(np.searchsorted(ordered, -np.inf, side="right"))
    hi = int(np.searchsorted(ordered, np.inf, side="left"))
    return ordered[lo:hi].astype(float, copy=False), len(ordered) - (hi - lo)


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

    kind = "numeric"

    def to_dict(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericProfile:
        edges = np.asarray(d["edges"], dtype=float)
        counts = np.asarray(d["counts"], dtype=np.int64)
        sample = decode_floats(d["sample"])
        if len(counts) != len(edges) + 1 or int(counts.sum()) != int(d["n"]):
            raise ValueError("counts must have one more entry than edges and sum to n")
        if len(sample) and not (np.diff(sample) >= 0).all():
            raise ValueError("sample must be sorted")
        weights = None
        if d.get("weights") is not None:
            weights = np.asarray(d["weights"], dtype=np.int64)
            if len(weights) != len(sample) or (weights < 1).any():
                raise ValueError("weights must be one count >= 1 per sample value")
            if int(weights.sum()) != int(d["n"]):
                raise ValueError("weights must sum to n")
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


def numeric_profile(values: np.ndarray, bins: int, sample_size: int) -> NumericProfile:
    """Profile a float column (NaN = missing): quantile edges, counts, a sorted sketch.

    The edges are the reference minimum, its inner quantiles at 1/bins, 2/bins, ... and the
    next float above its maximum (repeated values merged), so values below or above the
    reference range land in buckets of their own, with a reference share of zero.
    """
    s, nulls = sorted_finite(pd.Series(values, copy=False), "values")
    return sorted_numeric_profile(s, nulls, bins, sample_size)


def sorted_numeric_profile(
    s: np.ndarray, nulls: int, bins: int, sample_size: int
) -> NumericProfile:
    """The profile of a column already sorted, without its `nulls` missing values."""
    if len(s) == 0:
        empty = np.array([], dtype=float)
        return NumericProfile(0, nulls, None, 0.0, None, None, empty, np.zeros(1, np.int64), empty)
    inner = sorted_quantiles(s, np.arange(1, bins) / bins)
    top = np.nextafter(s[-1], np.inf)
    edges = np.unique(np.concatenate([[s[0]], inner, [top] if np.isfinite(top) else []]))
    sample, weights = sketch(s, sample_size)
    return NumericProfile(
        n=len(s),
        nulls=nulls,
        mean=float(np.mean(s)),
        std=float(np.std(s)),
        min=float(s[0]),
        max=float(s[-1]),
        edges=edges,
        counts=bin_counts(s, edges),
        sample=sample.copy(),  # not a view of the column: the profile outlives it
        weights=weights,
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
