"""Each step's KFP interface, declared once: both packagings (container, local) follow it.

A step has run parameters (plain values), input artifacts, output artifacts and output
parameters. Every step also has the report outputs of `REPORT_OUTPUTS` and the `details` JSON
artifact: what a step writes for the UI goes to output artifacts, which the KFP launcher
uploads (a file written beside an artifact path is lost on a cluster).

Output parameter names must differ from input names (a container component takes both as
arguments), hence ``resolved_window_id`` rather than ``window_id``.
"""

from dataclasses import dataclass, field
from typing import Any

from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Markdown,
    Metrics,
    Model,
    PipelineTaskFinalStatus,
)

__all__ = ["DETAILS_OUTPUT", "INTERFACES", "REPORT_OUTPUTS", "StepInterface"]

#: Report artifacts every step writes: artifact name -> (KFP artifact type, keyword of the
#: `retrain.steps` function that writes it). Declaring one more is one line here.
REPORT_OUTPUTS: dict[str, tuple[type, str]] = {
    "report": (Markdown, "report_path"),
    "html": (HTML, "html_path"),  # the same report with plots, in the run's Visualizations
}

#: The step's details (what its run record holds under ``report``) as a JSON artifact.
DETAILS_OUTPUT = "details"


@dataclass(frozen=True)
class StepInterface:
    """One step's inputs and outputs, besides the report outputs every step has."""

    parameters: dict[str, Any]  # run parameter -> type (str, float, PipelineTaskFinalStatus)
    defaults: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, type] = field(default_factory=dict)  # input artifacts
    outputs: dict[str, type] = field(default_factory=dict)  # output artifacts
    values: dict[str, type] = field(default_factory=lambda: {"summary": str})  # outputs

    def output_artifacts(self) -> dict[str, type]:
        """Every output artifact: the step's own, its reports and its details."""
        reports = {name: kind for name, (kind, _) in REPORT_OUTPUTS.items()}
        return {**self.outputs, **reports, DETAILS_OUTPUT: Artifact}


_RUN = {"config_yaml": str, "window_id": str, "run_id": str}

INTERFACES: dict[str, StepInterface] = {
    "resolve": StepInterface(
        {**_RUN, "job_id": str, "as_of": str},
        defaults={"as_of": ""},
        values={"resolved_window_id": str, "resolved_run_id": str, "resolved_as_of": str},
    ),
    "ingest": StepInterface(_RUN, outputs={"dataset": Dataset}),
    "label": StepInterface(
        {**_RUN, "as_of": str},
        defaults={"as_of": ""},
        inputs={"dataset": Dataset},
        outputs={"labelled": Dataset, "queue": Dataset},
    ),
    "train": StepInterface(
        _RUN, inputs={"labelled": Dataset}, outputs={"model": Model, "holdout": Dataset}
    ),
    "evaluate": StepInterface(
        {"config_yaml": str, "run_id": str},
        inputs={"model": Model, "holdout": Dataset},
        outputs={"metrics": Metrics, "classification": ClassificationMetrics},
        values={"blessed": bool},
    ),
    "deploy": StepInterface({"config_yaml": str, "run_id": str}, inputs={"model": Model}),
    "rollout": StepInterface(
        {"config_yaml": str, "run_id": str, "max_seconds": float}, defaults={"max_seconds": 0.0}
    ),
    # The exit task: runs after all the others, whatever happened to them.
    "release": StepInterface(
        {"config_yaml": str, "job_id": str, "status": PipelineTaskFinalStatus}
    ),
}
