"""evaluate: challenger vs champion on recent and historical holdouts; blessed or not."""

from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


def evaluate(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    holdout: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> bool:
    """Returns `blessed`; the reason in words is in the report and the run record.

    A single unnamed output on purpose: kfp.local resolves an `If` condition only on a
    task's default `Output`, not on a named output of a NamedTuple.
    """
    from retrain import steps

    outcome = steps.evaluate(config_yaml, run_id, model.path, holdout.path, report.path)
    for name, value in outcome.metrics.items():
        metrics.log_metric(name, value)
    if outcome.confusion:
        classification.log_confusion_matrix(
            outcome.confusion["categories"], outcome.confusion["matrix"]
        )
    return outcome.blessed
