"""evaluate: challenger vs champion on recent and historical holdouts; blessed or not."""

from __future__ import annotations

from typing import Any

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["confusion_metadata", "run"]


def run(call: StepCall) -> StepResult:
    """Outputs `blessed`; the reason in words is in the report and the run record."""
    v, p = call.values, call.paths
    outcome = steps.evaluate(
        v["config_yaml"], v["run_id"], p["model"], p["holdout"], **call.report_paths()
    )
    metadata: dict[str, dict[str, Any]] = {"metrics": dict(outcome.metrics)}
    if outcome.confusion:
        metadata["classification"] = confusion_metadata(
            outcome.confusion["categories"], outcome.confusion["matrix"]
        )
    return StepResult({"blessed": outcome.blessed}, outcome.details, metadata)


def confusion_metadata(categories: list[str], matrix: list[list[int]]) -> dict[str, Any]:
    """A ClassificationMetrics artifact's metadata, as the KFP UI reads it."""
    return {
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": c} for c in categories],
            "rows": [{"row": list(r)} for r in matrix],
        }
    }
