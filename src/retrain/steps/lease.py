"""The run lease of a scheduled run: taken by `resolve_run`, released by the exit task.

A scheduled run (window ``"auto"``) takes the model's run lease (`retrain.triggers.lease`) as
``pipeline:<job id>``, so it never overlaps a drift-launched run, and the pipeline's exit task
releases it. The owner is checked in every compare-and-swap, so a job never renews or frees a
lease that changed hands.

A run of `retrain run` (not a KFP run: ``kfp_run=False``) holds the lease in its own process,
so the lease names that process (host and pid). A run SIGKILLed while holding it never
releases it; the next run on the same host finds its holder gone and takes it over at once
rather than waiting out ``triggers.lease_ttl``, and its lease says so (``taken_over``: the
dead holder's lease). A lease held by a live process, or by a KFP run (no process named, or
another host), still refuses the run.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

from retrain._process import host_name
from retrain.config import Config
from retrain.errors import TransientError, ValidationError
from retrain.steps.records import StepOutcome, load_step_config, write_step_report
from retrain.steps.resolve_rules import AUTO
from retrain.storage import Storage
from retrain.triggers.lease import (
    Lease,
    acquire_lease,
    lease_key,
    read_lease,
    release_lease,
    renew_lease,
)

__all__ = [
    "iso",
    "jobs_held_lease",
    "lease_dict",
    "release_run_lease",
    "run_lease_owner",
    "take_run_lease",
    "takeover_note",
]


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


def iso(t: datetime | None) -> str | None:
    """An instant as the records write it: ISO 8601, UTC, with a Z."""
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if t else None


def lease_dict(lease: Lease) -> dict[str, Any]:
    """A lease as the records show it."""
    doc: dict[str, Any] = json.loads(lease.to_json())
    return doc


def take_run_lease(
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

    Unless `kfp_run`, this process holds the lease: it records its host and pid, and takes over
    a lease still held by a process of this host that is gone (the new lease's ``taken_over``
    names it; see the module docstring). A lease this job already holds for `run_id` (an
    earlier attempt of its resolve task took it) is kept and renewed. The owner is checked
    again in the renewal's compare-and-swap: a lease that expired and went to another job
    under the same run id is never renewed.
    """
    owner = run_lease_owner(job_id)
    ttl = cfg.triggers.lease_delta
    host, pid = (None, None) if kfp_run else (host_name(), os.getpid())
    taken = acquire_lease(
        store, cfg.name, owner=owner, run_id=run_id, snapshot=window_id, ttl=ttl, now=at,
        host=host, pid=pid, take_over_dead=not kfp_run,
    )  # fmt: skip
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


def takeover_note(lease: Lease) -> str | None:
    """What a lease taken over from a gone holder says about it (None if it took none over)."""
    old = lease.taken_over
    if old is None:
        return None
    return (
        f"took over the run lease of run {old.get('run_id')} (owner {old.get('owner')}, window "
        f"{old.get('snapshot')}, taken {old.get('acquired_at')}): its process {old.get('pid')} "
        f"on {old.get('host')} is gone, so it could never release it"
    )


def _refusal(model: str, window_id: str, holder: Lease | None) -> str:
    if holder is None:  # released and taken over in between: rare, and worth a retry
        who = "another run (it changed hands while this run tried to take it)"
    else:
        kfp = f", KFP run {holder.external_id}" if holder.external_id else ""
        proc = f", process {holder.pid} on {holder.host}" if holder.pid is not None else ""
        who = (
            f"run {holder.run_id} (owner {holder.owner}, expires {iso(holder.expires_at)}"
            f"{kfp}{proc})"
        )
    return (
        f"the run lease of model {model!r} is held by {who}: this scheduled run (window "
        f"{window_id}) does not start, so that runs never overlap; the next scheduled run "
        "will try again"
    )


def jobs_held_lease(
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


def release_run_lease(
    config_yaml: str,
    job_id: str,
    report_path: str | None = None,
    *,
    pipeline_state: str | None = None,
    now: datetime | None = None,
    html_path: str | None = None,
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
    cfg, store = load_step_config(config_yaml)
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
        when = iso(lease.released_at)
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
        "lease": lease_dict(lease) if lease is not None else None,
        "at": iso(at),
    }
    markdown = f"# Release: run lease `{lease_key(cfg.name)}`\n\n{summary}.\n"
    write_step_report(
        report_path,
        markdown,
        html_path=html_path,
        step="release",
        summary=summary,
        details=details,
    )
    return StepOutcome("release", summary, details)
