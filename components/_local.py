"""The local packaging: one lightweight component per step, for kfp.local.

kfp.local's SubprocessRunner runs lightweight components only. Each function here has its
step's interface (`_interface.INTERFACES`, checked by tests/pipelines) and hands its
arguments to the launcher, which runs the same adapter as the container component does. The
import sits in the body because KFP ships only the function's source to the task.

A step's single output value is the function's return value (named ``Output`` by KFP):
kfp.local resolves a `dsl.If` condition only on that. No `from __future__ import
annotations` here: KFP reads the annotations as real types.
"""

from typing import NamedTuple

from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
    PipelineTaskFinalStatus,
)

__all__ = ["LOCAL_STEPS"]


# KFP reads named outputs from this functional NamedTuple in the annotation itself (the body is
# shipped without module-level names), a form mypy does not accept as a type.
def resolve(
    config_yaml: str,
    window_id: str,
    run_id: str,
    job_id: str,
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
    as_of: str = "",
) -> NamedTuple(  # type: ignore[valid-type]
    "Resolved", [("resolved_window_id", str), ("resolved_run_id", str), ("resolved_as_of", str)]
):
    from retrain_components.launcher import run_lightweight

    return run_lightweight("resolve", locals())


def ingest(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
) -> str:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("ingest", locals())  # type: ignore[no-any-return]


def label(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset: Input[Dataset],
    labelled: Output[Dataset],
    queue: Output[Dataset],
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
    as_of: str = "",
) -> str:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("label", locals())  # type: ignore[no-any-return]


def train(
    config_yaml: str,
    window_id: str,
    run_id: str,
    labelled: Input[Dataset],
    model: Output[Model],
    holdout: Output[Dataset],
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
) -> str:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("train", locals())  # type: ignore[no-any-return]


def evaluate(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    holdout: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
) -> bool:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("evaluate", locals())  # type: ignore[no-any-return]


def deploy(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
) -> str:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("deploy", locals())  # type: ignore[no-any-return]


def rollout(
    config_yaml: str,
    run_id: str,
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
    max_seconds: float = 0.0,
) -> str:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("rollout", locals())  # type: ignore[no-any-return]


def release(
    config_yaml: str,
    job_id: str,
    status: PipelineTaskFinalStatus,
    report: Output[Markdown],
    html: Output[HTML],
    details: Output[Artifact],
) -> str:
    from retrain_components.launcher import run_lightweight

    return run_lightweight("release", locals())  # type: ignore[no-any-return]


LOCAL_STEPS = {
    "resolve": resolve,
    "ingest": ingest,
    "label": label,
    "train": train,
    "evaluate": evaluate,
    "deploy": deploy,
    "rollout": rollout,
    "release": release,
}
