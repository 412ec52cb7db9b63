"""The `evaluation:` config section: the gates a challenger passes before it is deployed."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator

from retrain.settings._base import Section
from retrain.settings.rollout import CHECK_NAMES, is_rank_check

__all__ = [
    "CLASSIFICATION_METRICS",
    "RECALL_AT_PRECISION",
    "REGRESSION_METRICS",
    "TARGET_UNIT_METRICS",
    "EvaluationConfig",
    "check_fits_classes",
    "check_history_budget",
    "check_metric",
    "check_performance_drop",
    "performance_drop_threshold",
]

#: The metrics `retrain.evaluation.metrics.compute_metrics` computes, per task; besides
#: these, a classification metric may be `recall_at_precision_<P>` for any P in 1-99.
CLASSIFICATION_METRICS = ("roc_auc", "accuracy", "log_loss", "f1", "brier", "average_precision")
REGRESSION_METRICS = ("rmse", "mae", "r2")
RECALL_AT_PRECISION = re.compile(r"recall_at_precision_([1-9][0-9]?)")
#: Metrics in the target's units: their history budget is a share of the champion's value.
TARGET_UNIT_METRICS = frozenset({"rmse", "mae"})


#: Metrics of a binary problem (the positive class's probability or ranking): undefined
#: with more than two classes. Any `recall_at_precision_<P>` is one too.
BINARY_ONLY_METRICS = frozenset({"brier", "average_precision"})


def _binary_only(metric: str) -> bool:
    return metric in BINARY_ONLY_METRICS or RECALL_AT_PRECISION.fullmatch(metric) is not None


def check_fits_classes(n_classes: int, metric: str, checks: Iterable[str], *, found: str) -> None:
    """A ValueError if a metric or rollout check needing two classes meets more than two.

    ``average_precision``, ``brier`` and ``recall_at_precision_<P>`` are measured on the
    positive class of a binary problem, as are the rollout ranking checks; with more classes
    every evaluation (and every canary analysis) would fail. `found` says where the count of
    classes came from (e.g. "labels.classes lists 3 classes").
    """
    if n_classes <= 2:
        return
    wrong = [f"evaluation.metric {metric!r}"] if _binary_only(metric) else []
    ranked = [name for name in checks if is_rank_check(name)]
    if ranked:
        wrong.append(f"rollout check(s) {', '.join(ranked)}")
    if not wrong:
        return
    metrics = [m for m in CLASSIFICATION_METRICS if not _binary_only(m)]
    rollout = [c for c in CHECK_NAMES if not is_rank_check(c)]
    raise ValueError(
        f"{found} (a multiclass problem), but {' and '.join(wrong)} need(s) a binary problem"
        f" (two classes, the second the positive one); for multiclass use evaluation.metric"
        f" {', '.join(metrics)} and rollout checks {', '.join(rollout)}"
    )


def _known(metric: str, valid: tuple[str, ...]) -> bool:
    rap = valid is CLASSIFICATION_METRICS and RECALL_AT_PRECISION.fullmatch(metric) is not None
    return metric in valid or rap


def check_metric(metric: str | None, task: str) -> None:
    """A ValueError naming the valid metrics if `metric` is not one of the task's."""
    valid = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if metric is not None and not _known(metric, valid):
        raise ValueError(
            f"evaluation.metric {metric!r} is not a {task} metric; use one of {', '.join(valid)}"
        )


def check_history_budget(metric: str, max_history_loss: float) -> None:
    """A ValueError if `max_history_loss` cannot be a share of the champion's value.

    For rmse and mae the budget is a share (0.02 = 2% worse); a value above 1 (a challenger
    more than twice as wrong on history) is no forgetting guard at all and almost surely an
    absolute budget in the target's units, written when the budget was in metric units.
    """
    if metric in TARGET_UNIT_METRICS and max_history_loss > 1.0:
        raise ValueError(
            f"evaluation.max_history_loss {max_history_loss:g} is read as a share of the"
            f" champion's history {metric} (0.02 = 2% worse) and must be at most 1; an"
            f" absolute budget in the target's units becomes a share: divide it by the"
            f" champion's typical history {metric}"
        )


def performance_drop_threshold(metric: str, threshold: float, reference: float | None) -> float:
    """A performance-drop threshold in metric units: as configured, or for a metric in the
    target's units (rmse, mae) that share of the reference value (0.05 = 5% worse), so the
    same setting means the same on prices in dollars or in thousands.

    For rmse and mae a reference of 0 (a model without error on its evaluation rows) makes
    any drop beyond noise count; without a finite reference the share has nothing to be a
    share of, and the threshold is infinite (never fires) rather than read in the target's
    units.
    """
    if metric not in TARGET_UNIT_METRICS:
        return threshold
    if reference is None or not math.isfinite(float(reference)):
        return math.inf
    return threshold * abs(float(reference))


