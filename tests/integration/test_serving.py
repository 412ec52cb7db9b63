"""The serving image's model server, for real: seldon-core's microservice with RetrainModel.

The server runs in its own Python >= 3.12 virtual environment (seldon-core cannot share one with
kfp), created once under ``.cache/serving-venv/<hash of serving/*.txt>`` and reused. Models are
trained here with the main environment's retrain.training code, written as model.skops +
model.json, and served by the real ``seldon-core-microservice``. It binds 0.0.0.0, so it runs
in a private network namespace with only loopback (``unshare -n``, as root); the requests come
from a thread of this process that joined that namespace (``setns``), over real HTTP.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from retrain.config import Config, config_from_dict
from retrain.data.schema import as_category_strings
from retrain.training.artifact import card_from_config, model_files, sha256_hex
from retrain.training.model import fit_model, predict_scores

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"
REQUIREMENT_FILES = ("requirements.txt", "requirements-gcs.txt", "constraints.txt")
HTTP_PORT, METRICS_PORT = 9000, 6000
START_TIMEOUT = 90.0
CLONE_NEWNET = 0x40000000
FEATURES = {"x1": "numeric", "x2": "numeric", "colour": "categorical", "size": "categorical"}
WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI=true, where every prerequisite must be present."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: the serving tests must run)", pytrace=False)
    pytest.skip(reason)


# --- the serving environment ------------------------------------------------------------------


def _python_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return None
    if out.returncode != 0:  # e.g. a pyenv shim for a version that is not selected
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def find_python312() -> str | None:
    """A Python 3.12 interpreter: ``python3.12`` on PATH, else one under ``pyenv root``."""
    candidates = []
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        versions = sorted(
            Path(root, "versions").glob("3.12*"),
            key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)],
            reverse=True,
        )
        candidates += [str(v / "bin" / "python3.12") for v in versions]
    for exe in candidates:
        if _python_version(exe) == (3, 12):
            return exe
    return None


def _run(cmd: list[str], log: Path, **kwargs: Any) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        pytest.fail(f"{cmd[0]} failed ({done.returncode}):\n{tail}", pytrace=False)


def _requirement_lines(path: Path) -> str:
    """The requirement lines of a file, without comments: editing a comment keeps the venv."""
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return "\n".join(ln for ln in lines if ln)


def _prune(cache: Path, keep: str) -> None:
    """Remove venvs of older requirement sets that no one is using (their lock is free)."""
    for lock_file in cache.glob("*.lock"):
        name = lock_file.name.removesuffix(".lock")
        if name == keep:
            continue
        with lock_file.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(cache / name, ignore_errors=True)
            (cache / f"{name}.log").unlink(missing_ok=True)
            lock_file.unlink()


@pytest.fixture(scope="session")
def serving_venv() -> Path:
    """The serving virtual environment, created once per set of requirement files.

    The retrain package is installed editable with ``--no-deps``, as the image installs it
    without dependencies: if the server imported more of it than ``retrain._safety``, it would
    fail here for lack of pydantic and the rest.
    """
    python = find_python312()
    if python is None:
        _unavailable("no Python 3.12 found (python3.12 on PATH or under `pyenv root`/versions)")
    digest = hashlib.sha256(python.encode())
    for name in REQUIREMENT_FILES:
        digest.update(_requirement_lines(SERVING / name).encode())
    cache = Path(os.environ.get("RETRAIN_SERVING_VENV_CACHE", REPO / ".cache" / "serving-venv"))
    venv = cache / digest.hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    _prune(cache, keep=venv.name)
    log = cache / f"{venv.name}.log"
    package_key = sha256_hex((REPO / "pyproject.toml").read_bytes())
    with (cache / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building the same venv
        if not (venv / ".requirements-installed").exists():
            shutil.rmtree(venv, ignore_errors=True)
            log.write_text("")
            _run([python, "-m", "venv", str(venv)], log)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            _run(
                [
                    *pip,
                    "install",
                    "--quiet",
                    *("-c", str(SERVING / "constraints.txt")),
                    *("-r", str(SERVING / "requirements.txt")),
                    *("-r", str(SERVING / "requirements-gcs.txt")),
                ],
                log,
            )
            (venv / ".requirements-installed").write_text("ok\n")
        stamp = venv / ".package-installed"
        if not stamp.exists() or stamp.read_text() != package_key:
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            # setuptools is already there (seldon-core needs it), so no isolated build env.
            _run(
                [*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(REPO)],
                log,
            )
            stamp.write_text(package_key)
    return venv


# --- models trained with the main environment -------------------------------------------------


def make_cfg(task: str) -> Config:
    estimator = {
        "classification": ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30}),
        "regression": ("sklearn.linear_model.Ridge", {"alpha": 0.5}),
    }[task]
    return config_from_dict(
        {
            "name": "serving-test",
            "task": task,
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": FEATURES,
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": estimator[0], "params": estimator[1]},
            "deploy": {"deployment_name": "serving-test"},
        }
    )


def make_frame(n: int, seed: int, task: str) -> pd.DataFrame:
    """Rows shaped as ingest writes them: float numerics (some missing), text categories."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-2, 2, size=n)
    x2[rng.random(n) < 0.05] = np.nan
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.integers(1, 4, size=n)  # an integer-coded category
    z = x1 - 0.5 * np.nan_to_num(x2) + (colour == "red") - 0.8 * (size == 3)
    if task == "classification":
        label: Any = np.select([z < -0.4, z < 0.8], ["low", "mid"], "high")
    else:
        label = 3 * z + rng.normal(scale=0.1, size=n)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "ts": 0,
            "x1": x1,
            "x2": x2,
            "colour": as_category_strings(pd.Series(colour)),
            "size": as_category_strings(pd.Series(size)),
            "label": label,
        }
    )


