"""Progressive rollout: canary analysis as a pure state machine, promotion and rollback.

    machine     start_rollout / advance / promote_now / roll_back_now: pure, clock passed in
    checks      error_rate, latency_p95, accuracy_drop, loss_increase, prediction_shift
    ranking     average_precision_drop, recall_at_precision_<P>_drop (rare events, paired)
    providers   ReplayProvider (embedded default), PrometheusProvider, provider_for
    population  which labelled windows a replay step draws from (replay.windows: auto)
    controller  RolloutController: lock, persisted state (CAS), aliases, deployment, events
    observe     ObserveRequest and the MetricsProvider protocol every provider implements

The pipeline step after deploy is `retrain.steps.rollout`; the `retrain deploy` commands are
in `retrain.cli`; the `rollout:` config section is `retrain.settings.rollout`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrain._exports import lazy_exports

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
        INCONCLUSIVE,
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
    from retrain.rollout.observe import MetricsProvider, ObserveRequest
    from retrain.rollout.prometheus import PrometheusProvider
    from retrain.rollout.providers import PROVIDERS, ReplayProvider, provider_for

# Registers the ranking checks (average_precision_drop, recall_at_precision_<P>_drop) in the
# check registry, as importing the package always did: `check_for` finds them however the
# package is first imported.
from retrain.rollout import ranking as _ranking  # noqa: F401

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "checks": ("CHECKS", "METRICS", "CheckResult", "metric", "register_check"),
            "controller": ("FAULT_POINTS", "RolloutController", "TickResult", "read_rollout"),
            "lock": ("LockBusy", "StoreLock"),
            "machine": (
                "ABORTED",
                "INCONCLUSIVE",
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
            "observe": ("MetricsProvider", "ObserveRequest"),
            "prometheus": ("PrometheusProvider",),
            "providers": ("PROVIDERS", "ReplayProvider", "provider_for"),
        },
    )

__all__ = [
    "ABORTED",
    "CHECKS",
    "FAULT_POINTS",
    "INCONCLUSIVE",
    "METRICS",
    "PROGRESSING",
    "PROMOTED",
    "PROVIDERS",
    "ROLLED_BACK",
    "Action",
    "Analysis",
    "CheckResult",
    "LockBusy",
    "MetricsProvider",
    "Observations",
    "ObserveRequest",
    "PrometheusProvider",
    "Promote",
    "ReplayProvider",
    "RollBack",
    "RolloutController",
    "RolloutState",
    "SetTraffic",
    "StoreLock",
    "TickResult",
    "advance",
    "is_due",
    "metric",
    "promote_now",
    "provider_for",
    "read_rollout",
    "register_check",
    "roll_back_now",
    "start_rollout",
]
