"""label: join delayed ground truth by id; coverage and leakage checks; labelling queue."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Adds the labelled window to the history store (create-only).

    Only labels dated at or before `as_of` are joined; "" means this task's own clock.
    """
    v, p = call.values, call.paths
    outcome = steps.label(
        v["config_yaml"],
        v["window_id"],
        v["run_id"],
        p["dataset"],
        p["labelled"],
        p["queue"],
        as_of=v["as_of"],
        **call.report_paths(),
    )
    return StepResult({"summary": outcome.summary}, outcome.details)
