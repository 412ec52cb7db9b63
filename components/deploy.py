"""deploy: register the blessed version, move the alias, roll out the SeldonDeployment."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Only ever runs under the pipeline's `blessed` gate."""
    v, p = call.values, call.paths
    outcome = steps.deploy(v["config_yaml"], v["run_id"], p["model"], **call.report_paths())
    return StepResult({"summary": outcome.summary}, outcome.details)
