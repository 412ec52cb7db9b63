"""A run lease held by a process gone from this host is taken over; a live holder's is not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from retrain.config import Config
from retrain.errors import TransientError
from retrain.steps.lease import take_run_lease
from retrain.storage import Storage, open_storage
from retrain.triggers.lease import acquire_lease, read_lease
from tests.unit.rollout_support import make_cfg

NOW = datetime(2030, 1, 7, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_cfg(tmp_path)


@pytest.fixture
def store(cfg: Config) -> Storage:
    return open_storage(cfg.storage_root)


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _held_by(store: Storage, cfg: Config, host: str, pid: int) -> None:
    held = acquire_lease(
        store, cfg.name, owner="pipeline:killed", run_id="w3-killed", snapshot="3",
        ttl=timedelta(hours=6), now=NOW, host=host, pid=pid,
    )  # fmt: skip
    assert held is not None


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(
    cfg: Config, store: Storage, dead_pid: int
) -> None:
    _held_by(store, cfg, socket.gethostname(), dead_pid)
    at = NOW + timedelta(minutes=1)
    lease = take_run_lease(
        cfg, store, run_id="w3-rerun", window_id="3", job_id="rerun", at=at, kfp_run=False
    )
    assert (lease.owner, lease.run_id, lease.released_at) == ("pipeline:rerun", "w3-rerun", None)
    stored, _ = read_lease(store, cfg.name)
    assert stored is not None and stored.run_id == "w3-rerun"
    # The takeover is recorded: whose lease it was, and the dead process.
    assert stored.taken_over is not None
    assert (stored.taken_over["run_id"], stored.taken_over["pid"]) == ("w3-killed", dead_pid)
    assert (stored.host, stored.pid) == (socket.gethostname(), os.getpid())


def test_a_lease_of_a_live_process_still_refuses_the_run(
    cfg: Config, store: Storage, live_pid: int
) -> None:
    _held_by(store, cfg, socket.gethostname(), live_pid)
    with pytest.raises(TransientError, match="w3-killed"):
        take_run_lease(
            cfg, store, run_id="w3-rerun", window_id="3", job_id="rerun",
            at=NOW + timedelta(minutes=1), kfp_run=False,
        )  # fmt: skip
    stored, _ = read_lease(store, cfg.name)
    assert stored is not None and stored.run_id == "w3-killed"


def test_a_lease_of_a_process_on_another_host_is_not_taken_over(
    cfg: Config, store: Storage, dead_pid: int
) -> None:
    _held_by(store, cfg, "some-other-node", dead_pid)  # its pid means nothing here
    with pytest.raises(TransientError):
        take_run_lease(
            cfg, store, run_id="w3-rerun", window_id="3", job_id="rerun",
            at=NOW + timedelta(minutes=1), kfp_run=False,
        )  # fmt: skip


def test_a_kfp_run_never_takes_over_a_lease(cfg: Config, store: Storage, dead_pid: int) -> None:
    _held_by(store, cfg, socket.gethostname(), dead_pid)
    with pytest.raises(TransientError):
        take_run_lease(
            cfg, store, run_id="w3-rerun", window_id="3", job_id="rerun",
            at=NOW + timedelta(minutes=1), kfp_run=True,
        )  # fmt: skip
