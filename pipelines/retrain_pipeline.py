"""The retraining pipeline: ingest -> label -> train -> evaluate -> [blessed] deploy.

Policy lives here and nowhere else (asserted by tests/pipelines/test_compile.py):

- Retries only on steps whose failures are usually transient I/O and whose writes are
  idempotent: ingest and label read external sources, deploy writes the registry and the
  GitOps repo with create-only / compare-and-swap writes. Train and evaluate are deterministic
  computations: a retry would fail the same way.
- Caching is off for every step, explicitly. Each step reads state that is not among its KFP
  inputs (the data source, the history store, the current champion), so a cache hit could
  silently serve a stale result: the classic KFP pitfall of an ingest step that "looks the same".
- Resources are requests/limits for the cluster; kfp.local ignores them.

Nothing here reads the environment: the image is an argument, the config is a run parameter.
No `from __future__ import annotations` here: KFP reads the pipeline signature's types.
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from retrain_components import DEFAULT_IMAGE, STEPS, make_component

__all__ = ["PIPELINE_NAME", "STEP_POLICY", "build_pipeline", "compile_pipeline"]

PIPELINE_NAME = "retrain"

#: step -> retries, cpu request/limit, memory request/limit
STEP_POLICY: dict[str, dict[str, Any]] = {
    "ingest": {"retries": 3, "cpu": ("500m", "2"), "memory": ("1Gi", "4Gi")},
    "label": {"retries": 3, "cpu": ("500m", "2"), "memory": ("1Gi", "4Gi")},
    "train": {"retries": 0, "cpu": ("1", "4"), "memory": ("2Gi", "8Gi")},
    "evaluate": {"retries": 0, "cpu": ("1", "2"), "memory": ("1Gi", "4Gi")},
    "deploy": {"retries": 3, "cpu": ("250m", "1"), "memory": ("256Mi", "1Gi")},
}


def _apply_policy(task: Any, step: str, retries: bool = True) -> Any:
    policy = STEP_POLICY[step]
    task.set_caching_options(enable_caching=False)
    if retries and policy["retries"]:
        task.set_retry(
            num_retries=policy["retries"],
            backoff_duration="30s",
            backoff_factor=2.0,
            backoff_max_duration="600s",
        )
    cpu_req, cpu_lim = policy["cpu"]
    mem_req, mem_lim = policy["memory"]
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim)
    task.set_memory_request(mem_req).set_memory_limit(mem_lim)
    task.set_display_name(step)
    return task


def build_pipeline(image: str = DEFAULT_IMAGE, *, retries: bool = True) -> Any:
    """The pipeline with every component running in `image`.

    `retries=False` is for `kfp.local`: it runs retries in-process with the real backoff
    sleeps (minutes), and KFP retries whatever the exit code, so a bad-input failure (exit 2)
    would be retried for nothing. On a laptop failing fast is the better policy; the cluster
    pipeline keeps its retries.
    """
    ops = {name: make_component(func, image) for name, func in STEPS.items()}

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Retrain a model on history + a new data window, gate it against the "
        "champion, and roll it out as a Seldon canary.",
    )
    def retrain_pipeline(config_yaml: str, window_id: str, run_id: str) -> None:
        ingest = _apply_policy(
            ops["ingest"](config_yaml=config_yaml, window_id=window_id, run_id=run_id),
            "ingest",
            retries,
        )
        label = _apply_policy(
            ops["label"](
                config_yaml=config_yaml,
                window_id=window_id,
                run_id=run_id,
                dataset=ingest.outputs["dataset"],
            ),
            "label",
            retries,
        )
        train = _apply_policy(
            ops["train"](
                config_yaml=config_yaml,
                window_id=window_id,
                run_id=run_id,
                labelled=label.outputs["labelled"],
            ),
            "train",
            retries,
        )
        evaluate = _apply_policy(
            ops["evaluate"](
                config_yaml=config_yaml,
                run_id=run_id,
                model=train.outputs["model"],
                holdout=train.outputs["holdout"],
            ),
            "evaluate",
            retries,
        )
        with dsl.If(evaluate.outputs["Output"] == True, name="blessed"):  # noqa: E712
            _apply_policy(
                ops["deploy"](config_yaml=config_yaml, run_id=run_id, model=train.outputs["model"]),
                "deploy",
                retries,
            )

    return retrain_pipeline


def compile_pipeline(output: "str | Path", image: str = DEFAULT_IMAGE) -> Path:
    """Write the pipeline YAML that the Kubeflow UI and the `kfp` CLI accept."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=build_pipeline(image), package_path=str(out))
    return out


#: For `kfp dsl compile --py pipelines/retrain_pipeline.py --output retrain.yaml`.
retrain_pipeline = build_pipeline()
