"""Progressive rollout: canary analysis as a pure state machine, promotion and rollback.

    machine     start_rollout / advance / promote_now / roll_back_now: pure, clock passed in
    checks      error_rate, latency_p95, accuracy_drop, loss_increase, prediction_shift
    providers   ReplayProvider (embedded default); prometheus: PrometheusProvider
    controller  RolloutController: lock, persisted state (CAS), aliases, deployment, events
    run         rollout(config_yaml, run_id, report_path): the pipeline step after deploy
    cli         retrain deploy status | advance | promote | rollback

`retrain.config` imports this package's `settings` module, so the names below are loaded on
first use: importing them eagerly would import `retrain.config` back while it is half-built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrain.rollout.checks import CHECKS, METRICS, CheckResult, metric, register_check
    from retrain.rollout.controller import (
        FAULT_POINTS,
        RolloutController,
        TickResult,
        read_rollout,
    )
    from retrain.rollout.lock import LockBusy, StoreLock
    from retrain.rollout.machine import (
        ABORTED,
        PROGRESSING,
        PROMOTED,
        ROLLED_BACK,
        Action,
        Analysis,
        Observations,
        Promote,
        RollBack,
        RolloutState,
        SetTraffic,
        advance,
        is_due,
        promote_now,
        roll_back_now,
        start_rollout,
    )
    from retrain.rollout.providers import (
        PROVIDERS,
        MetricsProvider,
        ObserveRequest,
        ReplayProvider,
        provider_for,
    )
    from retrain.rollout.run import RolloutOutcome, rollout
    from retrain.rollout.settings import CheckSpec, RolloutConfig, default_checks

_HOME: dict[str, str] = {
    **dict.fromkeys(("CHECKS", "METRICS", "CheckResult", "metric", "register_check"), "checks"),
    **dict.fromkeys(
        ("FAULT_POINTS", "RolloutController", "TickResult", "read_rollout"), "controller"
    ),
    **dict.fromkeys(("LockBusy", "StoreLock"), "lock"),
    **dict.fromkeys(
        (
            "ABORTED",
            "PROGRESSING",
            "PROMOTED",
            "ROLLED_BACK",
            "Action",
            "Analysis",
            "Observations",
            "Promote",
            "RollBack",
            "RolloutState",
            "SetTraffic",
            "advance",
            "is_due",
            "promote_now",
            "roll_back_now",
            "start_rollout",
        ),
        "machine",
    ),
    **dict.fromkeys(
        ("PROVIDERS", "MetricsProvider", "ObserveRequest", "ReplayProvider", "provider_for"),
        "providers",
    ),
    **dict.fromkeys(("RolloutOutcome", "rollout"), "run"),
    **dict.fromkeys(("CheckSpec", "RolloutConfig", "default_checks"), "settings"),
}

__all__ = [
    "ABORTED",
    "CHECKS",
    "FAULT_POINTS",
    "METRICS",
    "PROGRESSING",
    "PROMOTED",
    "PROVIDERS",
    "ROLLED_BACK",
    "Action",
    "Analysis",
    "CheckResult",
    "CheckSpec",
    "LockBusy",
    "MetricsProvider",
    "Observations",
    "ObserveRequest",
    "Promote",
    "ReplayProvider",
    "RollBack",
    "RolloutConfig",
    "RolloutController",
    "RolloutOutcome",
    "RolloutState",
    "SetTraffic",
    "StoreLock",
    "TickResult",
    "advance",
    "default_checks",
    "is_due",
    "metric",
    "promote_now",
    "provider_for",
    "read_rollout",
    "register_check",
    "roll_back_now",
    "rollout",
    "start_rollout",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'retrain.rollout' has no attribute {name!r}")
    return getattr(importlib.import_module(f"retrain.rollout.{module}"), name)
