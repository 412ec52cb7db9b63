"""Compare a current window with a reference profile: per feature, then for the dataset."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrain.data.windows import window_slots
from retrain.drift._columns import CURRENT_SIDE, finite_column
from retrain.drift._identifiers import (
    IdentifierProfile,
    identifier_bars,
    judge_identifier,
    top_counts,
    windows_elapsed,
)
from retrain.drift._labelled import drop_threshold, performance_against_profile, performance_fired
from retrain.drift._methods import METHODS, Comparison
from retrain.drift._null import null_threshold
from retrain.drift._performance import (
    PerformanceCheck,
    PerformanceEstimate,
    estimate_performance,
    score_vector,
)
from retrain.drift._profile import (
    PREDICTION_COLUMN,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    bin_counts,
    category_counts,
)
from retrain.drift._report import Bar, DriftReport, FeatureDrift, Signal
from retrain.drift._text import TextProfile, text_verdict
from retrain.errors import ValidationError
from retrain.settings.drift import DriftConfig

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = ["detect_drift"]

_MAX_UNSEEN_LISTED = 20
_MAX_CATEGORY_BARS = 10


def detect_drift(
    profile: ReferenceProfile,
    current_df: pd.DataFrame,
    cfg: Config | DriftConfig,
    *,
    scores: Any = None,
    labels: Any = None,
) -> DriftReport:
    """Compare `current_df` with the reference `profile`.

    Each feature of the profile is judged by its method (see `retrain.drift`); the dataset
    decision comes from five signals, each recorded with whether it fired.

    Args:
        profile: the reference profile stored with the model.
        current_df: the current window; must hold every feature of the profile.
        cfg: the config (its `drift` section, primary metric, seed, positive class), or its
            `drift` section alone (the profile's metric, seed 0, positive ``classes[1]``).
        scores: the model's scores on the rows of `current_df` (class probabilities, or
            positive-class probabilities, or regression predictions): prediction drift and,
            for classifiers, the label-free accuracy estimate.
        labels: true labels of the rows of `current_df` (missing ones as NaN/None): the
            performance drop against the reference metric. Needs `scores`.

    Raises:
        ValidationError: missing feature columns, overrides naming unknown features or
            methods that do not fit the feature kind, scores or labels not aligned with the
            rows, labels without scores.
    """
    if isinstance(cfg, DriftConfig):  # the task and metric come from the profile
        dc, primary, seed, positive = cfg, profile.metric, 0, None
    else:
        dc, primary, seed = cfg.drift, cfg.primary_metric, cfg.seed
        positive = cfg.labels.positive_class
    _check_inputs(profile, current_df, dc, scores, labels)

    prepared: list[tuple[Comparison | None, FeatureDrift, str, float]] = []
    texts: dict[str, TextProfile] = {}
    for name, ref in profile.features.items():
        if isinstance(ref, TextProfile):
            texts[name] = ref  # judged by retrain.drift._text, in the same family below
            continue
        comparison, partial = _prepare(name, ref, current_df[name], dc, seed)
        method, threshold = _method_for(name, ref.kind, *_judged_sizes(comparison, partial), dc)
        prepared.append((comparison, partial, method, threshold))
    predicted = None
    if scores is not None and profile.scores is not None:
        vector = score_vector(scores, profile.task)
        predicted = _prepare_prediction(profile.scores, vector, dc, seed)
    # Bonferroni: the family is every verdict in this report (the features and the model's
    # scores), so the chance that any of them fires on a window from the reference's own
    # distribution stays at or below alpha, and so does every dataset-level signal built on them.
    judged = sum(1 for c, *_ in prepared if c is not None)
    judged += 1 if predicted is not None and predicted[0] is not None else 0
    judged += sum(1 for n, ref in texts.items() if ref.n and current_df[n].notna().any())
    divisor = judged if dc.bonferroni and judged > 0 else 1
    verdicts = {p.feature: _verdict(c, p, method, t, dc, divisor) for c, p, method, t in prepared}
    # The window's grid position, for how many windows of id turnover to expect.
    slots = None
    if not isinstance(cfg, DriftConfig) and cfg.data.time_column in current_df.columns:
        slots = window_slots(cfg.data, current_df[cfg.data.time_column])
    for name, verdict in verdicts.items():
        if isinstance(ref := profile.features[name], IdentifierProfile):
            verdicts[name] = judge_identifier(
                verdict,
                ref,
                current_df[name],
                dc.null_alpha / divisor,
                windows_elapsed(ref, slots),
            )
    for name, text_ref in texts.items():
        verdicts[name] = text_verdict(name, text_ref, current_df[name], dc, divisor)
    features = [verdicts[name] for name in profile.features]

    prediction = None
    estimate = None
    performance = None
    if predicted is not None:
        prediction = _verdict(*predicted, dc, divisor)
    if scores is not None and profile.task == "classification":
        estimate = estimate_performance(
            scores, confidence=dc.confidence, calibration=profile.estimate_calibration
        )
    if labels is not None:
        performance = performance_against_profile(
            profile, labels, scores, primary=primary, dc=dc, seed=seed, positive=positive
        )
    signals = [
        _share_signal(features, dc),
        _weighted_signal(features, profile.importances, dc),
        _prediction_signal(prediction, scores is not None, profile.scores is not None),
        _performance_signal(performance, labels is not None, dc),
        _estimate_signal(estimate, profile.estimated_accuracy, profile.task, dc),
    ]
    return DriftReport(
        features=features,
        signals=signals,
        n_ref=profile.rows,
        n_cur=len(current_df),
        prediction=prediction,
        performance=performance,
        estimated_performance=estimate,
        reference_estimated_accuracy=profile.estimated_accuracy,
        settings={**dc.summary(), "histograms": dc.histograms},
        warnings=_estimate_warnings(profile, dc) if estimate is not None else [],
    )


def _estimate_warnings(profile: ReferenceProfile, dc: DriftConfig) -> list[str]:
    """A warning when the label-free estimate missed the measured accuracy at reference."""
    estimated, measured = profile.estimated_accuracy, profile.metrics.get("accuracy")
    if estimated is None or measured is None or not math.isfinite(measured):
        return []
    gap = estimated - measured
    if abs(gap) <= dc.max_estimate_gap:
        return []
    how = "calibrated out-of-fold" if profile.estimate_calibration else "uncalibrated"
    return [
        f"the label-free accuracy estimate ({how}) was {estimated:.3f} on the held-out "
        f"reference rows, where the measured accuracy was {measured:.3f} (off by {gap:+.3f}, "
        f"more than {dc.max_estimate_gap:g}): read estimated_performance_drop with care"
    ]


def _check_inputs(
    profile: ReferenceProfile, df: pd.DataFrame, dc: DriftConfig, scores: Any, labels: Any
) -> None:
    problems = [
        f"drift.features.{name}: not a feature of the reference profile "
        f"({', '.join(profile.features)})"
        for name in dc.features
        if name not in profile.features
    ]
    for name, override in dc.features.items():
        ref = profile.features.get(name)
        if ref is not None and override.method and ref.kind not in METHODS[override.method].kinds:
            problems.append(
                f"drift.features.{name}.method: {override.method!r} does not apply to "
                f"{ref.kind} features"
            )
    problems += [
        f"current window lacks feature column {c!r}" for c in profile.features if c not in df
    ]
    for what, value in (("scores", scores), ("labels", labels)):
        if value is not None and len(value) != len(df):
            problems.append(f"{what} have {len(value)} rows, the current window {len(df)}")
    if labels is not None and scores is None:
        problems.append("labels were given without scores: the performance check needs both")
    if problems:
        raise ValidationError("cannot compare the window with the reference profile", problems)


def _method_for(name: str, kind: str, n_ref: int, n_cur: int, dc: DriftConfig) -> tuple[str, float]:
    override = dc.features.get(name)
    if override is not None and override.method is not None:
        method = override.method
        return method, override.threshold or dc.threshold_for(method)
    small = min(n_ref, n_cur) < dc.small_sample
    if kind == "numeric":
        method = dc.small_sample_numeric_method if small else dc.numeric_method
    else:
        method = dc.small_sample_categorical_method if small else dc.categorical_method
    return method, dc.threshold_for(method)


def _judged_sizes(comparison: Comparison | None, partial: FeatureDrift) -> tuple[int, int]:
    """The sizes the statistics see: a sampled numeric column's sample sizes."""
    if comparison is not None and comparison.kind == "numeric":
        return comparison.ref_n, comparison.cur_n
    return partial.n_ref, partial.n_cur


