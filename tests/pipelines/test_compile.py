"""Compile-and-inspect: the compiled YAML loads back with the kfp SDK and carries the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp")

from kfp import components
from retrain_pipelines import STEP_POLICY, compile_pipeline

IMAGE = "registry.example.com/retrain/retrain:9.9.9"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = compile_pipeline(tmp_path_factory.mktemp("c") / "p.yaml", image=IMAGE)
    # Loads back with the SDK (what `kfp pipeline create` and the UI accept).
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "retrain"
    return yaml.safe_load(Path(path).read_text())


def _tasks(spec: dict) -> dict:
    return spec["root"]["dag"]["tasks"]


def test_deploy_runs_only_under_the_blessed_gate(compiled: dict) -> None:
    tasks = _tasks(compiled)
    assert "deploy" not in tasks, "deploy must be inside the If-gate, not at the top level"
    conditions = [t for t in tasks.values() if "triggerPolicy" in t]
    assert len(conditions) == 1
    cond = conditions[0]
    assert "evaluate-Output" in cond["triggerPolicy"]["condition"]
    assert cond["triggerPolicy"]["condition"].endswith("== true")
    inner = compiled["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    assert sorted(inner) == ["deploy", "rollout"]
    assert inner["rollout"]["dependentTasks"] == ["deploy"]


def test_step_order(compiled: dict) -> None:
    tasks = _tasks(compiled)
    assert tasks["label"]["dependentTasks"] == ["ingest"]
    assert tasks["train"]["dependentTasks"] == ["label"]
    assert tasks["evaluate"]["dependentTasks"] == ["train"]


def test_retries_only_on_io_steps(compiled: dict) -> None:
    tasks = dict(_tasks(compiled))
    cond = next(t for t in tasks.values() if "triggerPolicy" in t)
    inner = compiled["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    tasks.update(deploy=inner["deploy"], rollout=inner["rollout"])
    for step, policy in STEP_POLICY.items():
        retry = tasks[step].get("retryPolicy")
        if policy["retries"]:
            assert retry is not None, step
            assert retry["maxRetryCount"] == policy["retries"]
            assert retry["backoffDuration"] == "30s"
        else:
            assert retry is None, f"{step} is deterministic and must not retry"
    retried = {s for s, p in STEP_POLICY.items() if p["retries"]}
    assert retried == {"ingest", "label", "deploy", "rollout"}


def test_caching_disabled_explicitly(compiled: dict) -> None:
    # kfp writes `enableCache: true` for a task that caches (the default) and omits it when off.
    tasks = dict(_tasks(compiled))
    cond = next(t for t in tasks.values() if "triggerPolicy" in t)
    inner = compiled["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    tasks.update(deploy=inner["deploy"], rollout=inner["rollout"])
    for name in STEP_POLICY:
        assert tasks[name]["cachingOptions"].get("enableCache", False) is False, name


def test_every_executor_uses_the_project_image_and_no_pip(compiled: dict) -> None:
    executors = compiled["deploymentSpec"]["executors"]
    assert len(executors) == 6
    for name, ex in executors.items():
        container = ex["container"]
        assert container["image"] == IMAGE, name
        command = " ".join(container["command"])
        assert "pip install" not in command, f"{name} installs packages at run time"
        assert "from retrain" in command, name


def test_resources_are_set(compiled: dict) -> None:
    executors = compiled["deploymentSpec"]["executors"]
    for ex in executors.values():
        res = ex["container"]["resources"]
        assert res.get("cpuLimit") and res.get("memoryLimit")


def test_pipeline_parameters_have_no_baked_defaults(compiled: dict) -> None:
    params = compiled["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config_yaml", "window_id", "run_id"}
    for p in params.values():
        assert "defaultValue" not in p


def test_local_variant_has_no_retries(tmp_path: Path) -> None:
    from kfp import compiler
    from retrain_pipelines import build_pipeline

    out = tmp_path / "local.yaml"
    compiler.Compiler().compile(build_pipeline(IMAGE, retries=False), str(out))
    assert "retryPolicy" not in out.read_text()