@dataclass(frozen=True)
class Trained:
    cfg: Config
    model: Pipeline
    version: str
    directory: Path

    @property
    def model_file(self) -> Path:
        return self.directory / "model.skops"

    @property
    def card_order(self) -> list[str]:
        """The feature order of the card, which positional (unnamed) columns must follow."""
        return list(json.loads((self.directory / "model.json").read_text())["features"])


def train(task: str, directory: Path) -> Trained:
    cfg = make_cfg(task)
    model = fit_model(cfg, make_frame(400, 1, task))
    version = f"{task[:3]}-{sha256_hex(task.encode())[:8]}"
    card = card_from_config(cfg, version=version, parent=None, created_at=WHEN)
    directory.mkdir(parents=True)
    for name, data in model_files(model, card).items():
        (directory / name).write_bytes(data)
    return Trained(cfg, model, version, directory)


def request_rows(frame: pd.DataFrame, names: list[str]) -> list[list[Any]]:
    """JSON rows: numbers as numbers (null for missing), the integer-coded category as a number."""
    rows = []
    for rec in frame[names].to_dict("records"):
        row: list[Any] = []
        for name in names:
            v = rec[name]
            if name == "size":
                row.append(int(v))
            elif isinstance(v, float) and math.isnan(v):
                row.append(None)
            else:
                row.append(v)
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train("classification", tmp_path_factory.mktemp("cls") / "v")


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train("regression", tmp_path_factory.mktemp("reg") / "v")


# --- the server in a private network namespace -----------------------------------------------


def _net_ns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


