"""`ingest`: the window's events, checked against the schema, as an immutable dataset."""

from __future__ import annotations

import contextlib

from retrain.data.ingest import ingest_window
from retrain.data.io import dataset_metadata, read_source
from retrain.data.schema import Schema
from retrain.data.windows import parse_window
from retrain.drift import champion_drift
from retrain.errors import AlreadyExists
from retrain.registry import Registry
from retrain.steps._state import SCHEMA_KEY, check_state_kept, finish_pending_rollout
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    recorded_step,
    write_dataset,
)

__all__ = ["SCHEMA_KEY", "ingest"]


def ingest(
    config_yaml: str, window_id: str, run_id: str, dataset_path: str, report_path: str | None = None
) -> StepOutcome:
    """Read the window's events, check them against the schema, write them as Parquet."""
    cfg, store = load_step_config(config_yaml)
    with recorded_step(store, run_id, "ingest") as rec:
        window = parse_window(cfg.data, window_id)
        repaired = finish_pending_rollout(cfg, store)  # before anything reads the aliases
        check_state_kept(store, Registry(store, cfg.name))
        source = read_source(cfg.data.uri, cfg.data.format)
        schema = Schema.from_json(store.read_text(SCHEMA_KEY)) if store.exists(SCHEMA_KEY) else None
        result = ingest_window(cfg, source, window, schema)
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
        if repaired:
            summary += f"; finished the rollout decision a crashed run left: {repaired}"
        # -- drift (retrain.drift): the window vs the champion's profile; informs, never fails
        drift = champion_drift(cfg, store, result.data)
        report = {**result.report, "drift": drift.to_dict()}
        markdown = result.markdown + "\n" + drift.markdown()
        if drift.report is not None:
            summary += f"; {drift.summary()}"
        # -- end drift
        finish_step(rec, report_path, summary, report, markdown)
        return StepOutcome("ingest", summary, report)
