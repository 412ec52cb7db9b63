"""ingest: read the new window for a data snapshot, enforce the schema, write Parquet."""

from kfp.dsl import Dataset, Markdown, Output


def ingest(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
) -> str:
    """Checks schema, types, categories, ranges, null rates and row count; fails closed."""
    from retrain import steps

    return steps.ingest(config_yaml, window_id, run_id, dataset.path, report.path).summary
