"""`retrain submit`: the HTTP requests the real kfp client sends, and the exit codes.

The server here is NOT a Kubeflow Pipelines backend: it is a small local stand-in on
127.0.0.1 that records each request and answers with the minimal JSON the kfp client parses
(healthz, experiments, runs). It shows what `retrain submit` asks KFP to do; whether KFP then
runs it needs a real cluster.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from required import require
from retrain.cli import main
from retrain.config import load_config

require("kfp", "submit compiles the pipeline with the KFP SDK (extra 'kfp')")

MANIFESTS = Path(__file__).parents[2] / "manifests"
IMAGE = "registry.example.com/retrain/retrain:9.9.9"
DIGEST = "sha256:" + "ab" * 32


@dataclass
class StandIn:
    """The recorded requests and the canned answers of the stand-in server."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    run_status: int = 200
    run_error: str = ""

    def calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.requests]

    def body(self, method: str, path: str) -> Any:
        return next(b for m, p, _, b in self.requests if (m, p) == (method, path))


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> tuple[str, dict[str, list[str]], Any]:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            query = parse_qs(url.query)
            state.requests.append((self.command, url.path, query, body))
            return url.path, query, body

        def do_GET(self) -> None:
            path, _, _ = self._record()
            if path == "/apis/v2beta1/healthz":
                self._reply(200, {"multi_user": False})
            elif path == "/apis/v2beta1/experiments":
                self._reply(200, {"experiments": state.experiments, "total_size": 0})
            else:
                self._reply(404, {"error": f"no route {path}", "code": 5})

        def do_POST(self) -> None:
            path, _, body = self._record()
            if path == "/apis/v2beta1/experiments":
                self._reply(200, {"experiment_id": "exp-1", **body})
            elif path == "/apis/v2beta1/runs":
                if state.run_status != 200:
                    self._reply(
                        state.run_status, {"error": state.run_error, "message": state.run_error}
                    )
                else:
                    self._reply(200, {"run_id": "kfp-run-1", **body})
            else:
                self._reply(404, {"error": f"no route {path}"})

    return Handler


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandIn]:
    # The kfp client reads ~/.config/kfp/context.json: keep the user's out of the test.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cluster_config(tmp_path: Path) -> Path:
    """The gcp overlay's config: every location a gs:// URI."""
    path = tmp_path / "loans.yaml"
    path.write_text((MANIFESTS / "overlays" / "gcp" / "config.yaml").read_text())
    return path


def _submit(config: Path, *extra: str, host: str | None = None) -> int:
    argv = ["submit", "--config", str(config), "--window", "7", "--image", IMAGE]
    argv += ["--image-digest", DIGEST]
    if host:
        argv += ["--host", host]
    return main([*argv, *extra])


@pytest.mark.integration
def test_submit_creates_the_experiment_and_a_run_with_cluster_settings(
    stand_in: StandIn, cluster_config: Path, capsys: pytest.CaptureFixture
) -> None:
    code = _submit(
        cluster_config, "--namespace", "retrain", "--run-id", "w7-test", host=stand_in.url
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert stand_in.calls() == [
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
    ]
    query = stand_in.requests[0][2]
    assert query["namespace"] == ["retrain"]
    assert json.loads(query["filter"][0])["predicates"][0]["stringValue"] == "retrain"
    assert stand_in.body("POST", "/apis/v2beta1/experiments")["namespace"] == "retrain"

    run = stand_in.body("POST", "/apis/v2beta1/runs")
    assert run["display_name"] == "w7-test"
    assert run["experiment_id"] == "exp-1"
    assert run["service_account"] == "retrain-pipeline"
    params = run["runtime_config"]["parameters"]
    assert params == {
        "config_yaml": load_config(cluster_config).to_yaml(),
        "window_id": "7",
        "run_id": "w7-test",
    }
    spec, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"{IMAGE}@{DIGEST}"}
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # deploy.mode is kubernetes: the deploy step, and only it, gets the deployer's token.
    tokens = {name for name, e in executors.items() for s in e.get("secretAsVolume", [])}
    assert tokens == {"exec-deploy"}
    assert "submitted window 7 as run w7-test (KFP run kfp-run-1)" in out
    assert f"{stand_in.url}/#/runs/details/kfp-run-1" in out


