"""Compile-and-inspect: the compiled YAML loads back with the kfp SDK and carries the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_spec import (
    EXPECTED_BACKOFF,
    EXPECTED_LAUNCHER_BACKOFF,
    EXPECTED_POLICY,
    all_tasks,
    compiled_policy,
    retry_backoffs,
)
from required import require

require("kfp", "the pipeline is compiled with the KFP SDK (extra 'kfp')")

# After `require`: these import kfp.
from kfp import components, dsl  # noqa: E402
from retrain_pipelines import compile_pipeline  # noqa: E402

IMAGE = "registry.example.com/retrain/retrain:9.9.9"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = compile_pipeline(tmp_path_factory.mktemp("c") / "p.yaml", image=IMAGE)
    # Loads back with the SDK (what `kfp pipeline create` and the UI accept).
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "retrain"
    return yaml.safe_load(Path(path).read_text())


def _tasks(spec: dict) -> dict:
    """The tasks inside the exit handler: every step but the exit task `release`."""
    top = spec["root"]["dag"]["tasks"]
    handler = next(t for t in top.values() if t["taskInfo"]["name"] == "run")
    return spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]


def test_every_step_runs_inside_the_exit_handler_and_release_runs_last(compiled: dict) -> None:
    top = compiled["root"]["dag"]["tasks"]
    assert sorted(top) == ["exit-handler-1", "release"]
    release = top["release"]
    # The exit task: it runs once everything in the handler completed, whatever the outcome.
    assert release["dependentTasks"] == ["exit-handler-1"]
    assert release["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    # Only pipeline parameters, the job id and the handler's final status: no task outputs.
    assert release["inputs"]["parameters"] == {
        "config_yaml": {"componentInputParameter": "config_yaml"},
        "job_id": {"runtimeValue": {"constant": dsl.PIPELINE_JOB_ID_PLACEHOLDER}},
        "status": {"taskFinalStatus": {"producerTask": "exit-handler-1"}},
    }
    inside = set(all_tasks(compiled)) - {"exit-handler-1", "release"}
    assert {n for n in inside if n in EXPECTED_POLICY} == set(EXPECTED_POLICY) - {"release"}


def test_release_requests_little(compiled: dict) -> None:
    res = compiled["deploymentSpec"]["executors"]["exec-release"]["container"]["resources"]
    assert (res["resourceCpuRequest"], res["resourceMemoryRequest"]) == ("100m", "128Mi")
    assert (res["resourceCpuLimit"], res["resourceMemoryLimit"]) == ("1", "512Mi")


def test_deploy_runs_only_under_the_blessed_gate(compiled: dict) -> None:
    tasks = _tasks(compiled)
    assert "deploy" not in tasks, "deploy must be inside the If-gate, not at the top level"
    conditions = [t for t in tasks.values() if "triggerPolicy" in t]
    assert len(conditions) == 1
    cond = conditions[0]
    assert "evaluate-blessed" in cond["triggerPolicy"]["condition"]
    assert cond["triggerPolicy"]["condition"].endswith("== true")
    inner = compiled["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    assert sorted(inner) == ["deploy", "rollout"]
    assert inner["rollout"]["dependentTasks"] == ["deploy"]


def test_step_order(compiled: dict) -> None:
    tasks = _tasks(compiled)
    assert "dependentTasks" not in tasks["resolve"], "resolve runs first"
    assert tasks["ingest"]["dependentTasks"] == ["resolve"]
    assert tasks["label"]["dependentTasks"] == ["ingest", "resolve"]
    assert tasks["train"]["dependentTasks"] == ["label", "resolve"]
    assert tasks["evaluate"]["dependentTasks"] == ["resolve", "train"]


def test_resolve_gets_the_raw_parameters_and_the_kfp_job_id(compiled: dict) -> None:
    params = _tasks(compiled)["resolve"]["inputs"]["parameters"]
    handler = compiled["root"]["dag"]["tasks"]["exit-handler-1"]["inputs"]["parameters"]
    for name in ("config_yaml", "window_id", "run_id"):
        # Through the channel the compiler makes for the exit handler's body.
        channel = params[name]["componentInputParameter"]
        assert handler[channel] == {"componentInputParameter": name}
    # KFP substitutes the job's UUID (kfp.local: a random number) at run time.
    assert params["job_id"] == {"runtimeValue": {"constant": dsl.PIPELINE_JOB_ID_PLACEHOLDER}}
    assert dsl.PIPELINE_JOB_ID_PLACEHOLDER == "{{$.pipeline_job_uuid}}"


def test_every_later_step_uses_the_resolved_ids(compiled: dict) -> None:
    # A raw "auto" must never reach a step: window_id and run_id come from resolve's outputs
    # (inside the `blessed` condition through the channel the compiler makes for them).
    tasks = all_tasks(compiled)
    cond = next(t for t in _tasks(compiled).values() if "triggerPolicy" in t)
    channels = cond["inputs"]["parameters"]
    checked = set()
    for name, task in tasks.items():
        if name == "resolve" or name not in EXPECTED_POLICY:
            continue
        for key in ("window_id", "run_id"):
            source = task["inputs"]["parameters"].get(key)
            if source is None:
                continue
            if "componentInputParameter" in source:  # inside the condition
                source = channels[source["componentInputParameter"]]
            assert source == {
                "taskOutputParameter": {
                    "outputParameterKey": f"resolved_{key}",
                    "producerTask": "resolve",
                }
            }, (name, key)
            checked.add((name, key))
    assert {n for n, _ in checked} == set(EXPECTED_POLICY) - {"resolve", "release"}
    assert ("ingest", "window_id") in checked and ("train", "window_id") in checked


def test_every_task_compiles_to_the_expected_policy(compiled: dict) -> None:
    # Retries, caching, CPU and memory of every task, against the table written out in
    # tests/pipeline_spec.py (not the dict in pipelines/ that produced the spec).
    assert compiled_policy(compiled) == EXPECTED_POLICY
    assert retry_backoffs(compiled) == {
        step: EXPECTED_BACKOFF for step, policy in EXPECTED_POLICY.items() if policy.retries
    }


def test_retries_only_on_io_steps(compiled: dict) -> None:
    tasks = all_tasks(compiled)
    for step, policy in EXPECTED_POLICY.items():
        retry = tasks[step].get("retryPolicy")
        if policy.retries:
            assert retry is not None, step
            assert retry["maxRetryCount"] == policy.retries
            # No KFP backoff: the launcher waits, knowing the exit code (see the next test).
            assert retry["backoffDuration"] == "0s"
        else:
            assert retry is None, f"{step} is deterministic and must not retry"
    retried = {s for s in EXPECTED_POLICY if tasks[s].get("retryPolicy")}
    assert retried == {"resolve", "ingest", "label", "deploy", "rollout", "release"}


def test_caching_disabled_explicitly(compiled: dict) -> None:
    # kfp writes `enableCache: true` for a task that caches (the default) and omits it when off.
    tasks = all_tasks(compiled)
    for name in EXPECTED_POLICY:
        assert tasks[name]["cachingOptions"].get("enableCache", False) is False, name


def test_every_executor_runs_the_step_launcher_with_no_embedded_source(compiled: dict) -> None:
    executors = compiled["deploymentSpec"]["executors"]
    assert len(executors) == 8
    assert set(executors) == {f"exec-{step}" for step in EXPECTED_POLICY}
    tasks = all_tasks(compiled)
    for name, ex in executors.items():
        step = name.removeprefix("exec-")
        container = ex["container"]
        assert container["image"] == IMAGE, name
        assert container["command"] == ["python", "-m", "retrain_components.launcher"], name
        backoff = EXPECTED_LAUNCHER_BACKOFF if tasks[step].get("retryPolicy") else []
        assert container["args"] == ["--step", step, "--executor-input", "{{$}}", *backoff]
    # No function source anywhere in the file: no lightweight component, no pip install.
    text = yaml.safe_dump(compiled)
    for marker in ("def ", "ephemeral_component", "pip install", "kfp.dsl.executor_main"):
        assert marker not in text, marker


def test_every_step_outputs_its_report_and_details_as_artifacts(compiled: dict) -> None:
    # What a step writes for the UI must be an output artifact: KFP uploads nothing else.
    for step in EXPECTED_POLICY:
        outputs = compiled["components"][f"comp-{step}"]["outputDefinitions"]["artifacts"]
        assert outputs["report"]["artifactType"]["schemaTitle"] == "system.Markdown", step
        assert outputs["details"]["artifactType"]["schemaTitle"] == "system.Artifact", step


def test_resources_are_set(compiled: dict) -> None:
    executors = compiled["deploymentSpec"]["executors"]
    for ex in executors.values():
        res = ex["container"]["resources"]
        assert res.get("cpuLimit") and res.get("memoryLimit")


def test_resolve_requests_little(compiled: dict) -> None:
    res = compiled["deploymentSpec"]["executors"]["exec-resolve"]["container"]["resources"]
    ingest = compiled["deploymentSpec"]["executors"]["exec-ingest"]["container"]["resources"]
    assert res["resourceCpuRequest"] == "100m" and res["resourceMemoryRequest"] == "256Mi"
    assert res["cpuRequest"] < ingest["cpuRequest"]
    assert res["memoryRequest"] < ingest["memoryRequest"]


def test_pipeline_parameters_have_no_baked_defaults(compiled: dict) -> None:
    params = compiled["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config_yaml", "window_id", "run_id", "as_of"}
    for name, p in params.items():
        if name == "as_of":  # optional: empty means the label task's own clock
            assert p.get("defaultValue") == "" and p.get("isOptional") is True
        else:
            assert "defaultValue" not in p


def test_label_joins_as_of_what_resolve_outputs(compiled: dict) -> None:
    # Resolve takes the raw parameter and outputs the run's time (a scheduled run's instant);
    # label joins as of that, not as of its own start.
    tasks = _tasks(compiled)
    raw = tasks["resolve"]["inputs"]["parameters"]["as_of"]
    assert raw == {"componentInputParameter": "pipelinechannel--as_of"}
    label = tasks["label"]["inputs"]["parameters"]["as_of"]
    assert label == {
        "taskOutputParameter": {"outputParameterKey": "resolved_as_of", "producerTask": "resolve"}
    }


def test_local_variant_has_no_retries(tmp_path: Path) -> None:
    from kfp import compiler
    from retrain_pipelines import build_pipeline

    out = tmp_path / "local.yaml"
    compiler.Compiler().compile(build_pipeline(IMAGE, local=True), str(out))
    assert "retryPolicy" not in out.read_text()
    # Everything else as on the cluster: no caching, the same requests and limits.
    no_retries = {step: p._replace(retries=0) for step, p in EXPECTED_POLICY.items()}
    assert compiled_policy(yaml.safe_load(out.read_text())) == no_retries


def test_both_packagings_have_each_steps_declared_interface() -> None:
    # The local (lightweight) wrappers are written by hand: they must match the interface the
    # container components are built from, but for the single output value, which a
    # lightweight component returns as `Output` (kfp.local resolves dsl.If only on that).
    from retrain_components import INTERFACES, container_components, local_components

    cluster, local = container_components(IMAGE), local_components(IMAGE)
    for step, interface in INTERFACES.items():
        c_spec = cluster.ops[step].component_spec
        l_spec = local.ops[step].component_spec
        assert {n: i.type for n, i in c_spec.inputs.items()} == {
            n: i.type for n, i in l_spec.inputs.items()
        }, step
        values = set(interface.values)
        c_out = {n: o.type for n, o in c_spec.outputs.items()}
        l_out = {n: o.type for n, o in l_spec.outputs.items()}
        expected = {n: t for n, t in c_out.items() if n not in values}
        if len(values) == 1:
            expected["Output"] = c_out[next(iter(values))]
        else:
            expected.update({n: c_out[n] for n in values})
        assert l_out == expected, step
        assert {"report", "details"} <= set(c_out), step
