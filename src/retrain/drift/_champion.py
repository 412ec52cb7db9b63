"""The drift engine at the two steps that use it: train (build the profile) and ingest
(compare the window with the champion's profile). The I/O lives here, around the pure core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.drift._detect import detect_drift
from retrain.drift._performance import permutation_importance
from retrain.drift._profile import PROFILE_FILE, ReferenceProfile, build_profile
from retrain.drift._report import DriftReport
from retrain.errors import NotFound, RetrainError
from retrain.evaluation.metrics import GREATER_IS_BETTER, compute_metrics
from retrain.registry import Registry
from retrain.storage import Storage
from retrain.training.artifact import load_registered_model
from retrain.training.model import feature_frame, predict_scores

__all__ = ["ChampionDrift", "champion_drift", "profile_for_model"]


def profile_for_model(
    cfg: Config,
    model: Any,
    reference: pd.DataFrame,
    holdout: pd.DataFrame | None,
    seen: pd.DataFrame | None = None,
) -> ReferenceProfile:
    """The reference profile a training run stores with its model.

    Features are profiled on `reference`, the rows later windows are compared with; `seen`,
    the rows the model trained on when they differ, gives identifier features and ingest's
    value reference (`build_profile`). The model's scores, metrics and permutation importances
    are measured on `holdout` (rows it did not train on, with the target), since scores on
    training rows are overconfident.
    """
    if holdout is None or len(holdout) == 0 or cfg.target not in holdout:
        return build_profile(reference, cfg, seen=seen)
    scores = predict_scores(model, holdout, cfg)
    classes = list(model.classes_) if cfg.task == "classification" else None
    importances = None
    if cfg.drift.importance_repeats > 0:
        importances = _importances(cfg, model, holdout, classes)
    return build_profile(
        reference,
        cfg,
        scores=scores,
        labels=holdout[cfg.target],
        classes=classes,
        importances=importances,
        seen=seen,
    )


def _importances(
    cfg: Config, model: Any, holdout: pd.DataFrame, classes: list[Any] | None
) -> dict[str, float] | None:
    rows = holdout[holdout[cfg.target].notna()]
    if len(rows) > cfg.drift.importance_rows:
        rows = rows.sample(n=cfg.drift.importance_rows, random_state=cfg.seed)
    if len(rows) < 2:
        return None
    y = rows[cfg.target].reset_index(drop=True)
    metric = cfg.primary_metric
    sign = 1.0 if GREATER_IS_BETTER.get(metric, True) else -1.0

    def predict(X: pd.DataFrame) -> np.ndarray:
        return predict_scores(model, X, cfg)

    def score(scores: np.ndarray) -> float:
        positive = cfg.labels.positive_class
        return sign * compute_metrics(cfg.task, y, scores, classes, (metric,), positive)[metric]

    X = feature_frame(rows, cfg)
    repeats = cfg.drift.importance_repeats
    shares = permutation_importance(predict, X, score, repeats=repeats, seed=cfg.seed)
    return shares if any(v > 0 for v in shares.values()) else None


@dataclass(frozen=True)
class ChampionDrift:
    """The window against the champion's profile, or why there is no comparison."""

    champion: str | None
    report: DriftReport | None
    note: str = ""

    def summary(self) -> str:
        """One line for the step summary."""
        if self.report is None:
            return f"drift not checked ({self.note})"
        return self.report.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the champion, the note, and the report's fields (if any)."""
        out: dict[str, Any] = {"champion": self.champion, "note": self.note or None}
        if self.report is not None:
            out.update(self.report.to_dict())
        else:
            out["drift_detected"] = None
            out["summary"] = self.summary()
        return out

    def markdown(self) -> str:
        """The drift section of a step report."""
        title = f"Drift vs champion `{self.champion}`" if self.champion else "Drift"
        if self.report is None:
            return f"## {title}\n\nNot checked: {self.note}.\n"
        body = self.report.markdown(title=title)
        return body + (f"\nNote: {self.note}.\n" if self.note else "")


def champion_drift(cfg: Config, store: Storage, current_df: pd.DataFrame) -> ChampionDrift:
    """Compare a window with the champion's reference profile. Never raises.

    Drift informs; triggers decide. A missing champion, a champion registered without a
    profile, or any error while comparing becomes a note in the result, not a failed step.
    With `drift.score_champion`, the champion scores the window, which adds prediction drift
    and the label-free accuracy estimate.
    """
    if not cfg.drift.enabled:
        return ChampionDrift(None, None, "drift detection is off (drift.enabled: false)")
    version = None
    try:
        registry = Registry(store, cfg.name)
        version = registry.get_alias("champion").version
        if version is None:
            return ChampionDrift(None, None, "no champion yet, so no reference to compare with")
        try:
            text = registry.read_file(version, PROFILE_FILE)
        except NotFound:
            return ChampionDrift(
                version, None, f"the champion was registered without a {PROFILE_FILE}"
            )
        profile = ReferenceProfile.from_json(text)
        scores, note = None, ""
        if cfg.drift.score_champion:
            try:
                scores = _champion_scores(cfg, registry, version, current_df)
            except RetrainError as err:
                note = f"the champion could not score the window ({err})"
        report = detect_drift(profile, current_df, cfg, scores=scores)
        return ChampionDrift(version, report, note)
    except Exception as err:  # whatever went wrong, ingest's own checks stand
        return ChampionDrift(version, None, f"comparison failed: {type(err).__name__}: {err}")


def _champion_scores(cfg: Config, registry: Registry, version: str, df: pd.DataFrame) -> np.ndarray:
    model = load_registered_model(registry, version)
    return predict_scores(model, df, cfg)