@pytest.mark.integration
def test_an_existing_experiment_is_reused(stand_in: StandIn, cluster_config: Path) -> None:
    stand_in.experiments = [{"experiment_id": "exp-9", "display_name": "retrain"}]
    assert _submit(cluster_config, host=stand_in.url) == 0
    assert ("POST", "/apis/v2beta1/experiments") not in stand_in.calls()
    assert stand_in.body("POST", "/apis/v2beta1/runs")["experiment_id"] == "exp-9"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("status", "exit_code"), [(500, 75), (503, 75), (429, 75), (403, 2), (400, 2)]
)
def test_api_failures_keep_the_exit_code_meaning(
    stand_in: StandIn,
    cluster_config: Path,
    capsys: pytest.CaptureFixture,
    status: int,
    exit_code: int,
) -> None:
    stand_in.run_status, stand_in.run_error = status, "refused by the stand-in"
    assert _submit(cluster_config, host=stand_in.url) == exit_code
    err = capsys.readouterr().err
    assert f"HTTP {status}" in err and "refused by the stand-in" in err


def test_an_unreachable_endpoint_is_transient(
    cluster_config: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _submit(cluster_config, host=f"http://127.0.0.1:{port}") == 75
    assert "cannot reach the KFP API" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["storage_root", "data", "labels"])
def test_relative_locations_are_refused_before_any_request(
    tmp_path: Path, cluster_config: Path, capsys: pytest.CaptureFixture, key: str
) -> None:
    raw = yaml.safe_load(cluster_config.read_text())
    if key == "storage_root":
        raw["storage_root"] = "store"
    else:
        raw[key]["uri"] = "events"
    cluster_config.write_text(yaml.safe_dump(raw))
    # No server: a request would fail with 75, not 2.
    assert _submit(cluster_config, host="http://127.0.0.1:9") == 2
    assert "is relative" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "week-7"], "not an integer period"),
        (["--image", "registry.example.com/retrain/retrain:latest"], "pinned tag"),
        (["--image-digest", "sha256:short"], "sha256"),
        (["--pvc", "retrain-store"], "NAME:/absolute/path"),
        (["--secret", "train:creds:/x"], "STEP=NAME:/path"),
        (["--secret", "nostep=creds:/x"], "unknown steps"),
        (["--host", "kfp.example.com"], "http://"),
    ],
)
def test_bad_arguments_exit_2(
    cluster_config: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    argv = ["submit", "--config", str(cluster_config), "--window", "7", "--image", IMAGE]
    argv += ["--host", "http://127.0.0.1:9"]
    assert main([*argv, *args]) == 2
    assert message in capsys.readouterr().err


def test_dry_run_compiles_without_a_host(
    tmp_path: Path, cluster_config: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "build" / "cluster.yaml"
    code = _submit(
        cluster_config,
        "--dry-run",
        "--output",
        str(out),
        "--pvc",
        "retrain-store:/var/lib/retrain",
        "--deployer-token-secret",
        "",
    )
    assert code == 0, capsys.readouterr().err
    _spec, platform = yaml.safe_load_all(out.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all(e["pvcMount"][0]["mountPath"] == "/var/lib/retrain" for e in executors.values())
    assert all("secretAsVolume" not in e for e in executors.values())
    assert "not submitted" in capsys.readouterr().out


@pytest.mark.integration
def test_window_auto_is_passed_through_for_the_pipeline_to_resolve(
    stand_in: StandIn, cluster_config: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["submit", "--config", str(cluster_config), "--window", "auto", "--image", IMAGE]
    code = main([*argv, "--host", stand_in.url])
    out = capsys.readouterr().out
    assert code == 0, out
    run = stand_in.body("POST", "/apis/v2beta1/runs")
    # What a recurring run passes: the pipeline's resolve task picks the window and the run id.
    assert run["runtime_config"]["parameters"] == {
        "config_yaml": load_config(cluster_config).to_yaml(),
        "window_id": "auto",
        "run_id": "auto",
    }
    name = load_config(cluster_config).name
    assert run["display_name"].startswith(f"{name}-auto-")
    assert "resolves the newest complete window when it starts" in out
    assert "records as run w<window>-kfp-run-1" in out


@pytest.mark.parametrize("window", ["AUTO", "autox", " auto"])
def test_a_misspelt_auto_window_exits_2(
    cluster_config: Path, capsys: pytest.CaptureFixture, window: str
) -> None:
    argv = ["submit", "--config", str(cluster_config), "--window", window, "--image", IMAGE]
    assert main([*argv, "--host", "http://127.0.0.1:9"]) == 2
    assert "is neither an id nor the keyword 'auto'" in capsys.readouterr().err
