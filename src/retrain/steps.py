"""The steps of one retraining cycle, as plain functions over files and a store.

Each KFP component calls exactly one of these (and the `retrain` CLI calls the same ones), so
the pipeline on a laptop, the pipeline on Kubeflow and a backtest all run the same code. A step
takes the normalised config text, reads its inputs from local paths (KFP artifact paths) or
the store, writes its outputs and a report (Markdown for the Kubeflow UI, JSON for machines),
and records its outcome under ``runs/<run_id>/<step>.json`` in the store, so a failed step
leaves the reason where `retrain status` and the CLI can find it.

What they write to shared state, and when:
- resolve_run: the run lease, and only for a scheduled run (window ``"auto"``). It runs first
  and turns ``"auto"`` run parameters into a window id and a run id (`retrain.resolve`); it
  records only when it resolved something, so runs given explicit ids keep exactly the records
  they had. A scheduled run then takes the run lease (`retrain.triggers.lease`), so it never
  overlaps a drift-launched run, or refuses to start while another run holds it.
- release_run_lease: the pipeline's exit task; releases the lease only if this job took it.
- ingest: the schema, only on the very first run (create-only).
- label: the labelled window into the history store (create-only; re-runs are idempotent).
- train, evaluate: nothing shared (the model stays a run artifact until it is blessed).
- deploy: the registry (create-only version, alias by compare-and-swap, events) and then the
  rendered deployment; every write is idempotent, so re-running after a crash converges.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.config import Config, config_from_text
from retrain.data.ingest import ingest_window
from retrain.data.io import (
    content_sha256,
    dataset_metadata,
    from_parquet_bytes,
    read_source,
    to_parquet_bytes,
)
from retrain.data.schema import Schema
from retrain.data.windows import parse_window, window_sort_key
from retrain.drift import PROFILE_FILE, champion_drift, profile_for_model
from retrain.errors import AlreadyExists, RetrainError, TransientError, ValidationError
from retrain.labels.join import join_labels
from retrain.registry import Registry
from retrain.resolve import (
    AUTO,
    LEASE_RULE,
    auto_run_id,
    check_keyword,
    newest_complete_window,
    utc_instant,
)
from retrain.storage import Storage, open_storage
from retrain.triggers.lease import (
    Lease,
    acquire_lease,
    lease_key,
    read_lease,
    release_lease,
    renew_lease,
)

__all__ = [
    "DeployOutcome",
    "EvaluateOutcome",
    "ResolveOutcome",
    "StepOutcome",
    "check_run_id",
    "deploy",
    "evaluate",
    "ingest",
    "label",
    "load_history",
    "read_run",
    "recorded_step",
    "release_run_lease",
    "resolve_run",
    "run_lease_owner",
    "train",
    "write_step_report",
]

SCHEMA_KEY = "schema/schema.json"
MODEL_FILE = "model.skops"
CARD_FILE = "model.json"
# A run id names a folder of the store (runs/<run_id>/): one plain name, never a path.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StepOutcome:
    """What a step reports: one line for humans, details for machines."""

    step: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluateOutcome(StepOutcome):
    blessed: bool = False
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None


@dataclass
class ResolveOutcome(StepOutcome):
    """The ids every later step uses: as given, or resolved from ``"auto"``."""

    window_id: str = ""
    run_id: str = ""


@dataclass
class DeployOutcome(StepOutcome):
    version: str = ""
    alias: str = ""
    commit: str | None = None


# --- run records -------------------------------------------------------------------------------


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


def _run_key(run_id: str, step: str) -> str:
    return f"runs/{check_run_id(run_id)}/{step}.json"


@contextmanager
def recorded_step(store: Storage, run_id: str, step: str) -> Iterator[dict[str, Any]]:
    """Record the step's outcome (or its error, with the exit code it maps to) in the store."""
    check_run_id(run_id)  # before the step runs: a bad id could not even record its failure
    record: dict[str, Any] = {"step": step, "run_id": run_id, "started_at": _now()}
    t0 = time.perf_counter()
    try:
        yield record
    except RetrainError as err:
        record.update(
            status="failed", error=type(err).__name__, message=str(err), exit_code=err.exit_code
        )
        raise
    except Exception as err:
        record.update(
            status="failed",
            error=type(err).__name__,
            message=str(err),
            exit_code=1,
            traceback=traceback.format_exc(limit=5),
        )
        raise
    else:
        record.setdefault("status", "succeeded")
    finally:
        record["seconds"] = round(time.perf_counter() - t0, 3)
        record["finished_at"] = _now()
        markdown = record.pop("markdown", None)
        if markdown is not None:  # the readable report, beside the record, whatever the engine
            store.write_text(f"runs/{run_id}/{step}.md", markdown)
        store.write_text(_run_key(run_id, step), json.dumps(record, indent=2, default=str))