def _prepare(
    name: str,
    ref: NumericProfile | CategoricalProfile | IdentifierProfile,
    series: pd.Series,
    dc: DriftConfig,
    seed: int,
) -> tuple[Comparison | None, FeatureDrift]:
    """The comparison for the methods, and the report row without the verdict yet.

    A numeric column of more than `dc.max_sample_rows` finite values is compared on a seeded
    sample of that many (`finite_column`); its report row keeps the whole column's counts.
    """
    rows = len(series)
    unseen: dict[str, int] = {}
    if isinstance(ref, NumericProfile):
        column = finite_column(series, name, dc.max_sample_rows, seed, CURRENT_SIDE)
        cur, cur_nulls = column.sorted, column.nulls
        comparison = Comparison(
            kind="numeric",
            ref_counts=ref.counts,
            cur_counts=bin_counts(cur, ref.edges),
            ref_sorted=ref.sample,
            ref_weights=ref.weights,
            cur_sorted=cur,
            ref_n=ref.judged_n,
            ref_scale=ref.std,
        )
        histogram = _numeric_bars(ref, comparison.cur_counts)
        unseen_rows = 0
    elif isinstance(ref, IdentifierProfile):
        # The heavy ids plus one bucket for the rest: the long tail is judged by its unseen
        # share (judge_identifier), not id by id.
        cur_counts, cur_nulls = top_counts(ref, series)
        rest = ref.top_rows - int(ref.top_counts.sum())
        comparison = Comparison(
            kind="categorical",
            ref_counts=np.append(ref.top_counts, rest).astype(np.int64),
            cur_counts=cur_counts,
            ref_n=ref.top_rows,
        )
        histogram = identifier_bars(ref, cur_counts, _MAX_CATEGORY_BARS)
        unseen_rows = 0
    else:
        cur_counts, unseen_rows, cur_nulls, unseen = category_counts(series, ref.index)
        # The unseen bucket last, where the reference has a share of zero.
        comparison = Comparison(
            kind="categorical",
            ref_counts=np.append(ref.counts, 0).astype(np.int64),
            cur_counts=cur_counts,
            ref_n=ref.n,
            cur_unseen=np.fromiter(unseen.values(), dtype=np.int64, count=len(unseen)),
        )
        named = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:_MAX_UNSEEN_LISTED]
        unseen = dict(named)
        histogram = _category_bars(ref, cur_counts)
    n_cur = rows - cur_nulls
    ref_rows = ref.n + ref.nulls
    partial = FeatureDrift(
        feature=name,
        kind=ref.kind,
        method="",
        test="",
        statistic=None,
        threshold=0.0,
        drifted=False,
        n_ref=ref.n,
        n_cur=n_cur,
        null_rate_ref=ref.nulls / ref_rows if ref_rows else 0.0,
        null_rate_cur=cur_nulls / rows if rows else 0.0,
        unseen_categories=unseen,
        unseen_rows=unseen_rows,
        histogram=histogram,
    )
    if ref.n == 0 or n_cur == 0:
        side = "reference" if ref.n == 0 else "current window"
        return None, _replace(partial, note=f"no non-null values in the {side}")
    return comparison, partial


