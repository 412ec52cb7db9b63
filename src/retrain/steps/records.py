"""Run records: what every step writes under ``runs/<run_id>/`` and beside its artifacts.

A step records its outcome (or its error, with the exit code it maps to) under
``runs/<run_id>/<step>.json`` in the store, with the readable reports beside it
(``<step>.md``, and ``<step>.html`` with plots: `retrain.reports`), so `retrain status`, the
CLI and the history page (`retrain report`) find why a run stopped whatever engine ran it.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

from retrain._crash import crash_point
from retrain.config import Config, config_from_text
from retrain.data.io import from_parquet_bytes, to_parquet_bytes
from retrain.errors import RetrainError, ValidationError, classify_os_error, exit_code_for
from retrain.reports import step_html
from retrain.steps.signals import stop_step_on_sigterm
from retrain.storage import Storage, open_storage

__all__ = [
    "NO_NEW_DATA",
    "StepOutcome",
    "StepRecord",
    "check_run_id",
    "finish_step",
    "load_step_config",
    "no_new_data",
    "now_iso",
    "read_dataset",
    "read_run",
    "recorded_step",
    "run_key",
    "skip_step",
    "unrecorded_failure",
    "write_dataset",
    "write_step_report",
]

#: The ingest report's key saying its window had no rows (and why): the later steps skip.
NO_NEW_DATA = "no_new_data"

# A run id names a folder of the store (runs/<run_id>/): one plain name, never a path.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def now_iso() -> str:
    """The wall clock, UTC, to the second: when a record or a card was written."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StepRecord(TypedDict, total=False):
    """What ``runs/<run_id>/<step>.json`` holds (`retrain status` and the runner read it)."""

    step: str
    run_id: str
    started_at: str
    finished_at: str
    seconds: float
    status: str  # "succeeded", "failed" or "skipped" (no new data)
    summary: str
    report: Mapping[str, Any]  # the step's details (also its report artifact's JSON)
    markdown: str  # written beside the record as <step>.md, not into it
    html: str  # written beside the record as <step>.html, not into it
    error: str  # failed: the exception's type, message and the exit code it maps to
    message: str
    exit_code: int
    traceback: str  # an unexpected (internal) error only
    blessed: bool  # evaluate
    outcome: str  # evaluate: "blessed", "rejected" or "undecided" (not enough evaluation rows)
    phase: str  # rollout
    recorded: bool  # False: made by the runner because the step could not record it
    cause: str


@dataclass
class StepOutcome:
    """What a step reports: one line for humans, details for machines."""

    step: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it is one safe name; raise ValidationError otherwise.

    Without this a run id such as '../models/loans' would put step records inside the
    registry, since keys are normalised before they are checked against the root.
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValidationError(
            f"run id {run_id!r} is invalid: use 1-128 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit (it names the folder runs/<run_id>/ in the store)"
        )
    return run_id


def run_key(run_id: str, step: str) -> str:
    return f"runs/{check_run_id(run_id)}/{step}.json"


@contextmanager
def recorded_step(store: Storage, run_id: str, step: str) -> Iterator[StepRecord]:
    """Record the step's outcome (or its error, with the exit code it maps to) in the store.

    A SIGTERM during the step stops it (`retrain.steps.signals`): it is recorded as failed
    with exit 75, so the run is re-run rather than left half done, even when the step's own
    code caught the stop (`stop_step_on_sigterm`).
    """
    check_run_id(run_id)  # before the step runs: a bad id could not even record its failure
    record: StepRecord = {"step": step, "run_id": run_id, "started_at": now_iso()}
    t0 = time.perf_counter()
    try:
        with stop_step_on_sigterm():
            yield record
    except RetrainError as err:
        _failed(record, err, err.exit_code)
        raise
    except OSError as err:  # a file system's: exit 2 or 75, with a one-line fix
        classified = classify_os_error(err)
        _failed(record, classified, classified.exit_code)
        raise
    except Exception as err:
        _failed(record, err, 1)
        record["traceback"] = traceback.format_exc(limit=5)
        raise
    else:
        record.setdefault("status", "succeeded")
    finally:
        record["seconds"] = round(time.perf_counter() - t0, 3)
        record["finished_at"] = now_iso()
        markdown = record.pop("markdown", None)
        html = record.pop("html", None)
        if markdown is not None:  # the readable report, beside the record, whatever the engine
            store.write_text(f"runs/{run_id}/{step}.md", markdown)
        if html is not None:  # the same, with plots (`retrain report` draws failed steps)
            store.write_text(f"runs/{run_id}/{step}.html", html)
        store.write_text(run_key(run_id, step), json.dumps(record, indent=2, default=str))
    crash_point(f"step:{step}")  # a step boundary: recorded, its outputs not yet used


