"""The first model's gate: is it better than a constant prediction on the evaluation rows?

Without a champion there is nothing to improve on, but a model can still be worse than
knowing nothing. The baseline predicts the same for every row, and that constant is taken
from the target the model was trained on, recorded by the train step in the model card
(``provenance.training_target``, `target_constant`): the training rows' class shares
(classification) or, for regression, the constant that scores best on the metric (their
median target for mae, their mean for rmse and r2). It is scored on the recent evaluation
rows, which it was not fitted on, exactly as the model is. A class the training rows never
held (one seen only in the evaluation rows) would get share 0 and an infinite log loss, so
the shares are smoothed by half a row per class, ``(count + 0.5) / (rows + 0.5 * classes)``:
no share is 0, and on the thousands of rows a model trains on the others barely move.

The model's gain over the constant is bootstrapped like a challenger's over a champion
(paired, on the same resamples), and:

- the lower bound of the gain's interval above 0: the gate passes, on any number of rows (as
  a challenger's shown gain does); on at least ``evaluation.min_rows`` rows a degenerate
  interval (every resample gave the same gain) above 0 too: the model beat the constant on
  every resample (e.g. a perfect ranking, AUC 1 against 0.5);
- the upper bound below 0 (the model is shown worse than the constant): it fails, on any
  number of rows (as a challenger's shown regression does); a degenerate interval below 0
  on at least ``min_rows`` rows, or on any number for ROC AUC and average precision;
- otherwise, with at least ``evaluation.min_rows`` recent rows: it fails (the rows could have
  shown a gain of the interval's half-width and did not: no gain over the baseline is shown,
  e.g. an AUC near 0.5);
- with fewer rows it is undecided.

A zero-width interval (every resample gave the same gain) is judged only on at least
``evaluation.min_rows`` recent rows. Judging it there is sound because the constant is not
fitted on the rows it is scored on (fitted on them, it is perfect on one row and any model
loses to it on every resample). On fewer rows it is no evidence: one row gives a zero-width
interval by itself, and two rows ranked right give ROC AUC 1 against 0.5 on every resample for
a model with no skill half the time; so it is undecided, except that a ranking shown worse
than a constant's on every resample (ROC AUC, average precision: a model ranking the rows
backwards) still fails, as before the constant was recorded. (A challenger's degenerate
interval against a champion is undecided: `retrain.evaluation.decision`.)

A model trained before the constant was recorded has none in its card: the constant is then
fitted on the recent evaluation rows themselves (their class shares, median or mean), and the
reason says so. That constant is flattered by the rows it is scored on (on one row it is
perfect), so the former rules hold for it: a degenerate interval is undecided, except one
below 0 for ROC AUC and average precision, where a constant's score owes nothing to fitting
(`_UNFITTED_BASELINE`).

An undecided first model is deployed, recorded as not evaluated, when
``evaluation.deploy_undecided_first_model`` is on (the default); otherwise it is held back as
any undecided challenger (`retrain.evaluation.gates`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.data.targets import class_positions, label_key, label_keys
from retrain.evaluation._result import Gate, finite, fmt

if TYPE_CHECKING:
    from retrain.evaluation.decision import GateInputs

__all__ = [
    "FITTED_ON_RECENT",
    "baseline_gate",
    "baseline_scores",
    "best_constant",
    "degenerate",
    "degenerate_words",
    "target_constant",
]

_EPS = 1e-12

#: The reason's words when the constant is fitted on the rows it is scored on.
FITTED_ON_RECENT = (
    "constant fitted on the recent evaluation rows: the model card records none from training"
)


def degenerate(ci: tuple[float, float] | None) -> bool:
    """An interval of zero width away from 0: every bootstrap resample gave the same nonzero
    difference (a handful of rows, or the resamples of one class skipped), so the rows show no
    spread to judge it by. (Zero width at 0 is two models that score alike on every row.)"""
    if ci is None or not (finite(ci[0]) and finite(ci[1])):
        return False
    return ci[1] - ci[0] <= _EPS and abs(ci[0]) > _EPS


def degenerate_words(ci: tuple[float, float] | None) -> str:
    value = fmt(ci[0]) if ci is not None else "-"
    return f"every bootstrap resample gave the same difference {value}: a degenerate interval"


#: Metrics on which a constant prediction's score does not depend on fitting it to the
#: rows: a constant ranks nothing (ROC AUC 0.5; average precision the positives' share).
_UNFITTED_BASELINE = frozenset({"roc_auc", "average_precision"})


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def target_constant(task: str, y: Any, weight: Any = None) -> dict[str, Any]:
    """What the constant prediction needs from the target a model is trained on, for its card:
    the rows, and the class shares (classification) or the mean and median (regression),
    weighted by the training rows' `weight` when the mix weighs them."""
    s = pd.Series(np.asarray(y))
    w = np.ones(len(s)) if weight is None else np.asarray(weight, dtype=float)
    if task == "classification":
        shares = pd.Series(w).groupby(s.to_numpy()).sum() / w.sum()
        return {
            "rows": len(s),
            "classes": [_jsonable(c) for c in shares.index],
            "shares": [float(v) for v in shares.to_numpy()],
        }
    values = s.to_numpy(dtype=float)
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(w[order])
    median = float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])
    if weight is None:
        median = float(np.median(values))
    return {
        "rows": len(s),
        "mean": float(np.average(values, weights=w)),
        "median": median,
    }


