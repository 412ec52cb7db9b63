"""The reference profile: what the training data and the model looked like, stored with it.

Built once at training time and registered with the model (``profile.json``), so monitoring
reads only the current window. Per numeric feature it keeps the reference-quantile bin edges
and counts (of the full column), mean, standard deviation, range and a sorted sketch; per
categorical feature the category counts. For the model: the distribution of its scores on
held-out rows, its metrics there, its estimated accuracy (to check calibration against the
measured one) and permutation importances.

A column of at most `drift.profile_sample_size` values is kept whole. A longer one becomes a
sketch: its sorted values cut into that many runs of consecutive ranks, each kept as its mean
and its count. The runs are narrow at both ends and wide in the middle (rank cuts on an
arcsine scale, as t-digest's): the extreme values, which dominate a Wasserstein distance on
skewed or heavy-tailed data, are kept exactly (single-value runs at both ends for columns up
to about 60 million values at 10,000 runs; beyond that the outermost runs hold a few values),
and no run holds more than max(pi/2 / size, 2 / n) of the column's n values, which bounds how
far the sketch's CDF is from the full column's anywhere. Compared with the
full column, the sketch's Wasserstein distance to a current window is off by about 1e-5 of a
standard deviation at 10,000 runs on normal, lognormal and Pareto(1.5) data (evenly spaced
order statistics of the same size: up to 7e-2 on the Pareto data). Deterministic: no seed.
Arrays of floats are stored as base64 of little-endian float64, exact and about a third the
size of decimal text.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.data.schema import as_category_strings
from retrain.drift._performance import estimate_performance, score_vector
from retrain.errors import ValidationError
from retrain.evaluation.metrics import compute_metrics

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "PROFILE_FILE",
    "CategoricalProfile",
    "NumericProfile",
    "ReferenceProfile",
    "bin_counts",
    "build_profile",
    "category_counts",
    "numeric_profile",
    "numeric_values",
    "sorted_finite",
]

PROFILE_FILE = "profile.json"
PROFILE_FORMAT = 2
# Format 1 kept evenly spaced order statistics without counts: still readable.
_READABLE_FORMATS = (1, 2)


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
            examples = [str(v) for v in series[bad].unique()[:3]]
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
    mapping = np.asarray(categories.get_indexer(names.to_numpy(dtype=object)), dtype=np.int64)
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
            "sample": _encode(self.sample),
            "weights": None if self.weights is None else [int(w) for w in self.weights],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericProfile:
        edges = np.asarray(d["edges"], dtype=float)
        counts = np.asarray(d["counts"], dtype=np.int64)
        sample = _decode(d["sample"])
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
            mean=_opt_float(d["mean"]),
            std=float(d["std"]),
            min=_opt_float(d["min"]),
            max=_opt_float(d["max"]),
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


ColumnProfile = NumericProfile | CategoricalProfile


def numeric_profile(values: np.ndarray, bins: int, sample_size: int) -> NumericProfile:
    """Profile a float column (NaN = missing): quantile edges, counts, a sorted sketch.

    The edges are the reference minimum, its inner quantiles at 1/bins, 2/bins, ... and the
    next float above its maximum (repeated values merged), so values below or above the
    reference range land in buckets of their own, with a reference share of zero.
    """
    s, nulls = sorted_finite(pd.Series(values, copy=False), "values")
    return _numeric_profile(s, nulls, bins, sample_size)


def _numeric_profile(s: np.ndarray, nulls: int, bins: int, sample_size: int) -> NumericProfile:
    if len(s) == 0:
        empty = np.array([], dtype=float)
        return NumericProfile(0, nulls, None, 0.0, None, None, empty, np.zeros(1, np.int64), empty)
    inner = np.quantile(s, np.arange(1, bins) / bins)
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


# --- the profile ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Reference data and model behaviour, stored with a model version.

    Attributes:
        task: "classification" or "regression".
        rows: rows of the reference data.
        features: per feature, a `NumericProfile` or `CategoricalProfile`.
        bins: quantile bins per numeric feature.
        sample_size: cap of the sorted sample per numeric feature.
        scores: the model's scores on held-out reference rows (see `score_vector`).
        classes: the model's classes, in the column order of its probabilities.
        metric: the primary metric; `metrics` holds every metric on those rows.
        estimated_accuracy: the label-free estimate on those rows (classifiers).
        importances: permutation importance per feature, as shares summing to 1.
    """

    task: str
    rows: int
    features: dict[str, ColumnProfile]
    bins: int
    sample_size: int
    scores: NumericProfile | None = None
    classes: list[Any] | None = None
    metric: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    estimated_accuracy: float | None = None
    importances: dict[str, float] = field(default_factory=dict)
    format: int = PROFILE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "task": self.task,
            "rows": self.rows,
            "bins": self.bins,
            "sample_size": self.sample_size,
            "features": {name: col.to_dict() for name, col in self.features.items()},
            "scores": self.scores.to_dict() if self.scores is not None else None,
            "classes": self.classes,
            "metric": self.metric,
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "estimated_accuracy": self.estimated_accuracy,
            "importances": dict(self.importances),
        }

    def to_json(self) -> str:
        """Strict JSON text (key order kept: features in config order)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Parse `to_json` output.

        Raises:
            ValidationError: not JSON, another format version, or a malformed entry.
        """
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValidationError(f"reference profile is not valid JSON: {err}") from None
        if not isinstance(raw, dict):
            raise ValidationError("reference profile must be a JSON object")
        if raw.get("format") not in _READABLE_FORMATS:
            raise ValidationError(
                f"reference profile format {raw.get('format')!r} is not supported "
                f"(this version reads formats {', '.join(map(str, _READABLE_FORMATS))})"
            )
        where = "reference profile"
        try:
            features: dict[str, ColumnProfile] = {}
            for name, col in raw["features"].items():
                where = f"reference profile feature {name!r}"
                kind = col["kind"]
                if kind == "numeric":
                    features[name] = NumericProfile.from_dict(col)
                elif kind == "categorical":
                    features[name] = CategoricalProfile.from_dict(col)
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            where = "reference profile scores"
            scores = NumericProfile.from_dict(raw["scores"]) if raw["scores"] else None
            where = "reference profile"
            return cls(
                task=str(raw["task"]),
                rows=int(raw["rows"]),
                features=features,
                bins=int(raw["bins"]),
                sample_size=int(raw["sample_size"]),
                scores=scores,
                classes=raw["classes"],
                metric=raw["metric"],
                metrics={k: _nan_if_none(v) for k, v in raw["metrics"].items()},
                estimated_accuracy=_opt_float(raw["estimated_accuracy"]),
                importances={str(k): float(v) for k, v in raw["importances"].items()},
            )
        except KeyError as err:
            raise ValidationError(f"{where} is malformed: missing key {err}") from None
        except (TypeError, ValueError, AttributeError, binascii.Error) as err:
            raise ValidationError(f"{where} is malformed: {err}") from None


