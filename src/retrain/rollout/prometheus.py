"""Prometheus provider: canary analysis from PromQL over the serving metrics.

Series used (names checked against seldon-core v1's executor and Python wrapper):

- ``seldon_api_executor_server_requests_seconds_{bucket,count,sum}``: the executor's request
  histogram, labelled ``deployment_name``, ``predictor_name``, ``predictor_version``,
  ``service`` ("predictions", "feedback", ...), ``method`` and ``code`` (the HTTP status for
  REST). Error rate is the share of ``code=~"5.."``; latency p95 comes from the buckets.
- ``retrain_feedback_total``, ``retrain_feedback_correct_total``,
  ``retrain_feedback_loss_{sum,count}`` and ``retrain_prediction_score_bucket``: the serving
  image's own metrics (custom metrics on Seldon's metrics port, so they carry the same
  ``deployment_name`` / ``predictor_name`` labels). Seldon's built-in
  ``seldon_api_model_feedback_reward`` cannot give accuracy: the Python wrapper skips a
  feedback whose reward is 0, so wrong predictions are never counted.

The quality checks need labelled counts and spreads, not just ratios: ``labelled`` is the
feedback count over the window, accuracy's spread follows from the accuracy itself, and the
loss's spread is read from the ``retrain_feedback_loss_bucket`` histogram (each bucket's losses
at its midpoint; losses above the largest finite bound at that bound, which understates the
spread of heavy tails and so errs towards a narrower bound, i.e. towards rolling back).

Every query is a template (`string.Template`) with ``$selector`` (one predictor's label
matchers), ``$window``, ``$deployment``, ``$namespace`` and ``$predictor``; any of them can be
replaced under ``rollout.prometheus.queries``. Error-rate numerators use ``or vector(0)``: with
no 5xx at all the error series does not exist, and without it the ratio would be empty
(missing) instead of 0. The same holds for the count of correct predictions.
"""

from __future__ import annotations

import json
import math
import string
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retrain.errors import TransientError, ValidationError
from retrain.rollout.checks import metric
from retrain.rollout.machine import Observations
from retrain.rollout.observe import ObserveRequest
from retrain.rollout.shift import MIN_PREDICTIONS, counts_from_buckets, shift
from retrain.settings.rollout import PrometheusSettings

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "DEFAULT_QUERIES",
    "PrometheusClient",
    "PrometheusProvider",
    "render_query",
    "std_from_buckets",
]

_EXECUTOR = "seldon_api_executor_server_requests_seconds"
_PREDICTIONS = '$selector,service="predictions"'

#: PromQL templates by metric; see the module docstring for the placeholders.
DEFAULT_QUERIES: dict[str, str] = {
    "requests": f"sum(increase({_EXECUTOR}_count{{{_PREDICTIONS}}}[$window]))",
    "error_rate": (
        f'(sum(rate({_EXECUTOR}_count{{{_PREDICTIONS},code=~"5.."}}[$window])) or vector(0))'
        f" / sum(rate({_EXECUTOR}_count{{{_PREDICTIONS}}}[$window]))"
    ),
    "latency_p95": (
        f"histogram_quantile(0.95, sum by (le) (rate({_EXECUTOR}_bucket{{{_PREDICTIONS}}}"
        "[$window])))"
    ),
    "accuracy": (
        "(sum(increase(retrain_feedback_correct_total{$selector}[$window])) or vector(0))"
        " / sum(increase(retrain_feedback_total{$selector}[$window]))"
    ),
    "loss": (
        "sum(increase(retrain_feedback_loss_sum{$selector}[$window]))"
        " / sum(increase(retrain_feedback_loss_count{$selector}[$window]))"
    ),
    "labelled": "sum(increase(retrain_feedback_total{$selector}[$window]))",
    "loss_histogram": ("sum by (le) (increase(retrain_feedback_loss_bucket{$selector}[$window]))"),
    "score_histogram": (
        "sum by (le) (increase(retrain_prediction_score_bucket{$selector}[$window]))"
    ),
    # Ready once the canary's executor has answered a prediction: before its first request
    # the executor exports no series for it.
    "ready": f"count({_EXECUTOR}_count{{{_PREDICTIONS}}})",
}

