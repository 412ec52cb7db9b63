"""Reading a compiled pipeline spec in the pipeline tests, and the policy it must carry."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "EXPECTED_BACKOFF",
    "EXPECTED_LAUNCHER_BACKOFF",
    "EXPECTED_POLICY",
    "Policy",
    "all_tasks",
    "compiled_policy",
    "retry_backoffs",
]


class Policy(NamedTuple):
    """One task's policy as the compiled spec states it."""

    retries: int  # the task's retryPolicy.maxRetryCount; 0: no retryPolicy
    cache: bool  # cachingOptions.enableCache (the compiler omits it when False)
    cpu_request: str  # the executor's resources.resourceCpuRequest
    cpu_limit: str  # resourceCpuLimit
    memory_request: str  # resourceMemoryRequest
    memory_limit: str  # resourceMemoryLimit


#: What every task of the pipeline must compile to, written out here on purpose rather than
#: read from `retrain_pipelines.STEP_POLICY`: a test that compares the compiled spec with the
#: dict that produced it cannot catch a wrong value in that dict. A change of policy is made
#: in both places.
EXPECTED_POLICY: dict[str, Policy] = {
    "resolve": Policy(3, False, "100m", "1", "256Mi", "4Gi"),
    "ingest": Policy(3, False, "500m", "2", "1Gi", "4Gi"),
    "label": Policy(3, False, "500m", "2", "1Gi", "4Gi"),
    "train": Policy(0, False, "1", "4", "2Gi", "8Gi"),
    "evaluate": Policy(0, False, "1", "2", "1Gi", "4Gi"),
    "deploy": Policy(3, False, "250m", "1", "256Mi", "1Gi"),
    "rollout": Policy(3, False, "250m", "1", "512Mi", "2Gi"),
    "release": Policy(3, False, "100m", "1", "128Mi", "512Mi"),
}

#: The KFP backoff of every task that retries: none. KFP retries whatever the exit code, so
#: the step launcher waits instead (30 s, doubling, at most 10 minutes: `EXPECTED_LAUNCHER_
#: BACKOFF`), and not at all after a permanent failure. 3600 s is KFP's default retry window.
EXPECTED_BACKOFF: dict[str, Any] = {
    "backoffDuration": "0s",
    "backoffFactor": 2.0,
    "backoffMaxDuration": "3600s",
}

#: The launcher's backoff argument on every task that retries (base, factor, max seconds).
EXPECTED_LAUNCHER_BACKOFF = ["--retry-backoff", "30,2,600"]


def all_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task with its own component, including those inside sub-DAGs (the exit
    handler's group, the `blessed` condition)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(dag_tasks: dict[str, Any]) -> None:
        for name, task in dag_tasks.items():
            out[name] = task
            inner = spec["components"][task["componentRef"]["name"]].get("dag")
            if inner:
                walk(inner["tasks"])

    walk(spec["root"]["dag"]["tasks"])
    return out


def _container_tasks(spec: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``name -> (task, its executor's container)`` for every task that runs a container."""
    executors = spec["deploymentSpec"]["executors"]
    out = {}
    for name, task in all_tasks(spec).items():
        label = spec["components"][task["componentRef"]["name"]].get("executorLabel")
        if label is not None:  # groups (exit handler, condition) have a DAG, no executor
            out[name] = (task, executors[label]["container"])
    return out


def compiled_policy(spec: dict[str, Any]) -> dict[str, Policy]:
    """The `Policy` of every task that runs a container, as compiled into `spec`."""
    out = {}
    for name, (task, container) in _container_tasks(spec).items():
        res = container.get("resources", {})
        out[name] = Policy(
            retries=(task.get("retryPolicy") or {}).get("maxRetryCount", 0),
            cache=(task.get("cachingOptions") or {}).get("enableCache", False),
            cpu_request=res.get("resourceCpuRequest"),
            cpu_limit=res.get("resourceCpuLimit"),
            memory_request=res.get("resourceMemoryRequest"),
            memory_limit=res.get("resourceMemoryLimit"),
        )
    return out


def retry_backoffs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The retry policy of every task that retries, without its count."""
    return {
        name: {k: v for k, v in task["retryPolicy"].items() if k != "maxRetryCount"}
        for name, (task, _) in _container_tasks(spec).items()
        if task.get("retryPolicy")
    }
