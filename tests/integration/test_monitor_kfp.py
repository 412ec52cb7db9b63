"""Launching on a cluster: `retrain trigger --launch kfp` through the real `kfp.Client`,
against the stand-in KFP API of `fake_kfp` (NOT a Kubeflow Pipelines backend: it answers the
few v2beta1 endpoints the client calls from memory and records each request)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_kfp import API, FakeKfpApi, serve_fake_kfp

from retrain.cli import main
from retrain.config import load_config
from retrain.errors import EXIT_OK, EXIT_TRANSIENT, EXIT_VALIDATION
from retrain.launchers import KfpLauncher
from retrain.storage import open_storage
from retrain.triggers.controller import TriggerController
from retrain.triggers.lease import read_lease

pytestmark = pytest.mark.integration


@pytest.fixture
def kfp_api() -> Iterator[tuple[FakeKfpApi, str]]:
    with serve_fake_kfp() as served:
        yield served


@pytest.fixture
def config(tmp_path: Path) -> str:
    from retrain_pipelines import compile_pipeline

    package = compile_pipeline(tmp_path / "pipeline.yaml", image="registry.example/retrain:1.2.3")
    cfg: dict[str, Any] = {
        "name": "loans",
        "task": "classification",
        "target": "defaulted",
        "storage_root": "store",
        "data": {
            "uri": "gs://bucket/events",
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "features": {"salary": "numeric"},
        },
        "labels": {"uri": "gs://bucket/labels", "id_column": "id", "label_column": "defaulted"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {
            "deployment_name": "loans",
            "gitops_remote": "https://git.example.com/org/gitops.git",
        },
        "triggers": {"kfp": {"pipeline_package": str(package), "experiment": "retrain-loans"}},
    }
    path = tmp_path / "loans.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_kfp_run_holds_the_lease_until_it_finishes(
    kfp_api: tuple[FakeKfpApi, str], config: str
) -> None:
    api, host = kfp_api
    trigger = ["trigger", "--config", config, "--launch", "kfp", "--host", host]
    assert main([*trigger, "--window", "3"]) == EXIT_OK

    created = [r for r in api.requests if (r["method"], r["path"]) == ("POST", f"{API}/runs")]
    assert len(created) == 1
    body = created[0]["body"]
    params = body["runtime_config"]["parameters"]
    assert params["window_id"] == "3"
    assert params["run_id"] == body["display_name"]
    assert yaml.safe_load(params["config_yaml"])["name"] == "loans"
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "retrain"
    assert body["experiment_id"] == api.experiments[0]["experiment_id"]
    assert api.experiments[0]["display_name"] == "retrain-loans"

    cfg = load_config(config)
    store = open_storage(cfg.storage_root)
    lease, _ = read_lease(store, "loans")
    kfp_run = api.runs[0]
    assert lease is not None and lease.external_id == kfp_run["run_id"]
    assert lease.run_id == params["run_id"] and lease.released_at is None

    # While it runs, even a manual request waits for the lease (exit 75: try again later).
    assert main([*trigger, "--window", "4"]) == EXIT_TRANSIENT
    assert len(api.runs) == 1

    ctl = TriggerController(store, "loans", cfg.triggers, KfpLauncher(cfg, host))
    assert ctl.reconcile() == "running"
    kfp_run["state"] = "SUCCEEDED"
    assert ctl.reconcile() == "succeeded"
    lease, _ = read_lease(store, "loans")
    assert lease is not None and lease.released_at is not None
    state, _ = ctl.load_state()
    assert state.snapshots["3"] == "succeeded"
    polls = [r for r in api.requests if r["path"] == f"{API}/runs/{kfp_run['run_id']}"]
    assert [r["method"] for r in polls] == ["GET", "GET"]

    assert main([*trigger, "--window", "3"]) == EXIT_VALIDATION  # trained already
    assert main([*trigger, "--window", "4"]) == EXIT_OK  # manual: no cooldown
    assert len(api.runs) == 2


def test_a_launch_uses_the_experiment_another_model_created_meanwhile(
    kfp_api: tuple[FakeKfpApi, str], config: str
) -> None:
    # Models of one pass launch concurrently; each creates the experiment on first use.
    api, host = kfp_api
    api.created_meanwhile = "retrain-loans"  # lands just before this launch's create
    trigger = ["trigger", "--config", config, "--launch", "kfp", "--host", host]
    assert main([*trigger, "--window", "3"]) == EXIT_OK
    [experiment] = api.experiments
    [run] = api.runs
    assert run["experiment_id"] == experiment["experiment_id"]
