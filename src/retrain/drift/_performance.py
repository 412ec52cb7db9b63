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
from retrain.evaluation.bootstrap import resampled_metric
from retrain.evaluation.metrics import GREATER_IS_BETTER, compute_metrics

__all__ = [
    "EstimateCalibration",
    "PerformanceCheck",
    "PerformanceEstimate",
    "check_performance",
    "estimate_performance",
    "fit_estimate_calibration",
    "metric_sd",
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


@dataclass(frozen=True, eq=False)
class EstimateCalibration:
    """A non-decreasing map from the model's confidence to its chance of being right.

    Knots of an isotonic fit: confidences in between are interpolated, beyond the ends
    clipped (as scikit-learn's `IsotonicRegression.predict` with ``out_of_bounds='clip'``).
    """

    x: np.ndarray
    y: np.ndarray

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(confidence, self.x, self.y), dtype=np.float64)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": [float(v) for v in self.x], "y": [float(v) for v in self.y]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EstimateCalibration:
        x, y = np.asarray(d["x"], dtype=float), np.asarray(d["y"], dtype=float)
        if len(x) == 0 or len(x) != len(y) or (np.diff(x) < 0).any() or (np.diff(y) < 0).any():
            raise ValueError("calibration knots must be non-empty, of equal length, ascending")
        if not ((y >= 0.0) & (y <= 1.0)).all():
            raise ValueError("calibrated chances must lie in [0, 1]")
        return cls(x, y)


def _correct(scores: Any, labels: Any, classes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, 1 if the model's top class is the label else 0) on the labelled rows."""
    s = np.asarray(scores, dtype=float)
    y = pd.Series(labels).reset_index(drop=True)
    if len(y) != len(s):
        raise ValidationError(f"labels have {len(y)} rows but scores have {len(s)}")
    known = y.notna().to_numpy() & np.all(np.isfinite(s.reshape(len(s), -1)), axis=1)
    s, y = s[known], y[known]
    top = (s >= 0.5).astype(int) if s.ndim == 1 else np.argmax(s, axis=1)
    predicted = np.asarray(list(classes), dtype=object)[top]
    right = np.asarray(predicted == y.to_numpy(dtype=object), dtype=float)
    return _confidence(s), right


def fit_estimate_calibration(
    scores: Any, labels: Any, classes: Sequence[Any], *, seed: int = 0
) -> tuple[EstimateCalibration, float]:
    """Fit the confidence -> chance-of-being-right map on labelled held-out rows.

    Returns the map (fitted on every row) and the accuracy it estimates on these rows
    out-of-fold (two halves, each estimated by the map fitted on the other), so the reference
    estimate is not equal to the measured accuracy by construction: their gap says how well
    the calibrated estimate works.

    Raises:
        ValidationError: fewer than 20 labelled rows, or shapes that disagree.
    """
    from sklearn.isotonic import IsotonicRegression

    conf, right = _correct(scores, labels, classes)
    if len(conf) < 20:
        raise ValidationError(f"calibration needs at least 20 labelled rows, got {len(conf)}")

    chance = 1.0 / max(len(classes), 2)  # the lowest confidence a model can have

    def fit(rows: np.ndarray) -> EstimateCalibration:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(conf[rows], right[rows])
        x, y = np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)
        if x[0] > chance:
            # Below the confidences seen at reference, head for a coin's chance rather than
            # clip: a model that lost its confidence should not be credited with the
            # accuracy of its least confident reference rows.
            x, y = np.append(chance, x), np.append(min(chance, y[0]), y)
        return EstimateCalibration(x, y)

    order = np.random.default_rng(seed).permutation(len(conf))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    out_of_fold = np.empty(len(conf))
    for held, fitted in (halves, halves[::-1]):
        out_of_fold[held] = fit(fitted)(conf[held])
    return fit(np.arange(len(conf))), float(out_of_fold.mean())


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