def _replace(f: FeatureDrift, **changes: Any) -> FeatureDrift:
    return dataclasses.replace(f, **changes)


def _verdict(
    comparison: Comparison | None,
    partial: FeatureDrift,
    method: str,
    threshold: float,
    dc: DriftConfig,
    divisor: int,
) -> FeatureDrift:
    spec = METHODS[method]
    base = _replace(partial, method=method, test=spec.test, threshold=threshold)
    if comparison is None:
        return base
    result = spec(comparison)
    statistic = float(result.statistic)
    if spec.test == "p_value":
        if result.p_value is None:
            raise ValidationError(f"drift method {method!r} is a p-value test but gave no p-value")
        alpha = threshold / divisor
        return _replace(
            base,
            statistic=statistic,
            p_value=result.p_value,
            alpha=alpha,
            drifted=bool(result.p_value < alpha),
        )
    # An effect size big enough to matter, and bigger than sampling noise at these sizes.
    null = null_threshold(method, comparison, dc.null_alpha / divisor)
    warn = dc.warn_for(method)
    beyond_noise = null is None or statistic >= null
    drifted = bool(statistic >= threshold and beyond_noise)
    return _replace(
        base,
        statistic=statistic,
        p_value=result.p_value,
        null_threshold=null,
        drifted=drifted,
        warning=bool(not drifted and warn is not None and statistic >= warn and beyond_noise),
    )


