"""Scoring for the promotion gates: both models on the same evaluation rows, bootstrapped.

`evaluate_challenger` computes the numbers the gates judge (metrics of both models on the
recent and the history evaluation rows, paired bootstrap intervals of the gain on each, and,
when the forgetting guard weighs a change of regime, an unpaired bootstrap interval of the
champion's decline from history to recent) and hands them to
`retrain.evaluation.decision.decide`, which documents the gates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from retrain.config import Config
from retrain.data.targets import label_key
from retrain.errors import ValidationError
from retrain.evaluation._baseline import baseline_scores, best_constant, usable_record
from retrain.evaluation._blend import BLEND_WEIGHTS
from retrain.evaluation.bootstrap import (
    bootstrap_decline,
    bootstrap_difference,
    bootstrap_gain_blend,
    bootstrap_gain_shift,
)
from retrain.evaluation.decision import (
    NOT_ENOUGH_POSITIVES,
    NOT_ENOUGH_ROWS,
    TARGET_UNIT_METRICS,
    EvaluationResult,
    Gate,
    GateInputs,
    decide,
)
from retrain.evaluation.metrics import (
    GREATER_IS_BETTER,
    compute_metrics,
    confusion,
    is_metric,
    metric_names,
    positive_count,
)
from retrain.training.model import predict_scores

__all__ = ["EvaluationResult", "Gate", "GateInputs", "decide", "evaluate_challenger"]


def evaluate_challenger(
    cfg: Config,
    challenger: Pipeline,
    champion: Pipeline | None,
    recent: pd.DataFrame,
    history: pd.DataFrame | None,
    seed: int,
    *,
    training_target: Mapping[str, Any] | None = None,
    champion_age: float | None = None,
) -> EvaluationResult:
    """Score both models on both evaluation sets, bootstrap each gain, and apply the gates.

    A first model (no `champion`) is compared with a constant prediction from
    `training_target`, what `retrain.evaluation._baseline.target_constant` recorded of the
    target it was trained on; None (a model card from before it was recorded): the constant
    is fitted on the recent rows, and the reason says so. `champion_age`: how many windows
    newer the challenger's training window is than the champion's, for a refresh
    (`evaluation.refresh_after`); None: unknown, no refresh.

    Class probabilities of the two models are aligned on the union of their classes (and any
    label seen in the holdouts), a class a model never saw getting probability 0. An empty
    recent set gives an undecided result ("not enough evaluation rows").

    Raises:
        ValidationError: an unknown or unsuitable `evaluation.metric`, unlabelled holdout rows,
            or a model that cannot score the holdout.
    """
    metric = cfg.primary_metric
    if not is_metric(metric, cfg.task):
        allowed = metric_names(cfg.task, n_classes=2)
        if cfg.task == "classification":
            allowed.append("recall_at_precision_<P> (P in 1-99)")
        raise ValidationError(
            f"evaluation.metric: '{metric}' is not a {cfg.task} metric; choose one of {allowed}"
        )
    ev = cfg.evaluation
    if len(recent) == 0:
        return _no_recent_rows(cfg, champion is None)
    frames = {"recent": recent}
    if history is not None and len(history) > 0:
        frames["history"] = history
    for name, frame in frames.items():
        _check_holdout(frame, cfg, name)

    classes: list[Any] | None = None
    if cfg.task == "classification":
        classes = _class_union(challenger, champion, [f[cfg.target] for f in frames.values()])
        if not is_metric(metric, cfg.task, len(classes)):
            raise ValidationError(
                f"evaluation.metric: {metric} needs a binary problem, found {len(classes)} classes"
            )
        positives = positive_count(recent[cfg.target], classes)
        if positives < ev.min_positives:
            return _first_model_policy(
                cfg, _not_enough_positives(cfg, champion is None, len(recent), positives)
            )

    positive = cfg.labels.positive_class  # the binary metrics' positive class (None: classes[1])
    models = {"challenger": challenger}
    if champion is not None:
        models["champion"] = champion
    scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in models}
    metrics: dict[str, Any] = {m: {} for m in models}
    for model_name, model in models.items():
        for holdout, frame in frames.items():
            s = _scores(model, frame, cfg, classes, f"{model_name} model on the {holdout} holdout")
            scores[model_name][holdout] = s
            metrics[model_name][holdout] = compute_metrics(
                cfg.task, frame[cfg.target], s, classes, extra=(metric,), positive=positive
            )

    def value(model_name: str, holdout: str) -> float | None:
        if model_name not in metrics or holdout not in frames:
            return None
        return float(metrics[model_name][holdout][metric])

    stratify = ev.stratified_bootstrap
    if stratify is None:
        stratify = metric == "average_precision" or metric.startswith("recall_at_precision_")
    # The same resamples, level, seed and stratification for every interval.
    boot: dict[str, Any] = {
        "n": ev.bootstrap_samples,
        "confidence": ev.confidence,
        "seed": seed,
        "stratify": stratify,
        "positive": positive,
    }

    if champion is None:  # the first model is compared with a constant prediction
        training_target = usable_record(classes, training_target)
        scores["baseline"] = {
            "recent": baseline_scores(metric, recent[cfg.target], classes, training_target)
        }
        metrics["baseline"] = {
            "recent": compute_metrics(
                cfg.task,
                recent[cfg.target],
                scores["baseline"]["recent"],
                classes,
                (metric,),
                positive=positive,
            )
        }

    def interval(holdout: str, against: str = "champion") -> tuple[float, float] | None:
        """The paired bootstrap interval of the challenger's gain on one evaluation set."""
        if against not in scores or holdout not in scores[against]:
            return None
        _, lower, upper = bootstrap_difference(
            cfg.task,
            metric,
            frames[holdout][cfg.target],
            scores["challenger"][holdout],
            scores[against][holdout],
            classes,
            **boot,
        )
        return (lower, upper)

    def decline_interval() -> tuple[float, float]:
        """The unpaired bootstrap interval of the champion's decline from history to recent."""
        _, lower, upper = bootstrap_decline(
            cfg.task,
            metric,
            (recent[cfg.target], scores["champion"]["recent"]),
            (frames["history"][cfg.target], scores["champion"]["history"]),
            classes,
            **boot,
        )
        return (lower, upper)

    def two_sets(
        statistic: Callable[..., tuple[float, float, float]], **weights: Any
    ) -> tuple[float, float]:
        """The interval of a statistic of the challenger's recent and history gains."""
        _, lower, upper = statistic(
            cfg.task,
            metric,
            (recent[cfg.target], scores["challenger"]["recent"], scores["champion"]["recent"]),
            (
                frames["history"][cfg.target],
                scores["challenger"]["history"],
                scores["champion"]["history"],
            ),
            classes,
            **weights,
            **boot,
        )
        return (lower, upper)

    inputs = GateInputs(
        metric=metric,
        greater_is_better=GREATER_IS_BETTER[metric],
        challenger_recent=float(metrics["challenger"]["recent"][metric]),
        champion_recent=value("champion", "recent"),
        recent_ci=interval("recent"),
        challenger_history=value("challenger", "history"),
        champion_history=value("champion", "history"),
        history_ci=interval("history"),
        floor=ev.floor,
        max_recent_regression=ev.max_recent_regression,
        max_history_loss=ev.max_history_loss,
        accept_forgetting_on_change=ev.accept_forgetting_on_change,
        confidence=ev.confidence,
        min_improvement=ev.min_improvement,
        recent_rows=len(recent),
        min_rows=ev.min_rows,
        max_detectable_gain=ev.max_detectable_gain,
        constant_history=_constant_value(cfg, metric, frames.get("history")),
        baseline_recent=value("baseline", "recent"),
        baseline_ci=interval("recent", against="baseline"),
        baseline_fitted_on_recent=champion is None and training_target is None,
        champion_age=champion_age,
        refresh_after=ev.refresh_after,
        refresh_evidence=ev.refresh_evidence,
        improvement_evidence=ev.improvement_evidence,
    )
    result = decide(inputs)
    weighed = result.comparison["champion_decline"] is not None
    awaits = bool(result.comparison.get("refresh_needs_shift"))
    blends = bool(result.comparison.get("blend_needs_interval"))
    if weighed or awaits or blends:
        # The guard weighed a change of regime (a history loss beyond the budget, with the
        # exception on), a refresh waits for a shown shift of the gain, or the blended gain is
        # all the improvement gate waits for: only then is that interval worth its bootstrap.
        result = decide(
            dataclasses.replace(
                inputs,
                decline_ci=decline_interval() if weighed else None,
                shift_ci=two_sets(bootstrap_gain_shift) if awaits or blends else None,
                blend_ci=two_sets(bootstrap_gain_blend, weights=BLEND_WEIGHTS) if blends else None,
            )
        )
    comparison = dict(result.comparison)
    comparison["rows"] = {name: len(frame) for name, frame in frames.items()}
    comparison["bootstrap_samples"] = ev.bootstrap_samples
    comparison["stratified_bootstrap"] = bool(stratify)
    if classes is not None:
        comparison["recent_positives"] = positive_count(recent[cfg.target], classes)
    matrix: dict[str, Any] | None = None
    if classes is not None:
        comparison["classes"] = [_jsonable(c) for c in classes]
        predicted = np.asarray(classes, dtype=object)[scores["challenger"]["recent"].argmax(axis=1)]
        matrix = {
            "categories": [str(c) for c in classes],
            "matrix": confusion(recent[cfg.target], predicted, classes),
        }
    metrics.pop("baseline", None)  # recorded in the comparison
    result = dataclasses.replace(result, metrics=metrics, comparison=comparison, confusion=matrix)
    return _first_model_policy(cfg, result)


