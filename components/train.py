"""train: a challenger on history + the new window at the configured mix."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Writes model.skops, model.json (card with sha256), profile.json and the two holdouts.

    Skipped (no new data): writes none of them; `run_step` leaves a marker in their place.
    """
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
    # A skipped step (no new data) trained no model: there is no version to tag it with.
    version = outcome.details.get("version")
    metadata = {"model": {"version": version}} if version is not None else {}
    return StepResult({"summary": outcome.summary}, outcome.details, metadata)
