"""The rollout lease lock on each storage backend (local directory; GCS emulator)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from rollout_support import FakeClock

from retrain.rollout.lock import LockBusy, StoreLock
from retrain.storage import Storage

KEY = "rollouts/loans.lock"


def lock(store: Storage, owner: str, clock: FakeClock, ttl: float = 60) -> StoreLock:
    return StoreLock(store, KEY, ttl_seconds=ttl, owner=owner, clock=clock, what="the rollout")


def test_one_holder_at_a_time(store: Storage) -> None:
    clock = FakeClock()
    a, b = lock(store, "a", clock), lock(store, "b", clock)
    a.acquire()
    with pytest.raises(LockBusy, match="the rollout is locked by a"):
        b.acquire()
    a.release()
    b.acquire()
    assert b.holder() is not None and b.holder()["owner"] == "b"  # type: ignore[index]


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_release_it(store: Storage) -> None:
    clock = FakeClock()
    dead, heir = lock(store, "dead", clock), lock(store, "heir", clock)
    dead.acquire()
    clock.advance(61)
    heir.acquire()
    dead.release()  # wakes up late: must not free the heir's lock
    with pytest.raises(LockBusy, match="locked by heir"):
        lock(store, "third", clock).acquire()


def test_context_manager_releases_on_error(store: Storage) -> None:
    clock = FakeClock()
    with pytest.raises(RuntimeError), lock(store, "a", clock):
        raise RuntimeError("crash inside")
    with lock(store, "b", clock):
        pass


def test_racing_takers_of_an_expired_lock_exactly_one_wins(store_factory: Any) -> None:
    clock = FakeClock()
    lock(store_factory(), "dead", clock).acquire()
    clock.advance(120)
    n = 5
    barrier = threading.Barrier(n)
    wins: list[str] = []
    guard = threading.Lock()

    def take(i: int) -> None:
        mine = lock(store_factory(), f"taker-{i}", clock)
        barrier.wait()
        try:
            mine.acquire()
        except LockBusy:
            return
        with guard:
            wins.append(mine.owner)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1, wins
