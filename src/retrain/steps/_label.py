"""`label`: late labels joined by id, coverage and leakage checked, the window into history.

A run sees the labels that had arrived by its time (``as_of``), never later ones: with
``labels.time_column`` set, labels dated after ``as_of`` are left out of the join. ``as_of`` is
a run parameter: the runner, ``retrain run --as-of``, the backtest and the demo set it; a run
without it uses the label step's own clock (KFP cannot expand ``[[ScheduledTime]]``, so a
scheduled pipeline run is "as of" when its label task runs). Period sources have no clock: a
period run without ``as_of`` uses every label in the source.

With ``labels.provisional_windows`` set, the step also keeps, in the run's own folder (never in
history), the labels known so far of the newest windows after its own (`_provisional`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.history import check_joins_history, commit_history, committed_meta
from retrain.data.io import content_sha256
from retrain.data.source import read_head, read_matching
from retrain.data.windows import as_of_text, parse_as_of, parse_window
from retrain.labels.join import join_labels, label_columns
from retrain.steps._provisional import gather_provisional
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    read_dataset,
    recorded_step,
    skip_step,
    write_dataset,
)
from retrain.steps.resolve_rules import utc_instant
from retrain.storage import Storage

__all__ = ["label", "label_as_of"]

#: Rows of the label source read for the hint when a filtered read found no label.
_ID_SAMPLE_ROWS = 1000


def label_as_of(cfg: Config, as_of: str | None, now: datetime | None) -> tuple[Any, str]:
    """The run's time for the label join, in the time kind's units, and how it was chosen.

    An empty `as_of` (what the pipeline passes by default) is the same as None.

    Raises:
        ValidationError: `as_of` does not fit the time kind.
    """
    if as_of:
        return parse_as_of(cfg.data, as_of), "as given (run parameter as_of)"
    if cfg.data.time_kind == "period":
        return None, "none: period windows have no clock and no as_of was given"
    at = utc_instant(now if now is not None else datetime.now(timezone.utc))
    return at, "the label step's clock (no as_of was given)"


def _first_attempts_cut(
    cfg: Config, store: Storage, window_id: str, run_id: str, cut: Any, how: str
) -> tuple[Any, str]:
    """A re-run of a run on the clock keeps the time its first attempt committed the window as
    of: labels that arrived in between would change the committed content, and history
    refuses a second content; the next run takes them."""
    committed = committed_meta(store, window_id)
    if committed is None or committed.get("run_id") != run_id:
        return cut, how
    first = committed.get("labels_as_of")
    if not first or not cfg.labels.time_column:
        return cut, how
    return parse_as_of(cfg.data, str(first)), (
        "this run's first attempt's (it committed the window to history; a re-run keeps its time)"
    )


def label(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset_path: str,
    labelled_path: str,
    queue_path: str | None = None,
    report_path: str | None = None,
    as_of: str | None = None,
    *,
    now: datetime | None = None,
    html_path: str | None = None,
) -> StepOutcome:
    """Join the labels known as of `as_of` by id, check coverage and leakage, add the window
    to history. `now` stands in for the clock when `as_of` is not given (tests)."""
    cfg, store = load_step_config(config_yaml)
    if (skipped := skip_step(store, run_id, "label", report_path, html_path=html_path)) is not None:
        return skipped
    with recorded_step(store, run_id, "label") as rec:
        window_id = parse_window(cfg.data, window_id).id  # one spelling: "01" is "1"
        cut, how = label_as_of(cfg, as_of, now)
        if not as_of:
            cut, how = _first_attempts_cut(cfg, store, window_id, run_id, cut, how)
        if not cfg.labels.time_column:
            how += "; not applied: labels.time_column is not set"
        # Recorded before the join, so a failed coverage check says which time it used.
        rec["report"] = {
            "as_of": as_of_text(cut) if cut is not None and cfg.labels.time_column else None,
            "as_of_rule": how,
        }
        events, meta = read_dataset(dataset_path)
        # Only the labels of this window's ids, and only the columns the join uses: the
        # report's label counts (duplicates, null labels) are of those labels, and says so.
        labels, read = read_matching(
            cfg.labels.uri,
            cfg.labels.format,
            cfg.labels.id_column,
            events.get(cfg.data.id_column, pd.Series(dtype=object)),  # none: the join says so
            label_columns(cfg),
        )
        # A filtered read that found no label says nothing of the ids the source does hold:
        # its first rows show them (dated ones before the window left out by the hint).
        sample = (
            read_head(cfg.labels.uri, cfg.labels.format, label_columns(cfg), _ID_SAMPLE_ROWS)
            if read["filtered"] and labels.empty and not events.empty
            else None
        )
        result = join_labels(
            cfg, events, labels, as_of=cut, events_ids_only=read["filtered"], id_sample=sample
        )
        report = {**result.report, "as_of_rule": how, "labels_read": read}
        meta = {
            **meta,
            "run_id": run_id,  # the run that commits it (a re-run keeps its as-of time)
            "sha256": content_sha256(result.labelled),
            "rows": len(result.labelled),
            "label_coverage": result.coverage,
            "labels_as_of": result.report["as_of"],
        }
        # Before anything is written: a committed window whose labels cannot be one type with
        # history's (text "yes"/"no" beside 0/1) could never be corrected (history is immutable).
        # A re-run of a window committed with this content (after a crash past the commit,
        # or committed before this check) is not checked again: commit_history is a no-op.
        committed = committed_meta(store, window_id)
        if committed is None or committed.get("sha256") != meta["sha256"]:
            left_out = check_joins_history(store, cfg, window_id, result.labelled)
            if left_out:
                report["history_left_out"] = left_out
        write_dataset(labelled_path, result.labelled, meta)
        if queue_path:
            write_dataset(queue_path, result.queue, {"rows": len(result.queue)})
        commit_history(store, window_id, result.labelled, meta)
        markdown = result.markdown + f"\nLabels as of: {how}.\n"
        if report.get("history_left_out"):
            markdown += f"\nHistory: {report['history_left_out']}.\n"
        summary_note = ""
        if cfg.labels.provisional_windows:
            # After the commit: the run's own window is in history, the later ones are not.
            provisional = gather_provisional(cfg, store, run_id, window_id, cut)
            report["provisional"] = provisional.report()
            markdown += "\n" + provisional.markdown()
            summary_note = (
                f"; {provisional.labelled} provisional rows from "
                f"{sum(1 for w in provisional.windows if 'coverage' in w)} recent windows "
                "(not in history)"
            )
            if provisional.arrival is not None and not provisional.arrival.fair:
                summary_note += (
                    "; none used: the early labels are not a fair sample (arrival check)"
                )
        summary = (
            f"{len(result.labelled)} labelled rows, coverage {result.coverage:.1%}, "
            f"{len(result.queue)} rows queued for labelling"
        )
        if result.report["as_of"] is not None:
            summary += (
                f" (labels as of {result.report['as_of']}; "
                f"{result.report['not_yet_arrived']} not arrived yet)"
            )
        summary += summary_note
        finish_step(rec, report_path, summary, report, markdown, html_path=html_path)
        return StepOutcome("label", summary, report)
