"""Continuous learning: update the champion on each window instead of retraining from scratch.

An update continues the champion's estimator on the window's new rows plus a *replay* sample of
history (`continuous.replay_share`, by default the same 80/20 as `training.historical_share`),
drawn by `retrain.training.mix.build_training_set`, which also holds out the same recent and
history sets the evaluation gates use. Without replay, an incremental learner drifts wholly to
the latest concept and forgets the earlier one; replay keeps old patterns in every update.

How an estimator learns from a window is fixed per class in `UPDATE_STRATEGIES`, with the
reason, and recorded in the plan, the provenance and so the model card:

- ``partial_fit`` (SGD, MLP with solver 'adam' or 'sgd', Gaussian naive Bayes):
  `continuous.passes` epochs over the update set, in a seeded shuffle, with the champion's
  classes (an update cannot add a class);
- ``add_trees`` (random forests, extra trees): the forest grows by `continuous.grow_by` trees
  fitted on the update set (``warm_start``); the existing trees stay as they are. Trees of a
  forest are fitted independently, so new trees on new data are valid members. The number
  recorded is read from the fitted forest. (With ``oob_score=True`` the out-of-bag score after
  an update mixes old trees with rows they never saw; the gates do not use it);
- ``refit`` (everything else, gradient boosting included): no valid incremental path, so every
  window is a full refit, preprocessing included, on the replay mix, reported as such.
  scikit-learn documents histogram gradient boosting's ``warm_start`` as valid on the same
  data only (the bin thresholds are fixed at the first fit); a linear model's ``warm_start``
  only seeds a solver that converges to the optimum of the rows it is given.

Other scikit-learn estimators with ``partial_fit`` do not fit this pipeline: multinomial,
complement and categorical naive Bayes need non-negative inputs, which the standard scaler
does not give; the perceptron and passive-aggressive classifiers have no ``predict_proba``.
A class missing from the table, once trusted for loading, falls back to ``refit``.

Estimator settings matter more here than in a full fit: SGD's default learning-rate schedules
('optimal', 'invscaling') decay with every row ever seen, so a long-lived model stops adapting
(use 'constant' or 'adaptive'); naive Bayes sums its statistics forever and never forgets, so
replay only re-counts history there (set `continuous.replay_share: 0`).

In an incremental update (``partial_fit``, ``add_trees``) the preprocessing (imputers,
scaler, one-hot encoder) is **frozen** at the last full fit. The estimator's weights are only
meaningful in the feature space they were learned in: refitting the scaler would silently
rescale every learned coefficient, and refitting the encoder would change the number of
inputs. Instead, `plan_update` measures how far the new window has moved in that frozen space
(mean shift in the scaler's standard deviations; share of categories the encoder has never
seen) and plans a full fit when it is too far, when the model spec changed, when the champion
has fallen past `evaluation.floor` on the new window (an abrupt concept change: an update held
back by replay cannot catch up), or after `continuous.max_updates` updates in a row (10 by
default, so a forest's size stays bounded).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from retrain.config import Config
from retrain.continuous.strategies import (
    UpdateStrategy,
    model_size,
    pipeline_parts,
    update_strategy,
)
from retrain.data.targets import class_positions
from retrain.errors import ValidationError
from retrain.evaluation.metrics import GREATER_IS_BETTER, compute_metrics
from retrain.training import encoding_warnings, refit_reason, release_unused_memory
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
    "update_model",
    "updates_since_full_fit",
]

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
    """Whether this window updates the champion or trains from scratch, and why.

    `strategy` is the estimator's way of learning from a window; with ``refit`` the plan is
    always a full fit, on the replay mix.
    """

    mode: Literal["continuous", "full"]
    reasons: tuple[str, ...] = ()
    parent: str | None = None
    updates_since_full_fit: int = 0
    preprocessing: dict[str, Any] = field(default_factory=dict)
    champion_score: float | None = None  # the primary metric on the new window's labels
    strategy: UpdateStrategy | None = None

    def summary(self) -> str:
        """One line for reports."""
        if self.mode == "continuous":
            how = f" by {self.strategy.method}" if self.strategy is not None else ""
            return (
                f"continuous update of {self.parent}{how} "
                f"(#{self.updates_since_full_fit + 1} since the last full fit)"
            )
        if self.strategy is not None and self.strategy.method == "refit":
            return "; ".join(self.reasons)  # the reason already says "full refit"
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
    pre, _ = pipeline_parts(model)
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

    An estimator whose strategy is ``refit`` always gets a full fit, whose reason says so.

    Raises:
        ValidationError: `continuous.method` asks for a method `model.estimator` has no valid
            use of (checked even before the first champion exists).
    """
    c = cfg.continuous
    if not c.enabled:
        return UpdatePlan("full", ("continuous.enabled is false",))
    strategy = update_strategy(cfg, build_estimator(cfg).named_steps["estimator"])
    parent = card.version if card is not None else None
    n = updates_since_full_fit(card)
    if strategy.method == "refit":
        return UpdatePlan("full", (strategy.reason,), parent, n, strategy=strategy)
    if champion is None or card is None:
        return UpdatePlan("full", ("no champion to update yet",), strategy=strategy)
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
        return UpdatePlan("full", tuple(changed), card.version, n, strategy=strategy)

    reasons: list[str] = []
    if (frozen := refit_reason(champion)) is not None:
        reasons.append(frozen)
    if n >= c.max_updates:
        reasons.append(
            f"{n} incremental updates since the last full fit (continuous.max_updates "
            f"{c.max_updates})"
        )
    _, estimator = pipeline_parts(champion)
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
    return UpdatePlan(mode, tuple(reasons), card.version, n, drift, score, strategy)