def _first_model_policy(cfg: Config, result: EvaluationResult) -> EvaluationResult:
    """An undecided first model, blessed only if `evaluation.deploy_undecided_first_model`
    says so, and then recorded as not evaluated; never past a configured floor its point
    estimate missed (the floor is judged on the point estimate, not on an interval)."""
    comparison = {**result.comparison, "evaluated": not result.undecided}
    first = bool(comparison.get("first_model"))
    floor_met = cfg.evaluation.floor is None or any(
        g.name == "floor" and g.passed for g in result.gates
    )
    deploy = cfg.evaluation.deploy_undecided_first_model
    if not (first and result.undecided and floor_met and deploy):
        return dataclasses.replace(result, comparison=comparison)
    reason = (
        f"{result.reason}; not evaluated, deployed as the first model because "
        "evaluation.deploy_undecided_first_model is on"
    )
    comparison["outcome"] = "blessed"
    return dataclasses.replace(
        result, blessed=True, undecided=False, reason=reason, comparison=comparison
    )


def _constant_value(cfg: Config, metric: str, frame: pd.DataFrame | None) -> float | None:
    """A metric in the target's units for the best constant prediction on `frame` (the
    median for mae, the mean for rmse)."""
    if frame is None or metric not in TARGET_UNIT_METRICS:
        return None
    y = frame[cfg.target].to_numpy(dtype=float)
    constant = np.full(len(y), best_constant(metric, y))
    return compute_metrics("regression", y, constant, None, (metric,))[metric]


