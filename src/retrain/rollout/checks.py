"""Analysis checks, registered by name, each turning observed metrics into pass or fail.

Providers report metrics under flat names: ``canary.error_rate``, ``champion.accuracy``,
``prediction_shift``, ... (see `METRICS`); a metric they could not measure is None. A check
reads what it needs, compares one value against its configured ``max`` and says why in words.
A missing value fails the check unless the check is configured ``on_missing: skip``: no data is
not evidence of health (as in Flagger and Argo Rollouts).

The quality checks (accuracy_drop, loss_increase) compare two noisy samples, so they are
judged as a test: below ``min_labelled`` labelled predictions per predictor they are not
evaluated (the step waits), and above it they fail only when the drop exceeds ``max`` *and*
the canary is worse than the champion at the configured confidence. The first condition keeps
a tiny but significant drop from failing; the second caps how often an equal canary fails an
analysis (1 - confidence), and ``min_labelled`` is what makes a clearly worse canary fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from retrain.settings.rollout import CHECK_NAMES, CheckSpec

__all__ = [
    "CHECKS",
    "METRICS",
    "CheckResult",
    "Measurement",
    "check_for",
    "metric",
    "register_check",
    "run_checks",
    "summarise",
]

#: Per-predictor metric names (prefixed ``champion.`` / ``canary.``) plus pairwise ones.
METRICS: dict[str, str] = {
    "requests": "requests served in the analysis window",
    "error_rate": "share of requests that failed (0-1)",
    "latency_p95": "95th percentile request latency, seconds",
    "accuracy": "share of correct predictions on labelled feedback (classification)",
    "loss": "log loss (classification) or mean squared error (regression) on feedback",
    "loss_std": "standard deviation of the per-prediction loss",
    "labelled": "labelled predictions behind accuracy and loss",
    "prediction_shift": "distance between the champion's and the canary's score distributions",
    "paired_labelled": "labelled requests both models answered (paired providers only)",
    "accuracy_diff_std": "std of champion-correct minus canary-correct over the paired rows",
    "loss_diff_std": "std of canary loss minus champion loss over the paired rows",
}


def metric(role: str, name: str) -> str:
    """The flat name of a predictor's metric, e.g. ``metric("canary", "error_rate")``."""
    return f"{role}.{name}"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. `passed` is None when the check did not judge: skipped (a missing
    metric, ``on_missing: skip``) or `waiting` (too few labels to judge; the step waits).
    `margin` is the value's one-sided uncertainty at the configured confidence (0 when
    unknown)."""

    name: str
    value: float | None
    max: float
    passed: bool | None
    reason: str
    margin: float = 0.0
    waiting: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CheckResult:
        return cls(
            name=str(raw["name"]),
            value=None if raw.get("value") is None else float(raw["value"]),
            max=float(raw["max"]),
            passed=raw.get("passed"),
            reason=str(raw.get("reason", "")),
            margin=float(raw.get("margin", 0.0)),
            waiting=bool(raw.get("waiting", False)),
        )


@dataclass(frozen=True)
class Measurement:
    """A check's value, its one-sided uncertainty (0 if unknown) and what it is, in words.

    A value of None means the metrics it needs are missing; `what` then says which. A quality
    check sets `labelled`: the labelled predictions of its smaller sample (0 when unknown),
    and a `margin` of None when no spread is known to bound its value by. A ranking check also
    sets `positives`, the labelled positives its value rests on.
    """

    value: float | None
    what: str
    margin: float | None = 0.0
    labelled: float | None = None
    positives: float | None = None


#: A check computes a `Measurement` from the metrics and the z value of the confidence.
CheckFn = Callable[[Mapping[str, float | None], float], Measurement]

CHECKS: dict[str, CheckFn] = {}
#: Checks named by a pattern (e.g. ``recall_at_precision_<P>_drop``): a factory per pattern.
PATTERN_CHECKS: list[tuple[re.Pattern[str], Callable[[str], CheckFn]]] = []


def register_check(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check under `name` (which must be listed in `CHECK_NAMES`)."""

    def wrap(fn: CheckFn) -> CheckFn:
        if name not in CHECK_NAMES:
            raise ValueError(f"check {name!r} must be listed in CHECK_NAMES")
        CHECKS[name] = fn
        return fn

    return wrap


