"""The drift back-off: what the trigger policy learns from its drift launches' outcomes.

A drift launch whose challenger was not deployed says the drift did not cost the champion
enough to replace it; while the drift goes on, the next drift launch needs twice the drifted
windows in a row, up to ``triggers.drift_backoff_limit`` (`TriggerConfig.backoff_limit`).
The drift signal says which launch made the serving champion (``serving_from``, its card's
``window``) and which one made a canary still in analysis (``canary_from``); a pending drift
launch is:

* deployed when the serving champion changes (to its model or to any other: a new model has
  its own reference, so the count starts again and older outcomes are moot);
* not deployed when its run succeeded, it is not the canary in analysis, and the serving
  champion is still the one before it: the count grows;
* not known yet while its run is going, failed (the monitor's drift run on the newest window
  usually fails on label coverage and the ``labels`` rule re-runs it once they arrive) or is
  the canary; at most `MAX_PENDING` are kept, the oldest forgotten first;
* dropped when launching was off (skipped) or its status has been trimmed from the state.

A launch on a labelled drop (a performance or catch-up launch, or a drift launch its labelled
signal joined) is evidence the drift costs: the count resets and nothing stays pending. So is
a labelled drop too small to launch (below ``performance_drop``) whose interval lies above
zero: the count resets.
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
    if state.drift_serving is not None and serving != state.drift_serving:
        return replace(state, drift_backoff=0, drift_pending=(), drift_serving=serving)
    canary = signal.details.get("canary_from")
    backoff = state.drift_backoff
    waiting: list[str] = []
    for snapshot in state.drift_pending:
        status = state.snapshots.get(snapshot)
        if snapshot == serving:  # its window's model serves (trained on it by another run)
            backoff, waiting = 0, []
        elif snapshot == canary or status in ("launched", "failed"):
            waiting.append(snapshot)
        elif status == "succeeded":
            backoff = min(backoff + 1, _MAX_BACKOFF)
    return replace(
        state, drift_backoff=backoff, drift_pending=tuple(waiting), drift_serving=serving
    )


def shown_drop(state: PolicyState, drop_lower: object) -> PolicyState:
    """The state after a performance signal whose drop did not launch: a drop shown beyond
    noise (its interval's lower bound above zero) resets the count."""
    if isinstance(drop_lower, (int, float)) and float(drop_lower) > 0.0 and state.drift_backoff:
        return replace(state, drift_backoff=0)
    return state


def drift_windows_needed(signal: Signal, state: PolicyState, cfg: TriggerConfig) -> tuple[int, str]:
    """Drifted windows in a row a drift launch needs now, and why when backed off."""
    limit = cfg.backoff_limit
    if limit is None or state.drift_backoff == 0 or signal.details.get("labelled_fired"):
        return cfg.drift_windows, ""
    n = state.drift_backoff
    need = min(limit, cfg.drift_windows * 2**n)
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
    if rule == "drift":
        pending = (*(s for s in state.drift_pending if s != snapshot), snapshot)
        return replace(state, drift_pending=pending[-MAX_PENDING:])
    return state
