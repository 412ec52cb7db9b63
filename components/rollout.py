"""rollout: advance the canary through its traffic steps until promoted or rolled back."""

from kfp.dsl import Markdown, Output


def rollout(
    config_yaml: str, run_id: str, report: Output[Markdown], max_seconds: float = 0.0
) -> str:
    """Runs after deploy; a retry resumes the rollout from its state in the store.

    `max_seconds` bounds the step's wall-clock time (0: until promoted or rolled back); a
    rollout still in flight then is continued by the next run or `retrain deploy advance`.
    """
    from retrain import steps

    limit = max_seconds if max_seconds > 0 else None
    return steps.rollout(config_yaml, run_id, report.path, max_seconds=limit).summary
