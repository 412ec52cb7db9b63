"""The controller on a real store (local directory, and the GCS emulator as integration):
state by compare-and-swap, the run lease, launches that never overlap."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from retrain.errors import TransientError
from retrain.settings.triggers import TriggerConfig
from retrain.storage import Storage
from retrain.triggers.controller import LaunchResult, RunStatus, TriggerController
from retrain.triggers.lease import acquire_lease, lease_key, read_lease
from retrain.triggers.policy import Decision, Signal

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=timezone.utc)


class Clock:
    """A clock that moves only when told (shared by threads)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **kw: float) -> None:
        with self._lock:
            self.now += timedelta(**kw)


class RecordingLauncher:
    """Runs nothing; records each launch with wall-clock start and end, optionally holding
    the run open until released, to check that runs never overlap."""

    name = "recording"

    def __init__(self, hold: threading.Event | None = None, status: RunStatus = "succeeded"):
        self.hold = hold
        self.status = status
        self.started = threading.Event()
        self.runs: list[tuple[str, float, float]] = []
        self.polls: list[RunStatus] = []
        self._lock = threading.Lock()

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        t0 = time.monotonic()
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(10), "test never released the run"
        with self._lock:
            self.runs.append((snapshot, t0, time.monotonic()))
        return LaunchResult(
            run_id, self.status, external_id="ext-1" if self.status == "running" else None
        )

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        return self.polls.pop(0) if self.polls else "running"


def make(store: Storage, launcher: Any, clock: Clock, **cfg: Any) -> TriggerController:
    settings = TriggerConfig.model_validate({"cooldown": "1h", "drift_windows": 1} | cfg)
    return TriggerController(store, "loans", settings, launcher, clock=clock, owner="test")


def test_drift_storm_starts_exactly_one_run(store: Storage) -> None:
    clock, launcher = Clock(), RecordingLauncher()
    ctl = make(store, launcher, clock)
    outcomes = []
    for i in range(50):  # 50 events in one minute
        outcomes.append(ctl.handle(Signal("drift", str(i), drifted=True, value=0.5)))
        clock.advance(seconds=1.2)
    assert len(launcher.runs) == 1
    assert sum(o.decision.launch for o in outcomes) == 1
    assert {o.decision.rule for o in outcomes[1:]} == {"cooldown"}

    clock.advance(hours=1)
    assert ctl.handle(Signal("drift", "50", drifted=True)).decision.launch
    assert len(launcher.runs) == 2
    # Each launch leaves a "why" record, and the lease is released after a finished run.
    records = [k for k in store.list("triggers/loans/launches")]
    assert len(records) == 2
    doc = json.loads(store.read_text(records[0]))
    assert doc["rule"] == "drift" and doc["run"]["status"] == "succeeded"
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.released_at is not None
    state, _ = ctl.load_state()
    assert state.snapshots["0"] == "succeeded" and state.snapshots["50"] == "succeeded"


def test_concurrent_storm_from_many_threads_starts_one_run(store_factory: Any) -> None:
    clock, launcher = Clock(), RecordingLauncher()
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def fire(i: int) -> None:
        ctl = make(store_factory(), launcher, clock)  # own store handle, like a process
        try:
            barrier.wait()
            ctl.handle(Signal("drift", str(i), drifted=True))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(launcher.runs) == 1


