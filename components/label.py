"""label: join delayed ground truth by id; coverage and leakage checks; labelling queue."""

from kfp.dsl import Dataset, Input, Markdown, Output


def label(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset: Input[Dataset],
    labelled: Output[Dataset],
    queue: Output[Dataset],
    report: Output[Markdown],
    as_of: str = "",
) -> str:
    """Adds the labelled window to the history store (create-only).

    Only labels dated at or before `as_of` are joined; "" means this task's own clock.
    """
    from retrain import steps

    return steps.label(
        config_yaml,
        window_id,
        run_id,
        dataset.path,
        labelled.path,
        queue.path,
        report.path,
        as_of,
    ).summary
