"""evaluate: challenger vs champion on recent and historical holdouts; blessed or not."""

from typing import NamedTuple

from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


def evaluate(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    holdout: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> NamedTuple("Outputs", [("blessed", bool), ("reason", str)]):
    """Logs KFP Metrics (and a confusion matrix for classifiers); the gate decides `blessed`."""
    from collections import namedtuple

    from retrain import steps

    outcome = steps.evaluate(config_yaml, run_id, model.path, holdout.path, report.path)
    for name, value in outcome.metrics.items():
        metrics.log_metric(name, value)
    if outcome.confusion:
        classification.log_confusion_matrix(
            outcome.confusion["categories"], outcome.confusion["matrix"]
        )
    return namedtuple("Outputs", ["blessed", "reason"])(outcome.blessed, outcome.reason)
