"""train: a challenger on history + the new window at the configured mix."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Writes model.skops, model.json (card with sha256), profile.json and the two holdouts."""
    v, p = call.values, call.paths
    outcome = steps.train(
        v["config_yaml"],
        v["window_id"],
        v["run_id"],
        p["labelled"],
        p["model"],
        p["holdout"],
        **call.report_paths(),
    )
    metadata = {"model": {"version": outcome.details["version"]}}
    return StepResult({"summary": outcome.summary}, outcome.details, metadata)
