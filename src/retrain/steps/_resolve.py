"""`resolve`: the pipeline's first task turns ``"auto"`` run parameters into real ids.

Three parts, one after another: resolve the ids (window from the source and the clock, run id
from the KFP job), take the run lease for a scheduled run (`retrain.steps.lease`), and render
the report. The pure rules are in `retrain.steps.resolve_rules`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.footers import ParquetFooters
from retrain.data.limits import check_source
from retrain.data.source import window_counts
from retrain.data.windows import as_of_text, parse_window
from retrain.errors import RetrainError, TransientError, ValidationError
from retrain.steps.lease import (
    iso,
    jobs_held_lease,
    lease_dict,
    take_run_lease,
    takeover_note,
)
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    recorded_step,
    run_key,
    write_step_report,
)
from retrain.steps.resolve_rules import (
    AUTO,
    LEASE_RULE,
    WindowChoice,
    auto_run_id,
    check_keyword,
    clock_window,
    newest_counted_window,
    utc_instant,
)
from retrain.storage import Storage
from retrain.triggers.lease import Lease, lease_key, read_lease

__all__ = ["ResolveOutcome", "resolve_run"]


@dataclass
class ResolveOutcome(StepOutcome):
    """The ids every later step uses: as given, or resolved from ``"auto"``."""

    window_id: str = ""
    run_id: str = ""
    as_of: str = ""


@dataclass
class _Resolution:
    """What resolving found, before anything is recorded."""

    window_id: str
    run_id: str
    run_how: str
    choice: WindowChoice | None = None
    kept: Lease | None = None  # this job's lease, when an earlier attempt took it
    error: Exception | None = None
    source_read: dict[str, Any] | None = None  # how much of the source counting read


def _first_choice(store: Storage, run_id: str, window_id: str) -> dict[str, Any] | None:
    """The window choice the first attempt recorded under `run_id`, if it names `window_id`.

    Only an explanation for the report: a missing, unreadable or different record gives None.
    """
    try:
        data, _ = store.read_versioned(run_key(run_id, "resolve"))
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
            f"{iso(lease.acquired_at)} by an earlier attempt of this resolve task"
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
    html_path: str | None = None,
    as_of: str = "",
) -> ResolveOutcome:
    """Resolve ``"auto"`` in `window_id` / `run_id` (rules in `retrain.steps.resolve_rules`).

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
    id and window (`LEASE_RULE`), renews the lease, records into the same
    ``runs/<run_id>/`` folder and says so in the record (``kept_from_lease``).

    `as_of` (the run's time for the label join) passes through when given. Otherwise a scheduled
    run's is the instant resolve chose its window at (a retried resolve: the instant its lease
    was taken), so the label task joins the labels known when the window was chosen, not those
    known whenever it happens to start; period sources have no clock and get "" (as the label
    step without one).

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
        details: dict[str, Any] = {
            "window_id": window_id,
            "run_id": run_id,
            "as_of": as_of,
            "resolved": False,
        }
        summary = f"window {window_id} and run id {run_id} as given"
        write_step_report(
            report_path,
            f"# Resolve: nothing to resolve\n\n{summary}.\n",
            html_path=html_path,
            step="resolve",
            summary=summary,
            details=details,
        )
        return ResolveOutcome(
            "resolve", summary, details, window_id=window_id, run_id=run_id, as_of=as_of
        )

    cfg, store = load_step_config(config_yaml)
    at = utc_instant(now if now is not None else datetime.now(timezone.utc))
    ids = _resolve_ids(cfg, store, window_id, run_id, job_id, at, error)
    with recorded_step(store, ids.run_id, "resolve") as rec:
        if ids.error is not None:
            raise ids.error
        kept_doc = _kept_choice(cfg, store, ids.kept) if ids.kept is not None else None
        run_as_of = _run_as_of(cfg, as_of, window_id, ids, at)
        details = {
            "requested": {"window_id": window_id, "run_id": run_id},
            "window_id": ids.window_id,
            "run_id": ids.run_id,
            "resolved": True,
            "window": kept_doc or (ids.choice.as_dict() if ids.choice is not None else None),
            "source_read": ids.source_read,
            "run_id_rule": ids.run_how,
            "job_id": job_id,
            "now": at.isoformat(),
            "as_of": run_as_of,
            "lease": None,
            "kept_from_lease": None,
        }
        if ids.kept is not None:
            details["kept_from_lease"] = {
                "acquired_at": iso(ids.kept.acquired_at),
                "reason": (
                    "an earlier attempt of this resolve task took the run lease for this run "
                    "id and window: kept rather than resolved again, as the source or the "
                    "clock may have moved on meanwhile"
                ),
            }
        rec["report"] = details  # a refused lease is recorded with what was resolved
        lease = None
        if window_id == AUTO:
            lease = _lease_for(cfg, store, ids, job_id, at, kfp_run, details)
        summary, markdown = _render(cfg, ids, window_id, run_id, at, lease, kept_doc)
        finish_step(rec, report_path, summary, details, markdown, html_path=html_path)
        return ResolveOutcome(
            "resolve",
            summary,
            details,
            window_id=ids.window_id,
            run_id=ids.run_id,
            as_of=run_as_of,
        )


