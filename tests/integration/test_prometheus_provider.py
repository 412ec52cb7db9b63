"""The Prometheus provider against a real Prometheus server scraping a local metrics endpoint.

The test starts the `prometheus` binary (Debian package) on 127.0.0.1 and a small HTTP server
that serves Prometheus exposition text shaped like Seldon's executor metrics and the serving
image's feedback and score metrics. That endpoint is NOT the real Seldon executor or model
server: it is a stand-in with the same metric names and labels whose counters grow by fixed
amounts on every scrape, so every ratio and quantile the provider's PromQL computes is known
exactly. Prometheus itself, its scraping, storage and PromQL engine, are the real thing.

Skips when `prometheus` is not installed, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError
from retrain.rollout.machine import Observations
from retrain.rollout.prometheus import PrometheusProvider
from retrain.rollout.providers import ObserveRequest
from retrain.rollout.shift import js_distance
from retrain.storage import LocalStorage

pytestmark = pytest.mark.integration

EXECUTOR = "seldon_api_executor_server_requests_seconds"
LATENCY_LE = ("0.005", "0.01", "0.025", "0.05", "+Inf")
SCORE_LE = ("0.25", "0.5", "0.75", "1", "+Inf")
LOSS_LE = ("0.25", "0.5", "1", "+Inf")

# Per scrape: requests by code with cumulative latency buckets, feedback, scores (cumulative).
PER_SCRAPE: dict[str, dict[str, Any]] = {
    "canary": {
        "requests": {"200": (0, 49, 88, 98, 98), "500": (2, 2, 2, 2, 2)},
        "feedback": 50,
        "correct": 40,
        "loss_sum": 20.0,
        "losses": (20, 40, 50, 50),
        "scores": (30, 50, 80, 100, 100),
    },
    "champion": {
        "requests": {"200": (0, 450, 800, 900, 900)},
        "feedback": 450,
        "correct": 405,
        "loss_sum": 135.0,
        "losses": (270, 405, 450, 450),
        "scores": (400, 500, 700, 900, 900),
    },
}


def exposition(scrapes: int) -> str:
    """Metrics after `scrapes` scrapes: every counter is its per-scrape amount times that."""
    k = scrapes
    lines = [f"# TYPE {EXECUTOR} histogram"]
    for predictor, p in PER_SCRAPE.items():
        for code, buckets in p["requests"].items():
            labels = (
                f'code="{code}",deployment_name="loans",method="post",'
                f'predictor_name="{predictor}",predictor_version="",service="predictions"'
            )
            for le, n in zip(LATENCY_LE, buckets, strict=True):
                lines.append(f'{EXECUTOR}_bucket{{{labels},le="{le}"}} {n * k}')
            lines.append(f"{EXECUTOR}_sum{{{labels}}} {0.02 * buckets[-1] * k}")
            lines.append(f"{EXECUTOR}_count{{{labels}}} {buckets[-1] * k}")
    for name, kind in (
        ("retrain_feedback_total", "counter"),
        ("retrain_feedback_correct_total", "counter"),
        ("retrain_feedback_loss", "histogram"),
        ("retrain_prediction_score", "histogram"),
    ):
        lines.append(f"# TYPE {name} {kind}")
        for predictor, p in PER_SCRAPE.items():
            labels = f'deployment_name="loans",predictor_name="{predictor}",model_name="model"'
            if name == "retrain_feedback_total":
                lines.append(f"{name}{{{labels}}} {p['feedback'] * k}")
            elif name == "retrain_feedback_correct_total":
                lines.append(f"{name}{{{labels}}} {p['correct'] * k}")
            elif name == "retrain_feedback_loss":
                for le, n in zip(LOSS_LE, p["losses"], strict=True):
                    lines.append(f'{name}_bucket{{{labels},le="{le}"}} {n * k}')
                lines.append(f"{name}_sum{{{labels}}} {p['loss_sum'] * k}")
                lines.append(f"{name}_count{{{labels}}} {p['feedback'] * k}")
            else:
                scores = p["scores"]
                for le, n in zip(SCORE_LE, scores, strict=True):
                    lines.append(f'{name}_bucket{{{labels},le="{le}"}} {n * k}')
                lines.append(f"{name}_sum{{{labels}}} {0.5 * scores[-1] * k}")
                lines.append(f"{name}_count{{{labels}}} {scores[-1] * k}")
    return "\n".join(lines) + "\n"


class MetricsEndpoint:
    """A stand-in metrics endpoint (not Seldon): counts its scrapes and serves `exposition`."""

    def __init__(self) -> None:
        self.scrapes = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.scrapes += 1
                body = exposition(endpoint.scrapes).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MetricsEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MetricsEndpoint]]:
    binary = shutil.which("prometheus")
    if binary is None:
        reason = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("prometheus")
    with MetricsEndpoint() as endpoint:
        (tmp / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: seldon\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{endpoint.port}']\n"
        )
        port = _free_port()
        log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 (closed in finally)
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole below
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, tmp / "prometheus.log")
            yield url, endpoint
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"prometheus did not become ready:\n{log.read_text()[-2000:]}")


def _cfg(tmp_path: Path, url: str, deployment: str = "loans", **prom: object) -> Config:
    return config_from_dict(
        {
            "name": "loans",
            "task": "classification",
            "target": "label",
            "storage_root": str(tmp_path / "store"),
            "data": {
                "uri": "/unused",
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"x": "numeric"},
            },
            "labels": {"uri": "/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": deployment},
            "rollout": {
                "provider": "prometheus",
                "prometheus": {"url": url, "window": "20s", **prom},
            },
        }
    )


def _observe(cfg: Config, tmp_path: Path) -> Observations:
    provider = PrometheusProvider.from_config(cfg)
    request = ObserveRequest(
        cfg, LocalStorage(tmp_path / "store"), "v1", "v2", 10, 0, datetime.now(timezone.utc)
    )
    return provider.observe(request)


def test_provider_reads_executor_and_serving_metrics(
    prometheus: tuple[str, MetricsEndpoint], tmp_path: Path
) -> None:
    url, endpoint = prometheus
    cfg = _cfg(tmp_path, url)
    deadline = time.monotonic() + 60
    obs = _observe(cfg, tmp_path)
    # rate() needs two samples in the window; give Prometheus a few scrapes.
    while endpoint.scrapes < 6 or not obs.ready or obs.metrics["canary.error_rate"] is None:
        if time.monotonic() > deadline:
            pytest.fail(f"no data after {endpoint.scrapes} scrapes: {obs}")
        time.sleep(0.5)
        obs = _observe(cfg, tmp_path)
    m = obs.metrics
    assert obs.ready
    assert m["canary.error_rate"] == pytest.approx(0.02)
    # No 5xx series at all for the champion: `or vector(0)` makes that 0, not missing.
    assert m["champion.error_rate"] == 0.0
    assert m["canary.latency_p95"] == pytest.approx(0.0375)  # (0.025, 0.05] at 5/10
    assert m["champion.latency_p95"] == pytest.approx(0.03875)  # (0.025, 0.05] at 55/100
    assert m["canary.accuracy"] == pytest.approx(0.8)
    assert m["champion.accuracy"] == pytest.approx(0.9)
    assert m["canary.loss"] == pytest.approx(0.4)
    assert m["champion.loss"] == pytest.approx(0.3)
    # Labelled counts: feedback totals over the window, 450 to 50 per scrape.
    assert m["canary.labelled"] > 100
    assert m["champion.labelled"] == pytest.approx(9 * m["canary.labelled"], rel=1e-6)
    # Loss spread from the buckets at their midpoints, by hand: canary 20 at 0.125, 20 at
    # 0.375, 10 at 0.75 (mean 0.35, variance 0.0525); champion 270 / 135 / 45 (mean 0.2625,
    # variance 0.038906), times n / (n - 1) for a sample variance.
    for role, var in (("canary", 0.0525), ("champion", 0.0389063)):
        n = m[f"{role}.labelled"]
        assert n is not None
        assert m[f"{role}.loss_std"] == pytest.approx((var * n / (n - 1)) ** 0.5, rel=1e-5)
    assert m["canary.requests"] > 100 and m["champion.requests"] > 9 * m["canary.requests"] * 0.9
    per_bin = {r: np.diff([0, *PER_SCRAPE[r]["scores"]]) for r in ("champion", "canary")}
    expected = js_distance(per_bin["champion"], per_bin["canary"])
    assert m["prediction_shift"] == pytest.approx(expected, rel=1e-6)
    assert 0.1 < expected < 0.5


def test_a_deployment_without_series_is_not_ready(
    prometheus: tuple[str, MetricsEndpoint], tmp_path: Path
) -> None:
    url, _ = prometheus
    obs = _observe(_cfg(tmp_path, url, deployment="other"), tmp_path)
    assert not obs.ready and "no series yet" in obs.source


def test_a_bad_query_is_a_validation_error_from_the_server(
    prometheus: tuple[str, MetricsEndpoint], tmp_path: Path
) -> None:
    url, _ = prometheus
    cfg = _cfg(tmp_path, url, queries={"ready": "sum(rate(up[$window])"})
    with pytest.raises(ValidationError, match="Prometheus refused the query"):
        _observe(cfg, tmp_path)
