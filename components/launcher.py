"""The step launcher: what every pipeline task runs, ``python -m retrain_components.launcher``.

On a cluster each step is a container component whose command is this module::

    python -m retrain_components.launcher --step ingest --executor-input '{{$}}' \
        --retry-backoff 30,2,600

It parses KFP's executor input itself (run parameters under ``inputs.parameterValues``,
artifacts under ``inputs.artifacts`` / ``outputs.artifacts`` with their URIs), maps each URI
to the local path the KFP launcher stages (``gs://b/k`` -> ``/gcs/b/k``, ``minio://`` ->
``/minio/``, ``s3://`` -> ``/s3/``, a plain path as is), calls the step's adapter, and writes
the executor output (``outputs.outputFile``: output parameters and artifact metadata) and
each output parameter's file. No KFP code runs in the task, so the image's kfp version need
not speak the compiling SDK's executor protocol, as in google-cloud-pipeline-components.

Locally (kfp.local runs lightweight components only) a one-line lightweight component per
step calls `run_lightweight`, which runs the same adapter through `run_step`.

Retries: see `retrain.steps.attempts`. A permanent failure (exit 2) is recorded, and a retry
of the same task exits 2 at once; other failures wait ``--retry-backoff`` here, where the
exit code is known, since KFP's retry policy cannot tell exit codes apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from retrain_components import (
    deploy,
    evaluate,
    ingest,
    label,
    release,
    resolve,
    rollout,
    train,
)
from retrain_components._call import StepCall, StepResult
from retrain_components._interface import DETAILS_OUTPUT, INTERFACES

from retrain._threads import limit_process_threads
from retrain.errors import EXIT_OK, EXIT_VALIDATION, exit_code_for
from retrain.steps.attempts import RetryBackoff, plan_attempt, read_failures, record_failure
from retrain.steps.records import load_step_config
from retrain.storage import Storage

__all__ = [
    "ADAPTERS",
    "local_path",
    "main",
    "run_executor_input",
    "run_lightweight",
    "run_step",
    "task_key",
]

#: step -> its adapter (one code path per step, whichever packaging runs it).
ADAPTERS: dict[str, Callable[[StepCall], StepResult]] = {
    "resolve": resolve.run,
    "ingest": ingest.run,
    "label": label.run,
    "train": train.run,
    "evaluate": evaluate.run,
    "deploy": deploy.run,
    "rollout": rollout.run,
    "release": release.run,
}

# Where the KFP launcher stages an artifact of each remote scheme (a fixed contract of KFP v2;
# the components image creates these directories).
_MOUNTS = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}


def local_path(uri: str) -> str:
    """The local path KFP stages an artifact URI at."""
    for scheme, mount in _MOUNTS.items():
        if uri.startswith(scheme):
            return mount + uri[len(scheme) :]
    return uri


def run_step(step: str, call: StepCall) -> StepResult:
    """Run one step's adapter and write its details artifact (both packagings)."""
    for name in INTERFACES[step].output_artifacts():
        Path(call.paths[name]).parent.mkdir(parents=True, exist_ok=True)
    result = ADAPTERS[step](call)
    Path(call.paths[DETAILS_OUTPUT]).write_text(
        json.dumps(result.details, indent=2, default=str, sort_keys=True)
    )
    for name, metadata in result.metadata.items():
        # Metrics live in the artifact's metadata; the file gives KFP something to upload.
        target = Path(call.paths[name])
        if not target.exists():
            target.write_text(json.dumps(metadata, indent=2, sort_keys=True))
    if result.details.get("skipped"):
        # No new data: the step wrote none of its outputs. A marker gives KFP a file to upload
        # (the later steps skip without reading it).
        marker = json.dumps(dict(result.details), indent=2, default=str, sort_keys=True)
        for name in INTERFACES[step].output_artifacts():
            target = Path(call.paths[name])
            if not target.exists():
                target.write_text(marker)
    return result


def run_lightweight(step: str, arguments: Mapping[str, Any]) -> Any:
    """The local packaging: `arguments` are a lightweight component's (KFP artifact objects).

    Returns the step's output value, or a tuple of them in declared order.
    """
    limit_process_threads()  # the task's own process (nothing if its parent set the limit)
    interface = INTERFACES[step]
    values = {name: arguments[name] for name in interface.parameters}
    if "status" in values:  # PipelineTaskFinalStatus: the launcher sees it as JSON
        values["status"] = {"state": values["status"].state}
    artifacts = {**interface.inputs, **interface.output_artifacts()}
    paths = {name: arguments[name].path for name in artifacts}
    result = run_step(step, StepCall(values, paths))
    for name, metadata in result.metadata.items():
        arguments[name].metadata.update(metadata)
    out = [result.values[name] for name in interface.values]
    return out[0] if len(out) == 1 else tuple(out)


