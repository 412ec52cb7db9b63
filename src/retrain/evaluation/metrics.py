"""Model quality metrics, each written once over a matrix of row weights.

A single row of ones gives the plain metric, and a matrix of bootstrap counts (one row per
resample) gives every resample in one vectorised pass: `retrain.evaluation.bootstrap` builds
its intervals on that.

Classification scores are class probabilities, one column per entry of `classes`
(as `predict_proba` returns them, columns in `model.classes_` order).

For rare events (fraud) two binary metrics judge the positive class alone, ``classes[1]``
unless ``labels.positive_class`` names it (scikit-learn sorts classes, so of the labels
"fraud" and "ok" ``classes[1]`` is "ok"):
``average_precision`` (the area under the precision-recall curve, as scikit-learn's
`average_precision_score` computes it) and ``recall_at_precision_<P>``, the largest recall at
which precision is at least P percent (``recall_at_precision_90``: the share of frauds caught
while at most one alert in ten is a false alarm). The level is part of the name, so every place
that takes a metric name (gates, drift, backtests) takes any level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from retrain.data.targets import class_positions, plain_values
from retrain.errors import ValidationError
from retrain.settings.evaluation import (
    CLASSIFICATION_METRICS,
    RECALL_AT_PRECISION,
    REGRESSION_METRICS,
)

Floats = npt.NDArray[np.float64]

__all__ = [
    "CLASSIFICATION_METRICS",
    "GREATER_IS_BETTER",
    "RARE_EVENT_METRICS",
    "REGRESSION_METRICS",
    "compute_metrics",
    "confusion",
    "is_metric",
    "metric_names",
    "positive_count",
    "positive_position",
    "rank_metric_from_bins",
]

#: Binary-only metrics of the positive class; `recall_at_precision_<P>` takes any P in 1-99.
RARE_EVENT_METRICS = ("average_precision", "recall_at_precision_<P>")

_RECALL_AT_PRECISION = RECALL_AT_PRECISION
_BINARY_ONLY = frozenset({"brier", "average_precision"})


class _Directions(dict[str, bool]):
    """Metric name -> greater is better; also answers for every `recall_at_precision_<P>`."""

    def __missing__(self, key: str) -> bool:
        if isinstance(key, str) and _RECALL_AT_PRECISION.fullmatch(key):
            return True
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (
            isinstance(key, str) and _RECALL_AT_PRECISION.fullmatch(key) is not None
        )

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


GREATER_IS_BETTER: dict[str, bool] = _Directions(
    {
        "roc_auc": True,
        "accuracy": True,
        "f1": True,
        "log_loss": False,
        "brier": False,
        "average_precision": True,
        "rmse": False,
        "mae": False,
        "r2": True,
    }
)


def metric_names(task: str, n_classes: int = 2) -> list[str]:
    """The metrics `compute_metrics` returns for a task (brier and average_precision only for
    binary problems; a `recall_at_precision_<P>` only when asked for)."""
    if task == "regression":
        return list(REGRESSION_METRICS)
    return [m for m in CLASSIFICATION_METRICS if m not in _BINARY_ONLY or n_classes == 2]


def is_metric(name: str, task: str, n_classes: int = 2) -> bool:
    """Whether `name` is a metric of `task` (including any `recall_at_precision_<P>` level)."""
    if name in metric_names(task, n_classes):
        return True
    binary = task == "classification" and n_classes == 2
    return binary and _RECALL_AT_PRECISION.fullmatch(name) is not None


@dataclass(frozen=True)
class _Prepared:
    task: str
    y: Floats  # class codes (classification) or float targets (regression)
    scores: Floats  # (rows, classes) probabilities or (rows,) predictions
    n_classes: int
    positive: int = 1  # the column the rare-event metrics judge (`labels.positive_class`)


def _prepare(
    task: str,
    y_true: Any,
    scores: Any,
    classes: Sequence[Any] | None,
    positive: Any = None,
) -> _Prepared:
    s = np.asarray(scores, dtype=float)
    if task == "regression":
        y = np.asarray(y_true, dtype=float)
        if s.ndim != 1 or len(s) != len(y):
            raise ValidationError(
                f"regression scores must be 1-D with {len(y)} values, got {s.shape}"
            )
        return _Prepared(task, y, s, 0)
    if task != "classification":
        raise ValidationError(f"task must be 'classification' or 'regression', got {task!r}")
    if classes is None or len(classes) < 2:
        raise ValidationError("classification metrics need the list of at least 2 classes")
    # Each label as the class it is by `label_key`: text "1", 1.0 and True are the class 1.
    labels = pd.Series(y_true)
    codes = class_positions(labels, list(classes))
    if (codes < 0).any():
        unknown = sorted({"missing" if pd.isna(v) else repr(v) for v in labels[codes < 0]})
        raise ValidationError(
            f"labels not among the model's classes {plain_values(classes)!r}:"
            f" {', '.join(unknown[:10])}"
        )
    if s.ndim == 1 and len(classes) == 2:
        s = np.column_stack([1.0 - s, s])  # positive-class probability given
    if s.ndim != 2 or s.shape != (len(codes), len(classes)):
        raise ValidationError(
            f"classification scores must have shape ({len(codes)}, {len(classes)}), got {s.shape}"
        )
    # Only the rare-event metrics read it: argmax (accuracy, F1) keeps the model's own order,
    # so a tie of probabilities is broken as `predict` breaks it, whatever the positive class.
    at = 1 if positive is None or len(classes) != 2 else positive_position(positive, classes)
    return _Prepared(task, codes, s, len(classes), at)


def positive_position(positive: Any, classes: Sequence[Any]) -> int:
    """Where `positive` (``labels.positive_class``) is among `classes`, by `label_key`.

    Raises:
        ValidationError: it is not one of them.
    """
    at = int(class_positions(pd.Series([positive]), list(classes))[0])
    if at < 0:
        raise ValidationError(
            f"labels.positive_class {positive!r} is not one of the model's classes"
            f" {plain_values(classes)!r}: name one of them"
            + (
                " (YAML reads an unquoted yes/no as a boolean: quote it)"
                if isinstance(positive, bool)
                else ""
            )
        )
    return at


def _weighted(metric: str, p: _Prepared, w: Floats) -> Floats:
    """`metric` for each row of the weight matrix `w` (resamples x rows)."""
    total = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if p.task == "regression":
            resid = p.y - p.scores
            if metric == "rmse":
                return np.asarray(np.sqrt(w @ resid**2 / total), dtype=np.float64)
            if metric == "mae":
                return np.asarray(w @ np.abs(resid) / total, dtype=np.float64)
            if metric == "r2":
                ss_res = w @ resid**2
                ss_tot = w @ p.y**2 - (w @ p.y) ** 2 / total
                # As scikit-learn: a constant target scores 1 if fitted exactly, else 0.
                flat = ss_tot <= 1e-12 * np.maximum(1.0, w @ p.y**2)
                r2 = 1.0 - ss_res / np.where(flat, 1.0, ss_tot)
                return np.where(flat, np.where(ss_res <= 1e-12, 1.0, 0.0), r2)
        else:
            pred = p.scores.argmax(axis=1)
            if metric == "accuracy":
                return np.asarray(w @ (pred == p.y).astype(float) / total, dtype=np.float64)
            if metric == "log_loss":
                eps = np.finfo(float).eps
                p_true = np.clip(p.scores[np.arange(len(p.y)), p.y], eps, 1.0)
                return np.asarray(w @ -np.log(p_true) / total, dtype=np.float64)
            if metric == "brier":
                if p.n_classes != 2:
                    raise ValidationError("brier is defined here for binary classification only")
                return np.asarray(w @ (p.scores[:, 1] - (p.y == 1)) ** 2 / total, dtype=np.float64)
            if metric == "f1":
                return _macro_f1(p, pred, w)
            level = _RECALL_AT_PRECISION.fullmatch(metric)
            if metric == "average_precision" or level:
                if p.n_classes != 2:
                    raise ValidationError(
                        f"{metric} is defined here for binary classification only"
                    )
                curve = _precision_recall(p.scores[:, p.positive], p.y == p.positive, w)
                if level:
                    return _recall_at_precision(curve, int(level.group(1)) / 100.0)
                return _average_precision(curve)
            if metric == "roc_auc":
                if p.n_classes == 2:
                    return _auc(p.scores[:, 1], p.y == 1, w)
                per_class = np.stack(
                    [_auc(p.scores[:, c], p.y == c, w) for c in range(p.n_classes)]
                )
                # Macro average over the classes that are defined in each resample.
                defined = np.isfinite(per_class)
                count = defined.sum(axis=0)
                summed = np.where(defined, per_class, 0.0).sum(axis=0)
                return np.where(count > 0, summed / np.maximum(count, 1), np.nan)
    raise ValidationError(
        f"unknown metric '{metric}' for {p.task}; choose one of {metric_names(p.task, p.n_classes)}"
    )


def _macro_f1(p: _Prepared, pred: npt.NDArray[np.intp], w: Floats) -> Floats:
    f1s, present = [], []
    for c in range(p.n_classes):
        tp = w @ ((pred == c) & (p.y == c)).astype(float)
        fp = w @ ((pred == c) & (p.y != c)).astype(float)
        fn = w @ ((pred != c) & (p.y == c)).astype(float)
        denom = 2 * tp + fp + fn
        # As scikit-learn: average over labels seen in the truth or the predictions.
        present.append(denom > 0)
        f1s.append(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0))
    f1 = np.stack(f1s)
    seen = np.stack(present)
    return np.asarray((f1 * seen).sum(axis=0) / np.maximum(seen.sum(axis=0), 1), dtype=np.float64)


def _auc(score: Floats, positive: npt.NDArray[np.bool_], w: Floats) -> Floats:
    """Weighted ROC AUC (ties count half) for each row of `w`; NaN if a class has no weight."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    pos = positive[order].astype(float)
    ws = w[:, order]
    # Tie groups of equal scores: first and one-past-last sorted position of each row's group.
    new_group = np.r_[True, s[1:] != s[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(s)]
    neg_w = ws * (1.0 - pos)
    pos_w = ws * pos
    cum_neg = np.concatenate([np.zeros((ws.shape[0], 1)), np.cumsum(neg_w, axis=1)], axis=1)
    below = cum_neg[:, starts[group]]
    tied = cum_neg[:, ends[group]] - below
    wins = (pos_w * (below + 0.5 * tied)).sum(axis=1)
    pairs = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


@dataclass(frozen=True)
class _Curve:
    """Weighted precision-recall points at each distinct score, highest threshold first."""

    tp: Floats  # (resamples, thresholds) weight of positives scored at or above each threshold
    fp: Floats
    positives: Floats  # (resamples,) total positive weight


def _precision_recall(score: Floats, positive: npt.NDArray[np.bool_], w: Floats) -> _Curve:
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    pos = positive[order].astype(float)
    ws = w[:, order]
    # One point per tie group of equal scores: its last sorted position.
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tp = np.cumsum(ws * pos, axis=1)[:, ends]
    fp = np.cumsum(ws * (1.0 - pos), axis=1)[:, ends]
    return _Curve(tp, fp, tp[:, -1])


def _average_precision(c: _Curve) -> Floats:
    """Sum over thresholds of the recall step times the precision there (scikit-learn's
    definition, no interpolation); NaN without positive weight."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(c.tp + c.fp > 0, c.tp / (c.tp + c.fp), 1.0)
        gained = np.diff(np.concatenate([np.zeros((c.tp.shape[0], 1)), c.tp], axis=1), axis=1)
        ap = (gained * precision).sum(axis=1) / c.positives
    return np.asarray(np.where(c.positives > 0, ap, np.nan), dtype=np.float64)


def _recall_at_precision(c: _Curve, level: float) -> Floats:
    """The largest recall among thresholds whose precision reaches `level` (0 if none does);
    NaN without positive weight."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(c.tp + c.fp > 0, c.tp / (c.tp + c.fp), 0.0)
        recall = np.where(precision >= level - 1e-12, c.tp, 0.0).max(axis=1) / c.positives
    return np.asarray(np.where(c.positives > 0, recall, np.nan), dtype=np.float64)


def rank_metric_from_bins(metric: str, positives: Floats, negatives: Floats) -> Floats:
    """`average_precision` or ``recall_at_precision_<P>`` from the weight of positives and of
    negatives in each score bin (resamples x bins, highest scores first), one row per resample.

    A bin is one threshold: the rows in it are ties, grouped as `average_precision_score`
    groups equal scores. NaN for a resample without positive weight.
    """
    tp = np.cumsum(np.atleast_2d(positives), axis=1)
    fp = np.cumsum(np.atleast_2d(negatives), axis=1)
    curve = _Curve(tp, fp, tp[:, -1])
    level = _RECALL_AT_PRECISION.fullmatch(metric)
    if level:
        return _recall_at_precision(curve, int(level.group(1)) / 100.0)
    if metric == "average_precision":
        return _average_precision(curve)
    raise ValidationError(
        f"{metric!r} is not a ranking metric; use average_precision or recall_at_precision_<P>"
    )


def positive_count(y_true: Any, classes: Sequence[Any]) -> int:
    """How many labels are the rarer of two classes (the positives a rare-event metric rests
    on); for more than two classes, the count of the rarest class."""
    codes = class_positions(pd.Series(y_true), list(classes))  # by `label_key`
    counts = np.bincount(codes[codes >= 0], minlength=len(classes))
    return int(counts.min()) if len(counts) else 0


def compute_metrics(
    task: str,
    y_true: Any,
    scores: Any,
    classes: Sequence[Any] | None = None,
    extra: Sequence[str] = (),
    positive: Any = None,
) -> dict[str, float]:
    """All metrics of a task, plus any named in `extra` (e.g. ``recall_at_precision_90``).

    `positive` (``labels.positive_class``): the class the binary metrics judge as positive;
    None: ``classes[1]``.

    Classification: roc_auc (binary: positive = ``classes[1]``; multiclass: one-vs-rest, macro
    over classes present), accuracy, log_loss, f1 (macro) and, for binary, brier and
    average_precision. Regression: rmse, mae, r2. An undefined value (e.g. AUC with one class)
    is NaN.

    Raises:
        ValidationError: shapes disagree, labels outside `classes`, or an unknown `extra`.
    """
    p = _prepare(task, y_true, scores, classes, positive)
    if len(p.y) == 0:
        raise ValidationError("cannot compute metrics on zero rows")
    ones = np.ones((1, len(p.y)))
    names = metric_names(task, p.n_classes)
    names += [m for m in extra if m not in names]
    return {m: float(_weighted(m, p, ones)[0]) for m in names}


def confusion(y_true: Any, y_pred: Any, classes: Sequence[Any]) -> list[list[int]]:
    """Confusion matrix, rows = true class, columns = predicted class, in `classes` order.

    Labels outside `classes` are not counted (KFP's ClassificationMetrics takes this shape);
    a label is the class it is by `label_key` (text "1" is the class 1).
    """
    t = class_positions(pd.Series(y_true), list(classes))
    q = class_positions(pd.Series(y_pred), list(classes))
    if len(t) != len(q):
        raise ValidationError(f"y_true has {len(t)} labels but y_pred has {len(q)}")
    k = len(classes)
    ok = (t >= 0) & (q >= 0)
    counts = np.bincount(t[ok] * k + q[ok], minlength=k * k).reshape(k, k)
    return [[int(v) for v in row] for row in counts]
