"""Promotion gates: should the challenger replace the champion?

`decide` is a pure function of a few numbers, so every branch can be stepped through in tests;
`evaluate_challenger` computes those numbers (metrics of both models on the recent and the
history evaluation rows, and paired bootstrap intervals of the gain on each) and calls it. Both
models are scored on exactly the same rows, none of which either model trained on
(`retrain.training.mix`).

Gates, all on the primary metric, with gains oriented so that positive is better:

- **floor**: the challenger's score on recent data reaches the configured absolute floor;
- **recent non-regression**: the gain over the champion on recent data, and the upper bound of
  its confidence interval, are both at least ``-max_recent_regression``;
- **recent improvement**: the lower bound of that interval (the point gain when there is no
  interval) is strictly above ``min_improvement``, so an equal challenger is not blessed; at
  the default 95% two-sided interval, two equally good models pass about 2.5% of the time.
  A *refresh* (``refresh_after``, `retrain.evaluation._refresh`) passes it for a challenger
  trained on newer data that every other gate passed on rows that can judge it;
- **history bounded loss** (the forgetting guard): the loss on the history rows (champion minus
  challenger) is bootstrapped the same way, and the gate fails only when the whole interval
  lies beyond ``max_history_loss``, i.e. when the rows show the challenger forgot more than the
  budget. For a metric in the target's units (rmse, mae) the budget is a share of the
  champion's history metric (0.02: 2% worse), so the verdict does not depend on the units (an
  absolute 0.02 on house prices in thousands forbids any loss at all). This mirrors the
  non-regression gate, which fails only on a regression the interval shows; the price is that
  a small history set lets some forgetting through, measured in
  `benchmarks/decisions/gates.py`. Without an interval the point loss is judged.
  *After a change of regime* the history is the old regime, and guarding it would keep the
  model the change broke in service. So a loss shown beyond the budget is accepted
  (``accept_forgetting_on_change``) when three things hold: the champion itself is worse on
  the recent rows than on history by more than the loss's upper bound, at the lower bound of
  its decline's interval (the world moved further than the challenger strayed from the past;
  the two sets are different rows, so that interval comes from an unpaired bootstrap); the
  challenger's recent gain is shown, at its interval's lower bound above 0 (it is better on
  the present); and its recent gain exceeds its history loss on the point estimates (on
  balance it gains more on the present than it loses on the past). Requiring the gain's
  *lower bound* to exceed the loss's *upper bound* instead asked two intervals to clear each
  other: on a window of ~70 evaluation rows that never happened, and a champion that a
  concept flip left worse than chance (AUC 0.23-0.38) was kept for weeks. Without an
  interval, a point estimate stands in for its bound.

Each interval's half-width is reported as the comparison's *minimum detectable gain*: a true
gain much smaller than it cannot be told from noise on these rows. When the improvement gate is
the only one that fails and the rows could not have shown a gain (fewer than ``min_rows``
recent rows, or, if ``max_detectable_gain`` is set, a wider half-width than that), the outcome
is *undecided* ("not enough evaluation rows"): not blessed, but reported apart from a
rejection. A gain the interval does show on few rows still blesses: the paired bootstrap keeps
its false-blessing rate near nominal down to a few dozen rows (`benchmarks/decisions/gates.py`).
A shown regression, shown forgetting or a missed floor is a rejection at any size. An interval
that is *degenerate* (zero width away from 0: every resample gave the same gain, as on a
handful of rows or when the resamples of one class are skipped) is no evidence at all: no
recent gate passes or fails on it (undecided), and the forgetting guard on a degenerate history
interval is not judged (as without history rows), a loss it shows holding the challenger back
as undecided rather than rejecting it.

Without a champion (the first model) the floor applies and, when `evaluate_challenger` supplies
one, the comparison with a constant prediction taken from the training target
(`retrain.evaluation._baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retrain.evaluation._baseline import baseline_gate, degenerate, degenerate_words
from retrain.evaluation._blend import BlendInputs, blend
from retrain.evaluation._floor import floor_gate, floor_words
from retrain.evaluation._refresh import refresh
from retrain.evaluation._result import EvaluationResult, Gate, finite, fmt, half_width
from retrain.settings.evaluation import TARGET_UNIT_METRICS

__all__ = [
    "NOT_ENOUGH_POSITIVES",
    "NOT_ENOUGH_ROWS",
    "TARGET_UNIT_METRICS",
    "EvaluationResult",
    "Gate",
    "GateInputs",
    "decide",
    "degenerate",
    "history_budget",
]

# Float noise must not fail a gate that is met exactly (an identical model has gain 0.0).
_EPS = 1e-12

#: The reason's words and the outcome when the gates cannot decide.
NOT_ENOUGH_ROWS = "not enough evaluation rows"
#: The reason's words when the evaluation rows hold too few of the rarer class.
NOT_ENOUGH_POSITIVES = "not enough positives"


@dataclass(frozen=True)
class GateInputs:
    """What the gates judge: the primary metric's values and the thresholds that apply.

    Attributes:
        champion_recent: None when there is no champion (first model): the floor applies, and
            the comparison with a constant prediction when `baseline_recent` is given.
        recent_ci: (lower, upper) interval of the recent gain, oriented so positive means the
            challenger is better; None to judge on the point estimate alone.
        challenger_history, champion_history: None when there is no history holdout.
        history_ci: (lower, upper) interval of the gain on history, oriented as `recent_ci`;
            None to judge the history loss on its point estimate.
        recent_rows: how many recent evaluation rows the values come from; None: not checked.
        min_rows: fewer recent rows than this make the comparison undecided.
        max_detectable_gain: a comparison whose recent interval's half-width exceeds this and
            that shows no gain is undecided; None: no such bound.
        confidence: the interval's level, for the wording only.
        constant_history: for a metric in the target's units, its value for the best
            constant prediction (the target's median for mae, its mean for rmse) on the
            history rows: what the budget is a share of when the champion's value is 0.
            None: not known.
        min_improvement: a challenger must beat the champion by more than this (on the
            interval's lower bound when there is one): replacing a model that works with one
            that is merely as good churns deployments for nothing.
        accept_forgetting_on_change: accept a history loss beyond the budget after a change
            of regime (see the module docstring).
        decline_ci: (lower, upper) interval of the champion's decline from the history rows to
            the recent rows, oriented so positive means worse on the recent rows; None to judge
            the change of regime on the point decline.
        baseline_recent, baseline_ci: a first model's constant prediction (the training
            target's class shares, or the best constant for the metric: its median for mae,
            its mean for rmse and r2) scored on the recent rows, and the interval of the
            model's gain over it; None: the first model is judged by the floor alone.
        baseline_fitted_on_recent: the constant was fitted on the recent rows themselves (a
            model card that records none from training): a degenerate interval is then no
            evidence, as `retrain.evaluation._baseline` explains.
        champion_age, refresh_after: how many windows newer the challenger's training window
            is than the champion's (None: unknown), and `evaluation.refresh_after` (0: off);
            `refresh_evidence` "shift" also needs `shift_ci` (recent gain minus history
            gain) above 0; see `retrain.evaluation._refresh`.
        improvement_evidence, blend_ci: "blend" lets the mean of the recent and the history
            gain, `blend_ci` its interval, show the gain when `shift_ci` does not show the two
            apart; see `retrain.evaluation._blend`.
    """

    metric: str
    greater_is_better: bool
    challenger_recent: float
    champion_recent: float | None = None
    recent_ci: tuple[float, float] | None = None
    challenger_history: float | None = None
    champion_history: float | None = None
    history_ci: tuple[float, float] | None = None
    floor: float | None = None
    max_recent_regression: float = 0.0
    max_history_loss: float = 0.02
    accept_forgetting_on_change: bool = True
    confidence: float = 0.95
    min_improvement: float = 0.0
    recent_rows: int | None = None
    min_rows: int = 1
    max_detectable_gain: float | None = None
    constant_history: float | None = None
    decline_ci: tuple[float, float] | None = None
    baseline_recent: float | None = None
    baseline_ci: tuple[float, float] | None = None
    baseline_fitted_on_recent: bool = False
    champion_age: float | None = None
    refresh_after: int = 0  # as evaluation.refresh_after's default: off
    refresh_evidence: str = "shift"  # as evaluation.refresh_evidence's default
    shift_ci: tuple[float, float] | None = None
    improvement_evidence: str = "recent"  # as evaluation.improvement_evidence's default
    blend_ci: tuple[float, float] | None = None


def decide(inputs: GateInputs) -> EvaluationResult:
    """Apply the gates to the primary metric's values. Pure: no I/O, no randomness."""
    metric = inputs.metric
    gates = [floor_gate(metric, inputs.greater_is_better, inputs.floor, inputs.challenger_recent)]
    metrics: dict[str, Any] = {"challenger": {"recent": {metric: inputs.challenger_recent}}}
    comparison: dict[str, Any] = {
        "metric": metric,
        "greater_is_better": inputs.greater_is_better,
        "floor": inputs.floor,
        "max_recent_regression": inputs.max_recent_regression,
        "max_history_loss": inputs.max_history_loss,
        "confidence": inputs.confidence,
        "first_model": inputs.champion_recent is None,
        "recent_gain": None,
        "recent_ci": None,
        "recent_min_detectable_gain": half_width(inputs.recent_ci),
        "history_loss": None,
        "history_loss_ci": None,
        "history_min_detectable_gain": half_width(inputs.history_ci),
        "min_improvement": inputs.min_improvement,
        "recent_rows": inputs.recent_rows,
        "min_rows": inputs.min_rows,
        "max_detectable_gain": inputs.max_detectable_gain,
        "champion_decline": None,
        "champion_decline_ci": None,
    }
    floor_text = floor_words(inputs.floor, gates[0].passed)

    if inputs.champion_recent is None:
        if inputs.challenger_history is not None:
            metrics["challenger"]["history"] = {metric: inputs.challenger_history}
        words = (
            f"first model (no champion): challenger {metric} "
            f"{fmt(inputs.challenger_recent)} on recent data"
        )
        if inputs.baseline_recent is not None:
            gate, baseline_words = baseline_gate(inputs, comparison)
            gates.append(gate)
            words += baseline_words
        return _verdict(gates, words + floor_text, metrics, comparison)

    metrics["champion"] = {"recent": {metric: inputs.champion_recent}}
    gates += _recent_gates(inputs, inputs.champion_recent, comparison)
    weak, strict = _lack_of_power(inputs, inputs.recent_ci, comparison)
    comparison["lack_of_power"] = weak
    if weak is not None:
        gates[-2:] = [_unsettled(g, weak, inputs, strict) for g in gates[-2:]]
    gain, ci_words = comparison["recent_gain"], _ci_words(inputs.recent_ci, inputs.confidence)
    words = (
        f"challenger {metric} {fmt(inputs.challenger_recent)} vs champion "
        f"{fmt(inputs.champion_recent)} on recent data (gain {gain:+.3f}{ci_words})"
    )
    if inputs.challenger_history is not None and inputs.champion_history is not None:
        metrics["challenger"]["history"] = {metric: inputs.challenger_history}
        metrics["champion"]["history"] = {metric: inputs.champion_history}
        gate, history_words = _history_gate(
            inputs, inputs.challenger_history, inputs.champion_history, comparison
        )
        short = _history_short(inputs)
        if short is not None:  # no evidence either way: as without history, unless it fails
            gate = Gate(gate.name, gate.passed, f"{gate.detail}; not judged: {short}", False)
            history_words += f", not judged: {short}"
        gates.append(gate)
        words += history_words
    else:
        gates.append(Gate("history_bounded_loss", True, "no history holdout: not checked"))
        words += "; no history holdout, forgetting not checked"
    age, after = inputs.champion_age, inputs.refresh_after
    mdg, bound = comparison["recent_min_detectable_gain"], inputs.max_detectable_gain
    too_wide = bound is not None and mdg is not None and mdg > bound + _EPS
    gates, refresh_words = refresh(
        gates,
        comparison,
        age,
        after,
        degenerate=weak is not None and strict,
        too_wide=too_wide,
        evidence=inputs.refresh_evidence,
        shift=(inputs.challenger_history, inputs.champion_history, inputs.shift_ci),
    )
    evidence, degenerate = inputs.improvement_evidence, weak is not None and strict
    gates, blend_words = blend(
        gates,
        comparison,
        BlendInputs(
            evidence,
            metric,
            inputs.min_improvement,
            inputs.blend_ci,
            inputs.shift_ci,
            degenerate,
            too_wide,
        ),
    )
    words += refresh_words + blend_words
    return _verdict(gates, words + floor_text, metrics, comparison)


def _verdict(
    gates: list[Gate], words: str, metrics: dict[str, Any], comparison: dict[str, Any]
) -> EvaluationResult:
    """Blessed if every gate passed; rejected if a gate failed on the evidence; else undecided."""
    blessed = all(g.passed for g in gates)
    failed = [g.name for g in gates if not g.passed and g.decided]
    undecided = not blessed and not failed
    if blessed:
        outcome, verdict = "blessed", "blessed"
    elif undecided:
        why = comparison.get("lack_of_power") or "; ".join(g.detail for g in gates if not g.decided)
        outcome, verdict = "undecided", f"undecided, {NOT_ENOUGH_ROWS} ({why})"
    else:
        outcome, verdict = "rejected", f"rejected (failed: {', '.join(failed)})"
    comparison = {**comparison, "outcome": outcome}
    return EvaluationResult(
        blessed, f"{words}: {verdict}", gates, metrics, comparison, undecided=undecided
    )


def _lack_of_power(
    inputs: GateInputs, ci: tuple[float, float] | None, comparison: dict[str, Any]
) -> tuple[str | None, bool]:
    """Why these rows cannot show a gain, or None if they can; and whether the interval is no
    evidence at all (a degenerate interval: then no gate passes or fails on it) rather than
    too few rows or too wide an interval to show a gain (then only a failure that rests on no
    shown gain is unsettled)."""
    n, mdg = inputs.recent_rows, comparison["recent_min_detectable_gain"]
    bound = inputs.max_detectable_gain
    if degenerate(ci):
        return degenerate_words(ci), True
    if n is not None and n < inputs.min_rows:
        words = f"{n} recent evaluation rows, fewer than evaluation.min_rows {inputs.min_rows}"
        return words, False
    if bound is not None and mdg is not None and mdg > bound + _EPS:
        return (
            f"minimum detectable gain {fmt(mdg)} wider than "
            f"evaluation.max_detectable_gain {bound:g}"
        ), False
    return None, False


def _history_short(inputs: GateInputs) -> str | None:
    """Why the history rows are no evidence of forgetting either way, or None."""
    if degenerate(inputs.history_ci):
        return degenerate_words(inputs.history_ci)
    return None


def _recent_gates(
    inputs: GateInputs, champion_recent: float, comparison: dict[str, Any]
) -> list[Gate]:
    """Non-regression and improvement on the recent rows."""
    metric, recent_ci = inputs.metric, inputs.recent_ci
    sign = 1.0 if inputs.greater_is_better else -1.0
    allowed = -inputs.max_recent_regression
    gain = sign * (inputs.challenger_recent - champion_recent)
    comparison["recent_gain"] = gain
    ci_ok = True
    if recent_ci is not None:
        lower, upper = recent_ci
        comparison["recent_ci"] = [lower, upper]
        ci_ok = finite(upper) and upper >= allowed - _EPS
    point_ok = finite(gain) and gain >= allowed - _EPS
    if not finite(gain):
        recent_detail = f"{metric} undefined on recent data for one of the models"
    else:
        ci_words = _ci_words(recent_ci, inputs.confidence)
        recent_detail = f"gain {gain:+.3f}{ci_words}; allowed down to {allowed:+.3f}"
        if not point_ok:
            recent_detail += "; the point estimate is below it"
        elif not ci_ok:
            recent_detail += "; the interval lies entirely below it"
    evidence = recent_ci[0] if recent_ci is not None else gain
    better = finite(evidence) and evidence > inputs.min_improvement + _EPS
    on = "lower bound of the gain's interval" if recent_ci is not None else "gain"
    return [
        Gate("recent_non_regression", point_ok and ci_ok, recent_detail),
        Gate(
            "recent_improvement",
            better,
            f"{on} {evidence:+.3f} {'exceeds' if better else 'does not exceed'} "
            f"the required {inputs.min_improvement:+.3f}",
        ),
    ]


def history_budget(
    metric: str,
    max_history_loss: float,
    champion_history: float,
    constant_history: float | None = None,
) -> tuple[float, str]:
    """The largest history loss the forgetting guard allows, in metric units, and its basis.

    The configured budget, or for a metric in the target's units that share of the champion's
    value; a perfect champion (value 0) would leave no budget at all, so then the share is of a
    constant prediction's value on the same rows (the target's spread).
    """
    if metric not in TARGET_UNIT_METRICS:
        return max_history_loss, "metric units"
    if finite(champion_history) and champion_history != 0.0:
        return max_history_loss * abs(champion_history), f"share of the champion's {metric}"
    if constant_history is not None and finite(constant_history):
        basis = f"share of a constant prediction's {metric} (the champion's is 0)"
        return max_history_loss * abs(constant_history), basis
    return max_history_loss, "metric units (no value to take a share of)"


def _history_gate(
    inputs: GateInputs, challenger: float, champion: float, comparison: dict[str, Any]
) -> tuple[Gate, str]:
    """The forgetting guard: fail when the loss on history is shown to exceed the budget."""
    sign = 1.0 if inputs.greater_is_better else -1.0
    budget, basis = history_budget(
        inputs.metric, inputs.max_history_loss, champion, inputs.constant_history
    )
    comparison["history_loss_budget"] = budget
    comparison["history_loss_budget_basis"] = basis
    loss = sign * (champion - challenger)
    comparison["history_loss"] = loss
    # The loss interval is the gain interval negated: [-upper, -lower].
    shown = loss
    interval_words = ""
    if inputs.history_ci is not None:
        low_loss, high_loss = -inputs.history_ci[1], -inputs.history_ci[0]
        comparison["history_loss_ci"] = [low_loss, high_loss]
        shown = low_loss
        interval_words = (
            f", {inputs.confidence:.0%} CI of the loss [{fmt(low_loss)}, {fmt(high_loss)}]"
        )
    ok = finite(loss) and finite(shown) and shown <= budget + _EPS
    verdict = "within" if ok else "beyond"
    if not finite(loss):
        detail = f"{inputs.metric} undefined on the history holdout for one of the models"
    elif inputs.history_ci is not None:
        detail = (
            f"change {-loss:+.3f}{interval_words}; "
            + ("the whole interval lies beyond" if not ok else "not shown beyond")
            + f" the {budget:.3g} budget"
        )
    else:
        detail = f"change {-loss:+.3f}, {verdict} the {budget:.3g} budget"
    words = (
        f"; history {fmt(challenger)} vs {fmt(champion)} "
        f"({-loss:+.3f}{interval_words}, {verdict} the {budget:.3g} budget)"
    )
    comparison["history_loss_accepted_on_change"] = False
    if not ok and finite(loss) and finite(shown):
        high_loss = -inputs.history_ci[0] if inputs.history_ci is not None else loss
        change = _regime_change(inputs, champion, (loss, high_loss), comparison)
        if change is not None:
            comparison["history_loss_accepted_on_change"] = True
            detail += f"; accepted: {change}"
            words += f", accepted: {change}"
            ok = True
    return Gate("history_bounded_loss", ok, detail), words


def _regime_change(
    inputs: GateInputs,
    champion_history: float,
    history_loss: tuple[float, float],
    comparison: dict[str, Any],
) -> str | None:
    """Why a history loss beyond the budget is worth it after a change of regime, or None.

    `history_loss` is the loss's (point estimate, upper bound). All three must hold (see the
    module docstring): the champion's decline from history to the recent rows exceeds the
    loss's upper bound at the decline interval's lower bound; the recent gain's lower bound is
    above 0; and the recent gain exceeds the history loss on the point estimates (each bound
    judged on its point estimate when it has no interval). Records the champion's decline in
    `comparison`.
    """
    champion_recent = inputs.champion_recent
    if not inputs.accept_forgetting_on_change or champion_recent is None:
        return None
    loss, high_loss = history_loss
    sign = 1.0 if inputs.greater_is_better else -1.0
    decline = sign * (champion_history - champion_recent)
    comparison["champion_decline"] = decline
    decline_shown = decline
    if inputs.decline_ci is not None:
        comparison["champion_decline_ci"] = list(inputs.decline_ci)
        decline_shown = inputs.decline_ci[0]
    gain = sign * (inputs.challenger_recent - champion_recent)
    gain_shown = inputs.recent_ci[0] if inputs.recent_ci is not None else gain
    if not all(finite(v) for v in (decline_shown, gain_shown, gain, loss, high_loss)):
        return None
    if decline_shown <= high_loss + _EPS or gain_shown <= _EPS or gain <= loss + _EPS:
        return None
    on_decline = "lower bound" if inputs.decline_ci is not None else "point estimate"
    on_gain = "lower bound" if inputs.recent_ci is not None else "point estimate"
    return (
        f"the regime changed (the champion's {inputs.metric} is {fmt(decline)} worse on recent"
        f" rows than on history{_ci_words(inputs.decline_ci, inputs.confidence)}): the decline"
        f" ({on_decline} {fmt(decline_shown)}) exceeds the most the challenger can have lost"
        f" ({fmt(high_loss)}), its recent gain is shown ({on_gain} {gain_shown:+.3f}) and"
        f" exceeds its history loss ({gain:+.3f} against {fmt(loss)})"
    )


def _unsettled(gate: Gate, weak: str, inputs: GateInputs, strict: bool) -> Gate:
    """A recent gate that these rows cannot settle. With `strict` (a degenerate interval)
    neither a pass nor a failure stands; otherwise (too few rows, or too wide an interval) only
    a failure that rests on no shown gain, or on a regression seen in the point estimate but
    not in the interval."""
    if strict:
        return Gate(gate.name, False, f"{gate.detail}; {weak}", decided=False)
    if gate.passed:
        return gate
    ci = inputs.recent_ci
    # A metric undefined on the recent rows (e.g. ROC AUC on rows of one class) shows nothing.
    defined = inputs.champion_recent is not None and finite(
        inputs.challenger_recent - inputs.champion_recent
    )
    shown_regression = (
        defined
        and gate.name == "recent_non_regression"
        and (ci is None or not finite(ci[1]) or ci[1] < -inputs.max_recent_regression - _EPS)
    )
    if shown_regression:
        return gate
    return Gate(gate.name, False, f"{gate.detail}; {weak}", decided=False)


def _ci_words(ci: tuple[float, float] | None, confidence: float) -> str:
    if ci is None:
        return ""
    return f", {confidence:.0%} CI [{fmt(ci[0])}, {fmt(ci[1])}]"
