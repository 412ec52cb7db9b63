"""resolve: turn "auto" run parameters (scheduled runs) into the window id and run id."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Every later task takes its ids from these outputs; explicit values pass through.

    `job_id` is the KFP job id (`dsl.PIPELINE_JOB_ID_PLACEHOLDER`), the root of an "auto" run id.
    ``resolved_as_of`` is the run's time for the label join: `as_of` as given, or a scheduled
    run's own instant (kept by a retry), so label joins as of when the run was resolved.
    """
    v = call.values
    outcome = steps.resolve_run(
        v["config_yaml"],
        v["window_id"],
        v["run_id"],
        v["job_id"],
        as_of=v["as_of"],
        **call.report_paths(),
    )
    values = {
        "resolved_window_id": outcome.window_id,
        "resolved_run_id": outcome.run_id,
        "resolved_as_of": outcome.as_of,
    }
    return StepResult(values, outcome.details)
