"""Promotion gates: should the challenger replace the champion?

`decide` is a pure function of a few numbers, so every branch can be stepped through in tests;
`evaluate_challenger` computes those numbers (metrics of both models on the recent and the
history holdout, and a paired bootstrap interval of the gain) and calls it.

Gates, all on the primary metric, with gains oriented so that positive is better:

- **floor**: the challenger's score on recent data reaches the configured absolute floor;
- **recent non-regression**: the gain over the champion on recent data, and the upper bound of
  its confidence interval, are both at least ``-max_recent_regression``;
- **recent improvement**: the lower bound of that interval (the point gain when there is no
  interval) is strictly above ``min_improvement``, so an equal challenger is rejected;
- **history bounded loss**: on the history holdout the challenger loses at most
  ``max_history_loss`` against the champion (the forgetting guard).

Without a champion (the first model) only the floor applies.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from retrain.config import Config
from retrain.errors import ValidationError
from retrain.evaluation.metrics import (
    GREATER_IS_BETTER,
    bootstrap_difference,
    compute_metrics,
    confusion,
    metric_names,
)
from retrain.training.model import predict_scores

__all__ = ["EvaluationResult", "Gate", "GateInputs", "decide", "evaluate_challenger"]

# Float noise must not fail a gate that is met exactly (an identical model has gain 0.0).
_EPS = 1e-12


@dataclass(frozen=True)
class Gate:
    """One check of the promotion decision."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class EvaluationResult:
    """The verdict, why, and the numbers behind it."""

    blessed: bool
    reason: str
    gates: list[Gate]
    metrics: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    #: The challenger's confusion matrix on recent data (classification only), shaped for KFP
    #: ClassificationMetrics: {"categories": [str, ...], "matrix": rows true x columns predicted}.
    confusion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null)."""
        return dict(_nan_to_none(dataclasses.asdict(self)))

    def to_json(self) -> str:
        """Strict JSON text of `to_dict`."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    def markdown(self) -> str:
        """A report: verdict, reason, gates and a metrics table."""
        lines = [
            f"## Evaluation: {'blessed' if self.blessed else 'rejected'}",
            "",
            self.reason,
            "",
            "| gate | result | detail |",
            "|---|---|---|",
        ]
        lines += [
            f"| {g.name} | {'pass' if g.passed else 'FAIL'} | {g.detail} |" for g in self.gates
        ]
        columns = [
            (model, holdout)
            for model in ("challenger", "champion")
            for holdout in ("recent", "history")
            if self.metrics.get(model, {}).get(holdout)
        ]
        if columns:
            names: list[str] = []
            for model, holdout in columns:
                names += [m for m in self.metrics[model][holdout] if m not in names]
            lines += [
                "",
                "| metric | " + " | ".join(f"{m} ({h})" for m, h in columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            for name in names:
                cells = [_fmt(self.metrics[m][h].get(name)) for m, h in columns]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class GateInputs:
    """What the gates judge: the primary metric's values and the thresholds that apply.

    Attributes:
        champion_recent: None when there is no champion (first model): only the floor applies.
        recent_ci: (lower, upper) interval of the recent gain, oriented so positive means the
            challenger is better; None to judge on the point estimate alone.
        challenger_history, champion_history: None when there is no history holdout.
        confidence: the interval's level, for the wording only.
        min_improvement: a challenger must beat the champion by more than this (on the
            interval's lower bound when there is one): replacing a model that works with one
            that is merely as good churns deployments for nothing.
    """

    metric: str
    greater_is_better: bool
    challenger_recent: float
    champion_recent: float | None = None
    recent_ci: tuple[float, float] | None = None
    challenger_history: float | None = None
    champion_history: float | None = None
    floor: float | None = None
    max_recent_regression: float = 0.0
    max_history_loss: float = 0.02
    confidence: float = 0.95
    min_improvement: float = 0.0


def decide(inputs: GateInputs) -> EvaluationResult:
    """Apply the gates to the primary metric's values. Pure: no I/O, no randomness."""
    metric, greater_is_better = inputs.metric, inputs.greater_is_better
    floor, confidence, min_improvement = inputs.floor, inputs.confidence, inputs.min_improvement
    max_recent_regression = inputs.max_recent_regression
    max_history_loss = inputs.max_history_loss
    challenger_recent, champion_recent = inputs.challenger_recent, inputs.champion_recent
    challenger_history, champion_history = inputs.challenger_history, inputs.champion_history
    recent_ci = inputs.recent_ci
    sign = 1.0 if greater_is_better else -1.0
    gates = [_floor_gate(metric, greater_is_better, floor, challenger_recent)]
    metrics: dict[str, Any] = {"challenger": {"recent": {metric: challenger_recent}}}
    comparison: dict[str, Any] = {
        "metric": metric,
        "greater_is_better": greater_is_better,
        "floor": floor,
        "max_recent_regression": max_recent_regression,
        "max_history_loss": max_history_loss,
        "confidence": confidence,
        "first_model": champion_recent is None,
        "recent_gain": None,
        "recent_ci": None,
        "history_loss": None,
        "min_improvement": min_improvement,
    }
    floor_words = _floor_words(floor, gates[0].passed)

    if champion_recent is None:
        if challenger_history is not None:
            metrics["challenger"]["history"] = {metric: challenger_history}
        blessed = gates[0].passed
        reason = (
            f"first model (no champion): challenger {metric} {_fmt(challenger_recent)} on recent "
            f"data{floor_words}: {'blessed' if blessed else 'rejected'}"
        )
        return EvaluationResult(blessed, reason, gates, metrics, comparison)

    metrics["champion"] = {"recent": {metric: champion_recent}}
    allowed = -max_recent_regression
    gain = sign * (challenger_recent - champion_recent)
    comparison["recent_gain"] = gain
    ci_words = ""
    ci_ok = True
    if recent_ci is not None:
        lower, upper = recent_ci
        comparison["recent_ci"] = [lower, upper]
        ci_words = f", {confidence:.0%} CI [{_fmt(lower)}, {_fmt(upper)}]"
        ci_ok = _finite(upper) and upper >= allowed - _EPS
    point_ok = _finite(gain) and gain >= allowed - _EPS
    if not _finite(gain):
        recent_detail = f"{metric} undefined on recent data for one of the models"
    else:
        recent_detail = f"gain {gain:+.3f}{ci_words}; allowed down to {allowed:+.3f}"
        if not point_ok:
            recent_detail += "; the point estimate is below it"
        elif not ci_ok:
            recent_detail += "; the interval lies entirely below it"
    gates.append(Gate("recent_non_regression", point_ok and ci_ok, recent_detail))
    evidence = recent_ci[0] if recent_ci is not None else gain
    better = _finite(evidence) and evidence > min_improvement + _EPS
    on = "lower bound of the gain's interval" if recent_ci is not None else "gain"
    gates.append(
        Gate(
            "recent_improvement",
            better,
            f"{on} {evidence:+.3f} {'exceeds' if better else 'does not exceed'} "
            f"the required {min_improvement:+.3f}",
        )
    )
    recent_words = (
        f"challenger {metric} {_fmt(challenger_recent)} vs champion {_fmt(champion_recent)} on "
        f"recent data (gain {gain:+.3f}{ci_words})"
    )

    history_words = "; no history holdout, forgetting not checked"
    if challenger_history is not None and champion_history is not None:
        metrics["challenger"]["history"] = {metric: challenger_history}
        metrics["champion"]["history"] = {metric: champion_history}
        loss = sign * (champion_history - challenger_history)
        comparison["history_loss"] = loss
        ok = _finite(loss) and loss <= max_history_loss + _EPS
        verdict = "within" if ok else "beyond"
        if not _finite(loss):
            detail = f"{metric} undefined on the history holdout for one of the models"
        else:
            detail = f"change {-loss:+.3f}, {verdict} the {max_history_loss:g} budget"
        gates.append(Gate("history_bounded_loss", ok, detail))
        history_words = (
            f"; history {_fmt(challenger_history)} vs {_fmt(champion_history)} "
            f"({-loss:+.3f}, {verdict} the {max_history_loss:g} budget)"
        )
    else:
        gates.append(Gate("history_bounded_loss", True, "no history holdout: not checked"))

    blessed = all(g.passed for g in gates)
    failed = [g.name for g in gates if not g.passed]
    verdict_words = "blessed" if blessed else f"rejected (failed: {', '.join(failed)})"
    reason = f"{recent_words}{history_words}{floor_words}: {verdict_words}"
    return EvaluationResult(blessed, reason, gates, metrics, comparison)


def evaluate_challenger(
    cfg: Config,
    challenger: Pipeline,
    champion: Pipeline | None,
    recent: pd.DataFrame,
    history: pd.DataFrame | None,
    seed: int,
) -> EvaluationResult:
    """Score both models on both holdouts, bootstrap the recent gain, and apply the gates.

    Class probabilities of the two models are aligned on the union of their classes (and any
    label seen in the holdouts), a class a model never saw getting probability 0.

    Raises:
        ValidationError: an unknown or unsuitable `evaluation.metric`, unlabelled holdout rows,
            or a model that cannot score the holdout.
    """
    metric = cfg.primary_metric
    allowed = metric_names(cfg.task, n_classes=2)
    if metric not in allowed:
        raise ValidationError(
            f"evaluation.metric: '{metric}' is not a {cfg.task} metric; choose one of {allowed}"
        )
    frames = {"recent": recent}
    if history is not None and len(history) > 0:
        frames["history"] = history
    for name, frame in frames.items():
        _check_holdout(frame, cfg, name)

    classes: list[Any] | None = None
    if cfg.task == "classification":
        classes = _class_union(challenger, champion, [f[cfg.target] for f in frames.values()])
        if metric == "brier" and len(classes) != 2:
            raise ValidationError(
                f"evaluation.metric: brier needs a binary problem, found {len(classes)} classes"
            )

    models = {"challenger": challenger}
    if champion is not None:
        models["champion"] = champion
    scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in models}
    metrics: dict[str, Any] = {m: {} for m in models}
    for model_name, model in models.items():
        for holdout, frame in frames.items():
            s = _scores(model, frame, cfg, classes, f"{model_name} model on the {holdout} holdout")
            scores[model_name][holdout] = s
            metrics[model_name][holdout] = compute_metrics(cfg.task, frame[cfg.target], s, classes)

    def value(model_name: str, holdout: str) -> float | None:
        if model_name not in metrics or holdout not in frames:
            return None
        return float(metrics[model_name][holdout][metric])

    recent_ci: tuple[float, float] | None = None
    if champion is not None:
        _, lower, upper = bootstrap_difference(
            cfg.task,
            metric,
            recent[cfg.target],
            scores["challenger"]["recent"],
            scores["champion"]["recent"],
            classes,
            n=cfg.evaluation.bootstrap_samples,
            confidence=cfg.evaluation.confidence,
            seed=seed,
        )
        recent_ci = (lower, upper)

    ev = cfg.evaluation
    result = decide(
        GateInputs(
            metric=metric,
            greater_is_better=GREATER_IS_BETTER[metric],
            challenger_recent=float(metrics["challenger"]["recent"][metric]),
            champion_recent=value("champion", "recent"),
            recent_ci=recent_ci,
            challenger_history=value("challenger", "history"),
            champion_history=value("champion", "history"),
            floor=ev.floor,
            max_recent_regression=ev.max_recent_regression,
            max_history_loss=ev.max_history_loss,
            confidence=ev.confidence,
            min_improvement=ev.min_improvement,
        )
    )
    comparison = dict(result.comparison)
    comparison["rows"] = {name: len(frame) for name, frame in frames.items()}
    comparison["bootstrap_samples"] = ev.bootstrap_samples if champion is not None else 0
    matrix: dict[str, Any] | None = None
    if classes is not None:
        comparison["classes"] = [_jsonable(c) for c in classes]
        predicted = np.asarray(classes, dtype=object)[scores["challenger"]["recent"].argmax(axis=1)]
        matrix = {
            "categories": [str(c) for c in classes],
            "matrix": confusion(recent[cfg.target], predicted, classes),
        }
    return dataclasses.replace(result, metrics=metrics, comparison=comparison, confusion=matrix)


def _floor_gate(metric: str, greater_is_better: bool, floor: float | None, value: float) -> Gate:
    if floor is None:
        return Gate("floor", True, "no floor configured")
    if not _finite(value):
        return Gate("floor", False, f"{metric} is undefined on recent data")
    ok = value >= floor - _EPS if greater_is_better else value <= floor + _EPS
    relation = (
        ("at or above" if ok else "below")
        if greater_is_better
        else ("at or below" if ok else "above")
    )
    return Gate("floor", ok, f"{metric} {_fmt(value)} is {relation} the floor {_fmt(floor)}")


def _floor_words(floor: float | None, passed: bool) -> str:
    if floor is None:
        return ""
    return f"; floor {_fmt(floor)} {'met' if passed else 'not met'}"


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
    if champion is not None:
        classes += [c for c in champion.classes_ if c not in classes]
    extra = {v for y in labels for v in pd.unique(y) if v not in classes}
    return classes + sorted(extra, key=str)


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
    out[:, pd.Index(classes).get_indexer(list(model.classes_))] = raw
    return out


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 1e4 else f"{x:.4g}"


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _nan_to_none(obj.item())
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