_PER_PREDICTOR = ("requests", "error_rate", "latency_p95", "accuracy", "loss", "labelled")


def render_query(
    template: str,
    *,
    key: str,
    deployment: str,
    namespace: str,
    predictor: str,
    window: str,
    extra_selector: str = "",
) -> str:
    """A query template with its placeholders filled; unknown placeholders name the key."""
    selector = f'deployment_name="{deployment}",predictor_name="{predictor}"'
    if extra_selector.strip():
        selector += "," + extra_selector.strip().strip(",")
    try:
        return string.Template(template).substitute(
            selector=selector,
            window=window,
            deployment=deployment,
            namespace=namespace,
            predictor=predictor,
        )
    except (KeyError, ValueError) as err:
        raise ValidationError(
            f"rollout.prometheus.queries.{key}: bad placeholder {err} (use $selector, $window, "
            "$deployment, $namespace, $predictor)"
        ) from None


class PrometheusClient:
    """The instant-query endpoint of Prometheus' HTTP API (``GET /api/v1/query``)."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float = 10.0,
        opener: Callable[..., Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout_seconds
        self._open = opener or urllib.request.urlopen

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]] | float | None:
        """A vector result as a list of ``{"metric", "value"}``, a scalar as a float."""
        params = urllib.parse.urlencode({"query": promql, "time": f"{at.timestamp():.3f}"})
        where = f"{self.url}/api/v1/query"
        try:
            with self._open(f"{where}?{params}", timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = _error_detail(err)
            if err.code in (400, 422):
                raise ValidationError(
                    f"Prometheus refused the query {promql!r}: {detail}"
                ) from None
            if err.code in (401, 403, 404):
                raise ValidationError(
                    f"Prometheus at {where} answered {err.code}: {detail}"
                ) from None
            raise TransientError(f"Prometheus at {where} answered {err.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            raise TransientError(f"cannot reach Prometheus at {where}: {err}") from None
        except json.JSONDecodeError as err:
            raise TransientError(f"Prometheus at {where} sent invalid JSON: {err}") from None
        if body.get("status") != "success":
            raise ValidationError(
                f"Prometheus query {promql!r} failed: {body.get('errorType')}: {body.get('error')}"
            )
        data = body.get("data", {})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return _number(result[1])
        if kind == "vector":
            return list(result)
        raise ValidationError(f"Prometheus query {promql!r} returned a {kind}, not a vector")

    def value(self, promql: str, at: datetime) -> float | None:
        """The single number a query returns; None for no series, NaN or infinity."""
        result = self.query(promql, at)
        if result is None or isinstance(result, float):
            return result
        if not result:
            return None
        if len(result) > 1:
            raise ValidationError(
                f"Prometheus query {promql!r} returned {len(result)} series; aggregate it "
                "(e.g. with sum()) to one"
            )
        return _number(result[0]["value"][1])


class PrometheusProvider:
    """Observes champion and canary through Prometheus."""

    name = "prometheus"

    def __init__(
        self,
        settings: PrometheusSettings,
        shift_method: str = "js",
        client: PrometheusClient | None = None,
    ) -> None:
        if not settings.url and client is None:
            raise ValidationError("rollout.prometheus.url is required for the prometheus provider")
        self.settings = settings
        self.shift_method = shift_method
        self.client = client or PrometheusClient(str(settings.url), settings.timeout_seconds)
        unknown = sorted(set(settings.queries) - set(DEFAULT_QUERIES))
        if unknown:
            raise ValidationError(
                "rollout.prometheus.queries has unknown keys",
                [f"{k}: use one of {', '.join(DEFAULT_QUERIES)}" for k in unknown],
            )
        self.queries = {**DEFAULT_QUERIES, **settings.queries}

    @classmethod
    def from_config(cls, cfg: Config) -> PrometheusProvider:
        return cls(cfg.rollout.prometheus, cfg.rollout.shift_method)

    def _query(self, key: str, request: ObserveRequest, predictor: str) -> str:
        d = request.cfg.deploy
        return render_query(
            self.queries[key],
            key=key,
            deployment=d.deployment_name,
            namespace=d.namespace,
            predictor=predictor,
            window=self.settings.window,
            extra_selector=self.settings.extra_selector,
        )

    def observe(self, request: ObserveRequest) -> Observations:
        at = request.now
        ready_value = self.client.value(self._query("ready", request, "canary"), at)
        source = (
            f"Prometheus {self.client.url}, window {self.settings.window}, "
            f"deployment {request.cfg.deploy.deployment_name}"
        )
        if not ready_value:
            return Observations(ready=False, source=source + ": the canary has no series yet")
        metrics: dict[str, float | None] = {}
        for role in ("champion", "canary"):
            for name in _PER_PREDICTOR:
                metrics[metric(role, name)] = self.client.value(
                    self._query(name, request, role), at
                )
            buckets = self._buckets("loss_histogram", request, role, at)
            metrics[metric(role, "loss_std")] = (
                None if buckets is None else std_from_buckets(buckets)
            )
        metrics["prediction_shift"] = self._shift(request, at)
        return Observations(ready=True, metrics=metrics, source=source)

    def _buckets(
        self, key: str, request: ObserveRequest, role: str, at: datetime
    ) -> list[tuple[float, float]] | None:
        """A histogram query's (le, cumulative count) pairs; None without any series."""
        result = self.client.query(self._query(key, request, role), at)
        if not isinstance(result, list) or not result:
            return None
        buckets = []
        for series in result:
            le = series.get("metric", {}).get("le")
            count = _number(series["value"][1])
            if le is None or count is None:
                continue
            buckets.append((float(le), count))
        return buckets

    def _shift(self, request: ObserveRequest, at: datetime) -> float | None:
        hists = {}
        for role in ("champion", "canary"):
            buckets = self._buckets("score_histogram", request, role, at)
            if buckets is None:
                return None
            hists[role] = _buckets_by_le(buckets)
        common = sorted(set(hists["champion"]) & set(hists["canary"]))
        if len(common) < 2:
            return None
        ref = counts_from_buckets([(le, hists["champion"][le]) for le in common])
        cur = counts_from_buckets([(le, hists["canary"][le]) for le in common])
        if min(ref.sum(), cur.sum()) < MIN_PREDICTIONS:
            return None
        return shift(self.shift_method, ref, cur)


