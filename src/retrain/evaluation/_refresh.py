"""The refresh: a challenger trained on newer data replaces a champion it is not worse than.

The improvement gate asks the recent rows to show a gain, so of two models they cannot tell
apart the champion stays, however old its data. Under drift that keeps a stale model in
service while each newer challenger, no worse on the rows, is set aside: on the published
streams "retrain every window" then deployed a third of its challengers and trailed a plain
refit that deploys every one. A refresh passes the improvement gate for a challenger trained on
data at least `refresh_after` windows newer than the champion's when every other gate passed
on rows that can judge it (enough rows, a decided non-regression: its recent gain at least
``-max_recent_regression`` on the point estimate and on the interval's upper bound). What it
costs, a slightly worse challenger deployed at a measured rate, is in
`benchmarks/decisions/gates.py`.
"""

from __future__ import annotations

from typing import Any

from retrain.evaluation._result import Gate

__all__ = ["refresh"]


def refresh(
    gates: list[Gate], comparison: dict[str, Any], age: float | None, after: int
) -> tuple[list[Gate], str]:
    """The gates with the improvement gate passed by a refresh, if one applies; and its words.

    `age`: how many windows newer the challenger's training window is than the champion's
    (None: unknown, no refresh); `after`: `evaluation.refresh_after` (0: off).
    """
    comparison["champion_age_windows"] = age
    comparison["refresh_after"] = after
    comparison["refresh"] = False
    named = {g.name: g for g in gates}
    improvement = named.get("recent_improvement")
    if (
        after <= 0
        or age is None
        or age < after
        or improvement is None
        or improvement.passed
        or comparison.get("lack_of_power") is not None
        or not all(g.passed and g.decided for g in gates if g is not improvement)
    ):
        return gates, ""
    comparison["refresh"] = True
    newer = f"{age:g} window(s) newer than the champion's"
    passed = Gate(
        improvement.name,
        True,
        f"{improvement.detail}; not required for a refresh: trained on data {newer}",
    )
    words = (
        f"; a refresh: no gain shown, not worse, trained on data {newer}"
        f" (evaluation.refresh_after {after})"
    )
    return [passed if g is improvement else g for g in gates], words