def _prepare_prediction(
    ref: NumericProfile, vector: np.ndarray, dc: DriftConfig, seed: int
) -> tuple[Comparison | None, FeatureDrift, str, float]:
    values = np.where(np.isfinite(vector), vector, np.nan)
    comparison, partial = _prepare(PREDICTION_COLUMN, ref, pd.Series(values), dc, seed)
    partial = _replace(partial, kind="score")
    if dc.prediction_method is not None:
        method = dc.prediction_method
        threshold = dc.prediction_threshold or dc.threshold_for(method)
    else:
        small = min(_judged_sizes(comparison, partial)) < dc.small_sample
        method = dc.small_sample_numeric_method if small else dc.numeric_method
        threshold = dc.threshold_for(method)
    return comparison, partial, method, threshold


# --- dataset-level signals -----------------------------------------------------------------------


def _share_signal(features: list[FeatureDrift], dc: DriftConfig) -> Signal:
    judged = [f for f in features if f.statistic is not None]
    if not judged:
        return Signal(
            "feature_share", False, None, dc.drift_share, "no feature could be compared", False
        )
    drifted = [f.feature for f in judged if f.drifted]
    share = len(drifted) / len(judged)
    listed = ", ".join(f"`{n}`" for n in drifted[:5]) + (", …" if len(drifted) > 5 else "")
    detail = f"{len(drifted)} of {len(judged)} features drifted" + (
        f": {listed}" if drifted else ""
    )
    return Signal("feature_share", share >= dc.drift_share, share, dc.drift_share, detail)


def _weighted_signal(
    features: list[FeatureDrift], importances: dict[str, float], dc: DriftConfig
) -> Signal:
    judged = [f for f in features if f.statistic is not None]
    total = sum(importances.get(f.feature, 0.0) for f in judged)
    name, threshold = "weighted_feature_share", dc.weighted_drift_share
    if not importances:
        return Signal(name, False, None, threshold, "no feature importances in the profile", False)
    if total <= 0:
        return Signal(name, False, None, threshold, "no compared feature carries importance", False)
    share = sum(importances.get(f.feature, 0.0) for f in judged if f.drifted) / total
    top = sorted(judged, key=lambda f: -importances.get(f.feature, 0.0))[:3]
    detail = "drifted share of permutation importance; most important: " + ", ".join(
        f"`{f.feature}` {importances.get(f.feature, 0.0):.0%}" + (" (drifted)" if f.drifted else "")
        for f in top
    )
    return Signal(name, share >= threshold, share, threshold, detail)


