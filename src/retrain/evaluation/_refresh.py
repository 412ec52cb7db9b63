"""The refresh (opt-in): a challenger trained on newer data replaces a champion it is not
worse than.

The improvement gate asks the recent rows to show a gain, so of two models they cannot tell
apart the champion stays, however old its data. Under drift that can keep a stale model in
service while each newer challenger, no worse on the rows, is set aside (with labels known at
each window's end, "retrain every window" deployed 3 of 16 challengers on the reviews stream
and trailed a plain refit that deploys every one). With `evaluation.refresh_after` set, a
refresh passes the improvement gate for a challenger trained on data at least that many
windows newer than the champion's when every other gate passed (its recent gain at least
``-max_recent_regression`` on the point estimate and on the interval's upper bound, the
forgetting guard and the floor) on an interval that is evidence.

The age alone is no evidence that the world moved: on data that has not moved, a refresh on
age keeps the newer of two equal models about half the time, not at the nominal rate, and lets
a slightly worse one through. So by default (``evaluation.refresh_evidence: shift``) a refresh
also needs the challenger to fit the recent rows better than the past, relative to the
champion: its gain on the recent evaluation rows above its gain on the history evaluation rows,
the lower bound of the interval of that difference above 0 (`bootstrap_gain_shift`: the two
sets resampled independently). A recent window that is merely harder (noisier labels, a rarer
class) lowers both models' scores alike and cancels in each gain, as does the difference
between a metric on pooled history windows and on one window; on data that has not moved the
interval excludes 0 at about its nominal rate, so equal models stay blessed at close to the
improvement gate's rate (1.5-3.5% measured, against 2.0-2.8% for the gate alone). A history
loss within the forgetting budget counts toward the shift too: a challenger equal on the
recent rows and worse on history can be refreshed (measured, with its rates, in the
benchmark). After a change, a challenger trained on it typically gains a little on the recent rows
and gives a little back on history: neither alone is shown, their difference can be. The
rates of both rules are measured in `benchmarks/decisions/refresh.py`.
"""

from __future__ import annotations

from typing import Any

from retrain.evaluation._result import WAIVED_BY_REFRESH, Gate, zero_width

__all__ = ["refresh"]

_RECENT = ("recent_non_regression", WAIVED_BY_REFRESH)


def refresh(
    gates: list[Gate],
    comparison: dict[str, Any],
    age: float | None,
    after: int,
    *,
    degenerate: bool = False,
    too_wide: bool = False,
    evidence: str = "shift",
    shift: tuple[float | None, float | None, tuple[float, float] | None] | None = None,
) -> tuple[list[Gate], str]:
    """The gates with the improvement gate passed by a refresh, if one applies; and its words.

    `age`: how many windows newer the challenger's training window is than the champion's
    (None: unknown, no refresh); `after`: `evaluation.refresh_after` (0: off); `degenerate`:
    the recent interval is no evidence at all, `too_wide`: `evaluation.max_detectable_gain`
    found it too wide to judge (then nothing is refreshed; nor on a zero-width interval, whose
    models score every resample alike: nothing tells them apart). Fewer rows than
    `evaluation.min_rows` do not stop a refresh: they are too few to show a gain, not to show
    that a challenger is no worse on its point estimate (the rate at which a worse one gets
    through, by rows, is in `benchmarks/decisions/refresh.py`). With `evidence` "shift",
    `shift` (the challenger's and the champion's metric on history, None without history rows,
    and the interval of the recent gain minus the history gain, None until bootstrapped) must
    show the shift: its lower bound above 0. ``comparison["refresh_needs_shift"]`` says a
    refresh waits only for that interval.
    """
    comparison["champion_age_windows"] = age
    comparison["refresh_after"] = after
    comparison["refresh"] = False
    named = {g.name: g for g in gates}
    improvement = named.get(WAIVED_BY_REFRESH)
    if (
        after <= 0
        or age is None
        or age < after
        or improvement is None
        or improvement.passed
        or degenerate
        or too_wide
        or zero_width(comparison.get("recent_ci"))
        or not all(g.passed for g in gates if g is not improvement)
        or not all(g.decided for g in gates if g.name not in _RECENT)
    ):
        return gates, ""
    newer = f"{age:g} window(s) newer than the champion's"
    shown = ""
    if evidence != "age":  # "shift", and any other value: the safe rule
        challenger_history, champion_history, ci = shift if shift is not None else (None,) * 3
        if challenger_history is None or champion_history is None:
            comparison["refresh_not_applied"] = "no history rows to show the world moved"
            return gates, ""
        if ci is None:
            comparison["refresh_needs_shift"] = True
            return gates, ""
        comparison["gain_shift_ci"] = list(ci)
        if not ci[0] > 0:
            comparison["refresh_not_applied"] = (
                "the challenger's recent gain is not shown above its history gain"
            )
            return gates, ""
        shown = f", its recent gain shown above its history gain (by at least {ci[0]:.4g})"
    comparison["refresh"] = True
    passed = Gate(
        improvement.name,
        True,
        f"{improvement.detail}; not required for a refresh: trained on data {newer}{shown}",
    )
    words = (
        f"; a refresh: no gain shown, not worse, trained on data {newer}{shown}"
        f" (evaluation.refresh_after {after})"
    )
    return [passed if g is improvement else g for g in gates], words
