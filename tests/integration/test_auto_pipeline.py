"""A scheduled run for real: the pipeline under kfp.local with window_id="auto", run_id="auto".

The run parameters are exactly those `retrain schedule` gives KFP recurring runs; the resolve
task turns them into the newest complete window and a run id derived from the job id that
kfp.local substitutes, takes the run lease, and every later task runs on those ids; the exit
task releases the lease. No mocks: components run as subprocesses through kfp's
SubprocessRunner and train a real model.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from required import require
from retrain.config import load_config
from retrain.data.demo import generate_loans
from retrain.registry import Registry
from retrain.runner import RUN_STEPS, run_cycle
from retrain.steps import read_run
from retrain.steps.resolve_rules import PERIOD_RULE
from retrain.storage import open_storage
from retrain.training.artifact import ModelCard
from retrain.triggers.lease import acquire_lease, lease_key, read_lease
from retrain.triggers.schedule import SCHEDULED_RUN_ID, SCHEDULED_WINDOW

require("kfp", "the pipeline runs under kfp.local (extra 'kfp')")

pytestmark = pytest.mark.integration


def _loans(root: Path) -> Path:
    # Weeks 0-3: week 3 is the source's last (it may still be filling), so "auto" is week 2.
    return generate_loans(root, windows=4, rows_per_window=300, drift_window=3, seed=3)


def test_a_scheduled_run_trains_the_resolved_window_under_the_resolved_run_id(
    tmp_path: Path,
) -> None:
    from kfp import local
    from retrain_pipelines import build_pipeline

    cfg = load_config(_loans(tmp_path / "kfp"))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=True,
    )
    assert (SCHEDULED_WINDOW, SCHEDULED_RUN_ID) == ("auto", "auto")
    pipeline = build_pipeline(local=True)
    pipeline(config_yaml=cfg.to_yaml(), window_id=SCHEDULED_WINDOW, run_id=SCHEDULED_RUN_ID)

    store = open_storage(cfg.storage_root)
    run_ids = {key.split("/")[1] for key in store.list("runs")}
    assert len(run_ids) == 1, run_ids  # every task recorded under the one resolved run id
    run_id = run_ids.pop()
    records = read_run(store, run_id)
    assert sorted(records) == sorted(RUN_STEPS)
    assert all(r["status"] == "succeeded" for r in records.values()), records

    resolve = records["resolve"]["report"]
    assert resolve["requested"] == {"window_id": "auto", "run_id": "auto"}
    assert resolve["window"]["rule"] == PERIOD_RULE
    assert resolve["window_id"] == "2"
    # kfp.local substitutes dsl.PIPELINE_JOB_ID_PLACEHOLDER with a random number.
    job_id = resolve["job_id"]
    assert job_id.isdigit(), job_id
    assert run_id == f"w2-{job_id}"

    # The model was trained on week 2 and its card names this run.
    version = records["deploy"]["report"]["version"]
    card = ModelCard.from_json(Registry(store, cfg.name).read_file(version, "model.json").decode())
    assert (card.window, card.run_id) == ("2", run_id)
    assert store.list("datasets") == ["datasets/2/labelled.parquet"]

    # The run held the lease as its job, and the exit task released it at the end.
    lease, _ = read_lease(store, cfg.name)
    assert lease is not None
    assert (lease.owner, lease.run_id, lease.snapshot) == (f"pipeline:{job_id}", run_id, "2")
    assert lease.external_id == job_id
    assert lease.released_at is not None and lease.released_at >= lease.acquired_at
    assert resolve["lease"]["owner"] == f"pipeline:{job_id}"
    assert _release_report(tmp_path / "kfp-root").startswith("# Release")

    # The direct engine, on the same data, resolves the same window and trains the same
    # (content-addressed) model.
    twin = load_config(_loans(tmp_path / "direct"))
    direct = run_cycle(twin, "auto", engine="direct", run_id="auto")
    assert direct.exit_code == 0, direct.lines()
    assert direct.window_id == "2"
    assert direct.records["deploy"]["report"]["version"] == version
    twin_lease, _ = read_lease(open_storage(twin.storage_root), twin.name)
    assert twin_lease is not None and twin_lease.run_id == direct.run_id
    assert twin_lease.released_at is not None


def _release_report(pipeline_root: Path) -> str:
    """The exit task's report artifact: proof that it ran."""
    reports = [p for p in pipeline_root.rglob("report") if p.parent.name == "release"]
    assert len(reports) == 1, sorted(str(p) for p in pipeline_root.rglob("*"))
    return reports[0].read_text()


def test_a_held_lease_fails_the_scheduled_run_at_resolve_and_leaves_all_else(
    tmp_path: Path,
) -> None:
    from kfp import local
    from retrain_pipelines import build_pipeline

    cfg = load_config(_loans(tmp_path / "kfp"))
    store = open_storage(cfg.storage_root)
    now = datetime.now(timezone.utc)
    # A drift-launched run of the monitor holds the lease for another hour.
    kw = {"owner": "monitor-host:7", "run_id": "w2-drift", "snapshot": "2"}
    assert acquire_lease(store, cfg.name, ttl=timedelta(hours=1), now=now, **kw) is not None
    before = store.read_bytes(lease_key(cfg.name))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=False,
    )
    pipeline = build_pipeline(local=True)
    pipeline(config_yaml=cfg.to_yaml(), window_id=SCHEDULED_WINDOW, run_id=SCHEDULED_RUN_ID)

    # Only resolve ran (and failed, exit 75, recorded); then the exit task, which left the
    # monitor's lease alone. No dataset, no model, no registry write.
    keys = store.list("")
    [record_key] = [k for k in keys if k.startswith("runs/")]
    assert keys == [lease_key(cfg.name), record_key]
    assert record_key.startswith("runs/w2-") and record_key.endswith("/resolve.json")
    rec = json.loads(store.read_text(record_key))
    assert (rec["status"], rec["error"], rec["exit_code"]) == ("failed", "TransientError", 75)
    assert "held by run w2-drift (owner monitor-host:7" in rec["message"]
    assert "the next scheduled run will try again" in rec["message"]
    assert store.read_bytes(lease_key(cfg.name)) == before
    assert "monitor-host:7's (run w2-drift), not this job's: left alone" in _release_report(
        tmp_path / "kfp-root"
    )
