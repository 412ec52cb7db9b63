"""Model-side drift signals: score vectors, label-free accuracy estimates, metric drops, and
permutation importance (which features the model leans on, for the weighted drift share).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from retrain.errors import ValidationError
from retrain.evaluation.metrics import GREATER_IS_BETTER, compute_metrics

__all__ = [
    "PerformanceCheck",
    "PerformanceEstimate",
    "check_performance",
    "estimate_performance",
    "permutation_importance",
    "score_vector",
]

# Probabilities a hair outside [0, 1] are float noise, not a broken model.
_PROBABILITY_SLACK = 1e-9


def score_vector(scores: Any, task: str) -> np.ndarray:
    """One number per row, the one whose distribution prediction drift compares.

    Regression: the prediction. Binary classification: the positive-class probability (a
    1-D input is taken to be it; of a 2-column input, the second column). Multiclass: the
    largest class probability (the model's confidence).
    """
    s = np.asarray(scores, dtype=float)
    if task == "regression" or s.ndim == 1:
        if s.ndim != 1:
            raise ValidationError(f"regression scores must be 1-D, got shape {s.shape}")
        return s
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValidationError(f"class probabilities must have shape (rows, classes), got {s.shape}")
    return s[:, 1] if s.shape[1] == 2 else s.max(axis=1)


def _confidence(scores: Any) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1:
        conf = np.maximum(s, 1.0 - s)  # the positive-class probability of a binary classifier
    elif s.ndim == 2 and s.shape[1] >= 2:
        conf = s.max(axis=1)
    else:
        raise ValidationError(
            f"scores must be positive-class probabilities (rows,) or class probabilities "
            f"(rows, classes), got shape {s.shape}"
        )
    conf = conf[np.isfinite(conf)]
    if len(conf) == 0:
        raise ValidationError("cannot estimate performance from zero scored rows")
    low, high = float(np.min(s[np.isfinite(s)])), float(np.max(s[np.isfinite(s)]))
    if low < -_PROBABILITY_SLACK or high > 1.0 + _PROBABILITY_SLACK:
        raise ValidationError(
            f"scores must be probabilities in [0, 1] to estimate accuracy, got [{low}, {high}]"
        )
    return np.asarray(np.clip(conf, 0.0, 1.0), dtype=np.float64)


@dataclass(frozen=True)
class PerformanceEstimate:
    """An estimate of a metric with its confidence interval."""

    metric: str
    value: float
    lower: float
    upper: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_performance(scores: Any, *, confidence: float = 0.95) -> PerformanceEstimate:
    """Expected accuracy of a calibrated classifier, without labels (CBPE-style).

    If the model is calibrated, row i is classified correctly with probability c_i, its largest
    class probability, so the expected accuracy is mean(c_i). The interval is the normal
    approximation of the accuracy the labels will show, a sum of independent Bernoulli(c_i):
    variance sum(c_i (1 - c_i)) / n^2. It is only as good as the calibration: a concept change
    that leaves the model confident (and wrong) is invisible to it, as to every label-free
    estimate; performance drift on labels catches that once they arrive.

    Args:
        scores: positive-class probabilities (rows,) or class probabilities (rows, classes).
        confidence: of the interval, in (0, 1).

    Raises:
        ValidationError: no finite rows, values outside [0, 1], or a bad shape.
    """
    if not 0.0 < confidence < 1.0:
        raise ValidationError(f"confidence must be in (0, 1), got {confidence}")
    conf = _confidence(scores)
    n = len(conf)
    value = float(conf.mean())
    sd = math.sqrt(float(np.sum(conf * (1.0 - conf)))) / n
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return PerformanceEstimate(
        metric="accuracy",
        value=value,
        lower=max(0.0, value - z * sd),
        upper=min(1.0, value + z * sd),
        n=n,
        confidence=confidence,
    )


@dataclass(frozen=True)
class PerformanceCheck:
    """The primary metric on labelled current rows against the reference metric.

    `drop` is oriented so that positive is worse (reference minus current for a metric where
    greater is better); its interval comes from a bootstrap of the current rows, the reference
    taken as fixed.
    """

    metric: str
    reference: float
    current: float
    lower: float
    upper: float
    drop: float
    drop_lower: float
    drop_upper: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_performance(
    task: str,
    metric: str,
    reference: float,
    labels: Any,
    scores: Any,
    classes: Sequence[Any] | None,
    *,
    confidence: float,
    n_boot: int,
    seed: int,
) -> PerformanceCheck | None:
    """The metric on the rows that have a label, with a percentile bootstrap interval.

    Rows whose label is missing are left out. Returns None when fewer than two labelled rows
    remain or the metric is undefined on them (e.g. AUC with one class).

    Raises:
        ValidationError: unknown metric, shapes that disagree, labels outside `classes`.
    """
    if metric not in GREATER_IS_BETTER:
        raise ValidationError(
            f"unknown metric {metric!r}; choose one of {sorted(GREATER_IS_BETTER)}"
        )
    y = pd.Series(labels).reset_index(drop=True)
    s = np.asarray(scores, dtype=float)
    if len(y) != len(s):
        raise ValidationError(f"labels have {len(y)} rows but scores have {len(s)}")
    known = y.notna().to_numpy()
    y, s = y[known].reset_index(drop=True), s[known]
    if len(y) < 2:
        return None
    current = compute_metrics(task, y, s, classes)[metric]
    if not math.isfinite(current):
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(y), size=len(y))
        v = compute_metrics(task, y.iloc[pick], s[pick], classes)[metric]
        if math.isfinite(v):
            values.append(v)
    alpha = (1.0 - confidence) / 2.0
    if values:
        lower, upper = (float(x) for x in np.quantile(values, [alpha, 1.0 - alpha]))
    else:
        lower = upper = float("nan")
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    drop = sign * (reference - current)
    # Worse current values mean a bigger drop: the interval's ends swap when greater is better.
    ends = sorted((sign * (reference - lower), sign * (reference - upper)))
    return PerformanceCheck(
        metric=metric,
        reference=float(reference),
        current=float(current),
        lower=lower,
        upper=upper,
        drop=float(drop),
        drop_lower=ends[0],
        drop_upper=ends[1],
        n=len(y),
        confidence=confidence,
    )


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    score: Callable[[np.ndarray], float],
    *,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """How much the score falls when each column is shuffled, as shares that sum to 1.

    `predict(frame)` gives the model's scores; `score(scores)` the metric on the rows of `X`,
    oriented so that greater is better (e.g. AUC, or minus RMSE). Every shuffled copy is
    stacked into one frame and predicted in one call: per-call overhead, not rows, dominates
    many models' prediction time. A column whose shuffling does not hurt gets 0; if no column
    matters (or the score is undefined), every share is 0.

    Raises:
        ValidationError: no rows, no columns, or repeats < 1.
    """
    if len(X) == 0 or len(X.columns) == 0 or repeats < 1:
        raise ValidationError(
            f"permutation importance needs rows, columns and repeats >= 1, got {X.shape}, "
            f"repeats={repeats}"
        )
    rng = np.random.default_rng(seed)
    X = X.reset_index(drop=True)
    copies = [X]
    for column in X.columns:
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[column] = X[column].to_numpy()[rng.permutation(len(X))]
            copies.append(shuffled)
    predicted = np.asarray(predict(pd.concat(copies, ignore_index=True)))
    chunks = np.split(predicted, len(copies))
    base = score(chunks[0])
    drops: dict[str, float] = {}
    for i, column in enumerate(X.columns):
        losses = [base - score(c) for c in chunks[1 + i * repeats : 1 + (i + 1) * repeats]]
        loss = float(np.mean(losses))
        drops[str(column)] = loss if math.isfinite(loss) and loss > 0.0 else 0.0
    total = sum(drops.values())
    return {c: (v / total if total > 0 else 0.0) for c, v in drops.items()}
