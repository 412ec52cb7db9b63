"""A lease lock in the object store, so two rollouts or promotions of a model never overlap.

The lock is one small JSON object ``{"owner", "acquired_at", "expires_at", "released"}``:

- take a free lock: `Storage.create` (create-only: of two racing callers exactly one wins);
- take a released or expired lock: compare-and-swap at the generation read, so of two
  callers that both saw it expire exactly one takes it over;
- release: compare-and-swap ``released: true``, only while we still hold it.

The store offers no delete, and none is needed. An expired lock means its holder died (or
stalled past the TTL): the lease makes a crashed holder harmless without anyone's help. A
holder that ran on this host and whose process is gone frees the lock at once
(`retrain._process.owner_process_gone`). Work
done under the lock must still write with compare-and-swap, because a holder stalled past its
TTL may wake up after someone else took over.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from retrain._process import new_owner_id, owner_process_gone
from retrain.errors import AlreadyExists, PreconditionFailed, TransientError, ValidationError
from retrain.storage import NO_OBJECT, Storage

__all__ = ["LockBusy", "StoreLock", "new_owner_id"]


class LockBusy(TransientError):
    """Someone else holds the lock: try again later (exit 75)."""


class StoreLock:
    """A lease on `key` in `store`, held by `owner` for `ttl_seconds` from acquisition.

    Use as a context manager (acquire on enter, release on exit) or call `acquire` and
    `release`. `what` names the protected work in error messages.
    """

    def __init__(
        self,
        store: Storage,
        key: str,
        *,
        ttl_seconds: float,
        owner: str | None = None,
        clock: Callable[[], datetime] | None = None,
        what: str = "this work",
    ) -> None:
        if ttl_seconds <= 0:
            raise ValidationError(f"lock ttl must be positive, got {ttl_seconds!r}")
        self.store = store
        self.key = key
        self.ttl = timedelta(seconds=ttl_seconds)
        self.owner = owner or new_owner_id()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.what = what
        self._generation = NO_OBJECT

    def acquire(self) -> None:
        """Take the lock or raise LockBusy naming the holder and when its lease ends."""
        now = self.clock()
        doc = self._doc(now)
        try:
            self.store.create(self.key, doc)
            self._generation = self.store.generation(self.key)
            return
        except AlreadyExists:
            pass
        data, generation = self.store.read_versioned(self.key)
        if data is None:  # pragma: no cover - the store has no delete; kept for safety
            raise LockBusy(f"lock {self.store.uri(self.key)} changed while taking it; retry")
        held = _parse(data, self.store.uri(self.key))
        expires = datetime.fromisoformat(held["expires_at"])
        live = now < expires and not owner_process_gone(held.get("owner"))
        if not held.get("released") and held.get("owner") != self.owner and live:
            raise LockBusy(
                f"{self.what} is locked by {held.get('owner')} since {held.get('acquired_at')} "
                f"(lease ends {held['expires_at']}); retry later"
            )
        try:
            self._generation = self.store.compare_and_swap(self.key, doc, generation)
        except PreconditionFailed:
            raise LockBusy(
                f"{self.what}: another process took the lock {self.store.uri(self.key)} first; "
                "retry later"
            ) from None

    def release(self) -> None:
        """Give the lock up if we still hold it (a lease taken over after expiry is kept)."""
        if self._generation == NO_OBJECT:
            return
        data, generation = self.store.read_versioned(self.key)
        self_held = (
            data is not None
            and generation == self._generation
            and _parse(data, self.store.uri(self.key)).get("owner") == self.owner
        )
        self._generation = NO_OBJECT
        if not self_held:
            return
        now = self.clock()
        doc = {
            "owner": self.owner,
            "acquired_at": None,
            "expires_at": now.isoformat(),
            "released": True,
        }
        # PreconditionFailed: taken over after our lease expired; it is theirs now.
        with contextlib.suppress(PreconditionFailed):
            self.store.compare_and_swap(self.key, _dump(doc), generation)

    def holder(self) -> dict[str, Any] | None:
        """The lock object as stored (None if never taken), for status displays."""
        data, _ = self.store.read_versioned(self.key)
        return None if data is None else _parse(data, self.store.uri(self.key))

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _doc(self, now: datetime) -> bytes:
        return _dump(
            {
                "owner": self.owner,
                "acquired_at": now.isoformat(),
                "expires_at": (now + self.ttl).isoformat(),
                "released": False,
            }
        )


def _dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
        datetime.fromisoformat(doc["expires_at"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValidationError(f"lock object {where} is malformed: {err!r}") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"lock object {where} must hold a JSON object")
    return doc
