"""release: the exit task; frees the run lease a scheduled run's resolve task took."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Runs last, whatever happened: releases the lease only if this job owns it.

    An exit task cannot read outputs of the tasks it guards, so it gets the run parameters and
    `job_id` (`dsl.PIPELINE_JOB_ID_PLACEHOLDER`), the owner resolve wrote into the lease.
    `status` is KFP's PipelineTaskFinalStatus as a mapping (its ``state``).
    """
    v = call.values
    outcome = steps.release_run_lease(
        v["config_yaml"],
        v["job_id"],
        pipeline_state=v["status"].get("state"),
        **call.report_paths(),
    )
    return StepResult({"summary": outcome.summary}, outcome.details)
