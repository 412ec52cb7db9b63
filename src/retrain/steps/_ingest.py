"""`ingest`: the window's events, checked against the schema, as an immutable dataset."""

from __future__ import annotations

import contextlib

import pandas as pd

from retrain.data.ingest import EmptyWindow, ingest_window
from retrain.data.io import dataset_metadata, read_source
from retrain.data.limits import check_frame, check_source
from retrain.data.schema import Schema
from retrain.data.windows import parse_window
from retrain.drift import champion_drift
from retrain.errors import AlreadyExists
from retrain.steps.records import (
    NO_NEW_DATA,
    StepOutcome,
    finish_step,
    load_step_config,
    recorded_step,
    write_dataset,
)

__all__ = ["SCHEMA_KEY", "ingest"]

#: The reference schema: inferred by the very first run (create-only), enforced after.
SCHEMA_KEY = "schema/schema.json"


def ingest(
    config_yaml: str, window_id: str, run_id: str, dataset_path: str, report_path: str | None = None
) -> StepOutcome:
    """Read the window's events, check them against the schema, write them as Parquet."""
    cfg, store = load_step_config(config_yaml)
    with recorded_step(store, run_id, "ingest") as rec:
        window = parse_window(cfg.data, window_id)
        check_source(cfg.data.uri, cfg.data.format, cfg.data.limits)  # before loading it
        source = read_source(cfg.data.uri, cfg.data.format)
        check_frame(source, cfg.data.uri, cfg.data.limits)
        schema = Schema.from_json(store.read_text(SCHEMA_KEY)) if store.exists(SCHEMA_KEY) else None
        try:
            result = ingest_window(cfg, source, window, schema)
        except EmptyWindow as empty:  # no new data: an outcome the later steps skip on
            write_dataset(dataset_path, pd.DataFrame(), {NO_NEW_DATA: str(empty)})
            summary = f"window {window.id}: no new data, the later steps skip"
            finish_step(
                rec, report_path, summary, {NO_NEW_DATA: str(empty)}, f"# Ingest\n\n{empty}\n"
            )
            return StepOutcome("ingest", summary, {NO_NEW_DATA: str(empty)})
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
        # -- drift (retrain.drift): the window vs the champion's profile; informs, never fails
        drift = champion_drift(cfg, store, result.data)
        report = {**result.report, "drift": drift.to_dict()}
        markdown = result.markdown + "\n" + drift.markdown()
        if drift.report is not None:
            summary += f"; {drift.summary()}"
        # -- end drift
        finish_step(rec, report_path, summary, report, markdown)
        return StepOutcome("ingest", summary, report)