def unrecorded_failure(step: str, run_id: str, err: BaseException) -> StepRecord:
    """The failure record of a step that raised `err` but could not record it itself.

    ``"recorded": False`` says so; the exit code is `exit_code_for(err)` and an OSError's
    message is `classify_os_error`'s one-line fix.
    """
    shown = classify_os_error(err) if isinstance(err, OSError) else err
    record: StepRecord = {"step": step, "run_id": run_id, "recorded": False}
    _failed(record, shown, exit_code_for(err))
    cause = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    if cause is not None:  # e.g. the step's own failure, whose record could not be written
        record["cause"] = f"{type(cause).__name__}: {cause}"
    return record


def _failed(record: StepRecord, err: BaseException, exit_code: int) -> None:
    record["status"] = "failed"
    record["error"] = type(err).__name__
    record["message"] = str(err)
    record["exit_code"] = exit_code


def no_new_data(store: Storage, run_id: str) -> str | None:
    """Why ingest found no new data for this run (its window is empty), or None if it did."""
    data, _ = store.read_versioned(run_key(run_id, "ingest"))
    if data is None:
        return None
    report = json.loads(data).get("report") or {}
    reason = report.get(NO_NEW_DATA) if isinstance(report, dict) else None
    return str(reason) if reason else None


def skip_step(
    store: Storage,
    run_id: str,
    step: str,
    report_path: str | None,
    *,
    html_path: str | None = None,
) -> StepOutcome | None:
    """Record `step` as skipped when ingest found no new data; None when there is data.

    The steps after an empty window return at once (exit 0) instead of failing on it, so an
    empty window is an outcome, not an error retried by the pipeline.
    """
    reason = no_new_data(store, run_id)
    if reason is None:
        return None
    with recorded_step(store, run_id, step) as rec:
        summary = f"skipped: no new data ({reason})"
        details = {"skipped": True, NO_NEW_DATA: reason}
        rec["status"] = "skipped"
        finish_step(
            rec,
            report_path,
            summary,
            details,
            f"# {step.title()}: skipped\n\n{summary}.\n",
            html_path=html_path,
        )
    return StepOutcome(step, summary, details)


def read_run(store: Storage, run_id: str) -> dict[str, StepRecord]:
    """Every step record of a run, by step name."""
    out: dict[str, StepRecord] = {}
    for key in store.list(f"runs/{check_run_id(run_id)}"):
        if not key.endswith(".json"):
            continue
        rec = json.loads(store.read_text(key))
        out[rec["step"]] = rec
    return out


def finish_step(
    record: StepRecord,
    report_path: str | None,
    summary: str,
    details: Mapping[str, Any],
    markdown: str,
    *,
    html_path: str | None = None,
) -> None:
    """The common end of every step: fill its run record and write its report artifacts.

    The HTML report goes into the record (`recorded_step` writes it to the store as
    ``runs/<run_id>/<step>.html``) and to `html_path` (the KFP ``HTML`` artifact), if given.
    """
    step = str(record.get("step", ""))
    html = step_html(
        step,
        summary,
        details,
        markdown,
        run_id=str(record.get("run_id", "")),
        status=str(record.get("status", "succeeded")),  # "skipped" (no new data) says so
    )
    record["summary"] = summary
    record["report"] = details
    record["markdown"] = markdown
    record["html"] = html
    write_step_report(report_path, markdown)
    _write_html(html_path, html)


def write_step_report(
    report_path: str | None,
    markdown: str,
    *,
    html_path: str | None = None,
    step: str = "",
    summary: str = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    """The Markdown report artifact for the KFP UI, and (with `html_path`) the HTML report of
    `step` with its plots.

    The details go to the step's own ``details`` artifact (written by the step launcher from
    the outcome), never beside this file: KFP uploads only the artifact's path.
    """
    if html_path:
        _write_html(html_path, step_html(step, summary, details or {}, markdown))
    if not report_path:
        return
    p = Path(report_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(markdown)


def _write_html(html_path: str | None, html: str) -> None:
    if not html_path:
        return
    p = Path(html_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(html, encoding="utf-8")


def load_step_config(config_yaml: str) -> tuple[Config, Storage]:
    """The config a step was given (the pipeline parameter) and the store it names."""
    cfg = config_from_text(config_yaml, source="pipeline parameter config_yaml")
    return cfg, open_storage(cfg.storage_root)


def write_dataset(path: str, df: pd.DataFrame, metadata: dict[str, Any]) -> None:
    """Write a dataset artifact whole or not at all (a temporary file, then a rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(to_parquet_bytes(df, metadata))
    tmp.replace(p)


def read_dataset(path: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    return from_parquet_bytes(Path(path).read_bytes())
