"""Continuous learning: update the champion on each window instead of retraining from scratch.

An update continues the champion's estimator on the window's new rows plus a *replay* sample of
history (`continuous.replay_share`, by default the same 80/20 as `training.historical_share`),
drawn by `retrain.training.mix.build_training_set`, which also holds out the same recent and
history sets the evaluation gates use. Without replay, an incremental learner drifts wholly to
the latest concept and forgets the earlier one; replay keeps old patterns in every update.

Two ways to learn more:

- ``partial_fit`` (SGD, MLP, naive Bayes): `continuous.passes` epochs over the update set, in a
  seeded shuffle, with the champion's classes (an update cannot add a class);
- ``warm_start`` (forests, gradient boosting): the ensemble grows by `continuous.grow_by`
  members fitted on the update set; the existing members stay as they are.

Estimator settings matter more here than in a full fit: SGD's default learning-rate schedules
('optimal', 'invscaling') decay with every row ever seen, so a long-lived model stops adapting
(use 'constant' or 'adaptive'); naive Bayes sums its statistics forever and never forgets, so
replay only re-counts history there (set `continuous.replay_share: 0`).

The preprocessing (imputers, scaler, one-hot encoder) is **frozen** at the last full fit. The
estimator's weights are only meaningful in the feature space they were learned in: refitting
the scaler would silently rescale every learned coefficient, and refitting the encoder would
change the number of inputs. Instead, `plan_update` measures how far the new window has moved
in that frozen space (mean shift in the scaler's standard deviations; share of categories the
encoder has never seen) and plans a full fit when it is too far, when the model spec changed,
when the champion has fallen past `evaluation.floor` on the new window (an abrupt concept
change: an update held back by replay cannot catch up), or after `continuous.max_updates`
updates in a row.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, is_classifier
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from retrain.config import Config
from retrain.errors import ValidationError
from retrain.evaluation.metrics import GREATER_IS_BETTER, compute_metrics
from retrain.training.artifact import ModelCard
from retrain.training.mix import TrainingSet, build_training_set
from retrain.training.model import (
    build_estimator,
    feature_frame,
    fit_model,
    predict_scores,
    resolve_estimator,
)

__all__ = [
    "Challenger",
    "ContinuousUpdate",
    "UpdatePlan",
    "continuous_update",
    "plan_update",
    "preprocessing_drift",
    "replay_config",
    "train_or_update",
    "update_method",
    "update_model",
    "updates_since_full_fit",
]

Method = Literal["partial_fit", "warm_start"]

# A random stream of its own (build_training_set uses 1-3), so the shuffle does not move when
# the mix changes.
_STREAM_SHUFFLE = 11


@dataclass(frozen=True)
class ContinuousUpdate:
    """An updated model, the sets it was updated on and held out from, and how it was made."""

    model: Pipeline
    training_set: TrainingSet
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdatePlan:
    """Whether this window updates the champion or trains from scratch, and why."""

    mode: Literal["continuous", "full"]
    reasons: tuple[str, ...] = ()
    parent: str | None = None
    updates_since_full_fit: int = 0
    preprocessing: dict[str, Any] = field(default_factory=dict)
    champion_score: float | None = None  # the primary metric on the new window's labels

    def summary(self) -> str:
        """One line for reports."""
        if self.mode == "continuous":
            return (
                f"continuous update of {self.parent} "
                f"(#{self.updates_since_full_fit + 1} since the last full fit)"
            )
        return "full fit: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class Challenger:
    """What the train step needs from either mode: the model, its sets, its provenance."""

    model: Pipeline
    training_set: TrainingSet
    provenance: dict[str, Any]
    plan: UpdatePlan


def replay_config(cfg: Config) -> Config:
    """`cfg` with the training mix set to the replay settings, for `build_training_set`."""
    c = cfg.continuous
    share = cfg.training.historical_share if c.replay_share is None else c.replay_share
    cap = cfg.training.max_history_rows if c.replay_max_rows is None else c.replay_max_rows
    training = cfg.training.model_copy(update={"historical_share": share, "max_history_rows": cap})
    return cfg.model_copy(update={"training": training})


def update_method(cfg: Config, estimator: BaseEstimator) -> Method:
    """How `estimator` can learn incrementally under `continuous.method`.

    Raises:
        ValidationError: naming `continuous.method` when it cannot. `warm_start` of a linear
            model or an MLP only seeds a fit that converges as a full fit would, so it is not
            offered: use partial_fit (SGD, MLP with solver adam/sgd) or a full fit.
    """
    wanted = cfg.continuous.method
    # available_if hides partial_fit where it does not apply (e.g. MLP with solver 'lbfgs').
    if wanted in ("auto", "partial_fit") and hasattr(estimator, "partial_fit"):
        return "partial_fit"
    if wanted in ("auto", "warm_start") and _growth_param(estimator) is not None:
        return "warm_start"
    name = type(estimator).__name__
    raise ValidationError(
        f"continuous.method: {name} cannot be updated incrementally with method '{wanted}'; "
        "choose an estimator with partial_fit (e.g. MLPClassifier with solver 'adam', "
        "GaussianNB, SGDClassifier) or a tree ensemble with warm_start, or set "
        "continuous.enabled: false"
    )


def updates_since_full_fit(card: ModelCard | None) -> int:
    """Incremental updates between `card`'s model and the last full fit (0 for a full fit)."""
    if card is None:
        return 0
    notes = card.provenance.get("continuous")
    count = notes.get("updates_since_full_fit") if isinstance(notes, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def preprocessing_drift(cfg: Config, model: Pipeline, frame: pd.DataFrame) -> dict[str, Any]:
    """How far `frame` sits from the data the model's frozen preprocessing was fitted on.

    Returns ``numeric_shift`` (per numeric column, the mean after imputation and scaling: the
    shift in the fitted standard deviations) and ``unseen_category_share`` (per categorical
    column, the share of non-null values the one-hot encoder does not know).
    """
    pre, _ = _steps(model)
    feature_frame(frame, cfg, "new data")
    out: dict[str, Any] = {"numeric_shift": {}, "unseen_category_share": {}}
    for name, transformer, columns in getattr(pre, "transformers_", []):
        cols = list(columns) if isinstance(columns, (list, tuple, pd.Index)) else []
        if not cols or len(frame) == 0:
            continue
        if name == "numeric":
            z = np.asarray(transformer.transform(frame[cols]), dtype=float)
            out["numeric_shift"] = {c: float(m) for c, m in zip(cols, z.mean(axis=0), strict=True)}
        elif name == "categorical":
            encoder = transformer.named_steps["onehot"]
            for col, known in zip(cols, encoder.categories_, strict=True):
                values = frame[col].dropna()
                unseen = (~values.isin(list(known))).mean() if len(values) else 0.0
                out["unseen_category_share"][col] = float(unseen)
    return out


def plan_update(
    cfg: Config, champion: Pipeline | None, card: ModelCard | None, new: pd.DataFrame
) -> UpdatePlan:
    """Decide between a continuous update of the champion and a full fit. Pure.

    Raises:
        ValidationError: continuous learning is enabled but `model.estimator` cannot learn
            incrementally (checked even before the first champion exists).
    """
    c = cfg.continuous
    if not c.enabled:
        return UpdatePlan("full", ("continuous.enabled is false",))
    update_method(cfg, build_estimator(cfg).named_steps["estimator"])
    if champion is None or card is None:
        return UpdatePlan("full", ("no champion to update yet",))
    n = updates_since_full_fit(card)
    spec = [
        ("model.estimator", card.estimator, cfg.model.estimator),
        ("model.params", card.params, dict(cfg.model.params)),
        ("data.features", card.features, dict(cfg.data.features)),
        ("task", card.task, cfg.task),
        ("target", card.target, cfg.target),
    ]
    changed = [
        f"{key} changed since champion {card.version}" for key, old, now in spec if old != now
    ]
    if changed:
        return UpdatePlan("full", tuple(changed), card.version, n)

    reasons: list[str] = []
    if c.max_updates is not None and n >= c.max_updates:
        reasons.append(
            f"{n} incremental updates since the last full fit (continuous.max_updates "
            f"{c.max_updates})"
        )
    _, estimator = _steps(champion)
    if is_classifier(estimator) and cfg.target in new.columns:
        unknown = _unknown_classes(new[cfg.target].dropna(), list(estimator.classes_))
        if unknown:
            reasons.append(f"new class(es) {unknown} in '{cfg.target}' (an update cannot add one)")
    drift = preprocessing_drift(cfg, champion, new)
    for col, shift in drift["numeric_shift"].items():
        if abs(shift) > c.max_numeric_shift:
            reasons.append(
                f"'{col}' moved {shift:+.2f} SD from the frozen scaler "
                f"(continuous.max_numeric_shift {c.max_numeric_shift:g})"
            )
    for col, share in drift["unseen_category_share"].items():
        if share > c.max_unseen_category_share:
            reasons.append(
                f"{share:.1%} of '{col}' are categories the frozen encoder has not seen "
                f"(continuous.max_unseen_category_share {c.max_unseen_category_share:g})"
            )
    score = _champion_score(cfg, champion, new) if c.full_fit_below_floor else None
    floor = cfg.evaluation.floor
    if score is not None and floor is not None:
        below = score < floor if GREATER_IS_BETTER[cfg.primary_metric] else score > floor
        if below:
            reasons.append(
                f"the champion's {cfg.primary_metric} on the new window is {score:.3f}, past "
                f"evaluation.floor {floor:g}: an update would start from a model that no "
                "longer works"
            )
    mode: Literal["continuous", "full"] = "full" if reasons else "continuous"
    return UpdatePlan(mode, tuple(reasons), card.version, n, drift, score)


def update_model(
    cfg: Config, model: Pipeline, train: pd.DataFrame, seed: int
) -> tuple[Pipeline, dict[str, Any]]:
    """A copy of `model` updated on `train`; the preprocessing is reused as fitted.

    Returns the updated pipeline and notes for the provenance. `model` is not modified.

    Raises:
        ValidationError: `model` is not a retrain pipeline of `model.estimator`, `train` lacks
            columns or labels or brings a class the model does not know, or the estimator
            refuses the data.
    """
    _, estimator = _steps(model)
    expected = resolve_estimator(cfg.model.estimator)
    if type(estimator) is not expected:
        raise ValidationError(
            f"model.estimator: the model to update holds a {type(estimator).__name__}, the "
            f"config names {cfg.model.estimator}; an update continues the same estimator, "
            "so train a full model first"
        )
    method = update_method(cfg, estimator)
    X = feature_frame(train, cfg, "update data")
    if cfg.target not in train.columns:
        raise ValidationError(f"update data lacks the target column '{cfg.target}'")
    y = train[cfg.target]
    if len(train) == 0:
        raise ValidationError("cannot update on this data: the update set is empty")
    if y.isna().any():
        raise ValidationError(
            f"cannot update on this data: target '{cfg.target}' has {int(y.isna().sum())} "
            "missing value(s)"
        )
    classifier = is_classifier(estimator)
    if classifier:
        known = list(estimator.classes_)
        unknown = _unknown_classes(y, known)
        if unknown:
            raise ValidationError(
                f"target '{cfg.target}': class(es) {unknown} unknown to the model (it knows "
                f"{known}); an incremental update cannot add a class: train a full model"
            )
        present = set(pd.unique(y))
        missing = [k for k in known if k not in present]
        if method == "warm_start" and missing:
            # New ensemble members fitted without a class would disagree on the class columns.
            raise ValidationError(
                f"target '{cfg.target}': class(es) {missing} absent from the update set; "
                "warm_start needs every class in each update (raise continuous.replay_share)"
            )

    updated = copy.deepcopy(model)  # the champion stays untouched
    pre, est = _steps(updated)
    Xt = pre.transform(X)
    y_arr = y.to_numpy()
    notes: dict[str, Any] = {"method": method, "update_rows": len(y_arr)}
    try:
        if method == "partial_fit":
            rng = np.random.default_rng([seed, _STREAM_SHUFFLE])
            extra = {"classes": est.classes_} if classifier else {}
            for _ in range(cfg.continuous.passes):
                order = rng.permutation(len(y_arr))
                est.partial_fit(Xt[order], y_arr[order], **extra)
            notes["passes"] = cfg.continuous.passes
        else:
            param = _growth_param(est)
            assert param is not None  # update_method chose warm_start because there is one
            before = int(est.get_params()[param])
            est.set_params(warm_start=True, **{param: before + cfg.continuous.grow_by})
            est.fit(Xt, y_arr)
            notes["grown"] = {
                "param": param,
                "before": before,
                "after": before + cfg.continuous.grow_by,
            }
    except ValueError as err:
        raise ValidationError(f"updating {cfg.model.estimator} failed: {err}") from None
    return updated, notes


def continuous_update(
    cfg: Config,
    model: Pipeline,
    new: pd.DataFrame,
    history: pd.DataFrame | None,
    seed: int,
    *,
    parent: ModelCard | None = None,
) -> ContinuousUpdate:
    """Update `model` on the new window plus replayed history, holding out what the gates need.

    The update set, the recent holdout and the history holdout come from
    `build_training_set` with the replay share and cap in place of the training mix, so a
    continuous challenger faces exactly the gates a fully retrained one does.

    Args:
        parent: the card of `model` (the champion), for lineage and the update count.

    Raises:
        ValidationError: as `build_training_set` and `update_model`.
    """
    rcfg = replay_config(cfg)
    ts = build_training_set(new, history, rcfg, seed)
    updated, notes = update_model(cfg, model, ts.train, seed)
    provenance = dict(ts.provenance)
    provenance["mode"] = "continuous"
    provenance["continuous"] = {
        "parent": parent.version if parent is not None else None,
        "updates_since_full_fit": updates_since_full_fit(parent) + 1,
        "replay_share": rcfg.training.historical_share,
        "replay_max_rows": rcfg.training.max_history_rows,
        "preprocessing": "frozen at the last full fit",
        "preprocessing_drift": preprocessing_drift(cfg, model, new),
        **notes,
    }
    return ContinuousUpdate(updated, ts, provenance)


def train_or_update(
    cfg: Config,
    new: pd.DataFrame,
    history: pd.DataFrame | None,
    seed: int,
    *,
    champion: Pipeline | None = None,
    champion_card: ModelCard | None = None,
) -> Challenger:
    """The train step's switch: update the champion when `plan_update` says so, else a full fit.

    With `continuous.enabled` false this is exactly `build_training_set` + `fit_model`, with the
    provenance unchanged. Otherwise the provenance also records the mode and the plan's reasons.
    """
    plan = plan_update(cfg, champion, champion_card, new)
    if plan.mode == "continuous" and champion is not None:
        up = continuous_update(cfg, champion, new, history, seed, parent=champion_card)
        return Challenger(
            up.model, up.training_set, {**up.provenance, "plan": _plan_notes(plan)}, plan
        )
    ts = build_training_set(new, history, cfg, seed)
    model = fit_model(cfg, ts.train)
    provenance = dict(ts.provenance)
    if cfg.continuous.enabled:
        provenance.update(mode="full", plan=_plan_notes(plan))
    return Challenger(model, ts, provenance, plan)


def _champion_score(cfg: Config, champion: Pipeline, new: pd.DataFrame) -> float | None:
    """The champion's primary metric on the labelled rows of `new`; None if undefined."""
    if cfg.target not in new.columns:
        return None
    labelled = new.loc[new[cfg.target].notna()]
    _, estimator = _steps(champion)
    classes = list(estimator.classes_) if is_classifier(estimator) else None
    if len(labelled) < 2 or (
        classes is not None and _unknown_classes(labelled[cfg.target], classes)
    ):
        return None
    scores = predict_scores(champion, labelled, cfg)
    value = compute_metrics(cfg.task, labelled[cfg.target], scores, classes).get(cfg.primary_metric)
    return float(value) if value is not None and np.isfinite(value) else None


def _plan_notes(plan: UpdatePlan) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "summary": plan.summary(),
        "reasons": list(plan.reasons),
        "champion_score": plan.champion_score,
    }


def _steps(model: Pipeline) -> tuple[Any, Any]:
    steps = getattr(model, "named_steps", None)
    if (
        not isinstance(model, Pipeline)
        or steps is None
        or not {"preprocess", "estimator"} <= set(steps)
    ):
        raise ValidationError(
            "the model to update is not a retrain pipeline (steps 'preprocess' and 'estimator')"
        )
    return steps["preprocess"], steps["estimator"]


def _growth_param(estimator: BaseEstimator) -> str | None:
    """The parameter that counts ensemble members, when warm_start grows the ensemble."""
    params = estimator.get_params(deep=False)
    if "warm_start" not in params:
        return None
    if "n_estimators" in params:
        return "n_estimators"
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return "max_iter"
    return None


def _unknown_classes(y: pd.Series, known: list[Any]) -> list[Any]:
    return sorted((v for v in pd.unique(y) if v not in known), key=str)