def std_from_buckets(buckets: list[tuple[float, float]]) -> float | None:
    """The sample standard deviation of non-negative values in a cumulative histogram.

    Each bucket's values count at its midpoint (the first bucket's lower edge is 0); values in
    the +Inf bucket count at the largest finite bound. None for fewer than two values.
    """
    ordered = sorted(buckets)
    finite = [le for le, _ in ordered if math.isfinite(le)]
    if not finite:
        return None
    points, counts, lower, seen = [], [], 0.0, 0.0
    for le, cumulative in ordered:
        count = max(cumulative - seen, 0.0)
        seen = max(seen, cumulative)
        points.append((lower + le) / 2 if math.isfinite(le) else finite[-1])
        counts.append(count)
        lower = le if math.isfinite(le) else lower
    total = sum(counts)
    if total < 2:
        return None
    mean = sum(p * c for p, c in zip(points, counts, strict=True)) / total
    var = sum(c * (p - mean) ** 2 for p, c in zip(points, counts, strict=True)) / (total - 1)
    return math.sqrt(var)


def _buckets_by_le(buckets: list[tuple[float, float]]) -> Mapping[float, float]:
    return {le: count for le, count in buckets}


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(err.read())
        return f"{body.get('errorType')}: {body.get('error')}"
    except Exception:  # the body is only for the message
        return str(err.reason)