def task_key(step: str, executor_input: Mapping[str, Any]) -> str:
    """One name for every attempt of one task, and another for any other task.

    Not the whole executor input: when a retry reruns KFP's driver, the driver may salt the
    output artifact URIs per attempt, and a retry keyed on them would never find the earlier
    attempt's record (so a bad input would be retried, and the backoff would restart). What
    is the same on every attempt of one task: the step (one task per step in the pipeline),
    its parameter values (the run id, resolved once per pipeline job by `resolve`; `job_id`,
    the KFP job, where the step takes it; the config; the window) and the URIs of its input
    artifacts (written once, by upstream tasks that have finished). Another pipeline job gets
    another run id, unless one is given; a job that reuses a given run id with the very same
    config, window and inputs is the same task again, and a recorded bad input is not retried.
    """
    inputs = executor_input.get("inputs", {})
    stable = {
        "step": step,
        "parameters": inputs.get("parameterValues", {}),
        "inputs": {
            name: [a.get("uri") for a in listed.get("artifacts", [])]
            for name, listed in inputs.get("artifacts", {}).items()
        },
    }
    canonical = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _call_from(step: str, executor_input: Mapping[str, Any]) -> StepCall:
    interface = INTERFACES[step]
    inputs = executor_input.get("inputs", {})
    given = inputs.get("parameterValues", {})
    missing = sorted(set(interface.parameters) - set(given) - set(interface.defaults))
    if missing:
        raise ValueError(f"executor input lacks the parameters {missing} of step {step!r}")
    values = {**interface.defaults, **{k: given[k] for k in interface.parameters if k in given}}
    paths: dict[str, str] = {}
    sources = [
        (inputs.get("artifacts", {}), interface.inputs),
        (executor_input.get("outputs", {}).get("artifacts", {}), interface.output_artifacts()),
    ]
    for listed, names in sources:
        for name in names:
            try:
                paths[name] = local_path(listed[name]["artifacts"][0]["uri"])
            except (KeyError, IndexError) as err:
                raise ValueError(f"executor input lacks the artifact {name!r}") from err
    return StepCall(values, paths)


def _write_outputs(step: str, executor_input: Mapping[str, Any], result: StepResult) -> None:
    outputs = executor_input.get("outputs", {})
    artifacts: dict[str, Any] = {}
    for name in INTERFACES[step].output_artifacts():
        listed = [dict(a) for a in outputs["artifacts"][name]["artifacts"]]
        listed[0]["metadata"] = {**listed[0].get("metadata", {}), **result.metadata.get(name, {})}
        artifacts[name] = {"artifacts": listed}
    for name, spec in outputs.get("parameters", {}).items():
        if name in result.values and spec.get("outputFile"):
            value = result.values[name]
            text = value if isinstance(value, str) else json.dumps(value)
            Path(spec["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
            Path(spec["outputFile"]).write_text(text)
    document = {"parameterValues": result.values, "artifacts": artifacts}
    out = Path(outputs["outputFile"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str))


def _store_of(call: StepCall) -> Storage | None:
    try:
        return load_step_config(str(call.values["config_yaml"]))[1]
    except Exception:
        return None  # the step reports the bad config itself, the same on every attempt


def run_executor_input(
    step: str,
    executor_input: Mapping[str, Any],
    backoff: RetryBackoff,
    *,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run one attempt of a task; returns the process exit code."""
    call = _call_from(step, executor_input)
    key = task_key(step, executor_input)
    store = _store_of(call)
    if store is not None:
        plan = plan_attempt(read_failures(store, key), backoff)
        if not plan.run:
            print(f"{step}: {plan.reason}", file=sys.stderr)
            return plan.exit_code
        if plan.wait_seconds:
            print(f"{step}: retrying after {plan.wait_seconds:g}s of backoff", file=sys.stderr)
            (sleep or time.sleep)(plan.wait_seconds)
    try:
        result = run_step(step, call)
    except Exception as err:
        code = exit_code_for(err)
        print(f"{step} failed (exit {code}): {type(err).__name__}: {err}", file=sys.stderr)
        if store is not None:
            record_failure(store, key, step, code, str(err))
        return code
    _write_outputs(step, executor_input, result)
    return EXIT_OK


def _backoff(text: str) -> RetryBackoff:
    base, factor, cap = (float(x) for x in text.split(","))
    return RetryBackoff(base, factor, cap)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrain_components.launcher")
    parser.add_argument("--step", required=True, choices=sorted(ADAPTERS))
    parser.add_argument("--executor-input", required=True, help="KFP's executor input (JSON)")
    parser.add_argument(
        "--retry-backoff",
        type=_backoff,
        default=RetryBackoff(),
        help="base seconds, factor, max seconds of the wait before a retry (default 30,2,600)",
    )
    args = parser.parse_args(argv)
    # A pod's OpenMP and BLAS would start a thread per core of the node (see retrain._threads).
    limit_process_threads()
    try:
        executor_input = json.loads(args.executor_input)
        if not isinstance(executor_input, dict):
            raise ValueError("not a JSON object")
        return run_executor_input(args.step, executor_input, args.retry_backoff)
    except ValueError as err:  # a malformed executor input: the same on every retry
        print(f"{args.step}: bad executor input: {err}", file=sys.stderr)
        return EXIT_VALIDATION


if __name__ == "__main__":
    sys.exit(main())
