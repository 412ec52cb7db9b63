"""The engine's labelled signal: the primary metric on labelled rows against the reference.

One definition for every caller that judges a champion on labels (the drift engine on the
window it checks, the backtest's drift policy and the monitor on the newest labelled window),
so all use the same reference, interval and threshold.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.data.targets import class_positions, label_key
from retrain.drift._performance import PerformanceCheck, check_performance
from retrain.drift._profile import ReferenceProfile
from retrain.settings.drift import DriftConfig
from retrain.settings.evaluation import performance_drop_threshold

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "drop_fired",
    "drop_threshold",
    "labelled_window_check",
    "performance_against_profile",
    "performance_fired",
]


def performance_against_profile(
    profile: ReferenceProfile,
    labels: Any,
    scores: Any,
    *,
    primary: str | None,
    dc: DriftConfig,
    seed: int,
    positive: Any = None,
) -> PerformanceCheck | None:
    """`check_performance` against the metric the profile recorded when the model was trained
    (on its evaluation rows): `primary` if the profile has it, else the profile's own metric,
    with that metric's recorded sampling error widening the drop's interval. `labels` are
    aligned with the rows `scores` scored (missing where none is known yet); rows labelled
    with a class the model never saw are left out: it has no score for them.

    Returns None when the profile has no finite reference for that metric, when that reference
    judged another positive class than `positive` (a rare-event metric, after
    ``labels.positive_class`` changed), or when the labelled rows cannot measure it (fewer
    than two, or one class for a ranking metric).
    """
    metric = primary if primary in profile.metrics else profile.metric
    if metric and _judges_another_class(metric, profile, positive):
        return None  # its reference is of the class judged positive when it was trained
    reference = profile.metrics.get(metric) if metric else None
    if not metric or reference is None or not math.isfinite(reference):
        return None
    labels, scores = pd.Series(labels).reset_index(drop=True), np.asarray(scores)
    if profile.task == "classification" and profile.classes and len(labels) == len(scores):
        # A class by `label_key`: text "1" is the model's class 1.
        seen = (labels.isna() | (class_positions(labels, profile.classes) >= 0)).to_numpy()
        labels, scores = labels[seen].reset_index(drop=True), scores[seen]
    # The recorded metric's own noise widens the interval (older profiles: none recorded).
    sd = profile.metric_sd if metric == profile.metric and profile.metric_sd else 0.0
    return check_performance(
        profile.task,
        metric,
        reference,
        labels,
        scores,
        profile.classes,
        confidence=dc.confidence,
        n_boot=dc.bootstrap_samples,
        seed=seed,
        reference_sd=sd,
        positive=positive,
    )


def _judges_another_class(metric: str, profile: ReferenceProfile, positive: Any) -> bool:
    """Whether a rare-event metric's recorded reference judged another positive class than
    `positive` (``labels.positive_class`` changed since the model was trained)."""
    if metric != "average_precision" and not metric.startswith("recall_at_precision_"):
        return False
    classes = profile.classes or []
    if len(classes) != 2:
        return False
    then = classes[1] if profile.positive_class is None else profile.positive_class
    now = classes[1] if positive is None else positive
    return label_key(then) != label_key(now)


def performance_fired(check: PerformanceCheck, dc: DriftConfig) -> bool:
    """Big enough to matter (`max_performance_drop`; for rmse and mae a share of the
    reference), and not explained by sampling noise (the drop's interval lies above zero)."""
    return drop_fired(check.metric, check.reference, check.drop, check.drop_lower, dc)


def drop_fired(
    metric: str, reference: float | None, drop: float, drop_lower: float | None, dc: DriftConfig
) -> bool:
    """`performance_fired` on a check's fields (as a report or a signal carries them)."""
    threshold = performance_drop_threshold(metric, dc.max_performance_drop, reference)
    return drop > threshold and drop_lower is not None and drop_lower > 0.0


def drop_threshold(check: PerformanceCheck, dc: DriftConfig) -> float:
    """`max_performance_drop` in the check's metric units."""
    return performance_drop_threshold(check.metric, dc.max_performance_drop, check.reference)


def labelled_window_check(
    profile: ReferenceProfile, labels: Any, scores: Any, cfg: Config
) -> PerformanceCheck | None:
    """`performance_against_profile` with the config's primary metric, drift settings and
    seed: the labelled signal the backtest's drift policy and the monitor both measure on the
    newest labelled window (and the drift engine on the window it checks)."""
    return performance_against_profile(
        profile,
        labels,
        scores,
        primary=cfg.primary_metric,
        dc=cfg.drift,
        seed=cfg.seed,
        positive=cfg.labels.positive_class,
    )
