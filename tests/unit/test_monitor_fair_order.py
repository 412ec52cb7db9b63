"""The fair order of a monitor pass cut short by `--deadline`: every model is served within a
few passes, whatever its marker says and however slowly its store answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import retrain.cli.monitor as monitor_cli
from retrain.cli import main
from retrain.errors import EXIT_OK, TransientError
from retrain.storage import open_storage
from retrain.triggers import fleet as fleet_module
from tests.unit.test_triggers_fleet import fleet

NAMES = ["m1", "m2", "m3"]


def _ticks() -> Callable[[], float]:
    """A clock that reads 0, 1, 2, ... (one second per reading): the pass's start, then each
    model's turn, so `--deadline 3s` starts two of three models on one worker."""
    counter: Iterator[int] = iter(range(10**6))
    return lambda: float(next(counter))


@pytest.fixture
def stepped_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each in-process thread-pool pass gets a fresh stepped clock."""
    real = fleet_module.run_for_each

    def run_for_each(*args: Any, **kwargs: Any) -> Any:
        return real(*args, clock=_ticks(), **kwargs)

    monkeypatch.setattr(monitor_cli, "run_for_each", run_for_each)


def _started(tmp_path: Path, name: str) -> str | None:
    store = open_storage(str(tmp_path / name / "store"))
    key = f"triggers/{name}/last-check.json"
    if not store.exists(key):
        return None
    return str(json.loads(store.read_text(key))["started_at"])


def _checked(tmp_path: Path, name: str) -> bool:
    return bool(open_storage(str(tmp_path / name / "store")).list("monitor"))


def test_a_marker_from_a_clock_ahead_does_not_starve_its_model(
    tmp_path: Path, stepped_clock: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # m1's marker was written by a node whose clock ran ahead (or restored from elsewhere).
    configs = fleet(tmp_path, NAMES)
    store = open_storage(str(tmp_path / "m1" / "store"))
    ahead = json.dumps({"started_at": "2099-01-01T00:00:00+00:00"})
    store.write_text("triggers/m1/last-check.json", ahead)
    args = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", "thread"]
    args += ["--deadline", "3s", "--config", str(configs)]
    for _ in range(4):  # "serves each within a few passes"
        assert main(args) == EXIT_OK
    assert _checked(tmp_path, "m1")


def test_a_model_whose_check_always_fails_does_not_take_every_pass_first(
    tmp_path: Path, stepped_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The marker is written at a check's start, so a model whose check fails (or hangs, or
    # kills its worker) at every pass takes its turn in the rotation instead of the first turn
    # of every pass. No test of test_fleet_pool.py fails when the marker is written only
    # after a check that succeeded.
    from retrain.triggers.monitor import Monitor

    configs = fleet(tmp_path, NAMES)
    real_check = Monitor.check
    attempts: list[str] = []

    def check(self: Any, *a: Any, **k: Any) -> Any:
        attempts.append(self.cfg.name)
        if self.cfg.name == "m1":
            raise TransientError("GCS error on gs://b/m1: 503")
        return real_check(self, *a, **k)

    monkeypatch.setattr(Monitor, "check", check)
    args = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", "thread"]
    args += ["--deadline", "3s", "--config", str(configs)]  # two of three per pass
    for _ in range(3):
        main(args)
    # m1 m2 | m3 m1 | m2 m3: each model twice in three passes.
    assert attempts == ["m1", "m2", "m3", "m1", "m2", "m3"]


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_one_store_slow_to_answer_does_not_hold_back_the_other_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pool: str
) -> None:
    # The pass reads every model's marker before any check starts, and its deadline counts
    # from before those reads. A gs:// store that accepts connections and never answers makes
    # that read take 120 s (the client's retry deadline): here m1's read takes 2 s, the
    # pass's deadline is 1 s. The reads get a tenth of it; m1 goes last.
    import time

    real = fleet_module.last_checked

    def last_checked(cfg: Any) -> Any:
        if cfg.name == "m1":
            time.sleep(2)
        return real(cfg)

    monkeypatch.setattr(monitor_cli, "last_checked", last_checked)
    configs = fleet(tmp_path, NAMES)
    args = ["monitor", "--once", "--launch", "none", "--workers", "2", "--pool", pool]
    assert main([*args, "--deadline", "1s", "--config", str(configs)]) == EXIT_OK
    assert _checked(tmp_path, "m2") and _checked(tmp_path, "m3")


def test_a_store_that_fails_to_answer_sorts_its_model_last_and_a_missing_marker_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = fleet(tmp_path, NAMES)
    cfgs = fleet_module.load_fleet([str(configs)]).configs
    fleet_module.note_check_start(cfgs[1])
    real = fleet_module.open_storage

    def flaky(root: str) -> Any:
        if "m1" in root:
            raise TransientError("GCS error on gs://b/m1: 503")
        return real(root)

    monkeypatch.setattr(fleet_module, "open_storage", flaky)
    # m3 never checked first, m2 checked, m1's store did not answer: last.
    assert fleet_module.priority_order(cfgs, fleet_module.last_checked) == [2, 1, 0]
