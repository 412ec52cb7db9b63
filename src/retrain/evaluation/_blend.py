"""The improvement shown on every evaluation row (`evaluation.improvement_evidence: blend`).

The improvement gate asks the recent evaluation rows alone to show a gain. A challenger
trained on more data is often better everywhere by a margin those rows cannot show (about
+0.01-0.02 AUC on 1,000-2,000 rows), while the history evaluation rows, which the forgetting
guard scores anyway, show the same gain again. With ``blend`` the gain may instead be shown on
both sets together: the mean of the challenger's paired gain on the recent rows and its paired
gain on the history rows, the two sets resampled independently (`bootstrap_gain_blend`, the
lower bound above `min_improvement`), provided that

- the recent gain is at least 0 on its point estimate (history cannot carry a challenger the
  recent rows score lower), on at least `min_rows` recent rows whose interval can judge (not
  degenerate, zero-width or wider than `max_detectable_gain`),
- the two sets agree: the recent gain is not shown below the history gain (the upper bound of
  the shift's interval, `bootstrap_gain_shift`, at least 0). After a change of regime the
  history is the old world, where a challenger trained on it can be far better while worse
  now; pooling the two would let history carry it,
- every other gate passed, the forgetting guard judged on the history rows,
- the metric is not in the target's units (rmse, mae): a gain there is on each set's own
  scale, and the set with the larger target would weigh more whatever the weights say.

The rule is the improvement gate OR the blend, two tests without a correction, so two equal
models are blessed somewhat above the gate's own rate (measured, not assumed); what it adds is
power where a gain holds on both sets, and its price is a challenger slightly worse on the
recent rows but better on history. Both are measured in `benchmarks/decisions/blend.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retrain.evaluation._result import WAIVED_BY_REFRESH, Gate, finite, zero_width
from retrain.settings.evaluation import TARGET_UNIT_METRICS

__all__ = ["BLEND_WEIGHTS", "BlendInputs", "blend"]

#: The recent gain's and the history gain's weights in the blended gain: their mean.
BLEND_WEIGHTS = (0.5, 0.5)


@dataclass(frozen=True)
class BlendInputs:
    """What the rule reads besides the gates: `evidence` (evaluation.improvement_evidence),
    the metric, `min_improvement`, the intervals of the blended gain and of the shift (recent
    gain minus history gain; None until bootstrapped), and whether the recent interval is
    degenerate or too wide for `max_detectable_gain`."""

    evidence: str
    metric: str
    min_improvement: float
    blend_ci: tuple[float, float] | None
    shift_ci: tuple[float, float] | None
    degenerate: bool = False
    too_wide: bool = False


def blend(
    gates: list[Gate],
    comparison: dict[str, Any],
    inputs: BlendInputs,
) -> tuple[list[Gate], str]:
    """The gates with the improvement gate passed on the blended gain, if it is shown; and its
    words. ``comparison["blend_needs_interval"]`` says the rule waits only for the intervals
    (the blended gain's and the shift's, None until bootstrapped)."""
    comparison["improvement_evidence"] = inputs.evidence
    named = {g.name: g for g in gates}
    improvement = named.get(WAIVED_BY_REFRESH)
    history = named.get("history_bounded_loss")
    if (
        inputs.evidence != "blend"
        or improvement is None
        or improvement.passed
        or not all(g.passed for g in gates if g is not improvement)
    ):
        return gates, ""
    why = _not_applicable(comparison, inputs, history)
    if why is not None:
        comparison["blend_not_applied"] = why
        return gates, ""
    if inputs.blend_ci is None or inputs.shift_ci is None:
        comparison["blend_needs_interval"] = True
        return gates, ""
    comparison["blended_gain_ci"] = list(inputs.blend_ci)
    comparison["gain_shift_ci"] = list(inputs.shift_ci)
    lower, floor = inputs.blend_ci[0], inputs.min_improvement
    if not (finite(lower) and lower > floor):
        comparison["blend_not_applied"] = (
            f"the blended gain's lower bound {lower:+.3f} does not exceed {floor:+.3f}"
        )
        return gates, ""
    if not inputs.shift_ci[1] >= 0.0:
        comparison["blend_not_applied"] = (
            "the recent gain is shown below the history gain (upper bound of the shift"
            f" {inputs.shift_ci[1]:+.3f}): the two sets disagree, so they are not pooled"
        )
        return gates, ""
    shown = (
        f"shown on the recent and history rows together: the lower bound of their mean gain's"
        f" interval {lower:+.3f} exceeds {floor:+.3f}"
    )
    passed = Gate(improvement.name, True, f"{improvement.detail}; {shown}")
    words = f"; the gain {shown} (evaluation.improvement_evidence blend)"
    return [passed if g is improvement else g for g in gates], words


def _not_applicable(
    comparison: dict[str, Any], inputs: BlendInputs, history: Gate | None
) -> str | None:
    """Why the recent rows and the history rows cannot be blended here, or None."""
    gain, rows = comparison.get("recent_gain"), comparison.get("recent_rows")
    if inputs.metric in TARGET_UNIT_METRICS:
        return f"{inputs.metric} gains are in the target's units, not on one scale across sets"
    if inputs.degenerate or zero_width(comparison.get("recent_ci")) or inputs.too_wide:
        return "the recent interval cannot judge the two models"
    if rows is None or rows < comparison.get("min_rows", 1):
        return "fewer recent evaluation rows than evaluation.min_rows"
    if comparison.get("history_loss") is None or history is None:
        return "no history evaluation rows"
    if not history.decided:
        return "the history rows cannot judge the forgetting guard"
    if not (isinstance(gain, float) and finite(gain) and gain >= 0.0):
        return "the recent gain's point estimate is below 0"
    return None