def read_run(store: Storage, run_id: str) -> dict[str, dict[str, Any]]:
    """Every step record of a run, by step name."""
    out = {}
    for key in store.list(f"runs/{check_run_id(run_id)}"):
        if not key.endswith(".json"):
            continue
        rec = json.loads(store.read_text(key))
        out[rec["step"]] = rec
    return out


def write_step_report(report_path: str | None, markdown: str, details: dict[str, Any]) -> None:
    if not report_path:
        return
    p = Path(report_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(markdown)
    p.with_name(p.name + ".json").write_text(json.dumps(details, indent=2, default=str))


def _load(config_yaml: str) -> tuple[Config, Storage]:
    cfg = config_from_text(config_yaml, source="pipeline parameter config_yaml")
    return cfg, open_storage(cfg.storage_root)


def _write_dataset(path: str, df: pd.DataFrame, metadata: dict[str, Any]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(to_parquet_bytes(df, metadata))
    tmp.replace(p)


def _read_dataset(path: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    return from_parquet_bytes(Path(path).read_bytes())


# --- resolve ---------------------------------------------------------------------------------


def run_lease_owner(job_id: str | None) -> str:
    """The lease owner of a scheduled run: the job it belongs to, ``pipeline:<job id>``.

    Raises:
        ValidationError: no job id, or a placeholder the runner left unexpanded; such an
            owner could not be told apart from another run's, so nothing could release it.
    """
    text = str(job_id or "").strip()
    if not text or "{{" in text:
        raise ValidationError(
            f"job id {job_id!r} is missing or was not substituted by the pipeline runner: a "
            "scheduled run (window_id 'auto') takes the run lease as pipeline:<job id>"
        )
    return f"pipeline:{text}"


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if t else None


def _lease_dict(lease: Lease) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(lease.to_json())
    return doc


def _take_run_lease(
    cfg: Config,
    store: Storage,
    *,
    run_id: str,
    window_id: str,
    job_id: str | None,
    at: datetime,
    kfp_run: bool,
) -> Lease:
    """Take the run lease for a scheduled run, or raise TransientError naming its holder.

    A lease this job already holds for `run_id` (an earlier attempt of its resolve task took
    it) is kept and renewed. The owner is checked again in the renewal's compare-and-swap: a
    lease that expired and went to another job under the same run id is never renewed.
    """
    owner = run_lease_owner(job_id)
    ttl = cfg.triggers.lease_delta
    taken = acquire_lease(
        store, cfg.name, owner=owner, run_id=run_id, snapshot=window_id, ttl=ttl, now=at
    )
    if taken is None:
        holder, _ = read_lease(store, cfg.name)
        ours = (
            holder is not None
            and (holder.owner, holder.run_id) == (owner, run_id)
            and holder.released_at is None
        )
        if not ours:  # a retried resolve task of this job finds its own lease: keep it
            raise TransientError(_refusal(cfg.name, window_id, holder))
    # The job id lets the monitor's `reconcile` poll the KFP run and free the lease after it.
    lease = renew_lease(
        store,
        cfg.name,
        run_id,
        ttl=ttl,
        now=at,
        external_id=str(job_id) if kfp_run else None,
        owner=owner,
    )
    if lease is None:
        holder, _ = read_lease(store, cfg.name)
        raise TransientError(_refusal(cfg.name, window_id, holder))
    return lease


def _refusal(model: str, window_id: str, holder: Lease | None) -> str:
    if holder is None:  # released and taken over in between: rare, and worth a retry
        who = "another run (it changed hands while this run tried to take it)"
    else:
        kfp = f", KFP run {holder.external_id}" if holder.external_id else ""
        who = f"run {holder.run_id} (owner {holder.owner}, expires {_iso(holder.expires_at)}{kfp})"
    return (
        f"the run lease of model {model!r} is held by {who}: this scheduled run (window "
        f"{window_id}) does not start, so that runs never overlap; the next scheduled run "
        "will try again"
    )


def _jobs_held_lease(
    store: Storage, model: str, job_id: str | None, run_id: str, at: datetime
) -> Lease | None:
    """The lease an earlier attempt of this job's resolve took, if it still holds it.

    Only a lease owned by ``pipeline:<job_id>``, held at `at` and for the run id asked for
    (any, when it is ``"auto"``) counts; otherwise None and the run resolves afresh.
    """
    try:
        owner = run_lease_owner(job_id)
    except ValidationError:
        return None  # the lease is refused (and recorded) when resolve tries to take it
    lease, _ = read_lease(store, model)
    if lease is None or lease.owner != owner or not lease.held(at):
        return None
    return lease if run_id in (AUTO, lease.run_id) else None


def _first_choice(store: Storage, run_id: str, window_id: str) -> dict[str, Any] | None:
    """The window choice the first attempt recorded under `run_id`, if it names `window_id`.

    Only an explanation for the report: a missing, unreadable or different record gives None.
    """
    try:
        data, _ = store.read_versioned(_run_key(run_id, "resolve"))
        if data is None:
            return None
        choice = json.loads(data)["report"]["window"]
    except (RetrainError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(choice, dict) or (choice.get("window") or {}).get("id") != window_id:
        return None
    return choice


def _kept_choice(cfg: Config, store: Storage, lease: Lease) -> dict[str, Any]:
    """The report's window choice for a retried resolve that keeps its job's lease."""
    first = _first_choice(store, lease.run_id, lease.snapshot)
    if first is not None:
        return first  # the same decision, with the reason it was made for
    window = parse_window(cfg.data, lease.snapshot)
    return {
        "window": window.as_dict(),
        "rule": LEASE_RULE,
        "reason": (
            f"window {window.id}: kept from this job's run lease, taken at "
            f"{_iso(lease.acquired_at)} by an earlier attempt of this resolve task"
        ),
        "rows": None,  # not counted: the source is not read again
    }


def resolve_run(
    config_yaml: str,
    window_id: str,
    run_id: str,
    job_id: str | None = None,
    report_path: str | None = None,
    *,
    now: datetime | None = None,
    kfp_run: bool = True,
) -> ResolveOutcome:
    """Resolve ``"auto"`` in `window_id` / `run_id` (rules in `retrain.resolve`).

    Explicit values pass through unchanged, unchecked (ingest checks the window as before)
    and unrecorded: nothing is read or written but the report artifact. Otherwise the window
    comes from the data source and `now` (default: the real clock), the run id from the KFP
    `job_id`, and the outcome is recorded under ``runs/<run_id>/resolve``.

    A window ``"auto"`` is a scheduled run: after resolving it takes the run lease as
    ``pipeline:<job_id>`` (run id and window as resolved) and, when `kfp_run` (`job_id` names
    a KFP run), records `job_id` as the lease's external id. The lease lasts
    ``triggers.lease_ttl`` (6h by default) from then; nothing in the pipeline renews it. Only
    a monitor with the KFP launcher renews it while the run is in flight (its `reconcile`
    polls the KFP run named by the external id; a run without one, such as an in-process
    run, is never renewed). A run that outlives its lease no longer excludes others. The
    pipeline's exit task, `release_run_lease`, frees it at the end.

    A retried resolve task (same `job_id`) that finds its job's lease still held does not
    resolve again, since the source or the clock may have moved on: it keeps the lease's run
    id and window (`retrain.resolve.LEASE_RULE`), renews the lease, records into the same
    ``runs/<run_id>/`` folder and says so in the record (``kept_from_lease``).

    A failure is recorded too (under ``auto-<job id>`` when the run id was to come from the
    window) and nothing else is written.

    Raises:
        ValidationError: a misspelt keyword, or no complete window with data (exit 2).
        TransientError: another run holds the lease (exit 75); the message names it.
    """
    check_keyword("run_id", run_id)  # a typo here has no folder to be recorded in
    error: Exception | None = None
    try:
        check_keyword("window_id", window_id)
    except ValidationError as err:
        error = err  # recorded below, under the run's folder
    if error is None and AUTO not in (window_id, run_id):
        details = {"window_id": window_id, "run_id": run_id, "resolved": False}
        summary = f"window {window_id} and run id {run_id} as given"
        write_step_report(report_path, f"# Resolve: nothing to resolve\n\n{summary}.\n", details)
        return ResolveOutcome("resolve", summary, details, window_id=window_id, run_id=run_id)

    cfg, store = _load(config_yaml)
    at = utc_instant(now if now is not None else datetime.now(timezone.utc))
    choice = None
    kept: Lease | None = None  # this job's lease, when an earlier attempt took it
    if error is None and window_id == AUTO:
        try:
            kept = _jobs_held_lease(store, cfg.name, job_id, run_id, at.to_pydatetime())
            if kept is None:
                source = read_source(cfg.data.uri, cfg.data.format)
                column = cfg.data.time_column
                if column not in source.columns:
                    raise ValidationError(
                        f"data source {cfg.data.uri} has no time column {column!r}"
                    )
                choice = newest_complete_window(
                    cfg.data, source[column], at, source=cfg.data.uri, delay=cfg.labels.delay
                )
        except Exception as err:  # recorded below, under the run's folder
            error = err
    if kept is not None:
        resolved_window = kept.snapshot
    else:
        resolved_window = choice.window.id if choice is not None else window_id
    if run_id != AUTO:
        rid, run_how = run_id, "as given"
    elif kept is not None:
        rid, run_how = kept.run_id, "kept from this job's run lease (a retried resolve)"
    else:
        known = None if error is not None else resolved_window
        rid, run_how = auto_run_id(known, job_id)
    with recorded_step(store, rid, "resolve") as rec:
        if error is not None:
            raise error
        kept_doc = _kept_choice(cfg, store, kept) if kept is not None else None
        details = {
            "requested": {"window_id": window_id, "run_id": run_id},
            "window_id": resolved_window,
            "run_id": rid,
            "resolved": True,
            "window": kept_doc or (choice.as_dict() if choice is not None else None),
            "run_id_rule": run_how,
            "job_id": job_id,
            "now": at.isoformat(),
            "lease": None,
            "kept_from_lease": None,
        }
        if kept is not None:
            details["kept_from_lease"] = {
                "acquired_at": _iso(kept.acquired_at),
                "reason": (
                    "an earlier attempt of this resolve task took the run lease for this run "
                    "id and window: kept rather than resolved again, as the source or the "
                    "clock may have moved on meanwhile"
                ),
            }
        rec["report"] = details  # a refused lease is recorded with what was resolved
        lease_line = lease_note = ""
        if window_id == AUTO:
            try:
                lease = _take_run_lease(
                    cfg,
                    store,
                    run_id=rid,
                    window_id=resolved_window,
                    job_id=job_id,
                    at=at.to_pydatetime(),
                    kfp_run=kfp_run,
                )
            except TransientError:
                holder, _ = read_lease(store, cfg.name)
                details["lease_holder"] = _lease_dict(holder) if holder is not None else None
                raise
            details["lease"] = _lease_dict(lease)
            until = _iso(lease.expires_at)
            verb = "renewed" if kept is not None else "taken"
            lease_note = f"; run lease {verb} until {until}"
            lease_line = (
                f"\nRun lease `{lease_key(cfg.name)}` {verb} by `{lease.owner}` until {until} "
                f"(`triggers.lease_ttl`; only a monitor with the KFP launcher renews it): no "
                f"other run of `{cfg.name}` starts before the pipeline's exit task releases it "
                "or it expires.\n"
            )
        if kept is not None and kept_doc is not None:
            summary = (
                f"kept window {resolved_window} and run id {rid} from this job's run lease "
                f"(taken at {_iso(kept.acquired_at)} by an earlier attempt of this resolve "
                f"task), not resolved again{lease_note}"
            )
            window_how = LEASE_RULE
            if kept_doc["rule"] != LEASE_RULE:  # the first attempt's record says why
                window_how += f" (first chosen by: {kept_doc['rule']}: {kept_doc['reason']})"
        else:
            summary = (
                (choice.reason if choice is not None else f"window {resolved_window} as given")
                + f"; run id {rid}"
                + (f" ({run_how})" if run_id == AUTO else "")
                + lease_note
            )
            window_how = _rule_text(choice)
        rows = [
            ("window_id", window_id, resolved_window, window_how),
            ("run_id", run_id, rid, run_how),
        ]
        markdown = (
            f"# Resolve: window `{resolved_window}`, run `{rid}`\n\n"
            "| parameter | requested | resolved | how |\n|---|---|---|---|\n"
            + "".join(f"| {n} | `{a}` | `{b}` | {how} |\n" for n, a, b, how in rows)
            + f"\nResolved at {at.isoformat()} (UTC).\n"
            + lease_line
        )
        rec.update(summary=summary, report=details)
        rec["markdown"] = markdown
        write_step_report(report_path, markdown, details)
        return ResolveOutcome("resolve", summary, details, window_id=resolved_window, run_id=rid)


def _rule_text(choice: Any) -> str:
    if choice is None:
        return "as given"
    return f"{choice.rule}: {choice.reason}"


def release_run_lease(
    config_yaml: str,
    job_id: str,
    report_path: str | None = None,
    *,
    pipeline_state: str | None = None,
    now: datetime | None = None,
) -> StepOutcome:
    """Release the run lease if this job took it (`resolve_run` of a scheduled run).

    The pipeline's exit task: it runs whatever happened before it and knows only the run
    parameters and its job id. It releases the lease only if it is owned by
    ``pipeline:<job_id>`` and not released yet, so it is idempotent and never touches a lease
    another run holds, such as the monitor's for a run it launched (the monitor releases and
    records those). The owner is checked in the releasing compare-and-swap itself: if this
    job's lease expired and another job took it under the same run id meanwhile, that lease
    is left alone. Writes nothing but the lease and the report artifact.

    The lease lasts ``triggers.lease_ttl`` (6h by default) from when resolve took it, and only
    a monitor with the KFP launcher renews it (its `reconcile`); a run that outlives it may
    find it expired, or held by the next run, by the time this task runs.
    """
    cfg, store = _load(config_yaml)
    at = now if now is not None else datetime.now(timezone.utc)
    try:
        owner: str | None = run_lease_owner(job_id)
    except ValidationError:
        owner = None  # such a job could not have taken the lease (resolve refuses it)
    lease, _ = read_lease(store, cfg.name)
    released = False
    if lease is None:
        why = "no run lease exists: nothing to release"
    elif owner is None or lease.owner != owner:
        why = f"the lease is {lease.owner}'s (run {lease.run_id}), not this job's: left alone"
    elif lease.released_at is not None:
        when = _iso(lease.released_at)
        why = f"this job's lease (run {lease.run_id}) was already released at {when}"
    else:
        released = release_lease(store, cfg.name, lease.run_id, at, owner=owner)
        run = lease.run_id
        lease, _ = read_lease(store, cfg.name)  # as it is now, for the report
        now_held = f", now {lease.owner}'s" if lease is not None and lease.owner != owner else ""
        why = (
            f"released this job's lease (run {run})"
            if released
            else f"this job's lease (run {run}) changed hands meanwhile{now_held}: left alone"
        )
    state = f" after the pipeline ended {pipeline_state}" if pipeline_state else ""
    summary = f"run lease of {cfg.name}: {why}{state}"
    details = {
        "job_id": job_id,
        "owner": owner,
        "released": released,
        "pipeline_state": pipeline_state,
        "lease": _lease_dict(lease) if lease is not None else None,
        "at": _iso(at),
    }
    markdown = f"# Release: run lease `{lease_key(cfg.name)}`\n\n{summary}.\n"
    write_step_report(report_path, markdown, details)
    return StepOutcome("release", summary, details)


# --- ingest ------------------------------------------------------------------------------------


def ingest(
    config_yaml: str, window_id: str, run_id: str, dataset_path: str, report_path: str | None = None
) -> StepOutcome:
    """Read the window's events, check them against the schema, write them as Parquet."""
    cfg, store = _load(config_yaml)
    with recorded_step(store, run_id, "ingest") as rec:
        window = parse_window(cfg.data, window_id)
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
        _write_dataset(dataset_path, result.data, meta)
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
        rec.update(summary=summary, report=report)
        rec["markdown"] = markdown
        write_step_report(report_path, markdown, report)
        return StepOutcome("ingest", summary, report)


# --- label -------------------------------------------------------------------------------------


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
    cfg, store = _load(config_yaml)
    with recorded_step(store, run_id, "label") as rec:
        window_id = parse_window(cfg.data, window_id).id  # one spelling: "01" is "1"
        events, meta = _read_dataset(dataset_path)
        labels = read_source(cfg.labels.uri, cfg.labels.format)
        result = join_labels(cfg, events, labels)
        meta = {
            **meta,
            "sha256": content_sha256(result.labelled),
            "rows": len(result.labelled),
            "label_coverage": result.coverage,
        }
        _write_dataset(labelled_path, result.labelled, meta)
        if queue_path:
            _write_dataset(queue_path, result.queue, {"rows": len(result.queue)})
        _commit_history(store, window_id, result.labelled, meta)
        summary = (
            f"{len(result.labelled)} labelled rows, coverage {result.coverage:.1%}, "
            f"{len(result.queue)} rows queued for labelling"
        )
        rec.update(summary=summary, report=result.report)
        rec["markdown"] = result.markdown
        write_step_report(report_path, result.markdown, result.report)
        return StepOutcome("label", summary, result.report)


def _history_key(window_id: str) -> str:
    return f"datasets/{window_id}/labelled.parquet"


def _commit_history(store: Storage, window_id: str, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    key = _history_key(window_id)
    data = to_parquet_bytes(df, meta)
    try:
        store.create(key, data)
    except AlreadyExists:
        _, existing = from_parquet_bytes(store.read_bytes(key))
        if existing.get("sha256") != meta["sha256"]:
            raise ValidationError(
                f"window {window_id} is already in history with different content "
                f"(sha256 {existing.get('sha256')} != {meta['sha256']}); history is immutable: "
                f"correct the source under a new window, or remove {store.uri(key)} deliberately"
            ) from None


def load_history(store: Storage, cfg: Config, before_window: str) -> pd.DataFrame | None:
    """All labelled windows strictly before `before_window`, oldest first."""
    cutoff = window_sort_key(cfg.data, before_window)
    frames = []
    for key in store.list("datasets"):
        if not key.endswith("/labelled.parquet"):
            continue
        wid = key.split("/")[1]
        if window_sort_key(cfg.data, wid) < cutoff:
            frames.append(
                (window_sort_key(cfg.data, wid), from_parquet_bytes(store.read_bytes(key))[0])
            )
    if not frames:
        return None
    frames.sort(key=lambda t: t[0])
    return pd.concat([f for _, f in frames], ignore_index=True)


# --- train -------------------------------------------------------------------------------------


def train(
    config_yaml: str,
    window_id: str,
    run_id: str,
    labelled_path: str,
    model_dir: str,
    holdout_dir: str,
    report_path: str | None = None,
) -> StepOutcome:
    """Train a challenger on history + the new window at the configured mix."""
    from retrain.continuous import train_or_update
    from retrain.training.artifact import ModelCard, library_versions, model_files

    cfg, store = _load(config_yaml)
    with recorded_step(store, run_id, "train") as rec:
        window_id = parse_window(cfg.data, window_id).id  # one spelling: "01" is "1"
        new, new_meta = _read_dataset(labelled_path)
        history = load_history(store, cfg, window_id)
        reg = Registry(store, cfg.name)
        champion = reg.get_alias("champion").version
        parent, parent_card = None, None
        if cfg.continuous.enabled and champion:  # continuous mode updates the champion
            parent_card = ModelCard.from_json(reg.read_file(champion, CARD_FILE).decode())
            parent = load_registered_model(store, cfg, champion)
        t0 = time.perf_counter()
        result = train_or_update(
            cfg, new, history, cfg.seed, champion=parent, champion_card=parent_card
        )
        ts, model = result.training_set, result.model
        fit_seconds = time.perf_counter() - t0
        hashes = {
            "new_window": new_meta.get("sha256", content_sha256(new)),
            "history": content_sha256(history) if history is not None else None,
            "train": content_sha256(ts.train),
        }
        if result.plan.mode == "continuous" and parent_card is not None:
            hashes["parent_model"] = parent_card.model_sha256  # the update depends on it
        version = _version_id(window_id, hashes, cfg)
        card = ModelCard(
            version=version,
            parent=champion,
            created_at=_now(),
            task=cfg.task,
            target=cfg.target,
            features=dict(cfg.data.features),
            estimator=cfg.model.estimator,
            params=dict(cfg.model.params),
            data_hashes=hashes,
            provenance=result.provenance,
            metrics={},
            library_versions=library_versions(),
            model_sha256="",
            seed=cfg.seed,
            window=window_id,
            run_id=run_id,
        )
        out = Path(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, data in model_files(model, card).items():
            (out / name).write_bytes(data)
        # -- drift (retrain.drift): the reference profile, registered with the model by deploy
        if cfg.drift.enabled:
            held = [h for h in (ts.recent_holdout, ts.history_holdout) if h is not None]
            profile = profile_for_model(cfg, model, ts.train, pd.concat(held, ignore_index=True))
            (out / PROFILE_FILE).write_text(profile.to_json())
        # -- end drift
        hold = Path(holdout_dir)
        hold.mkdir(parents=True, exist_ok=True)
        (hold / "recent.parquet").write_bytes(to_parquet_bytes(ts.recent_holdout, {}))
        if ts.history_holdout is not None:
            (hold / "history.parquet").write_bytes(to_parquet_bytes(ts.history_holdout, {}))
        p = result.provenance
        summary = (
            f"challenger {version}"
            + (f" ({result.plan.summary()})" if cfg.continuous.enabled else "")
            + f": {len(ts.train)} rows "
            f"({p.get('history_rows', 0)} history + {p.get('new_rows', 0)} new, "
            f"history share {p.get('realised_share', 0):.0%}), fit in {fit_seconds:.1f}s"
        )
        details = {
            "version": version,
            "parent": champion,
            "provenance": p,
            "data_hashes": hashes,
            "fit_seconds": fit_seconds,
        }
        rec.update(summary=summary, report=details)
        rec["markdown"] = _train_markdown(version, champion, p, hashes, fit_seconds)
        write_step_report(report_path, rec["markdown"], details)
        return StepOutcome("train", summary, details)


def _version_id(window_id: str, hashes: dict[str, Any], cfg: Config) -> str:
    """Content-addressed: the same data, model spec and seed give the same version id."""
    basis = json.dumps(
        {
            "hashes": hashes,
            "model": cfg.model.model_dump(mode="json"),
            "seed": cfg.seed,
            "mix": cfg.training.model_dump(mode="json"),
            # An update's result also depends on how it updates (passes, replay, ...).
            **(
                {"continuous": cfg.continuous.model_dump(mode="json")}
                if "parent_model" in hashes
                else {}
            ),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(basis.encode()).hexdigest()[:10]
    safe_window = "".join(c if c.isalnum() else "-" for c in window_id)
    return f"w{safe_window}-{digest}"


def _train_markdown(
    version: str,
    parent: str | None,
    prov: dict[str, Any],
    hashes: dict[str, Any],
    fit_seconds: float,
) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in prov.items() if not isinstance(v, (dict, list)))
    hrows = "\n".join(f"| {k} | `{v}` |" for k, v in hashes.items())
    return (
        f"# Train: challenger `{version}`\n\nParent (champion at training time): "
        f"`{parent or 'none: first model'}`. Fit in {fit_seconds:.2f} s.\n\n"
        f"## Training mix (provenance)\n\n| field | value |\n|---|---|\n{rows}\n\n"
        f"## Data hashes\n\n| dataset | sha256 |\n|---|---|\n{hrows}\n"
    )


# --- evaluate ----------------------------------------------------------------------------------


def load_registered_model(store: Storage, cfg: Config, version: str) -> Any:
    """Load a registered version, verifying its sha256 against its card first."""
    from retrain.training.artifact import ModelCard, load_model

    reg = Registry(store, cfg.name)
    card = ModelCard.from_json(reg.read_file(version, CARD_FILE).decode())
    return load_model(reg.read_file(version, MODEL_FILE), card)


def load_model_dir(model_dir: str) -> tuple[Any, Any]:
    """Load a run's model artifact (model.skops + model.json), verifying its sha256."""
    from retrain.training.artifact import ModelCard, load_model

    d = Path(model_dir)
    card = ModelCard.from_json((d / CARD_FILE).read_text())
    return load_model((d / MODEL_FILE).read_bytes(), card), card


def evaluate(
    config_yaml: str, run_id: str, model_dir: str, holdout_dir: str, report_path: str | None = None
) -> EvaluateOutcome:
    """Challenger vs champion on recent and historical holdouts; the gates say blessed or not."""
    from retrain.evaluation.gates import evaluate_challenger

    cfg, store = _load(config_yaml)
    with recorded_step(store, run_id, "evaluate") as rec:
        challenger, card = load_model_dir(model_dir)
        reg = Registry(store, cfg.name)
        champion_version = reg.get_alias("champion").version
        champion = load_registered_model(store, cfg, champion_version) if champion_version else None
        recent, _ = from_parquet_bytes((Path(holdout_dir) / "recent.parquet").read_bytes())
        hist_path = Path(holdout_dir) / "history.parquet"
        history = from_parquet_bytes(hist_path.read_bytes())[0] if hist_path.exists() else None
        result = evaluate_challenger(cfg, challenger, champion, recent, history, seed=cfg.seed)
        flat = _flatten_metrics(result.metrics)
        summary = ("BLESSED: " if result.blessed else "REJECTED: ") + result.reason
        details = {
            "blessed": result.blessed,
            "reason": result.reason,
            "challenger": card.version,
            "champion": champion_version,
            "metrics": result.metrics,
            "comparison": result.comparison,
            "gates": [g.__dict__ for g in result.gates],
        }
        rec.update(summary=summary, report=details, blessed=result.blessed)
        rec["markdown"] = result.markdown()
        write_step_report(report_path, rec["markdown"], details)
        confusion = getattr(result, "confusion", None)
        return EvaluateOutcome(
            "evaluate",
            summary,
            details,
            blessed=result.blessed,
            reason=result.reason,
            metrics=flat,
            confusion=confusion,
        )


def _flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten_metrics(v, f"{name}."))
        elif isinstance(v, (int, float)) and v == v:  # drop NaN: KFP Metrics rejects it
            out[name] = float(v)
    return out


# --- deploy ------------------------------------------------------------------------------------


def deploy(
    config_yaml: str,
    run_id: str,
    model_dir: str,
    report_path: str | None = None,
    *,
    applier_factory: Callable[[Config], Any] | None = None,
) -> DeployOutcome:
    """Register the blessed version, move the alias, and roll it out as a canary (or champion).

    Order matters for crash safety: (1) the version (create-only, idempotent), (2) the alias
    (compare-and-swap), (3) the rendered deployment (idempotent apply). A re-run after a crash
    at any point converges to the same end state.
    """
    from retrain.deploy import applier_for, backend_for
    from retrain.deploy.plan import deployment_state_for

    cfg, store = _load(config_yaml)
    with recorded_step(store, run_id, "deploy") as rec:
        _, card = load_model_dir(model_dir)  # verifies the sha256 before anything is written
        version = card.version
        reg = Registry(store, cfg.name)
        files = {name: (Path(model_dir) / name).read_bytes() for name in (MODEL_FILE, CARD_FILE)}
        if (Path(model_dir) / PROFILE_FILE).exists():  # drift: the reference profile
            files[PROFILE_FILE] = (Path(model_dir) / PROFILE_FILE).read_bytes()
        if version not in reg.versions():
            reg.register(version, files)
            reg.append_event("registered", version=version, run_id=run_id)
        else:
            reg.register(version, files)  # verifies the bytes match; raises if they differ
        champion = reg.get_alias("champion")
        if champion.version is None or champion.version == version:
            alias = "champion"
            if champion.version != version:
                reg.set_alias("champion", version, champion.generation)
                reg.append_event("alias_moved", alias="champion", version=version, run_id=run_id)
        else:
            alias = "canary"
            canary = reg.get_alias("canary")
            if canary.version != version:
                reg.set_alias("canary", version, canary.generation)
                reg.append_event(
                    "alias_moved",
                    alias="canary",
                    version=version,
                    previous=canary.version,
                    run_id=run_id,
                )
        state = deployment_state_for(cfg, reg)
        obj = backend_for(cfg).render(state, cfg)
        applier = (applier_factory or applier_for)(cfg)
        result = applier.apply(obj, cfg, message=_deploy_message(cfg, state))
        kind = "canary_started" if alias == "canary" else "deployed"
        if result.changed:
            reg.append_event(
                kind,
                version=version,
                run_id=run_id,
                ref=result.ref,
                traffic={p.name: p.traffic for p in state.predictors},
            )
        split = ", ".join(f"{p.name} {p.version} {p.traffic}%" for p in state.predictors)
        summary = f"{version} is now {alias}; serving split: {split}; " + (
            result.detail if result.changed else "no change to apply"
        )
        details = {
            "version": version,
            "alias": alias,
            "ref": result.ref,
            "changed": result.changed,
            "predictors": [p.__dict__ for p in state.predictors],
            "detail": result.detail,
        }
        rec.update(summary=summary, report=details)
        rec["markdown"] = _deploy_markdown(version, alias, state, result)
        write_step_report(report_path, rec["markdown"], details)
        return DeployOutcome(
            "deploy", summary, details, version=version, alias=alias, commit=result.ref
        )


def _deploy_message(cfg: Config, state: Any) -> str:
    split = ", ".join(f"{p.name}={p.version}@{p.traffic}%" for p in state.predictors)
    return f"retrain: {cfg.deploy.deployment_name} -> {split}"


def _deploy_markdown(version: str, alias: str, state: Any, result: Any) -> str:
    rows = "\n".join(
        f"| {p.name} | `{p.version}` | {p.traffic}% | {p.model_uri} |" for p in state.predictors
    )
    return (
        f"# Deploy: `{version}` as {alias}\n\n| predictor | version | traffic | model URI |\n"
        f"|---|---|---|---|\n{rows}\n\nApplied: {result.detail} (ref `{result.ref}`)\n"
    )
