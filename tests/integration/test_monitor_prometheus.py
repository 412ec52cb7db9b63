"""`retrain monitor --every` scraped by a real Prometheus server.

The test trains a first champion on a SEA stream (river), starts `retrain monitor --every 1s
--launch none` as a process serving its metrics on 127.0.0.1, and starts the `prometheus`
binary (Debian package) on 127.0.0.1 with a generated config that scrapes it every second.
It then queries Prometheus's HTTP API until the monitor's series appear, and stops both.

Skips when `prometheus` (or git, for the GitOps deploy of the first champion) is missing,
except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sea_stream import sea, write_case

from retrain.errors import EXIT_OK
from retrain.runner import run_cycle

pytestmark = pytest.mark.integration


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        reason = f"{program} is not installed (Debian package {program})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " and CI=true", pytrace=False)
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A champion trained on window 0, and the monitor checking window 2 (drifted) every 1 s."""
    _need("git")
    cfg = write_case(tmp_path, *sea([2], seed=5, windows=3))
    first = run_cycle(cfg, "0", engine="direct", run_id="bootstrap-0")
    assert first.exit_code == EXIT_OK, first.lines()
    port = _free_port()
    log = open(tmp_path / "monitor.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retrain.cli",
            "monitor",
            "--config",
            str(tmp_path / "sea.yaml"),
            "--every",
            "1s",
            "--window",
            "2",
            "--port",
            str(port),
            "--launch",
            "none",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {"cfg": cfg, "port": port, "proc": proc, "log": tmp_path / "monitor.log"}
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def prometheus(tmp_path: Path, monitored: dict[str, Any]) -> Iterator[str]:
    binary = _need("prometheus")
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: retrain-monitor\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{monitored['port']}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for(base: str, promql: str, monitored: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 90
    last: Exception | None = None
    while time.monotonic() < deadline:
        assert monitored["proc"].poll() is None, Path(monitored["log"]).read_text()
        try:
            result = query(base, promql)
            if result:
                return result
        except OSError as err:  # Prometheus still starting
            last = err
        time.sleep(0.5)
    raise AssertionError(
        f"no series for {promql} ({last}); monitor log:\n{Path(monitored['log']).read_text()}"
    )


def test_prometheus_scrapes_the_monitor(prometheus: str, monitored: dict[str, Any]) -> None:
    stats = wait_for(prometheus, 'retrain_drift_statistic{model="sea"}', monitored)
    assert {s["metric"]["feature"] for s in stats} == {"x0", "x1", "x2"}
    assert all(s["metric"]["method"] for s in stats)

    # Window 2 holds SEA's concept change: the champion's accuracy drops, so it drifted.
    drifted = wait_for(prometheus, 'retrain_drift_dataset_drifted{model="sea"}', monitored)
    assert float(drifted[0]["value"][1]) == 1.0
    share = wait_for(prometheus, 'retrain_drift_share_drifted{model="sea"}', monitored)
    assert 0.0 <= float(share[0]["value"][1]) <= 1.0
    checked = wait_for(
        prometheus, 'retrain_monitor_last_check_timestamp_seconds{model="sea"}', monitored
    )
    assert abs(float(checked[0]["value"][1]) - time.time()) < 120

    # The first check launches on the champion's labelled drop (the performance rule, at
    # once); the drift signal waits for its hysteresis (2 windows needed; re-checking the same
    # window counts once), and every re-check of the launched window is a duplicate. Each
    # decision is counted by the rule that made it.
    wait_for(prometheus, 'retrain_trigger_decisions_total{model="sea",rule="duplicate"}', monitored)
    decisions = query(prometheus, 'retrain_trigger_decisions_total{model="sea"}')
    by_rule = {(d["metric"]["rule"], d["metric"]["launch"]) for d in decisions}
    assert by_rule == {("performance", "true"), ("hysteresis", "false"), ("duplicate", "false")}
    [launched] = [d for d in decisions if d["metric"]["rule"] == "performance"]
    assert float(launched["value"][1]) == 1.0  # one launch, however many checks
    last_run = query(prometheus, 'retrain_last_run_timestamp_seconds{model="sea"}')
    assert abs(float(last_run[0]["value"][1]) - time.time()) < 120

    store = Path(monitored["cfg"].storage_root)
    assert list((store / "monitor").glob("*.json")) and list((store / "monitor").glob("*.md"))