def best_constant(metric: str, y: np.ndarray) -> float:
    """The constant prediction that scores best on `metric` over targets `y`: the median for
    mae (it minimises the absolute error), the mean for rmse and r2 (squared error)."""
    return float(np.median(y)) if metric == "mae" else float(y.mean())


def baseline_scores(
    metric: str,
    y: pd.Series,
    classes: list[Any] | None,
    recorded: Mapping[str, Any] | None,
) -> np.ndarray:
    """A constant prediction for each of the rows whose targets are `y`: from the training
    target `recorded` by `target_constant` (class shares smoothed by half a row per class, or
    the median for mae and the mean otherwise); None: fitted on `y` itself (a model card from
    before the constant was recorded)."""
    n = len(y)
    if classes is None:
        if recorded is None:
            return np.full(n, best_constant(metric, y.to_numpy(dtype=float)))
        return np.full(n, float(recorded["median" if metric == "mae" else "mean"]))
    if recorded is None:
        # By label value (`label_key`): text "1" rows count for the model's class 1.
        by_label = Counter(label_keys(y).tolist())
        present = max(sum(by_label.values()), 1)
        shares = np.array([by_label[label_key(_jsonable(c))] / present for c in classes])
        return np.tile(shares.astype(float), (n, 1))
    rows = float(recorded["rows"])
    counts = np.zeros(len(classes))
    for i, share in zip(_recorded_positions(classes, recorded), recorded["shares"], strict=True):
        if i >= 0:
            counts[i] += float(share) * rows
    smoothed = (counts + 0.5) / (counts.sum() + 0.5 * len(classes))
    return np.tile(smoothed, (n, 1))


def _recorded_positions(classes: list[Any], recorded: Mapping[str, Any]) -> list[int]:
    """Where each recorded training class is among the model's `classes` (-1: not there), by
    `label_key` (1, 1.0, True and "1" are one label): a card's JSON classes against a model's."""
    at = class_positions(list(recorded["classes"]), [_jsonable(c) for c in classes])
    return [int(i) for i in at]


def usable_record(
    classes: list[Any] | None, recorded: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The recorded training target if it can stand for the constant, else None (fitted on the
    recent rows, as for a card without one): a classifier's record must name at least one of
    its classes, or its constant would be uniform shares by accident."""
    if recorded is None or classes is None:
        return recorded
    return recorded if any(i >= 0 for i in _recorded_positions(classes, recorded)) else None


def baseline_gate(inputs: GateInputs, comparison: dict[str, Any]) -> tuple[Gate, str]:
    """The first model against its constant prediction, and the words for the reason."""
    ci = inputs.baseline_ci
    baseline = inputs.baseline_recent
    assert baseline is not None
    fitted = inputs.baseline_fitted_on_recent
    sign = 1.0 if inputs.greater_is_better else -1.0
    gain = sign * (inputs.challenger_recent - baseline)
    comparison["baseline"] = baseline
    comparison["baseline_gain"] = gain
    comparison["baseline_ci"] = list(ci) if ci is not None else None
    comparison["baseline_fitted_on"] = "recent evaluation rows" if fitted else "training rows"
    evidence = ci[0] if ci is not None else gain
    better = finite(evidence) and evidence > _EPS
    on = "lower bound of the gain's interval" if ci is not None else "gain"
    ci_words = f", {inputs.confidence:.0%} CI [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
    detail = (
        f"gain over the baseline {fmt(gain)}{ci_words}; {on} {fmt(evidence)} "
        f"{'is' if better else 'is not'} above 0"
    )
    source = f"; {FITTED_ON_RECENT}" if fitted else ""
    words = f", baseline (constant prediction) {fmt(baseline)} (gain {fmt(gain)}{ci_words}{source})"
    if fitted:
        detail += f"; {FITTED_ON_RECENT}"
    n = inputs.recent_rows
    worse = finite(gain) and (ci[1] if ci is not None else gain) < -_EPS
    if worse:
        detail += "; shown worse than the baseline"
    weak = None
    enough = n is None or n >= inputs.min_rows
    if degenerate(ci) and not fitted and enough:
        # The constant was fitted on other rows: on min_rows rows a zero-width interval is a
        # gain (or a loss) on every resample, judged as any other.
        side = "better" if better else "worse"
        detail += f"; {degenerate_words(ci)}, {side} than the constant on every resample"
    elif degenerate(ci) and worse and gain < -_EPS and inputs.metric in _UNFITTED_BASELINE:
        # No spread to judge by, but no resample where the model did not lose to the constant.
        # Only where the constant's score owes nothing to the rows: elsewhere the constant
        # fitted on the very rows it is scored on (their mean, median or class shares) is
        # perfect on one row, so any model loses on every resample.
        detail += f"; {degenerate_words(ci)}, worse than the constant on every resample"
    elif degenerate(ci):
        weak = degenerate_words(ci)
        if not fitted:
            weak += (
                f" on {n} recent evaluation rows, fewer than evaluation.min_rows {inputs.min_rows}"
            )
    elif n is not None and n < inputs.min_rows and not (better or worse):
        weak = f"{n} recent evaluation rows, fewer than evaluation.min_rows {inputs.min_rows}"
    comparison["lack_of_power"] = weak
    if weak is not None:
        return Gate("baseline_improvement", False, f"{detail}; {weak}", decided=False), words
    return Gate("baseline_improvement", better, detail), words