def _prediction_signal(prediction: FeatureDrift | None, scored: bool, has_ref: bool) -> Signal:
    name = "prediction_drift"
    if prediction is None:
        why = "no reference scores in the profile" if scored and not has_ref else "no scores given"
        return Signal(name, False, None, None, why, False)
    if prediction.statistic is None:
        return Signal(name, False, None, prediction.threshold, prediction.note, False)
    if prediction.test == "p_value":
        detail = f"{prediction.method} p-value {prediction.p_value:.3g} vs α {prediction.alpha:.3g}"
        value = prediction.p_value
    else:
        detail = f"{prediction.method} distance of the model's score distribution"
        if prediction.null_threshold is not None:
            detail += f" (null threshold {prediction.null_threshold:.3g})"
        value = prediction.statistic
    return Signal(name, prediction.drifted, value, prediction.threshold, detail)


def _performance_signal(check: PerformanceCheck | None, labelled: bool, dc: DriftConfig) -> Signal:
    name, threshold = "performance_drop", dc.max_performance_drop
    if check is None:
        why = (
            "too few labelled rows, or no reference metric in the profile"
            if labelled
            else "no labels yet"
        )
        return Signal(name, False, None, threshold, why, False)
    fired, threshold = performance_fired(check, dc), drop_threshold(check, dc)
    detail = (
        f"{check.metric} {check.current:.3f} vs reference {check.reference:.3f} on {check.n} "
        f"labelled rows; drop {check.drop:+.3f}, {check.confidence:.0%} interval "
        f"[{check.drop_lower:+.3f}, {check.drop_upper:+.3f}]"
    )
    return Signal(name, fired, check.drop, threshold, detail)


def _estimate_signal(
    estimate: PerformanceEstimate | None, reference: float | None, task: str, dc: DriftConfig
) -> Signal:
    name, threshold = "estimated_performance_drop", dc.max_estimated_accuracy_drop
    if task != "classification":
        return Signal(name, False, None, threshold, "label-free estimate is for classifiers", False)
    if estimate is None or reference is None:
        why = "no scores given" if estimate is None else "no reference estimate in the profile"
        return Signal(name, False, None, threshold, why, False)
    drop = reference - estimate.value
    fired = drop > threshold and reference - estimate.upper > 0.0
    detail = (
        f"expected accuracy {estimate.value:.3f} ({estimate.confidence:.0%} interval "
        f"[{estimate.lower:.3f}, {estimate.upper:.3f}]) vs reference estimate {reference:.3f}"
    )
    return Signal(name, fired, drop, threshold, detail)


# --- histograms ----------------------------------------------------------------------------------


def _numeric_bars(ref: NumericProfile, cur_counts: np.ndarray) -> list[Bar]:
    p, q = _shares(ref.counts), _shares(cur_counts)
    edges = ref.edges
    bars = []
    for i in range(len(p)):
        if i == 0:
            label = f"< {_edge(edges[0])}" if len(edges) else "all"
        elif i == len(edges):
            label = f"> {_edge(ref.max)}"
        else:
            label = f"[{_edge(edges[i - 1])}, {_edge(edges[i])})"
            if i == len(edges) - 1 and ref.max is not None:
                label = f"[{_edge(edges[i - 1])}, {_edge(ref.max)}]"
        out_of_range = i == 0 or i == len(edges)
        if out_of_range and p[i] == 0 and q[i] == 0:
            continue  # nothing outside the reference range: no row for it
        bars.append(Bar(label, float(p[i]), float(q[i])))
    return bars


def _category_bars(ref: CategoricalProfile, cur_counts: np.ndarray) -> list[Bar]:
    p = _shares(np.append(ref.counts, 0))
    q = _shares(cur_counts)
    k = len(ref.categories)
    order = sorted(range(k), key=lambda i: (-max(p[i], q[i]), ref.categories[i]))
    shown = order[:_MAX_CATEGORY_BARS]
    bars = [Bar(ref.categories[i], float(p[i]), float(q[i])) for i in shown]
    rest = order[_MAX_CATEGORY_BARS:]
    if rest:
        bars.append(Bar(f"({len(rest)} others)", float(p[rest].sum()), float(q[rest].sum())))
    if q[k] > 0:
        bars.append(Bar("(unseen)", 0.0, float(q[k])))
    return bars


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros(len(counts))


def _edge(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.4g}"
