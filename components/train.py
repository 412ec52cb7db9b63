"""train: a challenger on history + the new window at the configured mix."""

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def train(
    config_yaml: str,
    window_id: str,
    run_id: str,
    labelled: Input[Dataset],
    model: Output[Model],
    holdout: Output[Dataset],
    report: Output[Markdown],
) -> str:
    """Writes model.skops, model.json (card with sha256), profile.json and the two holdouts."""
    from retrain import steps

    outcome = steps.train(
        config_yaml, window_id, run_id, labelled.path, model.path, holdout.path, report.path
    )
    model.metadata["version"] = outcome.details["version"]
    return outcome.summary
