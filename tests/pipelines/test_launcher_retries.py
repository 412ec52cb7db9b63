"""Retries that respect bad input: KFP's retry loop, as compiled, around the step launcher.

KFP retries a failed task `maxRetryCount` times whatever its exit code, waiting its compiled
backoff before each retry. These tests play that loop with the compiled retry policy of the
cluster pipeline and the launcher's compiled arguments, and add up every wait: KFP's backoff
(read from the spec) and the launcher's own (its sleeps, recorded instead of slept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from required import require
from retrain.config import load_config
from retrain.data.demo import generate_loans
from retrain.errors import TransientError
from retrain.steps.attempts import RetryBackoff, plan_attempt
from retrain.storage import open_storage

require("kfp", "the pipeline is compiled with the KFP SDK (extra 'kfp')")

from retrain_components import launcher  # noqa: E402
from retrain_components._call import StepCall, StepResult  # noqa: E402
from retrain_components._interface import INTERFACES  # noqa: E402
from retrain_pipelines import compile_pipeline  # noqa: E402

IMAGE = "registry.example.com/retrain/retrain:9.9.9"


def _small_config(tmp: Path) -> Any:
    return load_config(
        generate_loans(tmp / "data", windows=2, rows_per_window=200, drift_window=1, seed=1)
    )


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    assert match, duration
    return float(match.group(1))


@pytest.fixture(scope="module")
def ingest_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[str]]:
    """Ingest's compiled retry policy and launcher arguments."""
    path = compile_pipeline(tmp_path_factory.mktemp("c") / "p.yaml", IMAGE)
    spec = yaml.safe_load(path.read_text())
    handler = spec["root"]["dag"]["tasks"]["exit-handler-1"]["componentRef"]["name"]
    task = spec["components"][handler]["dag"]["tasks"]["ingest"]
    args = spec["deploymentSpec"]["executors"]["exec-ingest"]["container"]["args"]
    return task["retryPolicy"], args


def _executor_input(tmp: Path, config_yaml: str, window: str, run_id: str = "r1") -> dict[str, Any]:
    def art(name: str) -> dict[str, Any]:
        return {"artifacts": [{"name": name, "uri": str(tmp / "out" / name), "metadata": {}}]}

    return {
        "inputs": {
            "parameterValues": {"config_yaml": config_yaml, "window_id": window, "run_id": run_id}
        },
        "outputs": {
            "parameters": {"summary": {"outputFile": str(tmp / "out" / "summary")}},
            # Every output the step declares (its own, its reports, its details).
            "artifacts": {n: art(n) for n in INTERFACES["ingest"].output_artifacts()},
            "outputFile": str(tmp / "out" / "executor_output.json"),
        },
    }


def _kfp_retry_loop(
    policy: dict[str, Any], attempt: Callable[[Callable[[float], None]], int]
) -> tuple[list[int], float]:
    """KFP's loop: up to 1 + maxRetryCount attempts while they fail, KFP's backoff between.

    Returns the exit codes and the total wait (KFP's backoff plus the launcher's sleeps).
    """
    codes: list[int] = []
    waited = [0.0]
    for n in range(1 + int(policy["maxRetryCount"])):
        if n:
            kfp_wait = _seconds(policy["backoffDuration"]) * policy["backoffFactor"] ** (n - 1)
            waited[0] += min(kfp_wait, _seconds(policy["backoffMaxDuration"]))
        codes.append(attempt(lambda s: waited.__setitem__(0, waited[0] + s)))
        if codes[-1] == 0:
            break
    return codes, waited[0]


def _backoff_of(args: list[str]) -> RetryBackoff:
    base, factor, cap = (float(x) for x in args[args.index("--retry-backoff") + 1].split(","))
    return RetryBackoff(base, factor, cap)


@pytest.mark.integration  # runs the ingest step on generated data
def test_a_bad_input_failure_costs_no_wait_and_runs_once(
    ingest_task: tuple[dict, list[str]], tmp_path: Path
) -> None:
    policy, args = ingest_task
    cfg = _small_config(tmp_path)
    executor_input = _executor_input(tmp_path, cfg.to_yaml(), "no-such-window")
    record = Path(cfg.storage_root) / "runs" / "r1" / "ingest.json"
    seen: list[int] = []

    def attempt(sleep: Callable[[float], None]) -> int:
        code = launcher.run_executor_input("ingest", executor_input, _backoff_of(args), sleep=sleep)
        seen.append(record.stat().st_mtime_ns)
        return code

    codes, waited = _kfp_retry_loop(policy, attempt)
    assert codes == [2] * (1 + policy["maxRetryCount"]) and len(codes) == 4
    assert waited == 0.0
    # The step ran once: its failure record was written by the first attempt only.
    assert len(set(seen)) == 1
    assert json.loads(record.read_text())["exit_code"] == 2
    store = open_storage(cfg.storage_root)
    (key,) = store.list("attempts")
    assert [f["exit_code"] for f in json.loads(store.read_text(key))["failures"]] == [2]


