"""The crash matrix: a real `retrain run` SIGKILLed at each named point, then run again, ends
in the state a run that was never killed leaves.

The window under test (the first after the concept change) deploys a canary and promotes it,
so every point is passed: each step
boundary, inside register and deploy, and each effect of a rollout decision. The killed run's
process group dies on the spot (no `finally`, no lock release); the re-run is a new process.
"""

from __future__ import annotations

import collections
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from retrain._crash import CRASH_POINTS
from retrain.config import load_config
from retrain.deploy.gitops import served_split
from retrain.registry import Registry
from retrain.rollout.controller import read_rollout
from retrain.storage import open_storage
from tools.chaos import check_invariants, prepare, run_window

pytestmark = pytest.mark.integration


#: The window under test: the concept changes there, so its challenger is clearly better.
WINDOW = 3


@pytest.fixture(scope="module")
def before_window(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The case with the windows before `WINDOW` run: the start of every matrix row."""
    root = tmp_path_factory.mktemp("matrix") / "case"
    config = prepare(root, seed=7, windows=WINDOW + 3, drift_window=WINDOW)
    for window in range(WINDOW):
        assert run_window(config, window, None) == 0
    return root


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest / "loans.yaml"


def end_state(config: Path) -> dict[str, Any]:
    """What a run leaves, with nothing that names this copy's directory or the run's id."""
    cfg = load_config(config)
    store = open_storage(cfg.storage_root)
    reg = Registry(store, cfg.name)
    state, _ = read_rollout(store, cfg.name)
    events = collections.Counter(
        (e["kind"], e.get("version"), e.get("alias")) for e in reg.events()
    )
    return {
        "versions": reg.versions(),
        "champion": reg.get_alias("champion").version,
        "canary": reg.get_alias("canary").version,
        "rollout": None if state is None else (state.canary, state.phase, state.pending),
        "served": served_split(cfg),
        "events": dict(events),
    }


@pytest.fixture(scope="module")
def reference(before_window: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = _copy(before_window, tmp_path_factory.mktemp("reference") / "case")
    assert run_window(config, WINDOW, None) == 0
    state = end_state(config)
    # The window under test must promote a canary, or the rollout points are never passed.
    assert state["rollout"] is not None and state["rollout"][1] == "promoted"
    return state


#: Every point once, plus kills in the middle of the rollout (its 2nd and 3rd decisions).
MATRIX = (*CRASH_POINTS, "rollout:decided:3", "rollout:deployment_applied:2")


@pytest.mark.parametrize("point", MATRIX)
def test_sigkill_at_each_point_then_rerun_ends_as_a_crash_free_run(
    point: str, before_window: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    config = _copy(before_window, tmp_path / "case")
    assert run_window(config, WINDOW, point) == -signal.SIGKILL, f"{point} was never reached"
    assert run_window(config, WINDOW, None) == 0
    assert end_state(config) == reference
    assert check_invariants(load_config(config)) == []