class Server:
    """``seldon-core-microservice`` in its own session and network namespace (loopback only)."""

    def __init__(self, venv: Path, log: Path, env: dict[str, str]) -> None:
        for tool in ("unshare", "ip"):
            if shutil.which(tool) is None:
                _unavailable(f"`{tool}` not found (util-linux / iproute2)")
        if os.geteuid() != 0:
            _unavailable("`unshare -n` needs root to make a private network namespace")
        self.log = log
        cmd = [
            "unshare",
            "--net",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" "$@"',
            str(venv / "bin" / "seldon-core-microservice"),
            "retrain_model.RetrainModel",
            "--service-type",
            "MODEL",
            "--threads",
            "1",
            "--grpc-workers",
            "0",
            "--http-port",
            str(HTTP_PORT),
            "--metrics-port",
            str(METRICS_PORT),
        ]
        home = log.parent / "home"  # gunicorn keeps a control socket under $HOME
        home.mkdir(exist_ok=True)
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false",  # as serving/Dockerfile sets it
            **env,
        }
        with log.open("wb") as out:
            # A new session (setsid): stop() ends the whole process group.
            self.process = subprocess.Popen(
                cmd,
                cwd=SERVING,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._client: ThreadPoolExecutor | None = None

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def wait_ready(self) -> None:
        """Join the server's network namespace in a client thread and wait for /health/ping."""
        deadline = time.monotonic() + START_TIMEOUT
        own = _net_ns("self")
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"server exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if _net_ns(self.process.pid) != own:
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server never entered its namespace:\n{self.log_tail()}")
            time.sleep(0.05)
        self._client = ThreadPoolExecutor(
            1, initializer=_enter_net_ns, initargs=(self.process.pid,)
        )
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"server exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if self.get(HTTP_PORT, "/health/ping")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after {START_TIMEOUT} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def _call(self, url: str, body: bytes | None) -> tuple[int, str]:
        assert self._client is not None, "wait_ready() first"

        def call() -> tuple[int, str]:
            headers = {"Content-Type": "application/json"}
            req = urllib.request.Request(url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, err.read().decode()

        return self._client.submit(call).result()

    def get(self, port: int, path: str) -> tuple[int, str]:
        return self._call(f"http://127.0.0.1:{port}{path}", None)

    def predict(self, payload: Any) -> tuple[int, Any]:
        status, text = self._call(
            f"http://127.0.0.1:{HTTP_PORT}/api/v1.0/predictions", json.dumps(payload).encode()
        )
        return status, json.loads(text)

    def feedback(self, payload: Any) -> tuple[int, Any]:
        status, text = self._call(
            f"http://127.0.0.1:{HTTP_PORT}/api/v1.0/feedback", json.dumps(payload).encode()
        )
        return status, json.loads(text)

    def metrics(self) -> str:
        status, text = self.get(METRICS_PORT, "/metrics")
        assert status == 200, text
        return text

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._client is not None:
            self._client.shutdown(wait=True)
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def _enter_net_ns(pid: int) -> None:
    # A network namespace is per thread: only this client thread joins the server's.
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the server's network namespace: {os.strerror(err)}")
    finally:
        os.close(fd)


def _serve(venv: Path, trained: Trained, log: Path) -> Iterator[Server]:
    server = Server(
        venv, log, {"MODEL_URI": str(trained.model_file), "MODEL_VERSION": trained.version}
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def classifier_server(
    serving_venv: Path, classifier: Trained, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _serve(serving_venv, classifier, tmp_path_factory.mktemp("srv") / "server.log")


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric in Prometheus text format: (labels, value)."""
    out = []
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
            out.append((labels, float(m.group(2))))
    return out


def _total(text: str, name: str, **labels: str) -> float:
    """A counter summed over workers, for samples carrying all `labels`."""
    return sum(
        v for got, v in _samples(text, name) if all(got.get(k) == x for k, x in labels.items())
    )


# --- tests ------------------------------------------------------------------------------------


def test_probabilities_match_the_training_environment(
    classifier_server: Server, classifier: Trained
) -> None:
    test = make_frame(40, 2, "classification")
    expected = predict_scores(classifier.model, test, classifier.cfg)
    classes = [str(c) for c in classifier.model.classes_]
    shuffled = ["size", "x2", "colour", "x1"]  # named columns may come in any order
    status, body = classifier_server.predict(
        {"data": {"names": shuffled, "ndarray": request_rows(test, shuffled)}}
    )
    assert status == 200, body
    assert body["data"]["names"] == classes
    np.testing.assert_allclose(np.array(body["data"]["ndarray"]), expected, rtol=0, atol=1e-12)
    assert body["meta"] == {"tags": {"model_version": classifier.version}}
    # Without names, columns are taken in the card's order.
    assert classifier.card_order != list(FEATURES)
    status, body = classifier_server.predict(
        {"data": {"ndarray": request_rows(test, classifier.card_order)}}
    )
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["data"]["ndarray"]), expected, rtol=0, atol=1e-12)


def test_custom_metrics_count_requests_and_classes_by_version(
    classifier_server: Server, classifier: Trained
) -> None:
    test = make_frame(30, 3, "classification")
    winners = predict_scores(classifier.model, test, classifier.cfg).argmax(axis=1)
    classes = [str(c) for c in classifier.model.classes_]
    version = {"retrain_model_version": classifier.version}
    before = classifier_server.metrics()
    for chunk in (test.iloc[:10], test.iloc[10:25], test.iloc[25:]):
        rows = request_rows(chunk, list(FEATURES))
        status, body = classifier_server.predict(
            {"data": {"names": list(FEATURES), "ndarray": rows}}
        )
        assert status == 200, body
    bad = {"data": {"ndarray": [[1.0, 2.0]]}}
    assert classifier_server.predict(bad)[0] == 400  # refused requests are not counted
    after = classifier_server.metrics()

    def delta(name: str, **labels: str) -> float:
        return _total(after, name, **version, **labels) - _total(before, name, **version, **labels)

    assert delta("retrain_requests_total") == 3
    assert delta("retrain_prediction_rows_total") == 30
    for i, name in enumerate(classes):
        assert delta("retrain_predictions_total", **{"class": name}) == (winners == i).sum()
    assert {labels["class"] for labels, _ in _samples(after, "retrain_predictions_total")} == set(
        classes
    )


def test_feedback_counts_correct_rows_and_log_loss_by_version(
    classifier_server: Server, classifier: Trained
) -> None:
    test = make_frame(24, 7, "classification")
    proba = predict_scores(classifier.model, test, classifier.cfg)
    classes = [str(c) for c in classifier.model.classes_]
    true = np.array([classes.index(label) for label in test["label"]])
    correct = int(np.sum(proba.argmax(axis=1) == true))
    assert 0 < correct < len(test), "the check needs right and wrong predictions"
    log_loss = float(np.sum(-np.log(np.clip(proba[np.arange(len(true)), true], 1e-15, 1))))
    version = {"retrain_model_version": classifier.version}
    rows = request_rows(test, list(FEATURES))
    before = classifier_server.metrics()
    # Labels as a column, then as rows of one value; reward 0 must count as well.
    for chunk, truth in (
        (slice(0, 10), test["label"].iloc[:10].tolist()),
        (slice(10, 24), [[v] for v in test["label"].iloc[10:]]),
    ):
        status, body = classifier_server.feedback(
            {
                "request": {"data": {"names": list(FEATURES), "ndarray": rows[chunk]}},
                "truth": {"data": {"ndarray": truth}},
                "reward": 0,
            }
        )
        assert status == 200, body
    after = classifier_server.metrics()

    def delta(name: str) -> float:
        return _total(after, name, **version) - _total(before, name, **version)

    assert delta("retrain_feedback_total") == 24
    assert delta("retrain_feedback_correct_total") == correct
    assert delta("retrain_feedback_loss_count") == 24
    assert delta("retrain_feedback_loss_sum") == pytest.approx(log_loss, rel=1e-9)
    # Feedback is not a prediction: the request counters did not move.
    assert delta("retrain_requests_total") == 0


def test_predictions_observe_a_score_histogram(
    classifier_server: Server, classifier: Trained
) -> None:
    test = make_frame(20, 8, "classification")
    # Three classes: the score is the index of the top class, as the replay provider makes it.
    top = predict_scores(classifier.model, test, classifier.cfg).argmax(axis=1)
    version = {"retrain_model_version": classifier.version}
    before = classifier_server.metrics()
    status, body = classifier_server.predict(
        {"data": {"names": list(FEATURES), "ndarray": request_rows(test, list(FEATURES))}}
    )
    assert status == 200, body
    after = classifier_server.metrics()

    def delta(name: str, **labels: str) -> float:
        return _total(after, name, **version, **labels) - _total(before, name, **version, **labels)

    assert delta("retrain_prediction_score_count") == 20
    assert delta("retrain_prediction_score_sum") == pytest.approx(float(top.sum()))
    buckets = {
        float(labels["le"]): v
        for labels, v in _samples(after, "retrain_prediction_score_bucket")
        if labels.get("retrain_model_version") == classifier.version
    }
    assert buckets[math.inf] == _total(after, "retrain_prediction_score_count", **version)
    # Class index 0 lands in the lowest bucket; the cumulative count at 1 adds class 1.
    assert min(buckets.items())[1] >= (top == 0).sum()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"request": {"data": {"names": list(FEATURES), "ndarray": [[0.1, 0.2, "red", 1]]}}},
            "feedback: no truth",
        ),
        (
            {
                "request": {"data": {"names": list(FEATURES), "ndarray": [[0.1, 0.2, "red", 1]]}},
                "truth": {"data": {"ndarray": ["low", "mid"]}},
            },
            "truth has 2 rows but the request has 1",
        ),
        (
            {
                "request": {"data": {"names": list(FEATURES), "ndarray": [[0.1, 0.2, "red", 1]]}},
                "truth": {"data": {"ndarray": ["purple"]}},
            },
            "row 0: 'purple' is not a class",
        ),
        (
            {
                "request": {"data": {"names": list(FEATURES), "ndarray": [[0.1, 0.2, "red", 1]]}},
                "truth": {"data": {"ndarray": [[["low"]]]}},
            },
            "truth must be one value per row",
        ),
        ({"truth": {"data": {"ndarray": ["low"]}}}, "feedback request: expected a 2-D array"),
    ],
    ids=["no-truth", "row-count", "unknown-class", "bad-shape", "no-request"],
)
def test_bad_feedback_gets_http_400_and_counts_nothing(
    classifier_server: Server, classifier: Trained, payload: dict[str, Any], message: str
) -> None:
    before = _total(classifier_server.metrics(), "retrain_feedback_total")
    status, body = classifier_server.feedback(payload)
    assert status == 400, body
    assert message in body["status"]["info"]
    assert _total(classifier_server.metrics(), "retrain_feedback_total") == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"data": {"ndarray": [[0.1, 0.2, "red"]]}}, "expected 4 feature columns"),
        ({"data": {"ndarray": [[0.1, 0.2, "red", 1, 5]]}}, "expected 4 feature columns"),
        (
            {"data": {"names": ["x1", "x2", "colour"], "ndarray": [[0.1, 0.2, "red", 1]]}},
            "data.names has 3 entries but rows have 4 columns",
        ),
        (
            {"data": {"names": ["x1", "x2", "colour", "weight"], "ndarray": [[0.1, 0.2, "a", 1]]}},
            "unknown feature 'weight'",
        ),
        (
            {"data": {"names": list(FEATURES), "ndarray": [[0.1, "tall", "red", 1]]}},
            "column 'x2' (numeric), row 0: 'tall' is not a number",
        ),
        ({"data": {"ndarray": []}}, "expected a 2-D array"),
        ({"data": {"tensor": {"shape": [0, 4], "values": []}}}, "the request has no rows"),
        ({"jsonData": {"x1": 1}}, "got a dict payload"),
    ],
    ids=[
        "too-few",
        "too-many",
        "names-vs-columns",
        "unknown-name",
        "not-a-number",
        "empty",
        "no-rows",
        "json-data",
    ],
)
def test_bad_requests_get_http_400_with_a_message(
    classifier_server: Server, payload: dict[str, Any], message: str
) -> None:
    status, body = classifier_server.predict(payload)
    assert status == 400, body
    assert body["status"]["status"] == 1
    assert message in body["status"]["info"]
    assert "data" not in body


def test_a_request_over_the_byte_limit_gets_413_before_its_body_is_read(
    classifier_server: Server,
) -> None:
    assert classifier_server._client is not None

    def announce_only() -> tuple[int, str]:
        # Headers only: a 9 MiB body is announced but never sent, so an answer proves the
        # server refused it without reading it.
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
        try:
            conn.putrequest("POST", "/api/v1.0/predictions")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(9 * 2**20))
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    status, text = classifier_server._client.submit(announce_only).result()
    assert status == 413, text
    assert "RETRAIN_MAX_REQUEST_BYTES=8,388,608 bytes" in json.loads(text)["status"]["info"]


def test_a_request_over_the_row_limit_gets_413_naming_it(classifier_server: Server) -> None:
    row = {"names": list(FEATURES), "ndarray": [[0.1, 0.2, "red", 1]]}
    status, body = classifier_server.predict({"data": {**row, "ndarray": row["ndarray"] * 10_001}})
    assert status == 413, body
    assert "10,001 rows, over the limit RETRAIN_MAX_REQUEST_ROWS=10,000" in body["status"]["info"]
    ok, body = classifier_server.predict({"data": {**row, "ndarray": row["ndarray"] * 10_000}})
    assert ok == 200, body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"data": {"ndarray": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
            "nested too deeply",
        ),
        (
            json.dumps({"data": {"tensor": {"shape": [2, 4], "values": [1, 2, 3]}}}).encode(),
            "could not be decoded",
        ),
    ],
    ids=["deep-json", "tensor-shape"],
)
def test_malformed_requests_get_http_400_not_500(
    classifier_server: Server, raw: bytes, message: str
) -> None:
    status, text = classifier_server._call(
        f"http://127.0.0.1:{HTTP_PORT}/api/v1.0/predictions", raw
    )
    assert status == 400, text
    assert message in json.loads(text)["status"]["info"]


def test_regression_values_match_the_training_environment(
    serving_venv: Path, regressor: Trained, tmp_path: Path
) -> None:
    test = make_frame(25, 4, "regression")
    expected = predict_scores(regressor.model, test, regressor.cfg)
    server = Server(
        serving_venv,
        tmp_path / "server.log",
        {"MODEL_URI": str(regressor.directory), "MODEL_VERSION": regressor.version},
    )
    try:
        server.wait_ready()
        rows = request_rows(test, list(FEATURES))
        status, body = server.predict({"data": {"names": list(FEATURES), "ndarray": rows}})
        metrics = server.metrics()
    finally:
        server.stop()
    assert status == 200, body
    assert body["data"]["names"] == []
    np.testing.assert_allclose(np.array(body["data"]["ndarray"]), expected, rtol=1e-12)
    version = {"retrain_model_version": regressor.version}
    assert _total(metrics, "retrain_requests_total", **version) == 1
    assert _total(metrics, "retrain_prediction_rows_total", **version) == 25
    assert _samples(metrics, "retrain_predictions_total") == []
    assert _samples(metrics, "retrain_prediction_score_count") == []


def test_regression_feedback_observes_squared_errors(
    serving_venv: Path, regressor: Trained, tmp_path: Path
) -> None:
    test = make_frame(12, 6, "regression")
    errors = predict_scores(regressor.model, test, regressor.cfg) - test["label"].to_numpy()
    server = Server(
        serving_venv,
        tmp_path / "server.log",
        {"MODEL_URI": str(regressor.directory), "MODEL_VERSION": regressor.version},
    )
    try:
        server.wait_ready()
        rows = request_rows(test, list(FEATURES))
        status, body = server.feedback(
            {
                "request": {"data": {"names": list(FEATURES), "ndarray": rows}},
                "truth": {"data": {"ndarray": test["label"].tolist()}},
            }
        )
        bad = server.feedback(
            {
                "request": {"data": {"names": list(FEATURES), "ndarray": rows[:1]}},
                "truth": {"data": {"ndarray": ["tall"]}},
            }
        )
        metrics = server.metrics()
    finally:
        server.stop()
    assert status == 200, body
    assert bad[0] == 400 and "row 0: 'tall' is not a number" in bad[1]["status"]["info"]
    version = {"retrain_model_version": regressor.version}
    assert _total(metrics, "retrain_feedback_total", **version) == 12
    assert _samples(metrics, "retrain_feedback_correct_total") == []
    assert _total(metrics, "retrain_feedback_loss_count", **version) == 12
    assert _total(metrics, "retrain_feedback_loss_sum", **version) == pytest.approx(
        float(np.sum(errors**2)), rel=1e-9
    )


def _tamper_bytes(d: Path) -> None:
    data = bytearray((d / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.skops").write_bytes(bytes(data))


def _untrusted_but_signed(d: Path) -> None:
    # A model whose card matches its bytes, but which names a function to call on load.
    evil = sio.dumps(Pipeline([("run", FunctionTransformer(func=os.system))]))
    (d / "model.skops").write_bytes(evil)
    card = json.loads((d / "model.json").read_text())
    card["model_sha256"] = sha256_hex(evil)
    (d / "model.json").write_text(json.dumps(card))


@pytest.mark.parametrize(
    ("change", "env", "message"),
    [
        (_tamper_bytes, {}, "does not match its card"),
        (_untrusted_but_signed, {}, f"untrusted type {os.system.__module__}.system"),
        (None, {"MODEL_VERSION": "some-other-version"}, "MODEL_VERSION is 'some-other-version'"),
        (None, {"MODEL_URI": "/nonexistent/model.skops"}, "/nonexistent/model.json"),
    ],
    ids=["tampered", "untrusted-type", "wrong-version", "missing"],
)
def test_a_bad_model_is_refused_at_startup(
    serving_venv: Path,
    classifier: Trained,
    tmp_path: Path,
    change: Any,
    env: dict[str, str],
    message: str,
) -> None:
    model_dir = tmp_path / "v"
    shutil.copytree(classifier.directory, model_dir)
    if change is not None:
        change(model_dir)
    full_env = {"MODEL_URI": str(model_dir / "model.skops"), "MODEL_VERSION": classifier.version}
    server = Server(serving_venv, tmp_path / "server.log", {**full_env, **env})
    try:
        code = server.wait_exit()
    finally:
        server.stop()
    log = server.log_tail(80)
    assert code != 0, log
    assert "refusing to serve MODEL_URI" in log
    assert message in log
    assert "Listening at" not in log


# --- gs:// model URIs (no server: the model class itself, in the serving environment) ---------

_LOAD_AND_PREDICT = """
import json, sys
import numpy as np
from retrain_model import RetrainModel
model = RetrainModel(model_uri=sys.argv[1], model_version=sys.argv[2])
names, rows = json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(json.dumps(model.predict(np.array(rows), names).tolist()))
"""


def test_a_gs_model_uri_is_read_with_google_cloud_storage(
    serving_venv: Path, classifier: Trained, gcs_emulator: Any
) -> None:
    # The model server reads gs:// with the real client, here against fake-gcs-server (a local
    # emulator, not the real service), found through STORAGE_EMULATOR_HOST.
    prefix = f"serving-{sha256_hex(os.urandom(8))[:10]}/models/v"
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    for name in ("model.skops", "model.json"):
        bucket.blob(f"{prefix}/{name}").upload_from_string(
            (classifier.directory / name).read_bytes()
        )
    test = make_frame(5, 5, "classification")
    names = list(FEATURES)
    out = subprocess.run(
        [
            str(serving_venv / "bin" / "python"),
            "-c",
            _LOAD_AND_PREDICT,
            f"gs://{gcs_emulator.bucket}/{prefix}/model.skops",
            classifier.version,
            json.dumps(names),
            json.dumps(request_rows(test, names)),
        ],
        cwd=SERVING,
        env={"PATH": os.environ.get("PATH", ""), "STORAGE_EMULATOR_HOST": gcs_emulator.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    expected = predict_scores(classifier.model, test, classifier.cfg)
    np.testing.assert_allclose(np.array(json.loads(out.stdout)), expected, rtol=0, atol=1e-12)


def test_a_gs_model_uri_without_google_cloud_storage_is_a_clear_error(serving_venv: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['google.cloud.storage'] = None  # as if not installed\n"
        "from retrain_model import RetrainModel\n"
        "RetrainModel(model_uri='gs://bucket/models/v/model.skops', model_version='v')\n"
    )
    out = subprocess.run(
        [str(serving_venv / "bin" / "python"), "-c", script],
        cwd=SERVING,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "reading gs:// needs google-cloud-storage, which is not installed" in out.stderr


# Predicts on a thread of its own (OpenMP's limit is per thread), then reads the native
# thread pools of that thread as threadpoolctl sees them.
_THREADS_AFTER_PREDICT = """
import json, sys, threading
import numpy as np
from threadpoolctl import threadpool_info
from retrain_model import RetrainModel
model = RetrainModel(model_uri=sys.argv[1], model_version=sys.argv[2])
names, rows = json.loads(sys.argv[3]), json.loads(sys.argv[4])
seen = {}
def request():
    model.predict(np.array(rows, dtype=object), names)
    seen.update({i["internal_api"]: i["num_threads"] for i in threadpool_info()})
worker = threading.Thread(target=request)
worker.start()
worker.join()
print(json.dumps(seen))
"""


@pytest.mark.parametrize(("setting", "threads"), [(None, 1), ("3", 3)])
def test_a_request_runs_blas_and_openmp_on_the_configured_threads(
    serving_venv: Path, classifier: Trained, setting: str | None, threads: int
) -> None:
    # Unset, one thread per request, however many cores the machine has; else the setting.
    test = make_frame(5, 5, "classification")
    names = list(FEATURES)
    env = {"PATH": os.environ.get("PATH", "")}
    if setting is not None:
        env["RETRAIN_SERVING_THREADS"] = setting
    out = subprocess.run(
        [
            str(serving_venv / "bin" / "python"),
            "-c",
            _THREADS_AFTER_PREDICT,
            str(classifier.directory / "model.skops"),
            classifier.version,
            json.dumps(names),
            json.dumps(request_rows(test, names)),
        ],
        cwd=SERVING,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert {"openmp", "openblas"} <= set(seen), seen  # scikit-learn's OpenMP, numpy's BLAS
    assert set(seen.values()) == {threads}, seen


@pytest.mark.parametrize("setting", ["0", "two", "-1"])
def test_a_bad_thread_setting_stops_the_server_at_start(
    serving_venv: Path, classifier: Trained, setting: str
) -> None:
    script = (
        "import sys\n"
        "from retrain_model import RetrainModel\n"
        "RetrainModel(model_uri=sys.argv[1], model_version=sys.argv[2])\n"
    )
    out = subprocess.run(
        [
            str(serving_venv / "bin" / "python"),
            "-c",
            script,
            str(classifier.directory / "model.skops"),
            classifier.version,
        ],
        cwd=SERVING,
        env={"PATH": os.environ.get("PATH", ""), "RETRAIN_SERVING_THREADS": setting},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert f"RETRAIN_SERVING_THREADS={setting!r}: expected a positive whole number" in out.stderr


def test_the_serving_environment_has_no_kfp(serving_venv: Path) -> None:
    out = subprocess.run(
        [str(serving_venv / "bin" / "python"), "-c", "import kfp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "No module named 'kfp'" in out.stderr


def test_a_text_model_is_served_like_in_training(serving_venv: Path, tmp_path: Path) -> None:
    # A hashed-text classifier: the vectoriser travels inside the skops file, and a missing
    # text is an empty one in the server as in training.
    cfg = config_from_dict(
        {
            "name": "serving-text",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "features": {"review": "text", "x1": "numeric"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {
                "estimator": "sklearn.linear_model.SGDClassifier",
                "params": {"loss": "log_loss"},
            },
            "deploy": {"deployment_name": "serving-text"},
        }
    )
    rng = np.random.default_rng(5)
    words = np.array(["good", "great", "bad", "awful", "item", "the"])
    reviews: list[str | None] = [" ".join(rng.choice(words, 4)) for _ in range(240)]
    reviews[::9] = [None] * len(reviews[::9])
    frame = pd.DataFrame({"review": reviews, "x1": rng.normal(size=240)})
    frame["label"] = np.where(frame["review"].fillna("").str.count("good|great") > 1, "pos", "neg")
    model = fit_model(cfg, frame)
    card = card_from_config(cfg, version="txt-1", parent=None, created_at=WHEN)
    directory = tmp_path / "v"
    directory.mkdir()
    for name, data in model_files(model, card).items():
        (directory / name).write_bytes(data)
    test = frame.iloc[:30]
    expected = predict_scores(model, test, cfg)
    server = Server(
        serving_venv,
        tmp_path / "server.log",
        {"MODEL_URI": str(directory), "MODEL_VERSION": "txt-1"},
    )
    try:
        server.wait_ready()
        rows = [
            [None if pd.isna(r) else r, x] for r, x in zip(test["review"], test["x1"], strict=True)
        ]
        status, body = server.predict({"data": {"names": ["review", "x1"], "ndarray": rows}})
    finally:
        server.stop()
    assert status == 200, body
    assert any(r is None for r, _ in rows)
    np.testing.assert_allclose(np.array(body["data"]["ndarray"]), expected, rtol=0, atol=1e-12)
