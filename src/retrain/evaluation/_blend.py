"""The improvement shown on every evaluation row (`evaluation.improvement_evidence: blend`).

The improvement gate asks the recent evaluation rows alone to show a gain. A challenger
trained on more data is often better everywhere by a margin those rows cannot show (about
+0.01-0.02 AUC on 1,000-2,000 rows), while the history evaluation rows, which the forgetting
guard scores anyway, show the same gain again. With ``blend`` the gain may instead be shown on
both sets together: the mean of the challenger's paired gain on the recent rows and its paired
gain on the history rows, the two sets resampled independently (`bootstrap_gain_blend`, the
lower bound above `min_improvement`), provided that

- the recent gain is at least 0 on its point estimate (history cannot carry a challenger the
  recent rows score lower),
- every other gate passed, the forgetting guard on enough history rows to judge.

On two equal models the mean gain's interval excludes 0 at about the improvement gate's own
rate, so equal models stay blessed at about the nominal rate; what it adds is power where a
gain holds on both sets, and its price is a challenger slightly worse on the recent rows but
better on history, blessed when its recent point estimate comes out at or above 0. Both are
measured in `benchmarks/decisions/blend.py`.
"""

from __future__ import annotations

from typing import Any

from retrain.evaluation._result import WAIVED_BY_REFRESH, Gate, finite, zero_width

__all__ = ["BLEND_WEIGHTS", "blend"]

#: The recent gain's and the history gain's weights in the blended gain: their mean.
BLEND_WEIGHTS = (0.5, 0.5)


def blend(
    gates: list[Gate],
    comparison: dict[str, Any],
    evidence: str,
    min_improvement: float,
    blend_ci: tuple[float, float] | None,
    *,
    degenerate: bool = False,
) -> tuple[list[Gate], str]:
    """The gates with the improvement gate passed on the blended gain, if it is shown; and its
    words. ``comparison["blend_needs_interval"]`` says the rule waits only for `blend_ci` (the
    interval of the blended gain, None until bootstrapped). Nothing is blended when the recent
    interval is no evidence at all (`degenerate`) or has zero width (the recent rows cannot
    tell the models apart: the blend would rest on history alone)."""
    comparison["improvement_evidence"] = evidence
    named = {g.name: g for g in gates}
    improvement = named.get(WAIVED_BY_REFRESH)
    history = named.get("history_bounded_loss")
    if (
        evidence != "blend"
        or improvement is None
        or improvement.passed
        or degenerate
        or zero_width(comparison.get("recent_ci"))
        or not all(g.passed for g in gates if g is not improvement)
    ):
        return gates, ""
    gain = comparison.get("recent_gain")
    if comparison.get("history_loss") is None or history is None or not history.decided:
        comparison["blend_not_applied"] = "no history evaluation rows to judge on"
        return gates, ""
    if not (isinstance(gain, float) and finite(gain) and gain >= 0.0):
        comparison["blend_not_applied"] = "the recent gain's point estimate is below 0"
        return gates, ""
    if blend_ci is None:
        comparison["blend_needs_interval"] = True
        return gates, ""
    comparison["blended_gain_ci"] = list(blend_ci)
    lower = blend_ci[0]
    if not (finite(lower) and lower > min_improvement):
        comparison["blend_not_applied"] = (
            f"the blended gain's lower bound {lower:+.3f} does not exceed {min_improvement:+.3f}"
        )
        return gates, ""
    shown = (
        f"shown on the recent and history rows together: the lower bound of their mean gain's"
        f" interval {lower:+.3f} exceeds {min_improvement:+.3f}"
    )
    passed = Gate(improvement.name, True, f"{improvement.detail}; {shown}")
    words = f"; the gain {shown} (evaluation.improvement_evidence blend)"
    return [passed if g is improvement else g for g in gates], words
