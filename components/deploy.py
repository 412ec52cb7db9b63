"""deploy: register the blessed version, move the alias, roll out the SeldonDeployment."""

from kfp.dsl import Input, Markdown, Model, Output


def deploy(config_yaml: str, run_id: str, model: Input[Model], report: Output[Markdown]) -> str:
    """Only ever runs under the pipeline's `blessed` gate."""
    from retrain import steps

    return steps.deploy(config_yaml, run_id, model.path, report.path).summary
