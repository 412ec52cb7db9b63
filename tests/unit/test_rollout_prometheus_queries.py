"""Prometheus provider pieces that need no server: query templates, config errors, no server.

The queries themselves run against a real Prometheus in
tests/integration/test_prometheus_provider.py.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from rollout_support import T0, make_cfg

from retrain.errors import TransientError, ValidationError
from retrain.rollout.observe import ObserveRequest
from retrain.rollout.prometheus import (
    DEFAULT_QUERIES,
    PrometheusClient,
    PrometheusProvider,
    render_query,
    std_from_buckets,
)
from retrain.settings.rollout import PrometheusSettings
from retrain.storage import LocalStorage


def test_default_queries_select_one_predictor_of_the_deployment() -> None:
    q = render_query(
        DEFAULT_QUERIES["error_rate"],
        key="error_rate",
        deployment="loans",
        namespace="models",
        predictor="canary",
        window="2m",
        extra_selector='namespace="models"',
    )
    sel = 'deployment_name="loans",predictor_name="canary",namespace="models"'
    assert q == (
        f"(sum(rate(seldon_api_executor_server_requests_seconds_count{{{sel},"
        f'service="predictions",code=~"5.."}}[2m])) or vector(0)) / '
        f'sum(rate(seldon_api_executor_server_requests_seconds_count{{{sel},service="predictions"}}'
        "[2m]))"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("labelled", "sum(increase(retrain_feedback_total{SEL}[5m]))"),
        (
            "loss_histogram",
            "sum by (le) (increase(retrain_feedback_loss_bucket{SEL}[5m]))",
        ),
    ],
)
def test_the_quality_bound_queries_count_feedback_per_predictor(key: str, expected: str) -> None:
    q = render_query(
        DEFAULT_QUERIES[key],
        key=key,
        deployment="loans",
        namespace="models",
        predictor="champion",
        window="5m",
    )
    assert q == expected.replace("SEL", 'deployment_name="loans",predictor_name="champion"')


def test_loss_spread_from_histogram_buckets() -> None:
    # By hand: 2 at 0.5, 2 at 1.5 (bucket midpoints), 1 beyond 2 counted at 2:
    # mean 1.2; squared deviations 2 x 0.49 + 2 x 0.09 + 0.64 = 1.8; / (5 - 1) = 0.45.
    buckets = [(2.0, 4.0), (1.0, 2.0), (float("inf"), 5.0)]
    assert std_from_buckets(buckets) == pytest.approx(0.45**0.5)
    assert std_from_buckets([(1.0, 1.0), (float("inf"), 1.0)]) is None  # one value
    assert std_from_buckets([(float("inf"), 9.0)]) is None  # no finite bound


def test_unknown_placeholder_names_the_query_key() -> None:
    with pytest.raises(ValidationError, match=r"rollout.prometheus.queries.loss: bad placeholder"):
        render_query(
            "sum(x{$selektor})",
            key="loss",
            deployment="d",
            namespace="n",
            predictor="p",
            window="1m",
        )


def test_unknown_query_override_is_refused() -> None:
    settings = PrometheusSettings(url="http://127.0.0.1:9", queries={"p99": "up"})
    with pytest.raises(ValidationError, match="p99: use one of requests"):
        PrometheusProvider(settings)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("url", "prometheus:9090", "http:// or https://"), ("window", "5 min", "PromQL duration")],
)
def test_settings_errors(field: str, value: str, message: str) -> None:
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError, match=message):
        PrometheusSettings.model_validate({"url": "http://p:9090", field: value})


def test_unreachable_prometheus_is_transient() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout_seconds=2)
    with pytest.raises(TransientError, match="cannot reach Prometheus") as err:
        client.value("up", datetime.now(timezone.utc))
    assert err.value.exit_code == 75


class _Answers:
    """A Prometheus client answering each exact query from a table (no server)."""

    url = "http://prometheus.test"

    def __init__(self, values: dict[str, float], vectors: dict[str, list[dict[str, Any]]]):
        self.values, self.vectors = values, vectors

    def value(self, promql: str, at: datetime) -> float | None:
        return self.values.get(promql)

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]] | float | None:
        return self.vectors.get(promql, [])


def test_provider_reports_labelled_counts_and_loss_spread(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, provider="prometheus", prometheus={"url": "http://p:9090"})

    def q(key: str, predictor: str) -> str:
        return render_query(
            DEFAULT_QUERIES[key],
            key=key,
            deployment="loans",
            namespace="models",
            predictor=predictor,
            window="5m",
        )

    values = {q("ready", "canary"): 1.0}
    for role, n in (("champion", 1800.0), ("canary", 200.0)):
        values.update({q("labelled", role): n, q("accuracy", role): 0.9, q("loss", role): 0.3})
    buckets = [(1.0, 2.0), (2.0, 4.0), (float("inf"), 5.0)]  # std 0.45 ** 0.5 (see above)
    vectors = {
        q("loss_histogram", role): [
            {"metric": {"le": str(le)}, "value": [0, str(c)]} for le, c in buckets
        ]
        for role in ("champion", "canary")
    }
    provider = PrometheusProvider(
        cfg.rollout.prometheus, client=cast(PrometheusClient, _Answers(values, vectors))
    )
    request = ObserveRequest(cfg, LocalStorage(tmp_path), "v1", "v2", 10, 0, T0)
    m = provider.observe(request).metrics
    assert (m["canary.labelled"], m["champion.labelled"]) == (200.0, 1800.0)
    assert m["canary.loss_std"] == pytest.approx(0.45**0.5)
    assert m["champion.loss_std"] == pytest.approx(0.45**0.5)