def estimate_performance(
    scores: Any, *, confidence: float = 0.95, calibration: EstimateCalibration | None = None
) -> PerformanceEstimate:
    """Expected accuracy of a calibrated classifier, without labels (CBPE-style).

    If the model is calibrated, row i is classified correctly with probability c_i, its largest
    class probability, so the expected accuracy is mean(c_i). With `calibration` (fitted on
    held-out rows at training), c_i is first mapped to the chance of being right measured
    there, so a miscalibrated model gets an honest estimate too. The interval is the normal
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
    if calibration is not None:
        conf = np.clip(calibration(conf), 0.0, 1.0)
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


def metric_sd(
    task: str,
    metric: str,
    labels: Any,
    scores: Any,
    classes: Sequence[Any] | None,
    *,
    n_boot: int,
    seed: int,
    positive: Any = None,
) -> float | None:
    """How far a metric measured on these labelled rows may be from the model's true one: its
    bootstrap standard deviation (None: not measurable).

    A bootstrap cannot see past a boundary: a perfect ranking of a dozen frauds scores 1.0 in
    every resample. When the metric of a classifier is that close to 0 or 1 (within one row of
    the count it is a share of: all rows for accuracy, the rarer class's otherwise) or the
    resamples do not vary, the result is at least a proportion's over that count, the metric
    pulled half a row towards 0.5, so a reference measured on few positives never reads as
    exact. Away from the boundary the bootstrap stands alone.
    """
    y = pd.Series(labels).reset_index(drop=True)
    s = np.asarray(scores, dtype=float)
    known = y.notna().to_numpy()
    if known.sum() < 2:
        return None
    y, s = y[known].reset_index(drop=True), s[known]
    rng = np.random.default_rng(seed)
    values = resampled_metric(task, metric, y, s, classes, rng, n_boot, positive)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    sd = float(np.std(values, ddof=1))
    if task != "classification" or not GREATER_IS_BETTER[metric]:
        return sd
    value = compute_metrics(task, y, s, classes, (metric,), positive)[metric]
    count = len(y) if metric == "accuracy" else int(y.value_counts().min())
    if not 0.0 <= value <= 1.0 or (sd > 0.0 and 1.0 / count < value < 1.0 - 1.0 / count):
        return sd
    shrunk = (value * count + 0.5) / (count + 1)
    return max(sd, math.sqrt(shrunk * (1.0 - shrunk) / count))


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
    reference_sd: float = 0.0,
    positive: Any = None,
) -> PerformanceCheck | None:
    """The metric on the rows that have a label, with a percentile bootstrap interval.

    Rows whose label is missing are left out. Returns None when fewer than two labelled rows
    remain or the metric is undefined on them (e.g. AUC with one class). `reference_sd` is
    the reference's own sampling error (`metric_sd` on the rows it was measured on): the
    drop's interval widens by it, each half-width combined with z x `reference_sd` in
    quadrature, so a reference measured on few rows does not read as exact. `positive`: the
    binary metrics' positive class (``labels.positive_class``; None: ``classes[1]``).

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
    current = compute_metrics(task, y, s, classes, (metric,), positive)[metric]
    if not math.isfinite(current):
        return None
    rng = np.random.default_rng(seed)
    resampled = resampled_metric(task, metric, y, s, classes, rng, n_boot, positive)
    values = resampled[np.isfinite(resampled)]
    alpha = (1.0 - confidence) / 2.0
    if len(values):
        lower, upper = (float(x) for x in np.quantile(values, [alpha, 1.0 - alpha]))
    else:
        lower = upper = float("nan")
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    drop = sign * (reference - current)
    # Worse current values mean a bigger drop: the interval's ends swap when greater is better.
    ends = sorted((sign * (reference - lower), sign * (reference - upper)))
    if reference_sd > 0.0 and all(math.isfinite(e) for e in ends):
        spread = NormalDist().inv_cdf(0.5 + confidence / 2.0) * reference_sd
        ends = [
            drop - math.hypot(drop - ends[0], spread),
            drop + math.hypot(ends[1] - drop, spread),
        ]
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
