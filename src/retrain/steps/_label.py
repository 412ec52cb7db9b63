"""`label`: late labels joined by id, coverage and leakage checked, the window into history."""

from __future__ import annotations

from retrain.data.history import commit_history
from retrain.data.io import content_sha256, read_source
from retrain.data.windows import parse_window
from retrain.labels.join import join_labels
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    read_dataset,
    recorded_step,
    write_dataset,
)

__all__ = ["label"]


def label(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset_path: str,
    labelled_path: str,
    queue_path: str | None = None,
    report_path: str | None = None,
) -> StepOutcome:
    """Join late labels by id, check coverage and leakage, add the window to history."""
    cfg, store = load_step_config(config_yaml)
    with recorded_step(store, run_id, "label") as rec:
        window_id = parse_window(cfg.data, window_id).id  # one spelling: "01" is "1"
        events, meta = read_dataset(dataset_path)
        labels = read_source(cfg.labels.uri, cfg.labels.format)
        result = join_labels(cfg, events, labels)
        meta = {
            **meta,
            "sha256": content_sha256(result.labelled),
            "rows": len(result.labelled),
            "label_coverage": result.coverage,
        }
        write_dataset(labelled_path, result.labelled, meta)
        if queue_path:
            write_dataset(queue_path, result.queue, {"rows": len(result.queue)})
        commit_history(store, window_id, result.labelled, meta)
        summary = (
            f"{len(result.labelled)} labelled rows, coverage {result.coverage:.1%}, "
            f"{len(result.queue)} rows queued for labelling"
        )
        finish_step(rec, report_path, summary, result.report, result.markdown)
        return StepOutcome("label", summary, result.report)
