"""The rollout controller on a real LocalStorage and registry: effects, lock, crash safety."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from rollout_support import (
    FakeClock,
    RecordingApplier,
    ScriptedProvider,
    events_of,
    healthy,
    make_cfg,
    register_dummy,
    serve,
)

from retrain.config import Config
from retrain.deploy import to_yaml
from retrain.errors import ValidationError
from retrain.registry import Registry
from retrain.rollout.controller import FAULT_POINTS, RolloutController, lock_key, read_rollout
from retrain.rollout.lock import LockBusy, StoreLock
from retrain.rollout.machine import (
    ABORTED,
    INCONCLUSIVE,
    PROGRESSING,
    PROMOTED,
    ROLLED_BACK,
    Observations,
)
from retrain.storage import LocalStorage


class Crash(Exception):
    """Stands for the process dying at a fault point."""


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_cfg(tmp_path)


@pytest.fixture
def store(cfg: Config) -> LocalStorage:
    return LocalStorage(cfg.storage_root)


@pytest.fixture
def reg(store: LocalStorage, cfg: Config) -> Registry:
    reg = register_dummy(store, cfg, ["v1", "v2", "v3"])
    serve(reg, "v1", "v2")
    return reg


def controller(
    cfg: Config,
    store: LocalStorage,
    script: list[Observations],
    clock: FakeClock,
    applier: RecordingApplier,
    **kw: Any,
) -> RolloutController:
    return RolloutController(
        cfg, store, provider=ScriptedProvider(script), applier=applier, clock=clock, **kw
    )


def test_healthy_rollout_promotes_with_one_predictor(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock, applier = FakeClock(), RecordingApplier()
    ctl = controller(cfg, store, [healthy()], clock, applier)
    first = ctl.tick()
    assert first.in_flight and first.state is not None and first.state.traffic == 10
    assert applier.split() == {"champion": 90, "canary": 10}
    splits = []
    for _ in range(3):
        clock.advance(60)
        result = ctl.tick()
        splits.append(applier.split())
    assert splits == [
        {"champion": 75, "canary": 25},
        {"champion": 50, "canary": 50},
        {"champion": 100},  # the old predictor is removed, never left at traffic 0
    ]
    assert not result.in_flight and result.state is not None and result.state.phase == PROMOTED
    assert applier.versions() == {"champion": "v2"}
    assert reg.get_alias("champion").version == "v2"
    assert reg.get_alias("canary").version is None
    (promoted,) = events_of(reg, "promoted")
    assert promoted["version"] == "v2" and promoted["champion"] == "v1"
    assert "healthy through 3 steps" in promoted["reason"]
    assert [e["traffic"] for e in events_of(reg, "deployed")] == [
        {"champion": 90, "canary": 10},
        {"champion": 75, "canary": 25},
        {"champion": 50, "canary": 50},
    ]
    state, _ = read_rollout(store, cfg.name)
    assert state is not None and state.phase == PROMOTED and state.pending == ()
    # Nothing left to do: further ticks change nothing.
    clock.advance(60)
    idle = ctl.tick()
    assert not idle.in_flight and "no canary in flight; champion v2 serves 100%" in idle.message
    assert len(applier.history) == 4


def test_bad_canary_is_rolled_back_and_the_champion_keeps_everything(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock, applier = FakeClock(), RecordingApplier()
    failing = healthy(**{"canary.error_rate": 0.2})
    ctl = controller(cfg, store, [failing], clock, applier)
    ctl.tick()
    for _ in range(2):
        clock.advance(60)
        result = ctl.tick()
    assert result.state is not None and result.state.phase == ROLLED_BACK
    assert applier.split() == {"champion": 100} and applier.versions() == {"champion": "v1"}
    assert reg.get_alias("champion").version == "v1"
    assert reg.get_alias("canary").version is None
    (event,) = events_of(reg, "rolled_back")
    assert event["version"] == "v2"
    assert "canary error rate 20.00%: 0.2 > 0.01" in event["reason"]
    assert "rolled_back" in applier.messages[-1] or "failed analyses" in applier.messages[-1]


def test_a_canary_never_judged_for_want_of_labels_leaves_as_inconclusive(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path)  # deadline 600 s; the default cap lets a step wait 6 h for labels
    store = LocalStorage(cfg.storage_root)
    reg = register_dummy(store, cfg, ["v1", "v2"])
    serve(reg, "v1", "v2")
    clock, applier = FakeClock(), RecordingApplier()
    no_labels = healthy(**{"canary.labelled": 0.0, "champion.labelled": 0.0})
    ctl = controller(cfg, store, [no_labels], clock, applier)
    ctl.tick()
    for _ in range(10):  # no label ever arrives: the fixed 600 s deadline ends it
        clock.advance(60)
        result = ctl.tick()
    assert result.state is not None and result.state.phase == INCONCLUSIVE
    assert applier.split() == {"champion": 100} and reg.get_alias("canary").version is None
    (event,) = events_of(reg, "rolled_back")
    assert event["outcome"] == "inconclusive"
    assert event["reason"].startswith("inconclusive, canary taken out of traffic unjudged")


def test_new_canary_aborts_the_old_rollout_and_starts_its_own(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock, applier = FakeClock(), RecordingApplier()
    ctl = controller(cfg, store, [healthy()], clock, applier)
    ctl.tick()
    clock.advance(60)
    ctl.tick()  # v2 at 25%
    serve(reg, "v1", "v3")  # the next pipeline run deployed a newer canary
    clock.advance(5)
    result = ctl.tick()
    assert result.state is not None and result.state.canary == "v3"
    assert result.state.phase == PROGRESSING and result.state.traffic == 10
    assert applier.versions() == {"champion": "v1", "canary": "v3"}
    archived = [k for k in store.list("rollouts/loans/history")]
    assert len(archived) == 1
    old = json.loads(store.read_text(archived[0]))
    assert old["phase"] == ABORTED and "replaced by v3" in old["reason"]


def test_a_deploy_rerun_that_reset_the_share_is_put_back(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock, applier = FakeClock(), RecordingApplier()
    ctl = controller(cfg, store, [healthy()], clock, applier)
    ctl.tick()
    clock.advance(60)
    ctl.tick()
    assert applier.split()["canary"] == 25
    first = applier.history[0]
    applier.apply(first, cfg)  # what a re-run of the deploy step renders: the canary at 10%
    clock.advance(10)
    result = ctl.tick()  # not due yet, but the deployment is reconciled
    assert result.actions == () and applier.split()["canary"] == 25


def test_manual_promote_and_rollback_go_through_the_state(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock, applier = FakeClock(), RecordingApplier()
    ctl = controller(cfg, store, [healthy()], clock, applier)
    with pytest.raises(ValidationError, match="give a reason"):
        ctl.roll_back("  ")
    result = ctl.roll_back("latency alarm in the on-call dashboard")
    assert result.state is not None and result.state.phase == ROLLED_BACK
    assert result.state.reason == "rolled back by hand: latency alarm in the on-call dashboard"
    assert reg.get_alias("canary").version is None
    with pytest.raises(ValidationError, match="no canary of model 'loans' to promote"):
        ctl.promote("ship it")
    serve(reg, "v1", "v3")
    promoted = ctl.promote("ship it")
    assert promoted.state is not None and promoted.state.canary == "v3"
    assert reg.get_alias("champion").version == "v3" and applier.split() == {"champion": 100}


def test_held_lock_refuses_a_second_controller(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock = FakeClock()
    holder = StoreLock(store, lock_key(cfg.name), ttl_seconds=300, clock=clock, owner="other")
    holder.acquire()
    ctl = controller(cfg, store, [healthy()], clock, RecordingApplier())
    with pytest.raises(LockBusy, match="locked by other") as busy:
        ctl.tick()
    assert busy.value.exit_code == 75
    holder.release()
    assert ctl.tick().in_flight


def test_a_dead_holders_lock_is_taken_over_after_it_expires(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock = FakeClock()
    StoreLock(store, lock_key(cfg.name), ttl_seconds=300, clock=clock, owner="dead").acquire()
    ctl = controller(cfg, store, [healthy()], clock, RecordingApplier())
    clock.advance(299)
    with pytest.raises(LockBusy):
        ctl.tick()
    clock.advance(2)
    assert ctl.tick().in_flight
    assert ctl.lock.holder() == {**ctl.lock.holder(), "owner": ctl.lock.owner, "released": True}


def test_two_concurrent_promotions_exactly_one_wins(cfg: Config, store_factory: Any) -> None:
    """Threads, each with its own store handle (local directory, and the GCS emulator)."""
    clock = FakeClock()
    applier = RecordingApplier()
    reg = register_dummy(store_factory(), cfg, ["v1", "v2"])
    serve(reg, "v1", "v2")
    RolloutController(
        cfg, store_factory(), provider=ScriptedProvider([healthy()]), applier=applier, clock=clock
    ).tick()  # the rollout is in flight
    n = 6
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    guard = threading.Lock()

    def promote(i: int) -> None:
        ctl = RolloutController(
            cfg,
            store_factory(),
            provider=ScriptedProvider([healthy()]),
            applier=applier,
            clock=clock,
            owner=f"operator-{i}",
        )
        barrier.wait()
        try:
            ctl.promote(f"operator {i}")
            outcome = "promoted"
        except LockBusy:
            outcome = "busy"
        except ValidationError:
            outcome = "nothing to promote"
        except Exception as err:  # e.g. a lost compare-and-swap: the lock should prevent it
            outcome = type(err).__name__
        with guard:
            outcomes.append(outcome)

    threads = [threading.Thread(target=promote, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("promoted") == 1, outcomes
    assert set(outcomes) <= {"promoted", "busy", "nothing to promote"}, outcomes
    assert len(events_of(reg, "promoted")) == 1
    assert reg.get_alias("champion").version == "v2"
    assert reg.get_alias("canary").version is None


def _promote_run(
    cfg: Config, store: LocalStorage, fault_at: str | None
) -> tuple[Registry, RecordingApplier, Any]:
    """Walk v2 to its last step, then let the promoting tick crash at `fault_at` and re-run."""
    reg = register_dummy(store, cfg, ["v1", "v2"])
    serve(reg, "v1", "v2")
    clock, applier = FakeClock(), RecordingApplier()
    ctl = controller(cfg, store, [healthy()], clock, applier)
    ctl.tick()
    for _ in range(2):
        clock.advance(60)
        ctl.tick()
    clock.advance(60)

    def fault(point: str) -> None:
        if point == fault_at:
            raise Crash(point)

    ctl.fault = fault
    if fault_at is not None:
        with pytest.raises(Crash):
            ctl.tick()
        ctl.fault = lambda point: None
    ctl.tick()  # the re-run (or, without a fault, the only run)
    return reg, applier, read_rollout(store, cfg.name)[0]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_crash_while_promoting_converges_on_rerun(tmp_path: Path, point: str) -> None:
    ref_cfg = make_cfg(tmp_path / "reference")
    ref_reg, ref_applier, ref_state = _promote_run(
        ref_cfg, LocalStorage(ref_cfg.storage_root), None
    )
    cfg = make_cfg(tmp_path / "crash")
    reg, applier, state = _promote_run(cfg, LocalStorage(cfg.storage_root), point)

    assert state is not None and ref_state is not None
    assert (state.phase, state.pending) == (ref_state.phase, ref_state.pending) == (PROMOTED, ())
    assert reg.get_alias("champion").version == ref_reg.get_alias("champion").version == "v2"
    assert reg.get_alias("canary").version is ref_reg.get_alias("canary").version is None
    assert applier.current is not None and ref_applier.current is not None
    same_root = to_yaml(applier.current).replace(str(tmp_path / "crash"), "<root>")
    assert same_root == to_yaml(ref_applier.current).replace(str(tmp_path / "reference"), "<root>")
    assert applier.split() == {"champion": 100}
    kinds = [e["kind"] for e in reg.events()]
    assert kinds == [e["kind"] for e in ref_reg.events()]
    assert kinds.count("promoted") == 1


@pytest.mark.parametrize("point", ["state_saved", "canary_cleared", "deployment_applied"])
def test_crash_while_rolling_back_converges_on_rerun(
    cfg: Config, store: LocalStorage, reg: Registry, point: str
) -> None:
    clock, applier = FakeClock(), RecordingApplier()
    ctl = controller(cfg, store, [healthy(**{"canary.error_rate": 1.0})], clock, applier)
    ctl.tick()
    clock.advance(60)
    ctl.tick()
    clock.advance(60)

    def fault(p: str) -> None:
        if p == point:
            raise Crash(p)

    ctl.fault = fault
    with pytest.raises(Crash):
        ctl.tick()
    ctl.fault = lambda p: None
    result = ctl.tick()
    assert result.state is not None and result.state.phase == ROLLED_BACK
    assert reg.get_alias("canary").version is None
    assert applier.split() == {"champion": 100} and applier.versions() == {"champion": "v1"}
    assert len(events_of(reg, "rolled_back")) == 1


def test_status_reads_everything_without_the_lock(
    cfg: Config, store: LocalStorage, reg: Registry
) -> None:
    clock = FakeClock()
    ctl = controller(cfg, store, [healthy()], clock, RecordingApplier())
    assert ctl.status()["rollout"] is None
    ctl.tick()
    status = ctl.status()
    assert status["champion"] == "v1" and status["canary"] == "v2"
    assert status["rollout"]["phase"] == PROGRESSING and status["rollout"]["traffic"] == 10
    assert status["lock"]["released"] is True
