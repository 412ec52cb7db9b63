"""The first model's gate: is it better than a trivial baseline on the same evaluation rows?

Without a champion there is nothing to improve on, but a model can still be worse than
knowing nothing. The baseline predicts the same for every row: the class shares of the recent
evaluation rows (classification) or, for regression, the constant that scores best on the
metric (their median target for mae, their mean for rmse and r2). The model's gain over it is
bootstrapped like a challenger's over a champion (paired, on the same resamples), and:

- the lower bound of the gain's interval above 0: the gate passes, on any number of rows (as
  a challenger's shown gain does);
- the upper bound below 0 (the model is shown worse than the constant): it fails, on any
  number of rows (as a challenger's shown regression does);
- a degenerate interval (every bootstrap resample gave the same gain) below 0, the gain's
  point estimate below 0 too: it fails (the model is worse than the constant on every
  resample);
- otherwise, with at least ``evaluation.min_rows`` recent rows: it fails (the rows could have
  shown a gain of the interval's half-width and did not: no gain over the baseline is shown,
  e.g. an AUC near 0.5);
- with fewer rows it is undecided, and so is a degenerate interval above 0 (no spread to
  judge a gain by).

An undecided first model is deployed, recorded as not evaluated, when
``evaluation.deploy_undecided_first_model`` is on (the default); otherwise it is held back as
any undecided challenger (`retrain.evaluation.gates`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrain.evaluation._result import Gate, finite, fmt

if TYPE_CHECKING:
    from retrain.evaluation.decision import GateInputs

__all__ = ["baseline_gate", "degenerate", "degenerate_words"]

_EPS = 1e-12


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


def baseline_gate(inputs: GateInputs, comparison: dict[str, Any]) -> tuple[Gate, str]:
    """The first model against its trivial baseline, and the words for the reason."""
    ci = inputs.baseline_ci
    baseline = inputs.baseline_recent
    assert baseline is not None
    sign = 1.0 if inputs.greater_is_better else -1.0
    gain = sign * (inputs.challenger_recent - baseline)
    comparison["baseline"] = baseline
    comparison["baseline_gain"] = gain
    comparison["baseline_ci"] = list(ci) if ci is not None else None
    evidence = ci[0] if ci is not None else gain
    better = finite(evidence) and evidence > _EPS
    on = "lower bound of the gain's interval" if ci is not None else "gain"
    ci_words = f", {inputs.confidence:.0%} CI [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
    detail = (
        f"gain over the baseline {fmt(gain)}{ci_words}; {on} {fmt(evidence)} "
        f"{'is' if better else 'is not'} above 0"
    )
    words = f", baseline (constant prediction) {fmt(baseline)} (gain {fmt(gain)}{ci_words})"
    n = inputs.recent_rows
    worse = finite(gain) and (ci[1] if ci is not None else gain) < -_EPS
    if worse:
        detail += "; shown worse than the baseline"
    weak = None
    if degenerate(ci) and worse and gain < -_EPS and inputs.metric in _UNFITTED_BASELINE:
        # No spread to judge by, but no resample where the model did not lose to the constant.
        # Only where the constant's score owes nothing to the rows: elsewhere the constant is
        # fitted on the very rows it is scored on (their mean, median or class shares), and
        # on one row it is perfect, so any model loses on every resample.
        detail += f"; {degenerate_words(ci)}, worse than the constant on every resample"
    elif degenerate(ci):
        weak = degenerate_words(ci)
    elif n is not None and n < inputs.min_rows and not (better or worse):
        weak = f"{n} recent evaluation rows, fewer than evaluation.min_rows {inputs.min_rows}"
    comparison["lack_of_power"] = weak
    if weak is not None:
        return Gate("baseline_improvement", False, f"{detail}; {weak}", decided=False), words
    return Gate("baseline_improvement", better, detail), words
