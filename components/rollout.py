"""rollout: advance the canary through its traffic steps until promoted or rolled back."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Runs after deploy; a retry resumes the rollout from its state in the store.

    `max_seconds` bounds the step's wall-clock time (0: until promoted or rolled back); a
    rollout still in flight then is continued by the next run or `retrain deploy advance`.
    """
    v = call.values
    limit = float(v["max_seconds"])
    outcome = steps.rollout(
        v["config_yaml"],
        v["run_id"],
        max_seconds=limit if limit > 0 else None,
        **call.report_paths(),
    )
    return StepResult({"summary": outcome.summary}, outcome.details)
