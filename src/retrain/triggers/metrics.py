"""Prometheus metrics of the monitor, on their own registry (never the process-global one).

Series (every one labelled with ``model``):

- ``retrain_drift_statistic{feature,method}``: the drift statistic of each feature;
- ``retrain_drift_feature_drifted{feature,method}``: 1 if that feature drifted;
- ``retrain_drift_dataset_drifted``: 1 if the window drifted as a whole, as the drift trigger
  counts it (the engine's labelled signal only on a window whose labels reach
  ``labels.min_coverage``);
- ``retrain_drift_share_drifted``: the share of features that drifted;
- ``retrain_performance_drop``: the champion's metric drop on labelled recent data;
- ``retrain_champion_age_windows``: how many windows the checked window starts after the
  newest one the champion was trained on (how stale its data is); no series while that is
  unknown (no champion, or a card that names no window of this source);
- ``retrain_trigger_decisions_total{rule,launch}``: decisions by the rule that decided;
- ``retrain_last_run_timestamp_seconds``: when the monitor last launched a run;
- ``retrain_monitor_last_check_timestamp_seconds``: when it last checked.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from retrain.triggers.controller import Outcome

__all__ = ["MonitorMetrics"]


class MonitorMetrics:
    """The monitor's gauges and counters for one model."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.model = model
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.statistic = Gauge(
            "retrain_drift_statistic",
            "Drift statistic of a feature, latest window vs the champion's reference profile.",
            ["model", "feature", "method"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "retrain_drift_feature_drifted",
            "1 if the feature drifted in the latest window.",
            ["model", "feature", "method"],
            registry=r,
        )
        self.dataset_drifted = Gauge(
            "retrain_drift_dataset_drifted",
            "1 if the latest window drifted as a whole, as the drift trigger counts it.",
            ["model"],
            registry=r,
        )
        self.share_drifted = Gauge(
            "retrain_drift_share_drifted",
            "Share of features that drifted in the latest window.",
            ["model"],
            registry=r,
        )
        self.performance_drop = Gauge(
            "retrain_performance_drop",
            "Drop of the champion's primary metric on labelled recent data (metric units).",
            ["model"],
            registry=r,
        )
        self.champion_age = Gauge(
            "retrain_champion_age_windows",
            "Windows between the newest one the champion trained on and the checked window.",
            ["model"],
            registry=r,
        )
        self.decisions = Counter(
            "retrain_trigger_decisions",
            "Trigger decisions, by the rule that decided and whether a run was launched.",
            ["model", "rule", "launch"],
            registry=r,
        )
        self.last_run = Gauge(
            "retrain_last_run_timestamp_seconds",
            "Unix time of the last run the monitor launched.",
            ["model"],
            registry=r,
        )
        self.last_check = Gauge(
            "retrain_monitor_last_check_timestamp_seconds",
            "Unix time of the monitor's last check.",
            ["model"],
            registry=r,
        )

    def for_model(self, model: str) -> MonitorMetrics:
        """The same series on the same registry, reporting for `model`: one ``/metrics``
        endpoint serves every model a monitor watches."""
        other = copy.copy(self)
        other.model = model
        return other

    def observe_drift(
        self, features: list[tuple[str, str, float, bool]], dataset_drifted: bool, share: float
    ) -> None:
        """Record one window's drift: (feature, method, statistic, drifted) per feature."""
        for name, method, statistic, drifted in features:
            self.statistic.labels(self.model, name, method).set(statistic)
            self.feature_drifted.labels(self.model, name, method).set(1.0 if drifted else 0.0)
        self.dataset_drifted.labels(self.model).set(1.0 if dataset_drifted else 0.0)
        self.share_drifted.labels(self.model).set(share)

    def observe_outcome(self, outcome: Outcome) -> None:
        d = outcome.decision
        self.decisions.labels(self.model, d.rule, "true" if d.launch else "false").inc()
        if d.launch:
            self.last_run.labels(self.model).set(d.at.timestamp())

    def observe_check(
        self,
        unix_time: float,
        performance_drop: float | None = None,
        *,
        champion_age: float | None = None,
    ) -> None:
        self.last_check.labels(self.model).set(unix_time)
        if performance_drop is not None:
            self.performance_drop.labels(self.model).set(performance_drop)
        if champion_age is not None:
            self.champion_age.labels(self.model).set(champion_age)
        else:  # unknown now: no stale value from an earlier champion
            with contextlib.suppress(KeyError):
                self.champion_age.remove(self.model)

    def serve(self, port: int, addr: str = "127.0.0.1") -> tuple[Any, Any]:
        """Serve ``/metrics`` on addr:port in a daemon thread; returns (server, thread)."""
        return start_http_server(port, addr=addr, registry=self.registry)
