"""release: the exit task; frees the run lease a scheduled run's resolve task took."""

from kfp.dsl import Markdown, Output, PipelineTaskFinalStatus


def release(
    config_yaml: str, job_id: str, status: PipelineTaskFinalStatus, report: Output[Markdown]
) -> str:
    """Runs last, whatever happened: releases the lease only if this job owns it.

    An exit task cannot read outputs of the tasks it guards, so it gets the run parameters and
    `job_id` (`dsl.PIPELINE_JOB_ID_PLACEHOLDER`), the owner resolve wrote into the lease.
    """
    from retrain import steps

    outcome = steps.release_run_lease(config_yaml, job_id, report.path, pipeline_state=status.state)
    return outcome.summary