def check_for(name: str) -> CheckFn:
    """The check registered under `name`, or made by the pattern that matches it."""
    if name in CHECKS:
        return CHECKS[name]
    for pattern, factory in PATTERN_CHECKS:
        if pattern.fullmatch(name):
            return factory(name)
    raise KeyError(f"no check {name!r} is registered")


def _get(metrics: Mapping[str, float | None], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _missing(what: str, **values: float | None) -> str:
    who = " and ".join(role for role, v in values.items() if v is None)
    return f"no {what} for the {who} (no labelled feedback)"


@register_check("error_rate")
def _error_rate(metrics: Mapping[str, float | None], z: float) -> Measurement:
    value = _get(metrics, metric("canary", "error_rate"))
    if value is None:
        return Measurement(None, "no canary error rate (no requests reached the canary?)")
    return Measurement(value, f"canary error rate {value:.2%}")


@register_check("latency_p95")
def _latency_p95(metrics: Mapping[str, float | None], z: float) -> Measurement:
    value = _get(metrics, metric("canary", "latency_p95"))
    if value is None:
        return Measurement(None, "no canary latency (no requests reached the canary?)")
    return Measurement(value, f"canary p95 latency {value * 1000:.1f} ms")


def _labelled(metrics: Mapping[str, float | None]) -> float:
    """The paired count if any, else the smaller predictor's labelled count (0 if unknown)."""
    paired = _get(metrics, "paired_labelled")
    if paired is not None:
        return paired
    return min(_get(metrics, metric(r, "labelled")) or 0.0 for r in ("canary", "champion"))


def _standard_error(
    metrics: Mapping[str, float | None],
    diff_std: str,
    spreads: tuple[float | None, float | None],
) -> tuple[float | None, float]:
    """The standard error of canary-vs-champion and the labelled count behind it.

    Paired (both models answered the same rows): the spread of the per-row difference over
    the paired count. Otherwise two independent samples: each spread over its own count.
    """
    paired_n = _get(metrics, "paired_labelled")
    paired_sd = _get(metrics, diff_std)
    if paired_n is not None and paired_sd is not None:
        return (paired_sd / math.sqrt(paired_n) if paired_n > 0 else None), paired_n
    n_canary = _get(metrics, metric("canary", "labelled")) or 0.0
    n_champion = _get(metrics, metric("champion", "labelled")) or 0.0
    sd_canary, sd_champion = spreads
    n = min(n_canary, n_champion)
    if n <= 0 or sd_canary is None or sd_champion is None:
        return None, n
    return math.sqrt(sd_canary**2 / n_canary + sd_champion**2 / n_champion), n


@register_check("accuracy_drop")
def _accuracy_drop(metrics: Mapping[str, float | None], z: float) -> Measurement:
    canary = _get(metrics, metric("canary", "accuracy"))
    champion = _get(metrics, metric("champion", "accuracy"))
    if canary is None or champion is None:
        n = _labelled(metrics)
        return Measurement(None, _missing("accuracy", canary=canary, champion=champion), 0.0, n)
    drop = champion - canary
    # A proportion's spread follows from its value: sqrt(p (1 - p)).
    spreads = (math.sqrt(canary * (1 - canary)), math.sqrt(champion * (1 - champion)))
    se, n = _standard_error(metrics, "accuracy_diff_std", spreads)
    return Measurement(
        drop,
        f"accuracy canary {canary:.3f} vs champion {champion:.3f} (drop {drop:+.3f})",
        None if se is None else z * se,
        n,
    )


@register_check("loss_increase")
def _loss_increase(metrics: Mapping[str, float | None], z: float) -> Measurement:
    canary = _get(metrics, metric("canary", "loss"))
    champion = _get(metrics, metric("champion", "loss"))
    if canary is None or champion is None:
        n = _labelled(metrics)
        return Measurement(None, _missing("loss", canary=canary, champion=champion), 0.0, n)
    # Relative, so one threshold fits log loss and squared errors of any scale.
    scale = champion if champion > 0 else 1.0
    increase = (canary - champion) / scale
    spreads = (
        _get(metrics, metric("canary", "loss_std")),
        _get(metrics, metric("champion", "loss_std")),
    )
    se, n = _standard_error(metrics, "loss_diff_std", spreads)
    return Measurement(
        increase,
        f"loss canary {canary:.4g} vs champion {champion:.4g} (relative change {increase:+.1%})",
        None if se is None else z * se / scale,
        n,
    )


@register_check("prediction_shift")
def _prediction_shift(metrics: Mapping[str, float | None], z: float) -> Measurement:
    value = _get(metrics, "prediction_shift")
    if value is None:
        return Measurement(None, "no prediction shift (too few predictions from one model)")
    return Measurement(value, f"champion-to-canary prediction shift {value:.3f}")


def run_checks(
    specs: Sequence[CheckSpec],
    metrics: Mapping[str, float | None],
    confidence: float = 0.95,
    min_labelled: int = 1,
    min_positives: int = 0,
) -> tuple[CheckResult, ...]:
    """Every configured check, in order.

    A health check fails when its value exceeds ``max``. A quality check (one that reports
    its labelled count) is judged as a test: with fewer than `min_labelled` labels per
    predictor, or no spread to bound it by, it waits (``on_missing: skip``: it is skipped);
    otherwise it fails when its value exceeds ``max`` and its lower bound at `confidence`
    exceeds 0, i.e. the canary is both worse than tolerated and worse beyond noise. A ranking
    check also waits with fewer than `min_positives` labelled positives.
    """
    z = NormalDist().inv_cdf(confidence)
    out = []
    for spec in specs:
        m = check_for(spec.name)(metrics, z)
        skip = spec.on_missing == "skip"
        few_positives = m.positives is not None and m.positives < min_positives
        if m.labelled is not None and (
            m.labelled < min_labelled or few_positives or m.margin is None
        ):
            if m.labelled < min_labelled:
                why = f"{m.labelled:.0f} labelled per predictor, fewer than {min_labelled}"
            elif few_positives:
                why = f"not enough positives: {m.positives:.0f}, fewer than {min_positives}"
            else:
                why = "no spread to bound it by"
            verdict = "skipped" if skip else "not evaluated"
            out.append(
                CheckResult(
                    spec.name,
                    m.value,
                    spec.max,
                    None,
                    f"{spec.name} {verdict}: {why}",
                    waiting=not skip,
                )
            )
            continue
        if m.value is None:
            verdict = "skipped" if skip else "failed"
            out.append(
                CheckResult(
                    spec.name,
                    None,
                    spec.max,
                    None if skip else False,
                    f"{spec.name} {verdict}: {m.what}",
                )
            )
            continue
        if m.labelled is None or m.margin is None:
            passed = m.value <= spec.max
            text = f"{m.what}: {m.value:.4g} {'<=' if passed else '>'} {spec.max:g}"
        else:
            bound = m.value - m.margin
            passed = m.value <= spec.max or bound <= 0
            if passed and m.value > spec.max:
                text = (
                    f"{m.what}: {m.value:.4g} > {spec.max:g} but within noise (lower "
                    f"{confidence * 100:.3g}% bound {bound:.4g} <= 0, {m.labelled:.0f} labelled)"
                )
            else:
                sign = "<=" if passed else ">"
                level = f"{confidence * 100:.3g}%"
                text = (
                    f"{m.what}: {m.value:.4g} {sign} {spec.max:g} (lower {level} bound "
                    f"{bound:.4g}, {m.labelled:.0f} labelled)"
                )
        out.append(CheckResult(spec.name, m.value, spec.max, passed, text, m.margin or 0.0))
    return tuple(out)


def summarise(results: Sequence[CheckResult]) -> str:
    """One line: the failures if any, else how many checks passed and which wait."""
    failed = [r.reason for r in results if r.passed is False]
    if failed:
        return "; ".join(failed)
    passed = sum(1 for r in results if r.passed)
    waiting = [r.reason for r in results if r.waiting]
    # Each with its reason: a check skipped on too few labels had data, just not enough.
    skipped = [r.reason for r in results if r.passed is None and not r.waiting]
    line = f"{passed}/{len(results)} checks passed"
    if skipped:
        line += f" ({'; '.join(skipped)})"
    return line + (f"; {'; '.join(waiting)}" if waiting else "")