def _no_recent_rows(cfg: Config, first_model: bool) -> EvaluationResult:
    """The verdict when there is not a single recent evaluation row to score."""
    ev = cfg.evaluation
    comparison: dict[str, Any] = {
        "metric": cfg.primary_metric,
        "first_model": first_model,
        "recent_rows": 0,
        "min_rows": ev.min_rows,
        "rows": {"recent": 0},
    }
    gate = Gate("evaluation_rows", False, "no recent evaluation rows to score", decided=False)
    reason = f"no recent evaluation rows to score: undecided, {NOT_ENOUGH_ROWS}"
    result = EvaluationResult(
        False, reason, [gate], {}, {**comparison, "outcome": "undecided"}, undecided=True
    )
    return _first_model_policy(cfg, result)


def _not_enough_positives(
    cfg: Config, first_model: bool, rows: int, positives: int
) -> EvaluationResult:
    """The verdict when the recent rows hold fewer of the rarer class than min_positives."""
    ev = cfg.evaluation
    detail = (
        f"{positives} label(s) of the rarer class in {rows} recent evaluation rows, fewer than "
        f"evaluation.min_positives {ev.min_positives}"
    )
    comparison: dict[str, Any] = {
        "metric": cfg.primary_metric,
        "first_model": first_model,
        "recent_rows": rows,
        "recent_positives": positives,
        "min_positives": ev.min_positives,
        "rows": {"recent": rows},
        "outcome": "undecided",
    }
    gate = Gate("evaluation_positives", False, detail, decided=False)
    reason = f"{detail}: undecided, {NOT_ENOUGH_POSITIVES}"
    return EvaluationResult(False, reason, [gate], {}, comparison, undecided=True)


