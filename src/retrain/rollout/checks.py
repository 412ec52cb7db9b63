"""Analysis checks, registered by name, each turning observed metrics into pass or fail.

Providers report metrics under flat names: ``canary.error_rate``, ``champion.accuracy``,
``prediction_shift``, ... (see `METRICS`); a metric they could not measure is None. A check
reads what it needs, compares one value against its configured ``max`` and says why in words.
A missing value fails the check unless the check is configured ``on_missing: skip``: no data is
not evidence of health (as in Flagger and Argo Rollouts).
"""

from __future__ import annotations

import math
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
}


def metric(role: str, name: str) -> str:
    """The flat name of a predictor's metric, e.g. ``metric("canary", "error_rate")``."""
    return f"{role}.{name}"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. `passed` is None when a missing metric was skipped; `margin` is
    the value's one-sided uncertainty at the configured confidence (0 when unknown)."""

    name: str
    value: float | None
    max: float
    passed: bool | None
    reason: str
    margin: float = 0.0

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
        )


@dataclass(frozen=True)
class Measurement:
    """A check's value, its one-sided uncertainty (0 if unknown) and what it is, in words.

    A value of None means the metrics it needs are missing; `what` then says which.
    """

    value: float | None
    what: str
    margin: float = 0.0


#: A check computes a `Measurement` from the metrics and the z value of the confidence.
CheckFn = Callable[[Mapping[str, float | None], float], Measurement]

CHECKS: dict[str, CheckFn] = {}


def register_check(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check under `name` (which must be listed in `CHECK_NAMES`)."""

    def wrap(fn: CheckFn) -> CheckFn:
        if name not in CHECK_NAMES:
            raise ValueError(f"check {name!r} must be listed in CHECK_NAMES")
        CHECKS[name] = fn
        return fn

    return wrap


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


@register_check("accuracy_drop")
def _accuracy_drop(metrics: Mapping[str, float | None], z: float) -> Measurement:
    canary = _get(metrics, metric("canary", "accuracy"))
    champion = _get(metrics, metric("champion", "accuracy"))
    if canary is None or champion is None:
        return Measurement(None, _missing("accuracy", canary=canary, champion=champion))
    drop = champion - canary
    n_canary = _get(metrics, metric("canary", "labelled"))
    n_champion = _get(metrics, metric("champion", "labelled"))
    margin = 0.0
    if n_canary and n_champion:
        # Standard error of a difference of two proportions.
        var = canary * (1 - canary) / n_canary + champion * (1 - champion) / n_champion
        margin = z * math.sqrt(var)
    return Measurement(
        drop,
        f"accuracy canary {canary:.3f} vs champion {champion:.3f} (drop {drop:+.3f})",
        margin,
    )


@register_check("loss_increase")
def _loss_increase(metrics: Mapping[str, float | None], z: float) -> Measurement:
    canary = _get(metrics, metric("canary", "loss"))
    champion = _get(metrics, metric("champion", "loss"))
    if canary is None or champion is None:
        return Measurement(None, _missing("loss", canary=canary, champion=champion))
    # Relative, so one threshold fits log loss and squared errors of any scale.
    scale = champion if champion > 0 else 1.0
    increase = (canary - champion) / scale
    margin = 0.0
    parts = [
        _get(metrics, metric(r, k))
        for r in ("canary", "champion")
        for k in ("loss_std", "labelled")
    ]
    sd_c, n_c, sd_h, n_h = parts
    if sd_c is not None and sd_h is not None and n_c and n_h:
        margin = z * math.sqrt(sd_c**2 / n_c + sd_h**2 / n_h) / scale
    return Measurement(
        increase,
        f"loss canary {canary:.4g} vs champion {champion:.4g} (relative change {increase:+.1%})",
        margin,
    )


@register_check("prediction_shift")
def _prediction_shift(metrics: Mapping[str, float | None], z: float) -> Measurement:
    value = _get(metrics, "prediction_shift")
    if value is None:
        return Measurement(None, "no prediction shift (too few predictions from one model)")
    return Measurement(value, f"champion-to-canary prediction shift {value:.3f}")


def run_checks(
    specs: Sequence[CheckSpec], metrics: Mapping[str, float | None], confidence: float = 0.95
) -> tuple[CheckResult, ...]:
    """Every configured check, in order.

    A check fails when its value exceeds ``max``. Where a check knows its uncertainty (the
    quality checks, from the labelled counts), it fails only when even the value's lower
    confidence bound exceeds ``max``: at 10 % traffic the canary answers few labelled requests,
    and a point estimate would roll back a good canary on noise.
    """
    z = NormalDist().inv_cdf(confidence)
    out = []
    for spec in specs:
        m = CHECKS[spec.name](metrics, z)
        if m.value is None:
            skipped = spec.on_missing == "skip"
            verdict = "skipped" if skipped else "failed"
            out.append(
                CheckResult(
                    spec.name,
                    None,
                    spec.max,
                    None if skipped else False,
                    f"{spec.name} {verdict}: {m.what}",
                )
            )
            continue
        passed = m.value - m.margin <= spec.max
        sign = "<=" if passed else ">"
        if m.margin:
            bound = m.value - m.margin
            text = f"{m.what}: lower {confidence:.0%} bound {bound:.4g} {sign} {spec.max:g}"
        else:
            text = f"{m.what}: {m.value:.4g} {sign} {spec.max:g}"
        out.append(CheckResult(spec.name, m.value, spec.max, passed, text, m.margin))
    return tuple(out)


def summarise(results: Sequence[CheckResult]) -> str:
    """One line: the failures if any, else how many checks passed."""
    failed = [r.reason for r in results if r.passed is False]
    if failed:
        return "; ".join(failed)
    passed = sum(1 for r in results if r.passed)
    skipped = [r.name for r in results if r.passed is None]
    line = f"{passed}/{len(results)} checks passed"
    return line + (f" ({', '.join(skipped)} skipped: no data)" if skipped else "")