def _run_as_of(cfg: Config, as_of: str, window_id: str, ids: _Resolution, at: pd.Timestamp) -> str:
    """The run's time for the label join (see `resolve_run`)."""
    if as_of or window_id != AUTO or cfg.data.time_kind == "period":
        return as_of
    chosen = utc_instant(ids.kept.acquired_at) if ids.kept is not None else at
    return as_of_text(chosen)


def _resolve_ids(
    cfg: Config,
    store: Storage,
    window_id: str,
    run_id: str,
    job_id: str | None,
    at: pd.Timestamp,
    error: Exception | None,
) -> _Resolution:
    """The window and run id, or the error to record (never raised here: it needs a folder)."""
    choice = None
    kept: Lease | None = None
    source_read: dict[str, Any] | None = None
    if error is None and window_id == AUTO:
        try:
            kept = jobs_held_lease(store, cfg.name, job_id, run_id, at.to_pydatetime())
            if kept is None:
                # Events per window are all the rules need: footers' statistics where they
                # place a row group in one window, else the time column alone.
                # The time rule's window comes from the clock: only partitions that overlap it
                # are read, unless it turns out empty (the error then names the newest event).
                # The limit check and the count share the Parquet footers: each file's is
                # read once, also by the fallback below.
                only = clock_window(cfg.data, at, cfg.labels.delay)
                uri, fmt, limits = cfg.data.uri, cfg.data.format, cfg.data.limits
                footers = ParquetFooters()
                check_source(uri, fmt, limits, data=cfg.data, window=only, footers=footers)
                counts = window_counts(uri, fmt, cfg.data, only=only, footers=footers)
                if only is not None and not counts.rows.get(only.id):
                    # The fallback reads every file: its limits first, as for any whole read.
                    check_source(uri, fmt, limits, footers=footers)
                    counts = window_counts(uri, fmt, cfg.data, footers=footers)
                source_read = counts.read
                choice = newest_counted_window(
                    cfg.data, counts, at, source=cfg.data.uri, delay=cfg.labels.delay
                )
        except Exception as err:  # recorded by the caller, under the run's folder
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
    return _Resolution(resolved_window, rid, run_how, choice, kept, error, source_read)


def _lease_for(
    cfg: Config,
    store: Storage,
    ids: _Resolution,
    job_id: str | None,
    at: pd.Timestamp,
    kfp_run: bool,
    details: dict[str, Any],
) -> Lease:
    """Take (or keep) the run lease; a refusal records its holder in `details` and raises."""
    try:
        lease = take_run_lease(
            cfg,
            store,
            run_id=ids.run_id,
            window_id=ids.window_id,
            job_id=job_id,
            at=at.to_pydatetime(),
            kfp_run=kfp_run,
        )
    except TransientError:
        holder, _ = read_lease(store, cfg.name)
        details["lease_holder"] = lease_dict(holder) if holder is not None else None
        raise
    details["lease"] = lease_dict(lease)
    return lease


def _render(
    cfg: Config,
    ids: _Resolution,
    window_id: str,
    run_id: str,
    at: pd.Timestamp,
    lease: Lease | None,
    kept_doc: dict[str, Any] | None,
) -> tuple[str, str]:
    """The one-line summary and the Markdown report of a resolved run."""
    lease_line = lease_note = ""
    if lease is not None:
        until = iso(lease.expires_at)
        verb = "renewed" if ids.kept is not None else "taken"
        lease_note = f"; run lease {verb} until {until}"
        took = takeover_note(lease)
        if took is not None:
            lease_note += f" ({took})"
        lease_line = (
            f"\nRun lease `{lease_key(cfg.name)}` {verb} by `{lease.owner}` until {until} "
            f"(`triggers.lease_ttl`; only a monitor with the KFP launcher renews it): no "
            f"other run of `{cfg.name}` starts before the pipeline's exit task releases it "
            "or it expires.\n"
        )
    if ids.kept is not None and kept_doc is not None:
        summary = (
            f"kept window {ids.window_id} and run id {ids.run_id} from this job's run lease "
            f"(taken at {iso(ids.kept.acquired_at)} by an earlier attempt of this resolve "
            f"task), not resolved again{lease_note}"
        )
        window_how = LEASE_RULE
        if kept_doc["rule"] != LEASE_RULE:  # the first attempt's record says why
            window_how += f" (first chosen by: {kept_doc['rule']}: {kept_doc['reason']})"
    else:
        choice = ids.choice
        summary = (
            (choice.reason if choice is not None else f"window {ids.window_id} as given")
            + f"; run id {ids.run_id}"
            + (f" ({ids.run_how})" if run_id == AUTO else "")
            + lease_note
        )
        window_how = _rule_text(choice)
    rows = [
        ("window_id", window_id, ids.window_id, window_how),
        ("run_id", run_id, ids.run_id, ids.run_how),
    ]
    markdown = (
        f"# Resolve: window `{ids.window_id}`, run `{ids.run_id}`\n\n"
        "| parameter | requested | resolved | how |\n|---|---|---|---|\n"
        + "".join(f"| {n} | `{a}` | `{b}` | {how} |\n" for n, a, b, how in rows)
        + f"\nResolved at {at.isoformat()} (UTC).\n"
        + lease_line
    )
    return summary, markdown


def _rule_text(choice: WindowChoice | None) -> str:
    if choice is None:
        return "as given"
    return f"{choice.rule}: {choice.reason}"
