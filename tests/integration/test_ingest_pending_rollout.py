"""Ingest and a rollout decision a crashed run left pending, with a GitOps remote.

On a cluster the git Secret is mounted into deploy, rollout and the rollout-advance CronJob,
not into ingest: there, ingest leaves the decision to them (and says so) instead of trying a
push it has no credentials for.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.rollout.controller import read_rollout, state_key
from retrain.rollout.machine import start_rollout
from retrain.steps import _ingest, ingest
from retrain.steps._state import git_credentials_missing
from retrain.storage import open_storage

pytestmark = pytest.mark.integration


def _cfg(tmp: Path, credentials: Path) -> Config:
    cfg = load_config(
        generate_loans(tmp / "data", windows=2, rows_per_window=200, drift_window=1, seed=1)
    )
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(remote)], check=True)
    deploy = cfg.deploy.model_copy(
        update={"gitops_remote": str(remote), "gitops_credentials": str(credentials)}
    )
    return cfg.model_copy(update={"deploy": deploy})


def _leave_pending(cfg: Config) -> None:
    state, actions = start_rollout(
        cfg.name, "v1", "v2", cfg.rollout, datetime(2026, 1, 5, tzinfo=UTC)
    )
    state = dataclasses.replace(state, pending=actions)
    store = open_storage(cfg.storage_root)
    store.write_text(state_key(cfg.name), json.dumps(state.as_dict()))


def test_ingest_without_the_git_secret_leaves_the_pending_decision_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, tmp_path / "not-mounted")
    _leave_pending(cfg)
    tried: list[Any] = []
    monkeypatch.setattr(_ingest, "finish_pending_rollout", lambda *a: tried.append(a))
    outcome = ingest(cfg.to_yaml(), "0", "r1", str(tmp_path / "out" / "dataset"))
    assert tried == [], "ingest tried to finish the decision without git credentials"
    assert "not mounted in this step" in outcome.summary
    assert "rollout-advance CronJob" in outcome.details["pending_rollout"]
    record = Path(cfg.storage_root) / "runs" / "r1" / "ingest.json"
    assert "rollout-advance CronJob" in record.read_text()  # the ingest record says so
    state, _ = read_rollout(open_storage(cfg.storage_root), cfg.name)
    assert state is not None and state.pending  # left for the rollout step / the CronJob


def test_ingest_with_the_git_secret_mounted_finishes_the_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "secret"
    mounted.mkdir()
    cfg = _cfg(tmp_path, mounted)
    assert git_credentials_missing(cfg) is None
    tried: list[Any] = []
    monkeypatch.setattr(_ingest, "finish_pending_rollout", lambda *a: tried.append(a))
    outcome = ingest(cfg.to_yaml(), "0", "r1", str(tmp_path / "out" / "dataset"))
    assert len(tried) == 1 and "pending_rollout" not in outcome.details


def test_only_a_remote_with_an_unmounted_secret_stops_the_push(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, tmp_path / "not-mounted")
    assert git_credentials_missing(cfg) is not None
    no_creds = cfg.deploy.model_copy(update={"gitops_credentials": None})  # e.g. a local path
    assert git_credentials_missing(cfg.model_copy(update={"deploy": no_creds})) is None
    local = cfg.deploy.model_copy(update={"gitops_remote": None})
    assert git_credentials_missing(cfg.model_copy(update={"deploy": local})) is None
