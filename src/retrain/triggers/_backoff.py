"""The drift back-off: what the trigger policy learns from its drift launches' outcomes.

A drift launch whose challenger was not deployed says the drift did not cost the champion
enough to replace it; while the drift goes on, the next drift launch needs twice the drifted
windows in a row, up to ``triggers.drift_backoff_limit`` (`TriggerConfig.backoff_limit`:
twice ``drift_windows`` unless set; ``triggers.drift_backoff: false`` turns it off). The drift
signal says which launch made the serving champion (``serving_from``, its card's
``window``) and which one made a canary still in analysis (``canary_from``); a pending drift
launch is:

* deployed when the serving champion changes (to its model or to any other: a new model has
  its own reference, so the count starts again and older outcomes are moot);
* not deployed when its run succeeded, it is not the canary in analysis, and the serving
  champion is still the one before it: the count grows;
* not known yet while its run is going, while it is the canary, or while its run has failed
  on label coverage (the monitor's drift run on the newest window usually does, the signal's
  ``awaiting_labels`` names them, and the ``labels`` rule re-runs it once they arrive); at
  most `MAX_PENDING` wait, and a drift launch made while they do is not followed;
* dropped when its run failed otherwise (no re-run comes), when launching was off (skipped),
  or when its status has been trimmed from the state.

A launch on a labelled drop (a performance or catch-up launch, or a drift launch its labelled
signal joined) is evidence the drift costs: the count resets and nothing stays pending; so is
any labelled drop whose interval lies above zero, too small to launch (below
``performance_drop``) or refused (cooldown, budget, lease, a window already launched).
"""

from __future__ import annotations

from dataclasses import replace

from retrain.settings.triggers import TriggerConfig
from retrain.triggers._state import PolicyState, Signal

__all__ = ["MAX_PENDING", "after_launch", "drift_windows_needed", "learn_outcomes", "shown_drop"]

MAX_PENDING = 8
_MAX_BACKOFF = 16  # doublings remembered: far past any limit, and a small number in the state


def learn_outcomes(signal: Signal, state: PolicyState) -> PolicyState:
    """The state after what the drift signal says of the pending drift launches."""
    serving = signal.details.get("serving_from")
    if not isinstance(serving, str):
        return state  # not told which launch serves: nothing learnt
    changed = state.drift_serving is not None and serving != state.drift_serving
    if changed or serving in state.drift_pending:  # a new model serves: a fresh count
        return replace(state, drift_backoff=0, drift_pending=(), drift_serving=serving)
    canary = signal.details.get("canary_from")
    awaiting = signal.details.get("awaiting_labels") or ()
    backoff = state.drift_backoff
    waiting: list[str] = []
    for snapshot in state.drift_pending:
        status = state.snapshots.get(snapshot)
        if (
            snapshot == canary
            or status == "launched"
            or (status == "failed" and snapshot in awaiting)
        ):
            waiting.append(snapshot)
        elif status == "succeeded":
            backoff = min(backoff + 1, _MAX_BACKOFF)
    return replace(
        state, drift_backoff=backoff, drift_pending=tuple(waiting), drift_serving=serving
    )


def shown_drop(state: PolicyState, drop_lower: object) -> PolicyState:
    """The state after a performance signal whose drop is shown beyond noise (its interval's
    lower bound above zero), launching or not: the drift costs, the count resets."""
    if isinstance(drop_lower, (int, float)) and float(drop_lower) > 0.0:
        return replace(state, drift_backoff=0, drift_pending=())
    return state


def drift_windows_needed(signal: Signal, state: PolicyState, cfg: TriggerConfig) -> tuple[int, str]:
    """Drifted windows in a row a drift launch needs now, and why when backed off."""
    limit = cfg.backoff_limit
    if limit is None or state.drift_backoff == 0 or signal.details.get("labelled_fired"):
        return cfg.drift_windows, ""
    n = state.drift_backoff
    need = min(limit, cfg.drift_windows * 2**n)
    if need <= cfg.drift_windows:  # a limit of drift_windows: nothing to wait for
        return cfg.drift_windows, ""
    launches = "the last drift launch" if n == 1 else f"the last {n} drift launches"
    return need, (
        f" (backing off: {launches} made no challenger that was deployed;"
        f" triggers.drift_backoff_limit {limit})"
    )


def after_launch(state: PolicyState, rule: str, snapshot: str, confirmed: bool) -> PolicyState:
    """The back-off's state after a launch: a confirmed drop resets it, a drift launch waits
    for its outcome, any other launch (a ``labels`` re-run of a pending window among them)
    leaves it as it was."""
    if confirmed:
        return replace(state, drift_backoff=0, drift_pending=())
    if (
        rule == "drift"
        and len(state.drift_pending) < MAX_PENDING
        and (snapshot not in state.drift_pending)
    ):  # the oldest stay: theirs are the outcomes to come first
        return replace(state, drift_pending=(*state.drift_pending, snapshot))
    return state
