"""Trigger policy: when to retrain (schedule, drift, performance, new data), and the monitor.

The policy (`decide`) is pure; `TriggerController` keeps its state and the run lease in the
store; `Monitor` turns each new window into signals; `retrain.triggers.schedule` reconciles
the config's cron schedules with KFP recurring runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrain._exports import lazy_exports

if TYPE_CHECKING:
    from retrain.settings.cron import CronSchedule, parse_cron, to_kfp_cron
    from retrain.settings.triggers import KfpSettings, ScheduleSpec, TriggerConfig
    from retrain.triggers.controller import Launcher, LaunchResult, Outcome, TriggerController
    from retrain.triggers.lease import Lease, acquire_lease, read_lease, release_lease, renew_lease
    from retrain.triggers.policy import (
        SIGNAL_KINDS,
        Decision,
        LaunchRecord,
        PolicyState,
        Signal,
        decide,
    )

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "retrain.settings.cron": ("CronSchedule", "parse_cron", "to_kfp_cron"),
            "retrain.settings.triggers": ("KfpSettings", "ScheduleSpec", "TriggerConfig"),
            "controller": ("Launcher", "LaunchResult", "Outcome", "TriggerController"),
            "lease": ("Lease", "acquire_lease", "read_lease", "release_lease", "renew_lease"),
            "policy": (
                "SIGNAL_KINDS",
                "Decision",
                "LaunchRecord",
                "PolicyState",
                "Signal",
                "decide",
            ),
        },
    )

__all__ = [
    "SIGNAL_KINDS",
    "CronSchedule",
    "Decision",
    "KfpSettings",
    "LaunchRecord",
    "LaunchResult",
    "Launcher",
    "Lease",
    "Outcome",
    "PolicyState",
    "ScheduleSpec",
    "Signal",
    "TriggerConfig",
    "TriggerController",
    "acquire_lease",
    "decide",
    "parse_cron",
    "read_lease",
    "release_lease",
    "renew_lease",
    "to_kfp_cron",
]