def test_scheduled_and_drift_runs_never_overlap(store: Storage) -> None:
    clock = Clock(datetime(2024, 3, 11, 3, 0, tzinfo=timezone.utc))  # Monday 03:00
    hold = threading.Event()
    launcher = RecordingLauncher(hold=hold)
    schedules = [{"name": "weekly", "cron": "0 3 * * 1"}]
    ctl = make(store, launcher, clock, cooldown="1s", schedules=schedules)

    scheduled: list[Any] = []
    t = threading.Thread(target=lambda: scheduled.append(ctl.handle(Signal("schedule", "10"))))
    t.start()
    assert launcher.started.wait(10)
    # While the scheduled run is in flight, drift fires (manual too): both wait for the lease.
    clock.advance(seconds=5)
    other = make(store, launcher, clock, cooldown="1s")
    during = other.handle(Signal("drift", "11", drifted=True))
    manual = other.handle(Signal("manual", "12"))
    assert (during.decision.launch, during.decision.rule) == (False, "lease")
    assert (manual.decision.launch, manual.decision.rule) == (False, "lease")
    hold.set()
    t.join(10)
    assert scheduled[0].decision.launch and scheduled[0].decision.rule == "schedule"

    clock.advance(seconds=5)
    assert other.handle(Signal("drift", "13", drifted=True)).decision.launch
    spans = sorted((start, end) for _, start, end in launcher.runs)
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0]  # the second started after the first ended


def test_expired_lease_is_taken_over_by_exactly_one(store_factory: Any) -> None:
    store = store_factory()
    ttl = timedelta(hours=1)
    first = acquire_lease(
        store, "loans", owner="crashed", run_id="r0", snapshot="1", ttl=ttl, now=T0
    )
    assert first is not None
    assert (
        acquire_lease(store, "loans", owner="b", run_id="r1", snapshot="2", ttl=ttl, now=T0) is None
    )

    later = T0 + timedelta(hours=2)
    barrier = threading.Barrier(6)
    winners: list[str] = []

    def take(i: int) -> None:
        handle = store_factory()
        barrier.wait()
        got = acquire_lease(
            handle, "loans", owner=f"o{i}", run_id=f"r{i + 10}", snapshot="3", ttl=ttl, now=later
        )
        if got is not None:
            winners.append(got.run_id)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(winners) == 1
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.run_id == winners[0]


def test_a_run_left_running_holds_the_lease_until_it_finishes(store: Storage) -> None:
    clock = Clock()
    launcher = RecordingLauncher(status="running")
    ctl = make(store, launcher, clock, cooldown="1s", lease_ttl="1h")
    first = ctl.handle(Signal("manual", "1"))
    assert first.launch is not None and first.launch.status == "running"
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.external_id == "ext-1" and lease.held(clock())

    clock.advance(minutes=50)
    launcher.polls = ["running"]
    assert ctl.reconcile() == "running"  # still running: the lease is renewed
    clock.advance(minutes=50)  # past the original expiry
    assert ctl.handle(Signal("manual", "2")).decision.rule == "lease"

    launcher.polls = ["failed"]
    assert ctl.reconcile() == "failed"
    state, _ = ctl.load_state()
    assert state.snapshots["1"] == "failed"
    assert ctl.handle(Signal("manual", "2")).decision.launch
    assert ctl.reconcile() == "running"


def test_a_launch_that_raises_frees_the_lease_and_marks_the_snapshot(store: Storage) -> None:
    class Broken(RecordingLauncher):
        def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
            raise TransientError("KFP API is down")

    clock = Clock()
    ctl = make(store, Broken(), clock, cooldown="1s")
    with pytest.raises(TransientError):
        ctl.handle(Signal("manual", "1"))
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.released_at is not None
    state, _ = ctl.load_state()
    assert state.snapshots["1"] == "failed"
    clock.advance(seconds=2)
    ok = make(store, RecordingLauncher(), clock, cooldown="1s")
    assert ok.handle(Signal("manual", "1")).decision.launch  # a failed snapshot may retry


def test_state_changes_without_launch_are_saved(store: Storage) -> None:
    clock = Clock()
    ctl = make(store, RecordingLauncher(), clock, drift_windows=3)
    for w in ("1", "2"):
        assert not ctl.handle(Signal("drift", w, drifted=True)).decision.launch
    state, generation = ctl.load_state()
    assert state.drift_streak == 2 and generation > 0
    assert store.exists(lease_key("loans")) is False