def check_performance_drop(metric: str, name: str, value: float | None) -> None:
    """A ValueError if a performance-drop setting cannot be a share of the reference value.

    For rmse and mae a drop is a share of the reference (0.05 = 5% worse); a value above 1
    (fire only once the error more than doubles) is almost surely an absolute threshold in
    the target's units, written when thresholds were in metric units.
    """
    if value is not None and metric in TARGET_UNIT_METRICS and value > 1.0:
        raise ValueError(
            f"{name} {value:g} is read as a share of the reference {metric} (0.05 = 5% worse)"
            f" and must be at most 1; an absolute threshold in the target's units becomes a"
            f" share: divide it by the model's typical {metric}"
        )


class EvaluationConfig(Section):
    metric: str | None = Field(
        default=None, description="Primary metric; defaults to roc_auc (classification) or rmse."
    )
    floor: float | None = Field(default=None, description="Absolute minimum of the metric.")
    max_recent_regression: float = Field(
        default=0.0,
        ge=0.0,
        description="Largest allowed drop vs the champion on recent data (metric units).",
    )
    max_history_loss: float = Field(
        default=0.02,
        ge=0.0,
        description=(
            "Largest allowed drop vs the champion on the history evaluation rows (metric units;"
            " for rmse and mae, in the target's units, a share of the champion's history value:"
            " 0.02 = 2% worse, at most 1; when the champion's value is 0, the share of a constant"
            " prediction's value on the same rows); the gate fails when the whole confidence"
            " interval of the loss lies beyond it."
        ),
    )
    accept_forgetting_on_change: bool = Field(
        default=True,
        description=(
            "Accept a history loss shown beyond max_history_loss when the regime has changed:"
            " the champion itself is worse on the recent rows than on history by more than the"
            " loss's upper bound (at the lower bound of its decline's interval, an unpaired"
            " bootstrap of the two sets of rows), the challenger's recent gain is shown (its"
            " interval's lower bound above 0), and its recent gain exceeds its history loss on"
            " the point estimates. After a concept change the history"
            " is the old concept; guarding it keeps the model the change broke in service."
        ),
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "A challenger replaces the champion only if the lower bound of the confidence interval"
            " of its gain on recent data exceeds this (metric units): better, not merely equal"
            " (unless refresh_after, opt-in, applies)."
        ),
    )
    refresh_after: int = Field(
        default=0,
        ge=0,
        description=(
            "Opt-in (0, the default, is off: only a gain shown beyond min_improvement replaces"
            " a champion). A challenger trained on data at least this many windows newer than"
            " the champion's (the windows their model cards name) replaces it without a shown"
            " gain when every other gate passes: its recent gain is at least"
            " -max_recent_regression on the point estimate and on the interval's upper bound"
            " (so a max_recent_regression above 0 lets a challenger that much worse through),"
            " the forgetting guard holds where there are history rows, the floor is met. It"
            " applies on fewer than min_rows rows too, but not on a degenerate or zero-width"
            " interval, with too few positives, or when max_detectable_gain finds the interval"
            " too wide. By default (refresh_evidence: shift) it also needs history rows that"
            " show the world moved the challenger's way; on the age alone (refresh_evidence:"
            " age) the newer of two models the rows cannot tell apart is kept about half the"
            " time. The rates at which each rule deploys an equal or a slightly worse"
            " challenger are in benchmarks/results/decisions.md; what they buy on drifting"
            " streams, in benchmarks/results/refresh.md."
        ),
    )
    refresh_evidence: Literal["shift", "age"] = Field(
        default="shift",
        description=(
            "What a refresh (refresh_after) needs besides the age. 'shift' (the default): the"
            " challenger's gain on the recent evaluation rows shown above its gain on the"
            " history evaluation rows (the lower bound of the interval of the difference, the"
            " two sets resampled independently, above 0): it fits the recent rows better than"
            " the past, relative to the champion, so the world moved its way; a window that is"
            " merely harder lowers both models alike and cancels. Without history rows nothing"
            " is refreshed. On data that has not moved, equal models then stay blessed at"
            " close to the improvement gate's rate; a history loss within the forgetting"
            " budget counts toward the shift. 'age': the age alone suffices (the newer of two equal"
            " models is kept about half the time). Both rules' measured rates are in"
            " benchmarks/results/decisions.md."
        ),
    )
    improvement_evidence: Literal["recent", "blend"] = Field(
        default="recent",
        description=(
            "What may show a challenger's gain. 'recent' (the default): the recent evaluation"
            " rows alone (the lower bound of the recent gain's interval above min_improvement)."
            " 'blend': that, or the mean of the recent gain and the gain on the history"
            " evaluation rows (the two sets resampled independently) shown above"
            " min_improvement, when the recent gain is at least 0 on its point estimate on at"
            " least min_rows rows, the recent gain is not shown below the history gain (after"
            " a change of regime the history is the old world), every other gate passed and"
            " the metric is not in the target's units (rmse, mae). A challenger better"
            " everywhere by a margin the recent rows alone cannot show is then blessed; its"
            " rate on equal models and its price (a challenger slightly worse on the recent"
            " rows but better on history) are in benchmarks/results/decisions.md."
        ),
    )
    min_rows: int = Field(
        default=500,
        ge=1,
        description=(
            "Fewest recent evaluation rows the gates decide on; with fewer, the evaluation rows"
            " of earlier windows are pooled in (pool_windows), and if still short the outcome is"
            " 'not enough evaluation rows' (undecided, not blessed) when the rows show no gain: a"
            " gain the interval does show still blesses, and a regression or forgetting it shows"
            " still rejects. At 500 balanced rows the 95%"
            " interval of an AUC gain between two similar models is about +/-0.026 and a +0.05"
            " gain is blessed 97% of the time (benchmarks/decisions/gates.py); below it the"
            " interval widens fast. A daily fraud or weekly recommendation window usually has"
            " that many evaluation rows; rare positives need more (the interval says so)."
        ),
    )
    pool_windows: int = Field(
        default=0,
        ge=0,
        description=(
            "How many earlier labelled windows may lend their evaluation rows (most recent first)"
            " when the new window has fewer than min_rows, or fewer than min_positives of the"
            " rarer class (e.g. 3: half a week of daily windows or a month of weekly ones);"
            " pooling stops at the first window that makes up both. Off by default: right"
            " after a concept change the pooled rows are from the old concept, so the champion"
            " looks better than it is and the first retrain after the change is not deployed"
            " (measured on the SEA stream: the retrain one window after the change was held"
            " back). Without pooling a small window is judged on its own rows: a large gain"
            " still blesses, no shown gain is 'undecided'. The oldest window of history is"
            " never pooled."
        ),
    )
    max_detectable_gain: float | None = Field(
        default=None,
        gt=0.0,
        description=(
            "If set (metric units), a comparison whose minimum detectable gain (the half-width of"
            " the recent gain's interval) is wider than this, and that shows no gain, is"
            " undecided rather than rejected. Unset: only min_rows makes a comparison undecided."
        ),
    )
    min_positives: int = Field(
        default=0,
        ge=0,
        description=(
            "Fewest labels of the rarer class (for fraud: frauds) in the recent evaluation rows"
            " the gates decide on; with fewer, the outcome is undecided, 'not enough positives'"
            " (not blessed, not rejected). A rare-event metric on a handful of positives moves"
            " by a whole positive's weight at a time. With pool_windows, earlier windows lend"
            " their evaluation rows first. 0 (default) turns the check off; the fraud case"
            " uses 20 (false-blessing rates by positive count: README)."
        ),
    )
    deploy_undecided_first_model: bool = Field(
        default=True,
        description=(
            "A first model (no champion yet) is compared with a constant prediction taken from"
            " its training rows' target (their class shares, or the constant that scores best on"
            " the metric: their median for mae, their mean for rmse and r2), scored on the"
            " recent evaluation rows on the paired bootstrap: a gain shown over it (the"
            " interval's lower bound above 0) blesses, on any number of rows; a zero-width"
            " interval (the same gain on every resample) is judged only on at least min_rows"
            " rows; no gain shown on at least min_rows rows, or a model shown worse than it,"
            " rejects (a ranking worse on every resample, on any number of rows). This"
            " setting says what becomes of one the rows cannot judge: no gain shown on fewer"
            " than min_rows rows (a zero-width interval there too), no evaluation rows at all,"
            " too few positives, or (a model card that records no training target, the"
            " constant then fitted on the evaluation rows) a degenerate interval. On (default):"
            " it is deployed, its record saying it was not evaluated (comparison.evaluated false,"
            " and the reason says so), since without it nothing serves. Off: it is undecided and"
            " not deployed, like any undecided challenger, and the next run judges a new first"
            " model."
        ),
    )
    stratified_bootstrap: bool | None = Field(
        default=None,
        description=(
            "Resample each class within itself in the gates' bootstrap, so every resample has"
            " the data's positive count. Unset: on for the rare-event metrics (average_precision,"
            " recall_at_precision_<P>), off for the others."
        ),
    )
    bootstrap_samples: int = Field(
        default=500,
        ge=20,
        le=10000,
        description="Paired bootstrap resamples of each gain (its interval's tails need many).",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        known = _known(v, CLASSIFICATION_METRICS) or _known(v, REGRESSION_METRICS) if v else True
        if not known:
            raise ValueError(
                f"unknown metric {v!r}; classification: {', '.join(CLASSIFICATION_METRICS)},"
                " recall_at_precision_<P> (P in 1-99);"
                f" regression: {', '.join(REGRESSION_METRICS)}"
            )
        return v
