"""Scoring a model on a window the way the backtest does: prequential, labels joined first."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.evaluation.metrics import compute_metrics
from retrain.labels.join import join_labels
from retrain.training.model import predict_scores

__all__ = ["score_model"]


def score_model(
    cfg: Config, model: Any, events: pd.DataFrame, labels: pd.DataFrame
) -> tuple[float, int]:
    """The primary metric of `model` on a window's events joined to their labels, and the rows."""
    labelled = join_labels(cfg, events, labels).labelled
    if labelled.empty:
        return math.nan, 0
    scores = predict_scores(model, labelled, cfg)
    classes = list(getattr(model, "classes_", [])) or None
    if cfg.task == "classification" and classes is not None:
        known = labelled[cfg.target].isin(classes).to_numpy()
        labelled, scores = labelled[known], scores[known]  # a class never seen cannot be scored
    values = compute_metrics(
        cfg.task, labelled[cfg.target], scores, classes, extra=(cfg.primary_metric,)
    )
    return values[cfg.primary_metric], len(labelled)
