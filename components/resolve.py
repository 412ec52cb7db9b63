"""resolve: turn "auto" run parameters (scheduled runs) into the window id and run id."""

from typing import NamedTuple

from kfp.dsl import Markdown, Output


# KFP reads named outputs from this functional NamedTuple in the annotation itself (the body is
# shipped without module-level names), a form mypy does not accept as a type.
def resolve(
    config_yaml: str,
    window_id: str,
    run_id: str,
    job_id: str,
    report: Output[Markdown],
    as_of: str = "",
) -> NamedTuple(  # type: ignore[valid-type]
    "Resolved", [("window_id", str), ("run_id", str), ("as_of", str)]
):
    """Every later task takes its ids from these outputs; explicit values pass through.

    `job_id` is the KFP job id (`dsl.PIPELINE_JOB_ID_PLACEHOLDER`), the root of an "auto" run id.
    `as_of` out is the run's time for the label join: as given, or a scheduled run's instant.
    """
    from retrain import steps

    outcome = steps.resolve_run(config_yaml, window_id, run_id, job_id, report.path, as_of=as_of)
    return (outcome.window_id, outcome.run_id, outcome.as_of)