def update_model(
    cfg: Config, model: Pipeline, train: pd.DataFrame, seed: int
) -> tuple[Pipeline, dict[str, Any]]:
    """A copy of `model` updated on `train`; the preprocessing is reused as fitted.

    Returns the updated pipeline and notes for the provenance: the method and why, and for a
    forest its size before and after, read from the fitted models. `model` is not modified.

    Raises:
        ValidationError: `model` is not a retrain pipeline of `model.estimator`, the estimator
            has no valid incremental update (its strategy is ``refit``: `train_or_update`
            refits it instead), `train` lacks columns or labels or brings a class the model
            does not know, or the estimator refuses the data.
    """
    _, estimator = pipeline_parts(model)
    expected = resolve_estimator(cfg.model.estimator)
    if type(estimator) is not expected:
        raise ValidationError(
            f"model.estimator: the model to update holds a {type(estimator).__name__}, the "
            f"config names {cfg.model.estimator}; an update continues the same estimator, "
            "so train a full model first"
        )
    strategy = update_strategy(cfg, estimator)
    if strategy.method == "refit":
        raise ValidationError(
            f"cannot update {type(estimator).__name__} incrementally: {strategy.reason}; "
            "train_or_update refits it instead"
        )
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
        known = np.asarray(estimator.classes_).tolist()  # plain values, for the messages too
        unknown = _unknown_classes(y, known)
        if unknown:
            raise ValidationError(
                f"target '{cfg.target}': class(es) {unknown} unknown to the model (it knows "
                f"{known}); an incremental update cannot add a class: train a full model"
            )
        # Each label as the model's own class value (by `label_key`: text "1" is the class 1),
        # as the estimator compares them.
        positions = class_positions(y, known)
        y = pd.Series(np.asarray(estimator.classes_)[positions], index=y.index)
        present = set(positions.tolist())
        missing = [k for j, k in enumerate(known) if j not in present]
        if strategy.method == "add_trees" and missing:
            # New trees fitted without a class would disagree with the old on the class columns.
            raise ValidationError(
                f"target '{cfg.target}': class(es) {missing} absent from the update set; "
                "add_trees needs every class in each update (raise continuous.replay_share)"
            )

    updated = copy.deepcopy(model)  # the champion stays untouched
    pre, est = pipeline_parts(updated)
    Xt = pre.transform(X)
    y_arr = y.to_numpy()
    notes: dict[str, Any] = {
        "method": strategy.method,
        "reason": strategy.reason,
        "update_rows": len(y_arr),
    }
    try:
        if strategy.method == "partial_fit":
            rng = np.random.default_rng([seed, _STREAM_SHUFFLE])
            extra = {"classes": est.classes_} if classifier else {}
            for _ in range(cfg.continuous.passes):
                order = rng.permutation(len(y_arr))
                est.partial_fit(Xt[order], y_arr[order], **extra)
            notes["passes"] = cfg.continuous.passes
        else:
            before = model_size(model)
            # warm_start fits only the trees beyond those the forest holds.
            warm = est.get_params()["warm_start"]
            est.set_params(
                warm_start=True, n_estimators=len(est.estimators_) + cfg.continuous.grow_by
            )
            est.fit(Xt, y_arr)
            est.set_params(warm_start=warm)  # a later fit of this model starts afresh
            after = model_size(updated)
            assert before is not None and after is not None  # forests have estimators_
            notes["size"] = {
                "unit": after["unit"],
                "before": before["count"],
                "after": after["count"],
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
    size = notes.pop("size", None)
    if size is not None:
        provenance["size"] = size  # where a full fit records it too
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
    provenance unchanged. Otherwise the provenance also records the mode, the plan's method
    and reasons, and an ensemble's size before and after (read from the fitted models). An
    estimator whose strategy is ``refit`` is fitted on the replay mix.
    """
    plan = plan_update(cfg, champion, champion_card, new)
    if plan.mode == "continuous" and champion is not None:
        up = continuous_update(cfg, champion, new, history, seed, parent=champion_card)
        return Challenger(
            up.model, up.training_set, {**up.provenance, "plan": _plan_notes(plan)}, plan
        )
    refit = plan.strategy is not None and plan.strategy.method == "refit"
    ts = build_training_set(new, history, replay_config(cfg) if refit else cfg, seed)
    # The fit is the step's peak: let history go first (freed if the caller kept no reference)
    # and return the memory the read and the mix freed.
    del history
    release_unused_memory()
    model = fit_model(cfg, ts.train, ts.sample_weight)
    provenance = dict(ts.provenance)
    if warnings := encoding_warnings(cfg, ts.train):
        provenance["encoding_warnings"] = warnings
    if cfg.continuous.enabled:
        provenance.update(mode="full", plan=_plan_notes(plan))
        after = model_size(model)
        if after is not None:
            before = model_size(champion) if champion is not None else None
            provenance["size"] = {
                "unit": after["unit"],
                "before": before["count"] if before and before["unit"] == after["unit"] else None,
                "after": after["count"],
            }
    return Challenger(model, ts, provenance, plan)


def _champion_score(cfg: Config, champion: Pipeline, new: pd.DataFrame) -> float | None:
    """The champion's primary metric on the labelled rows of `new`; None if undefined."""
    if cfg.target not in new.columns:
        return None
    labelled = new.loc[new[cfg.target].notna()]
    _, estimator = pipeline_parts(champion)
    classes = list(estimator.classes_) if is_classifier(estimator) else None
    if len(labelled) < 2 or (
        classes is not None and _unknown_classes(labelled[cfg.target], classes)
    ):
        return None
    scores = predict_scores(champion, labelled, cfg)
    metric = cfg.primary_metric
    positive = cfg.labels.positive_class
    value = compute_metrics(
        cfg.task, labelled[cfg.target], scores, classes, (metric,), positive=positive
    ).get(metric)
    return float(value) if value is not None and np.isfinite(value) else None


def _plan_notes(plan: UpdatePlan) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "summary": plan.summary(),
        "reasons": list(plan.reasons),
        "champion_score": plan.champion_score,
        "method": plan.strategy.method if plan.strategy is not None else None,
        "method_reason": plan.strategy.reason if plan.strategy is not None else None,
    }


def _unknown_classes(y: pd.Series, known: list[Any]) -> list[Any]:
    """The labels of `y` that are none of the `known` classes by `label_key`."""
    present = pd.Series(y).dropna()
    outside = present[class_positions(present, known) < 0]
    return sorted(pd.unique(outside).tolist(), key=str)