@pytest.mark.integration  # runs the ingest step on generated data
def test_transient_failures_wait_the_launcher_backoff_then_succeed(
    ingest_task: tuple[dict, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, args = ingest_task
    cfg = _small_config(tmp_path)
    executor_input = _executor_input(tmp_path, cfg.to_yaml(), "0")
    real = launcher.ADAPTERS["ingest"]
    calls = [0]

    def flaky(call: StepCall) -> StepResult:
        calls[0] += 1
        if calls[0] <= 2:
            raise TransientError("storage throttled (simulated)")
        return real(call)

    monkeypatch.setitem(launcher.ADAPTERS, "ingest", flaky)
    sleeps: list[float] = []

    def attempt(sleep: Callable[[float], None]) -> int:
        def record(s: float) -> None:
            sleeps.append(s)
            sleep(s)

        return launcher.run_executor_input("ingest", executor_input, _backoff_of(args),
                                           sleep=record)  # fmt: skip

    codes, waited = _kfp_retry_loop(policy, attempt)
    assert codes == [75, 75, 0]
    assert sleeps == [30.0, 60.0]  # 30 s, doubling: the compiled --retry-backoff
    assert waited == 90.0
    out = json.loads((tmp_path / "out" / "executor_output.json").read_text())
    assert out["parameterValues"]["summary"] and calls[0] == 3


@pytest.mark.integration  # runs the ingest step on generated data
def test_a_new_run_of_the_same_window_starts_afresh(tmp_path: Path) -> None:
    # Another pipeline job resolves another run id: another task, whatever it was given.
    cfg = _small_config(tmp_path)
    first = _executor_input(tmp_path / "a", cfg.to_yaml(), "no-such-window", run_id="r1")
    again = _executor_input(tmp_path / "b", cfg.to_yaml(), "no-such-window", run_id="r2")
    assert launcher.run_executor_input("ingest", first, RetryBackoff()) == 2
    store = open_storage(cfg.storage_root)
    assert launcher.run_executor_input("ingest", again, RetryBackoff()) == 2
    assert (Path(cfg.storage_root) / "runs" / "r2" / "ingest.json").exists(), (
        "a new task must run the step, not replay an old verdict"
    )
    assert len(store.list("attempts")) == 2


@pytest.mark.integration  # runs the ingest step on generated data
def test_a_retry_with_salted_output_uris_finds_the_earlier_attempt(tmp_path: Path) -> None:
    # A retry that reruns KFP's driver may get other output URIs: still the same task.
    cfg = _small_config(tmp_path)
    first = _executor_input(tmp_path / "attempt-1", cfg.to_yaml(), "no-such-window")
    retry = _executor_input(tmp_path / "attempt-2", cfg.to_yaml(), "no-such-window")
    assert launcher.task_key("ingest", first) == launcher.task_key("ingest", retry)
    assert launcher.task_key("ingest", first) != launcher.task_key("label", first)
    record = Path(cfg.storage_root) / "runs" / "r1" / "ingest.json"
    assert launcher.run_executor_input("ingest", first, RetryBackoff()) == 2
    before = record.stat().st_mtime_ns
    assert launcher.run_executor_input("ingest", retry, RetryBackoff()) == 2
    assert record.stat().st_mtime_ns == before, "the bad input was retried"
    store = open_storage(cfg.storage_root)
    assert len(store.list("attempts")) == 1


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ([], (True, 0.0, 0)),
        ([{"exit_code": 75}], (True, 30.0, 0)),
        ([{"exit_code": 75}, {"exit_code": 1}], (True, 60.0, 0)),
        ([{"exit_code": 75}] * 6, (True, 600.0, 0)),  # capped
        ([{"exit_code": 75}, {"exit_code": 2}], (False, 0.0, 2)),
    ],
)
def test_plan_attempt(failures: list[dict[str, object]], expected: tuple) -> None:
    plan = plan_attempt(failures, RetryBackoff(30, 2, 600))
    assert (plan.run, plan.wait_seconds, plan.exit_code) == expected


def test_a_malformed_executor_input_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert launcher.main(["--step", "ingest", "--executor-input", "{not json"]) == 2
    assert "bad executor input" in capsys.readouterr().err
    assert launcher.main(["--step", "ingest", "--executor-input", "{}"]) == 2


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("gs://bucket/a/b", "/gcs/bucket/a/b"),
        ("minio://mlpipeline/x", "/minio/mlpipeline/x"),
        ("s3://b/k", "/s3/b/k"),
        ("/tmp/kfp/x", "/tmp/kfp/x"),
    ],
)
def test_local_path_follows_the_kfp_staging_contract(uri: str, path: str) -> None:
    assert launcher.local_path(uri) == path
