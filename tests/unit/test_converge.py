"""Re-runs converge: versions adopted by recorded inputs, keyed events, rollouts that finish,
and lost state that stops a run instead of rebaselining it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
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

from required import unavailable
from retrain import steps
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.errors import AlreadyExists, PreconditionFailed, TransientError, ValidationError
from retrain.registry import Registry, event_key
from retrain.rollout.controller import RolloutController, lock_key, read_rollout
from retrain.rollout.lock import LockBusy, StoreLock
from retrain.rollout.machine import PROMOTED, ROLLED_BACK, Observations
from retrain.steps._state import SCHEMA_KEY, check_state_kept, finish_pending_rollout
from retrain.storage import LocalStorage, open_storage
from retrain.training.artifact import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    ModelCard,
    load_registered_model,
    sha256_hex,
)

# -- helpers ---------------------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying at a fault point."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path, Path]:
    """One window trained twice (two runs): two model dirs of the same inputs, other bytes."""
    root = tmp_path_factory.mktemp("loans")
    cfg = load_config(generate_loans(root, windows=3, rows_per_window=300, drift_window=2))
    text, dirs = cfg.to_yaml(), []
    for run in ("r1", "r2"):
        t = root / run
        steps.ingest(text, "0", run, str(t / "d.parquet"))
        steps.label(text, "0", run, str(t / "d.parquet"), str(t / "l.parquet"))
        steps.train(text, "0", run, str(t / "l.parquet"), str(t / "model"), str(t / "hold"))
        dirs.append(t / "model")
    return cfg, dirs[0], dirs[1]


def fresh(cfg: Config, tmp_path: Path) -> Config:
    """The same use case with an empty store (the schema kept: it is not under test here)."""
    copy = cfg.model_copy(update={"storage_root": str(tmp_path / "store")})
    source = open_storage(cfg.storage_root)
    open_storage(copy.storage_root).create(SCHEMA_KEY, source.read_bytes(SCHEMA_KEY))
    return copy


def deploy(cfg: Config, run: str, model_dir: Path, applier: RecordingApplier) -> Any:
    return steps.deploy(cfg.to_yaml(), run, str(model_dir), applier_factory=lambda c: applier)


def keyed_kinds(reg: Registry) -> list[tuple[str, Any]]:
    return [(e["kind"], e.get("version")) for e in reg.events()]


# -- point 1: a re-run adopts what was registered from the same inputs -----------------------


def test_two_runs_of_one_window_write_different_bytes_of_the_same_version(
    trained: tuple[Config, Path, Path],
) -> None:
    """Why adoption is needed at all: the fit is not byte-reproducible, its inputs are."""
    _, a, b = trained
    card_a = ModelCard.from_json((a / MODEL_CARD_FILE).read_text())
    card_b = ModelCard.from_json((b / MODEL_CARD_FILE).read_text())
    assert card_a.version == card_b.version
    assert (a / MODEL_CARD_FILE).read_bytes() != (b / MODEL_CARD_FILE).read_bytes()


def test_rerun_after_a_crash_past_register_adopts_the_registered_version(
    trained: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    cfg, a, b = trained
    cfg = fresh(cfg, tmp_path)
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    version = ModelCard.from_json((a / MODEL_CARD_FILE).read_text()).version
    # The first run registered its bytes and died before anything else.
    reg.register(version, {n: (a / n).read_bytes() for n in (MODEL_FILE, MODEL_CARD_FILE)})

    applier = RecordingApplier()
    outcome = deploy(cfg, "r2", b, applier)  # the re-run: same inputs, its own bytes

    assert outcome.version == version and outcome.alias == "champion"
    assert "registered earlier from the same inputs" in outcome.summary
    assert reg.read_file(version, MODEL_FILE) == (a / MODEL_FILE).read_bytes()
    assert reg.get_alias("champion").version == version
    assert applier.versions() == {"champion": version}
    load_registered_model(reg, version)  # still verifies and loads


def test_rerun_completes_a_version_a_crash_left_half_registered(
    trained: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    cfg, a, b = trained
    cfg = fresh(cfg, tmp_path)
    store = open_storage(cfg.storage_root)
    reg = Registry(store, cfg.name)
    version = ModelCard.from_json((a / MODEL_CARD_FILE).read_text()).version
    # Killed after the model file, before its card: the version is invisible but not empty.
    store.create(
        f"models/{cfg.name}/versions/{version}/{MODEL_FILE}", (a / MODEL_FILE).read_bytes()
    )

    deploy(cfg, "r2", b, RecordingApplier())

    card = ModelCard.from_json(reg.read_file(version, MODEL_CARD_FILE).decode())
    assert card.model_sha256 == sha256_hex((a / MODEL_FILE).read_bytes())
    assert card.run_id == "r2"
    load_registered_model(reg, version)


def test_a_version_name_registered_from_other_inputs_is_refused(
    trained: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    cfg, a, b = trained
    cfg = fresh(cfg, tmp_path)
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    card = ModelCard.from_json((a / MODEL_CARD_FILE).read_text())
    forged = dataclasses.replace(card, seed=card.seed + 1).to_json().encode()
    reg.register(card.version, {MODEL_FILE: (a / MODEL_FILE).read_bytes(), MODEL_CARD_FILE: forged})
    with pytest.raises(AlreadyExists, match="seed"):
        deploy(cfg, "r2", b, RecordingApplier())


def test_two_runs_racing_on_one_window_end_with_one_winner(
    trained: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    cfg, a, b = trained
    cfg = fresh(cfg, tmp_path)
    reg = register_dummy(open_storage(cfg.storage_root), cfg, ["v0"])
    serve(reg, "v0")
    barrier, results = threading.Barrier(2), {}

    def run(name: str, model_dir: Path) -> None:
        barrier.wait()
        try:
            results[name] = deploy(cfg, name, model_dir, RecordingApplier()).alias
        except PreconditionFailed as err:  # exit 75: lost the alias race
            results[name] = err

    threads = [threading.Thread(target=run, args=x) for x in (("r1", a), ("r2", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    version = ModelCard.from_json((a / MODEL_CARD_FILE).read_text()).version
    # One run moved the canary; the other did too (a no-op on the same version) or lost the
    # compare-and-swap (exit 75, and its retry is the no-op).
    assert "canary" in results.values()
    assert all(r == "canary" or isinstance(r, PreconditionFailed) for r in results.values())
    assert reg.get_alias("canary").version == version
    assert reg.versions().count(version) == 1
    for kind in ("registered", "alias_moved"):
        assert len([e for e in events_of(reg, kind) if e["version"] == version]) == 1


def test_a_rolled_back_version_is_not_deployed_again_by_a_rerun(
    trained: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    cfg, a, b = trained
    cfg = fresh(cfg, tmp_path)
    store = open_storage(cfg.storage_root)
    reg = register_dummy(store, cfg, ["v0"])
    serve(reg, "v0")
    applier = RecordingApplier()
    version = deploy(cfg, "r1", a, applier).version
    RolloutController(cfg, store, applier=applier).roll_back("bad canary")

    html = tmp_path / "deploy.html"  # the step's HTML artifact (the KFP UI shows it)
    outcome = steps.deploy(  # the window re-run after the rollback
        cfg.to_yaml(), "r2", str(b), applier_factory=lambda c: applier, html_path=str(html)
    )

    assert outcome.alias == "none" and "rolled back" in outcome.summary
    assert "not deployed again" in html.read_text(encoding="utf-8")
    assert store.read_text("runs/r2/deploy.html") == html.read_text(encoding="utf-8")
    assert reg.get_alias("canary").version is None
    assert applier.versions() == {"champion": "v0"}
    assert len([e for e in events_of(reg, "canary_started") if e["version"] == version]) == 1


# -- the event log: keyed, create-only, written on every attempt ------------------------------


def test_a_keyed_event_is_written_once_however_often_it_is_appended(tmp_path: Path) -> None:
    reg = Registry(LocalStorage(tmp_path), "m")
    first = reg.append_event("registered", once=event_key("v1"), version="v1", run_id="r1")
    again = reg.append_event("registered", once=event_key("v1"), version="v1", run_id="r2")
    assert again == first
    assert [(e["kind"], e["run_id"]) for e in reg.events()] == [("registered", "r1")]
    assert reg.has_event("registered", event_key("v1"))


def test_keyed_and_unkeyed_events_list_in_time_order(tmp_path: Path) -> None:
    clock = FakeClock()
    reg = Registry(LocalStorage(tmp_path), "m", clock=clock)
    reg.append_event("trained", version="v1")
    clock.advance(1)
    reg.append_event("registered", once="zzz", version="v1")
    clock.advance(1)
    reg.append_event("alias_moved", once="aaa", version="v1", alias="champion")
    assert [e["kind"] for e in reg.events()] == ["trained", "registered", "alias_moved"]
    assert [e["kind"] for e in reg.events(limit=2)] == ["registered", "alias_moved"]


@pytest.mark.parametrize("lost", ["registered", "alias_moved", "deployed"])
def test_a_crash_between_a_write_and_its_event_loses_no_event_and_adds_none(
    trained: tuple[Config, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    cfg, a, _ = trained
    cfg = fresh(cfg, tmp_path)
    point = {"registered": "deploy:registered", "alias_moved": "deploy:alias_moved"}.get(
        lost, "deploy:applied"
    )

    def crash_at(name: str) -> None:
        if name == point:
            raise Crash(name)

    monkeypatch.setattr("retrain.steps._deploy.crash_point", crash_at)
    applier = RecordingApplier()
    with pytest.raises(Crash):
        deploy(cfg, "r1", a, applier)
    monkeypatch.setattr("retrain.steps._deploy.crash_point", lambda name: None)
    deploy(cfg, "r1", a, applier)  # the retry of the same run
    deploy(cfg, "r9", a, applier)  # and a later re-run of the window

    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    assert [e["kind"] for e in reg.events()] == ["registered", "alias_moved", "deployed"]


# -- rollouts that always finish --------------------------------------------------------------


class Unreachable:
    name = "down"

    def observe(self, request: Any) -> Observations:
        raise TransientError("prometheus at http://127.0.0.1:9 refused the connection")


def test_an_unreachable_metrics_backend_rolls_back_once_the_deadline_passes(
    tmp_path: Path,
) -> None:
    cfg = make_cfg(tmp_path)  # interval 60 s, progress deadline 600 s
    store = LocalStorage(cfg.storage_root)
    reg = register_dummy(store, cfg, ["v1", "v2"])
    serve(reg, "v1", "v2")
    clock, applier = FakeClock(), RecordingApplier()
    ctl = RolloutController(cfg, store, provider=Unreachable(), applier=applier, clock=clock)
    ctl.tick()  # starts the rollout at 10 %
    for _ in range(9):
        clock.advance(60)
        with pytest.raises(TransientError):  # exit 75, the state untouched
            ctl.tick()
    state, _ = read_rollout(store, cfg.name)
    assert state is not None and state.traffic == 10 and not state.terminal
    clock.advance(60)  # 600 s: the deadline
    result = ctl.tick()
    assert result.state is not None and result.state.phase == ROLLED_BACK
    assert "metrics unreachable" in result.state.reason and "refused" in result.state.reason
    assert reg.get_alias("canary").version is None
    assert applier.split() == {"champion": 100}
    assert len(events_of(reg, "rolled_back")) == 1


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _half_promoted(cfg: Config, store: LocalStorage, applier: RecordingApplier) -> Registry:
    """Walk v2 to promotion and kill the tick right after the champion alias moved."""
    reg = register_dummy(store, cfg, ["v1", "v2"])
    serve(reg, "v1", "v2")
    clock = FakeClock()
    ctl = RolloutController(
        cfg, store, provider=ScriptedProvider([healthy()]), applier=applier, clock=clock
    )
    ctl.tick()
    for _ in range(2):
        clock.advance(60)
        ctl.tick()

    def fault(point: str) -> None:
        if point == "champion_moved":
            raise Crash(point)

    ctl.fault = fault
    clock.advance(60)
    with pytest.raises(Crash):
        ctl.tick()
    # A killed process does not release its lock: leave it held by a process that is gone.
    owner = f"{socket.gethostname()}-{_dead_pid()}-deadbeef"
    StoreLock(store, lock_key(cfg.name), ttl_seconds=3600, owner=owner).acquire()
    return reg


def test_a_rollout_killed_mid_promotion_is_finished_by_the_next_run(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    applier = RecordingApplier()
    reg = _half_promoted(cfg, store, applier)
    assert reg.get_alias("champion").version == reg.get_alias("canary").version == "v2"
    assert len(applier.split()) == 2  # still serving the old split

    message = finish_pending_rollout(cfg, store)  # what the next run's ingest does first

    assert message is not None and "promote" in message
    state, _ = read_rollout(store, cfg.name)
    assert state is not None and state.phase == PROMOTED and state.pending == ()
    assert reg.get_alias("champion").version == "v2" and reg.get_alias("canary").version is None
    assert len(events_of(reg, "promoted")) == 1
    assert finish_pending_rollout(cfg, store) is None  # nothing left to do


def test_a_lock_held_by_a_live_process_still_refuses(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    owner = f"{socket.gethostname()}-{os.getppid()}-cafebabe"
    StoreLock(store, "l.lock", ttl_seconds=3600, owner=owner).acquire()
    with pytest.raises(LockBusy):
        StoreLock(store, "l.lock", ttl_seconds=3600).acquire()


def test_deploy_status_says_what_the_gitops_head_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retrain.cli import main
    from retrain.deploy import GitOpsApplier, backend_for

    if shutil.which("git") is None:
        unavailable("git is not installed (apt-get install git)")

    cfg = make_cfg(tmp_path)
    store = LocalStorage(cfg.storage_root)
    reg = register_dummy(store, cfg, ["v1", "v2"])
    serve(reg, "v1")
    applier = GitOpsApplier.from_config(cfg)
    ctl = RolloutController(cfg, store, applier=applier)
    applier.apply(backend_for(cfg).render(ctl.desired_state(None), cfg), cfg)
    serve(reg, "v2")  # the registry moved on; the tree was never updated
    config = tmp_path / "config.yaml"
    config.write_text(cfg.to_yaml())

    assert main(["deploy", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "GitOps HEAD serves: champion v1 100%" in out
    assert "NOT CONVERGED" in out and "champion v2 100%" in out


# -- state that refuses to rebaseline ---------------------------------------------------------


def test_a_lost_champion_alias_stops_the_run_and_can_be_restored(
    trained: tuple[Config, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, a, _ = trained
    cfg = fresh(cfg, tmp_path)
    store = open_storage(cfg.storage_root)
    version = deploy(cfg, "r1", a, RecordingApplier()).version
    assert isinstance(store, LocalStorage)
    (Path(store.root) / f"models/{cfg.name}/aliases/champion.json").unlink()

    with pytest.raises(ValidationError, match="retrain deploy restore") as err:
        steps.ingest(cfg.to_yaml(), "1", "r2", str(tmp_path / "d.parquet"))
    assert version in str(err.value) and err.value.exit_code == 2
    assert not store.exists("datasets/1/events.parquet")

    config = tmp_path / "config.yaml"
    config.write_text(cfg.to_yaml())
    from retrain.cli import main

    assert main(["deploy", "restore", "--config", str(config)]) == 0
    message = capsys.readouterr().out
    assert version in message
    reg = Registry(store, cfg.name)
    assert reg.get_alias("champion").version == version
    check_state_kept(store, reg)  # passes again


def test_a_lost_schema_stops_the_run_instead_of_being_inferred_again(
    trained: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    cfg, a, _ = trained
    cfg = fresh(cfg, tmp_path)
    store = open_storage(cfg.storage_root)
    deploy(cfg, "r1", a, RecordingApplier())
    assert isinstance(store, LocalStorage)
    (Path(store.root) / SCHEMA_KEY).unlink()

    with pytest.raises(ValidationError, match="schema") as err:
        steps.ingest(cfg.to_yaml(), "1", "r2", str(tmp_path / "d.parquet"))
    assert "restore it" in str(err.value)
    assert not store.exists(SCHEMA_KEY)


def test_a_first_run_still_infers_the_schema(tmp_path: Path) -> None:
    cfg = load_config(generate_loans(tmp_path, windows=2, rows_per_window=200, drift_window=1))
    outcome = steps.ingest(cfg.to_yaml(), "0", "r1", str(tmp_path / "d.parquet"))
    assert "schema inferred" in outcome.summary
    assert json.loads(open_storage(cfg.storage_root).read_text(SCHEMA_KEY))


def test_a_deploy_killed_after_the_alias_move_is_applied_by_the_next_run(
    trained: tuple[Config, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrain.deploy import GitOpsApplier
    from retrain.deploy.gitops import served_split

    if shutil.which("git") is None:
        unavailable("git is not installed (apt-get install git)")
    cfg, a, _ = trained
    cfg = fresh(cfg, tmp_path)
    cfg = cfg.model_copy(
        update={"deploy": cfg.deploy.model_copy(update={"gitops_repo": str(tmp_path / "git")})}
    )

    def crash_at(name: str) -> None:
        if name == "deploy:alias_moved":
            raise Crash(name)

    monkeypatch.setattr("retrain.steps._deploy.crash_point", crash_at)
    with pytest.raises(Crash):
        steps.deploy(cfg.to_yaml(), "r1", str(a), applier_factory=GitOpsApplier.from_config)
    version = Registry(open_storage(cfg.storage_root), cfg.name).get_alias("champion").version
    assert version is not None and served_split(cfg) is None  # the alias moved, nothing served

    outcome = steps.ingest(cfg.to_yaml(), "1", "r2", str(tmp_path / "d.parquet"))

    assert "converged to the aliases" in outcome.summary
    assert served_split(cfg) == [("champion", version, "100")]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    assert [e["kind"] for e in reg.events()] == ["registered", "alias_moved", "deployed"]
