"""Scoring a model on a window the way the backtest does: prequential, labels joined first."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.targets import class_positions, label_key
from retrain.drift import (
    PROFILE_FILE,
    PerformanceCheck,
    ReferenceProfile,
    labelled_window_check,
)
from retrain.errors import NotFound, RetrainError
from retrain.evaluation.metrics import compute_metrics
from retrain.labels.join import join_labels, without_coverage_floor
from retrain.registry import Registry
from retrain.training.model import predict_scores

__all__ = ["labelled_check", "score_model"]


def _labelled_scores(
    cfg: Config, model: Any, events: pd.DataFrame, labels: pd.DataFrame, as_of: Any
) -> tuple[pd.DataFrame, np.ndarray, list[Any] | None]:
    """The window's events that have a label (known at `as_of`; None: every label), the
    model's scores on them, and its classes (None: a regressor); rows of a class the model
    never saw are kept, for the caller to count as it must.

    Raises:
        ValidationError: the label join refuses the window (coverage, leakage).
    """
    labelled = join_labels(cfg, events, labels, as_of=as_of).labelled
    classes = list(getattr(model, "classes_", [])) or None
    if cfg.task != "classification":
        classes = None
    if labelled.empty:
        return labelled, np.empty(0), classes
    return labelled, predict_scores(model, labelled, cfg), classes


def score_model(
    cfg: Config, model: Any, events: pd.DataFrame, labels: pd.DataFrame
) -> tuple[float, int]:
    """The primary metric of `model` on a window's events joined to all their labels (the
    labels that eventually arrive: the measurement, not what any policy knew), and the rows."""
    labelled, scores, classes = _labelled_scores(cfg, model, events, labels, None)
    if labelled.empty:
        return math.nan, 0
    if classes is not None:
        # A class the model never saw is still a row it gets wrong: it scores 0 for it (left
        # out, the model was measured only on the rows it could answer).
        # By `label_key`: text "1" is the model's class 1, not a class it never saw.
        target = labelled[cfg.target].dropna()
        outside = target[class_positions(target, classes) < 0].drop_duplicates().tolist()
        unseen = sorted({label_key(v): v for v in outside}.values(), key=str)
        if unseen:
            scores = np.hstack([scores, np.zeros((len(scores), len(unseen)))])
            classes = classes + unseen
    values = compute_metrics(
        cfg.task,
        labelled[cfg.target],
        scores,
        classes,
        extra=(cfg.primary_metric,),
        positive=cfg.labels.positive_class,
    )
    return values[cfg.primary_metric], len(labelled)


def labelled_check(
    cfg: Config,
    registry: Registry,
    version: str,
    model: Any,
    events: pd.DataFrame,
    labels: pd.DataFrame,
    as_of: Any,
) -> PerformanceCheck | None:
    """The drift engine's labelled signal for model `version` on a window, with only the labels
    known at `as_of` (a window bound, as `parse_window` gives it; None: every label, for
    labels without their own times, whose arrival the caller's choice of window models): its
    primary metric against the one its profile recorded at training.

    None when it cannot be measured: drift off, no profile stored with the model, no labelled
    rows, or a label join that refuses the window (leakage). The window's coverage is not
    judged here: the caller picked a labelled window.
    """
    if not cfg.drift.enabled:
        return None
    try:
        profile = ReferenceProfile.from_json(registry.read_file(version, PROFILE_FILE))
    except NotFound:
        return None
    relaxed = without_coverage_floor(cfg)
    try:
        labelled, scores, classes = _labelled_scores(relaxed, model, events, labels, as_of)
    except RetrainError:
        return None
    if classes is not None:  # the check compares with the profile's classes: a new one is left out
        known = class_positions(labelled[cfg.target], list(classes)) >= 0  # by `label_key`
        labelled, scores = labelled[known], scores[known]
    if labelled.empty:
        return None
    return labelled_window_check(profile, labelled[cfg.target], scores, cfg)