def _check_holdout(frame: pd.DataFrame, cfg: Config, name: str) -> None:
    problems = [f"missing column '{c}'" for c in cfg.data.features if c not in frame.columns]
    if cfg.target not in frame.columns:
        problems.append(f"missing target column '{cfg.target}'")
    elif frame[cfg.target].isna().any():
        problems.append(f"{int(frame[cfg.target].isna().sum())} row(s) have no '{cfg.target}'")
    if len(frame) == 0:
        problems.append("no rows")
    if problems:
        raise ValidationError(f"the {name} holdout cannot be evaluated", problems)


def _class_union(
    challenger: Pipeline, champion: Pipeline | None, labels: list[pd.Series]
) -> list[Any]:
    classes = list(challenger.classes_)
    known = {label_key(c) for c in classes}
    if champion is not None:
        # A champion that learned "1" as text and a challenger that learned the number 1
        # (the label source changed type) have the same class, not two.
        classes += [c for c in champion.classes_ if label_key(c) not in known]
        known = {label_key(c) for c in classes}
    extra: dict[Any, Any] = {}
    for y in labels:
        for v in pd.unique(y):
            if label_key(v) not in known:
                extra.setdefault(label_key(v), v)  # "1" and "1.0" of one class: one column
    return classes + sorted(extra.values(), key=str)


def _scores(
    model: Pipeline, frame: pd.DataFrame, cfg: Config, classes: list[Any] | None, what: str
) -> np.ndarray:
    try:
        raw = predict_scores(model, frame, cfg)
    except ValidationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValidationError(f"the {what} could not be scored: {err}") from None
    if classes is None:
        return raw
    out = np.zeros((len(frame), len(classes)))
    column = _columns_by_label(classes, what)
    at = [column[label_key(c)] for c in model.classes_]
    if len(set(at)) != len(at):
        raise ValidationError(
            f"the {what} learned one label as two classes ({list(model.classes_)!r}): its"
            " training labels wrote one label two ways; write each label one way in the source"
        )
    out[:, at] = raw
    return out


def _columns_by_label(classes: list[Any], what: str) -> dict[tuple[str, Any], int]:
    """Each class's column by `label_key`; two classes of one label are refused, not merged."""
    column: dict[tuple[str, Any], int] = {}
    for j, c in enumerate(classes):
        if column.setdefault(label_key(c), j) != j:
            raise ValidationError(
                f"scoring the {what}: the classes {classes[column[label_key(c)]]!r} and {c!r}"
                " are one label written two ways; write each label one way in the source"
            )
    return column


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
