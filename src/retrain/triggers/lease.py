"""The run lease: at most one retraining run of a model at a time, across processes.

The lease is one small object, ``leases/<model>.json``, holding its owner, the run id and an
expiry. The first taker writes it create-only; afterwards a taker may replace it only by
compare-and-swap, and only once it is released or expired, so of two racing takers exactly one
wins (GCS generation preconditions; a lock and an atomic rename locally). A crashed owner's
lease simply expires; a live owner renews it while its run is in flight.

A lease may also name the process that holds it (`host`, `pid`: a run of `retrain run` holds
it in its own process). A taker that asks for it (`acquire_lease(take_over_dead=True)`) takes
over a lease whose holder was a process on this host that is gone (killed outright, so it
never released it) at once instead of after the TTL, and the new lease says whose it took
over (`taken_over`). A holder elsewhere, or whose process is alive, keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from retrain._process import process_gone
from retrain.errors import AlreadyExists, PreconditionFailed, ValidationError
from retrain.storage import NO_OBJECT, Storage

__all__ = [
    "Lease",
    "acquire_lease",
    "break_lease",
    "holder_gone",
    "lease_key",
    "read_lease",
    "release_lease",
    "renew_lease",
]


def lease_key(model: str) -> str:
    return f"leases/{model}.json"


@dataclass(frozen=True)
class Lease:
    """Who runs what until when. `released_at` is set when the run ended."""

    owner: str
    run_id: str
    snapshot: str
    acquired_at: datetime
    expires_at: datetime
    released_at: datetime | None = None
    external_id: str | None = None  # e.g. the KFP run id, to poll its state
    host: str | None = None  # the holding process's host and pid, when one process holds it
    pid: int | None = None
    #: The lease this one took over from a holder that was gone (`holder_gone`), as it was.
    taken_over: dict[str, Any] | None = field(default=None, hash=False)

    def held(self, now: datetime) -> bool:
        """Whether the lease still excludes other runs at `now`."""
        return self.released_at is None and now < self.expires_at

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "owner": self.owner,
            "run_id": self.run_id,
            "snapshot": self.snapshot,
            "acquired_at": self.acquired_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "released_at": self.released_at.isoformat() if self.released_at else None,
            "external_id": self.external_id,
            "host": self.host,
            "pid": self.pid,
            "taken_over": self.taken_over,
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Lease:
        try:
            doc = json.loads(data)
            released = doc.get("released_at")
            return cls(
                owner=str(doc["owner"]),
                run_id=str(doc["run_id"]),
                snapshot=str(doc["snapshot"]),
                acquired_at=_aware(doc["acquired_at"]),
                expires_at=_aware(doc["expires_at"]),
                released_at=_aware(released) if released else None,
                external_id=doc.get("external_id"),
                host=doc.get("host"),
                pid=int(doc["pid"]) if doc.get("pid") is not None else None,
                taken_over=doc.get("taken_over"),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ValidationError(f"lease {where} is malformed: {err}") from None


def _aware(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return t.astimezone(timezone.utc)


def holder_gone(lease: Lease) -> bool:
    """Whether the lease names its holding process, on this host, and that process is gone."""
    return lease.host is not None and lease.pid is not None and process_gone(lease.host, lease.pid)


def read_lease(store: Storage, model: str) -> tuple[Lease | None, int]:
    """The lease and its generation (None, 0 if never taken)."""
    key = lease_key(model)
    data, generation = store.read_versioned(key)
    if data is None:
        return None, NO_OBJECT
    return Lease.from_json(data, store.uri(key)), generation


def acquire_lease(
    store: Storage,
    model: str,
    *,
    owner: str,
    run_id: str,
    snapshot: str,
    ttl: timedelta,
    now: datetime,
    host: str | None = None,
    pid: int | None = None,
    take_over_dead: bool = False,
) -> Lease | None:
    """Take the lease for `run_id`, or return None if another run holds it (or won the race).

    `host` and `pid` name the process that will hold it, if one does. With `take_over_dead`, a
    lease still held by a process that is gone (`holder_gone`) is taken over, and the new
    lease keeps the old one in `taken_over`.
    """
    key = lease_key(model)
    lease = Lease(
        owner, run_id, snapshot, acquired_at=now, expires_at=now + ttl, host=host, pid=pid
    )
    try:
        store.create(key, lease.to_json())
        return lease
    except AlreadyExists:
        pass
    current, generation = read_lease(store, model)
    if current is not None and current.held(now):
        if not (take_over_dead and holder_gone(current)):
            return None
        previous = json.loads(current.to_json())
        previous.pop("taken_over", None)  # the chain of takeovers: only the last one
        lease = replace(lease, taken_over=previous)
    try:
        # Only one of several takers of an expired or released lease gets past this.
        store.compare_and_swap(key, lease.to_json(), generation)
    except PreconditionFailed:
        return None
    return lease


def _update_own(
    store: Storage,
    model: str,
    run_id: str,
    change: Callable[[Lease], Lease],
    owner: str | None = None,
) -> Lease | None:
    """Apply `change(lease)` to our own lease by CAS; None if the lease is no longer ours.

    Ours means: not released, for `run_id` and, when `owner` is given, owned by `owner`. Both
    are checked on the very version the compare-and-swap replaces, so a lease that expired and
    was taken by another owner under the same run id is never changed.
    """
    key = lease_key(model)
    for _ in range(10):
        current, generation = read_lease(store, model)
        if current is None or current.run_id != run_id or current.released_at is not None:
            return None
        if owner is not None and current.owner != owner:
            return None
        new = change(current)
        try:
            store.compare_and_swap(key, new.to_json(), generation)
            return new
        except PreconditionFailed:
            continue
    return None


def release_lease(
    store: Storage, model: str, run_id: str, now: datetime, *, owner: str | None = None
) -> bool:
    """Release the lease of `run_id` (held by `owner`, if given).

    False if it is not (or no longer) that run's, or that owner's.
    """
    return (
        _update_own(store, model, run_id, lambda le: replace(le, released_at=now), owner)
        is not None
    )


def renew_lease(
    store: Storage,
    model: str,
    run_id: str,
    *,
    ttl: timedelta,
    now: datetime,
    external_id: str | None = None,
    owner: str | None = None,
) -> Lease | None:
    """Push the expiry of our lease to ``now + ttl`` (and record an external run id).

    None if the lease is not (or no longer) `run_id`'s, or not `owner`'s when it is given.
    """

    def change(le: Lease) -> Lease:
        return replace(le, expires_at=now + ttl, external_id=external_id or le.external_id)

    return _update_own(store, model, run_id, change, owner)


def break_lease(store: Storage, model: str, now: datetime) -> Lease | None:
    """Release the lease whoever holds it (an operator's repair); the lease as it was before.

    None if there is nothing to break (no lease, or released already). The compare-and-swap
    makes a break that races with the holder's own release or a new taker a no-op or a retry,
    never a lost update.
    """
    for _ in range(10):
        current, generation = read_lease(store, model)
        if current is None or current.released_at is not None:
            return None
        try:
            store.compare_and_swap(
                lease_key(model), replace(current, released_at=now).to_json(), generation
            )
            return current
        except PreconditionFailed:
            continue
    return None
