"""ingest: read the new window for a data snapshot, enforce the schema, write Parquet."""

from __future__ import annotations

from retrain_components._call import StepCall, StepResult

from retrain import steps

__all__ = ["run"]


def run(call: StepCall) -> StepResult:
    """Checks schema, types, categories, ranges, null rates and row count; fails closed."""
    v, p = call.values, call.paths
    outcome = steps.ingest(
        v["config_yaml"], v["window_id"], v["run_id"], p["dataset"], **call.report_paths()
    )
    return StepResult({"summary": outcome.summary}, outcome.details)