def build_profile(
    df: pd.DataFrame,
    cfg: Config,
    *,
    scores: Any = None,
    labels: Any = None,
    classes: Any = None,
    importances: dict[str, float] | None = None,
) -> ReferenceProfile:
    """The reference profile of `df` (the training data) and, optionally, of the model.

    Args:
        df: reference rows holding every feature of `cfg.data.features`.
        cfg: the config: feature kinds, task, primary metric, `drift.bins` and
            `drift.profile_sample_size`.
        scores: the model's scores on held-out reference rows (probabilities rows x classes,
            or positive-class probabilities, or regression predictions); need not be rows of
            `df`: scores on data the model trained on are overconfident.
        labels: the true labels of the scored rows; with them the profile records the metrics.
        classes: the model's classes in probability-column order (classification).
        importances: per feature, e.g. from `permutation_importance`; normalised to sum 1.

    Raises:
        ValidationError: missing feature columns (all listed), a numeric feature holding text,
            importances naming unknown features or negative values, labels without scores.
    """
    features = dict(cfg.data.features)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ValidationError(
            "reference data lacks feature columns listed in data.features",
            [f"missing column {c!r}" for c in missing],
        )
    size, bins = cfg.drift.profile_sample_size, cfg.drift.bins
    columns: dict[str, ColumnProfile] = {}
    for name, kind in features.items():
        if kind == "numeric":
            columns[name] = _numeric_profile(*sorted_finite(df[name], name), bins, size)
        else:
            columns[name] = categorical_profile(df[name])

    score_profile = None
    metrics: dict[str, float] = {}
    estimated = None
    class_list = [_json_scalar(c) for c in classes] if classes is not None else None
    if scores is not None:
        vector = score_vector(scores, cfg.task)
        score_profile = numeric_profile(vector, bins, size)
        if cfg.task == "classification":
            estimated = estimate_performance(scores).value
        if labels is not None:
            metrics = _metrics(cfg.task, labels, scores, class_list)
    elif labels is not None:
        raise ValidationError("labels were given without scores: the metrics need both")
    return ReferenceProfile(
        task=cfg.task,
        rows=len(df),
        features=columns,
        bins=bins,
        sample_size=size,
        scores=score_profile,
        classes=class_list,
        metric=cfg.primary_metric if metrics else None,
        metrics=metrics,
        estimated_accuracy=estimated,
        importances=_importances(importances, features),
    )


def _metrics(task: str, labels: Any, scores: Any, classes: list[Any] | None) -> dict[str, float]:
    y = pd.Series(labels).reset_index(drop=True)
    s = np.asarray(scores, dtype=float)
    if len(y) != len(s):
        raise ValidationError(f"labels have {len(y)} rows but scores have {len(s)}")
    known = y.notna().to_numpy()
    if known.sum() == 0:
        return {}
    return compute_metrics(task, y[known], s[known], classes)


def _importances(raw: dict[str, float] | None, features: Mapping[str, str]) -> dict[str, float]:
    if not raw:
        return {}
    unknown = sorted(set(raw) - set(features))
    bad = sorted(k for k, v in raw.items() if not (math.isfinite(v) and v >= 0.0))
    if unknown or bad:
        raise ValidationError(
            "importances must name features with finite values >= 0",
            [f"unknown feature {k!r}" for k in unknown] + [f"bad value for {k!r}" for k in bad],
        )
    total = sum(raw.values())
    return {k: (float(raw[k]) / total if total > 0 else 0.0) for k in features if k in raw}


def _encode(values: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(values, dtype="<f8").tobytes()
    return {"dtype": "<f8", "base64": base64.b64encode(data).decode("ascii")}


def _decode(d: dict[str, Any]) -> np.ndarray:
    if d.get("dtype") != "<f8":
        raise ValueError(f"unsupported sample dtype {d.get('dtype')!r}")
    data = base64.b64decode(d["base64"], validate=True)
    if len(data) % 8:
        raise ValueError("sample bytes are not whole float64 values")
    return np.frombuffer(data, dtype="<f8").astype(float)


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _nan_if_none(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
