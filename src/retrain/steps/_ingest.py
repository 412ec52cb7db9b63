"""`ingest`: the window's events, checked against the schema, as an immutable dataset.

Broken rows go to ``quarantine/<window>.parquet`` in the store (every value as text, with its
reason), rewritten whole by a re-run of the same window.
"""

from __future__ import annotations

import contextlib

import pandas as pd

from retrain.data.ingest import EmptyWindow, ingest_window
from retrain.data.io import dataset_metadata, to_parquet_bytes
from retrain.data.limits import check_frame, check_source
from retrain.data.schema import Schema, as_category_strings, known_columns
from retrain.data.source import read_window
from retrain.data.windows import parse_window
from retrain.drift import champion_drift, champion_reference
from retrain.errors import AlreadyExists
from retrain.registry import Registry
from retrain.steps._state import (
    SCHEMA_KEY,
    check_state_kept,
    finish_pending_rollout,
    git_credentials_missing,
    pending_rollout_left,
)
from retrain.steps.records import (
    NO_NEW_DATA,
    StepOutcome,
    finish_step,
    load_step_config,
    recorded_step,
    write_dataset,
)

__all__ = ["SCHEMA_KEY", "ingest", "quarantine_key"]


def quarantine_key(window_id: str) -> str:
    """Where a window's quarantined rows are kept in the store."""
    return f"quarantine/{window_id}.parquet"


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    # Broken values are often of the wrong type for their column: keep them all, as text.
    return pd.DataFrame({str(c): as_category_strings(df[c]) for c in df.columns})


def ingest(
    config_yaml: str,
    window_id: str,
    run_id: str,
    dataset_path: str,
    report_path: str | None = None,
    *,
    html_path: str | None = None,
) -> StepOutcome:
    """Read the window's events, check them against the schema, write them as Parquet."""
    cfg, store = load_step_config(config_yaml)
    with recorded_step(store, run_id, "ingest") as rec:
        window = parse_window(cfg.data, window_id)
        # Finish a decision a crashed run left, before anything reads the aliases; unless it
        # may push to a GitOps remote and this step has no git credentials (on a cluster the
        # Secret is mounted into deploy, rollout and the rollout-advance CronJob only).
        no_push = git_credentials_missing(cfg)
        repaired = finish_pending_rollout(cfg, store) if no_push is None else None
        left = pending_rollout_left(cfg, store, no_push) if no_push is not None else None
        check_state_kept(store, Registry(store, cfg.name))
        # Before loading it; partitions outside the window are neither checked nor read.
        check_source(cfg.data.uri, cfg.data.format, cfg.data.limits, data=cfg.data, window=window)
        # Only the window's rows (Parquet: the row groups that overlap it; CSV: streamed) and
        # the columns ingest keeps are read; the others are checked by name.
        source, facts = read_window(
            cfg.data.uri, cfg.data.format, cfg.data, window, columns=known_columns(cfg)
        )
        # The limits are on the source: the facts count it where only a window was read.
        named, rows = (facts.columns, facts.rows) if facts is not None else (None, None)
        check_frame(source, cfg.data.uri, cfg.data.limits, columns=named, rows=rows)
        schema = Schema.from_json(store.read_text(SCHEMA_KEY)) if store.exists(SCHEMA_KEY) else None
        reference = champion_reference(cfg, store) if schema is not None else None
        try:
            result = ingest_window(cfg, source, window, schema, reference, facts=facts)
        except EmptyWindow as empty:  # no new data: an outcome the later steps skip on
            write_dataset(dataset_path, pd.DataFrame(), {NO_NEW_DATA: str(empty)})
            summary = f"window {window.id}: no new data, the later steps skip"
            details: dict[str, str] = {NO_NEW_DATA: str(empty)}
            markdown = f"# Ingest\n\n{empty}\n"
            if repaired:
                note = f"finished the rollout decision a crashed run left: {repaired}"
                summary += f"; {note}"
                details["repaired"] = str(repaired)
                markdown += f"\n{note[0].upper()}{note[1:]}.\n"
            if left:
                summary += f"; {left}"
                details["pending_rollout"] = left
            finish_step(rec, report_path, summary, details, markdown, html_path=html_path)
            return StepOutcome("ingest", summary, details)
        q_key = quarantine_key(window.id)
        if result.quarantined is not None:
            meta = {"window": window.as_dict(), "run_id": run_id}
            store.write_bytes(q_key, to_parquet_bytes(_as_text(result.quarantined), meta))
        if result.schema_inferred:
            # A concurrent first run may have written it; the next run enforces whichever landed.
            with contextlib.suppress(AlreadyExists):
                store.create(SCHEMA_KEY, result.schema.to_json().encode())
        meta = dataset_metadata(
            result.data,
            time_column=cfg.data.time_column,
            source_snapshot=f"{cfg.data.uri}#window={window.id}",
            schema_fingerprint=result.schema.fingerprint(),
        )
        write_dataset(dataset_path, result.data, meta)
        summary = f"window {window.id}: {len(result.data)} rows passed schema checks" + (
            " (schema inferred: first run)" if result.schema_inferred else ""
        )
        quarantine = result.report["quarantine"]
        if result.quarantined is not None:
            quarantine["location"] = store.uri(q_key)
            summary += f"; {quarantine['quarantined_rows']} rows quarantined ({store.uri(q_key)})"
        if quarantine["drifted_values"]:
            summary += f"; {quarantine['drifted_values']} values outside the reference (drift)"
        if repaired:
            summary += f"; finished the rollout decision a crashed run left: {repaired}"
        if left:
            summary += f"; {left}"
        # -- drift (retrain.drift): the window vs the champion's profile; informs, never fails
        drift = champion_drift(cfg, store, result.data)
        report = {**result.report, "drift": drift.to_dict()}
        if left:
            report["pending_rollout"] = left
        markdown = result.markdown + "\n" + drift.markdown()
        if drift.report is not None:
            summary += f"; {drift.summary()}"
        # -- end drift
        finish_step(rec, report_path, summary, report, markdown, html_path=html_path)
        return StepOutcome("ingest", summary, report)
