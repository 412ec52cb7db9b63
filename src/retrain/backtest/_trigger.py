"""The drift policy's decision at a window, in the monitor's order: the window's drift signal
(features, predictions, and the engine's labelled signal), then, with
``triggers.performance_drop`` set, the performance signal, which skips the hysteresis; as in
the monitor, a drift launch gives way to the performance signal when that launches (rule
``deferred`` in `retrain.triggers.policy`).

Both measure the labelled signal on the newest window whose labels known then pass
``labels.min_coverage`` (`retrain.drift.labelled_window_check`); "then" is the replayed
window's end here, the monitor's clock there (`retrain.triggers._labelled_window`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from retrain.config import Config
from retrain.drift import PerformanceCheck, performance_fired
from retrain.triggers.policy import PolicyState, Signal, decide

__all__ = ["check_note", "drift_policy_decision"]


def drift_policy_decision(
    cfg: Config,
    trigger: PolicyState,
    window: str,
    drifted: bool,
    check: PerformanceCheck | None,
    now: datetime,
    champion_from: str | None = None,
    serving: Mapping[str, str | None] | None = None,
    windows: tuple[str, str | None] = ("", None),
) -> tuple[bool, str, PolicyState]:
    """Whether the drift policy launches at `window` given its drift verdict and the labelled
    check of the champion (None: not measurable); the reason and the policy's new memory.
    `champion_from`: the window whose launch made the serving champion, when the check's
    labelled window is newer than the one it trained on (the catch-up rule's evidence);
    `serving`: the launches behind the champion and a canary in analysis, whatever was
    checked (``serving_from``, ``canary_from``: the drift back-off's evidence);
    `windows`: the labelled window the check measured and the one the champion of
    `champion_from` trained on, which the reasons name (as the monitor's, whose snapshots are
    labelled windows; here the snapshots stay the replayed windows that launch)."""
    labelled = check is not None and performance_fired(check, cfg.drift)
    measured = (
        {"metric": check.metric, "reference": check.reference, "current": check.current}
        if check is not None
        else {}
    )
    performance = None
    if check is not None and cfg.triggers.performance_drop is not None:
        details = measured | {"drop_lower": check.drop_lower, "champion_from": champion_from}
        measured_on, trained_on = windows
        if measured_on:
            details["window"] = measured_on
        if trained_on:
            details["champion_window"] = trained_on
        performance = Signal("performance", snapshot=window, value=check.drop, details=details)
    signal = Signal(
        "drift",
        snapshot=window,
        drifted=drifted or labelled,
        details={"window": window, "labelled_fired": labelled}
        | dict(serving or {})
        | measured
        | {"performance": None if performance is None else performance.to_dict()},
    )
    decision, trigger = decide(signal, trigger, cfg.triggers, now)
    if not decision.launch and performance is not None:
        performed, trigger = decide(performance, trigger, cfg.triggers, now)
        if performed.launch:
            decision = performed
    return decision.launch, f"{decision.rule}: {decision.reason}", trigger


def check_note(check: PerformanceCheck, champion: str, window: str, fired: bool) -> str:
    """How the champion fared on a labelled window, for the backtest's notes."""
    return (
        f"{check.metric} of {champion} on {window} ({check.n} labels known): "
        f"{check.current:.3f} vs {check.reference:.3f} at training, drop {check.drop:+.3f} "
        f"({check.confidence:.0%} interval [{check.drop_lower:+.3f}, {check.drop_upper:+.3f}])"
        + (": fired" if fired else "")
    )
