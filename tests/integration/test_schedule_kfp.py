"""`retrain schedule plan|apply` through the real `kfp.Client`, against a local HTTP server
that checks the exact KFP v2beta1 REST requests it receives.

`FakeKfpApi` is NOT a Kubeflow Pipelines backend: it answers the handful of endpoints the
client calls (healthz, experiments, recurring runs, runs) from memory, and records every
request (method, path, query, JSON body) so the tests can assert what would reach a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_kfp import API, FakeKfpApi, serve_fake_kfp

from retrain.cli import main
from retrain.errors import EXIT_OK, EXIT_TRANSIENT, EXIT_VALIDATION

pytestmark = pytest.mark.integration


@pytest.fixture
def kfp_api() -> Iterator[tuple[FakeKfpApi, str]]:
    with serve_fake_kfp() as served:
        yield served


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> str:
    from retrain_pipelines import compile_pipeline

    out = tmp_path_factory.mktemp("pipeline") / "retrain-pipeline.yaml"
    return str(compile_pipeline(out, image="registry.example/retrain:1.2.3"))


def write_config(tmp_path: Path, schedules: list[dict[str, Any]], name: str = "loans") -> str:
    cfg = {
        "name": name,
        "task": "classification",
        "target": "defaulted",
        "storage_root": "gs://bucket/retrain",
        "data": {
            "uri": "gs://bucket/events",
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "features": {"salary": "numeric", "car": "categorical"},
        },
        "labels": {"uri": "gs://bucket/labels", "id_column": "id", "label_column": "defaulted"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
        "triggers": {"schedule_engine": "kfp", "schedules": schedules},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def schedule(config: str, host: str, package: str, action: str = "apply") -> int:
    return main(
        ["schedule", action, "--config", config, "--host", host, "--pipeline-package", package]
    )


def models_dir(tmp_path: Path, host: str, package: str, **schedules: Any) -> tuple[Path, list[str]]:
    """A directory of configs, one per model (name -> its schedules), and the arguments of a
    `retrain schedule` pass over it."""
    models = tmp_path / "models"
    models.mkdir()
    for name, wanted in schedules.items():
        write_config(models, wanted, name=name)
    return models, ["--config", str(models), "--host", host, "--pipeline-package", package]


WEEKLY = {"name": "weekly", "cron": "0 3 * * 1"}
NIGHTLY = {"name": "nightly", "cron": "30 1 * * *"}


def test_plan_reads_only(kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str) -> None:
    api, host = kfp_api
    config = write_config(tmp_path, [WEEKLY])
    assert schedule(config, host, package, "plan") == EXIT_OK
    assert api.writes() == []
    assert {r["path"] for r in api.requests} == {f"{API}/healthz", f"{API}/experiments"}
    assert api.recurring == []


def test_apply_creates_with_the_exact_request(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    config = write_config(tmp_path, [WEEKLY, NIGHTLY])
    assert schedule(config, host, package) == EXIT_OK

    assert api.writes() == [
        ("POST", f"{API}/experiments"),
        ("POST", f"{API}/recurringruns"),
        ("POST", f"{API}/recurringruns"),
    ]
    exp_body = next(
        r["body"] for r in api.requests if r["path"] == f"{API}/experiments" and r["body"]
    )
    assert exp_body["display_name"] == "retrain"
    exp_id = api.experiments[0]["experiment_id"]

    bodies = {
        r["body"]["display_name"]: r["body"]
        for r in api.requests
        if (r["method"], r["path"]) == ("POST", f"{API}/recurringruns")
    }
    assert set(bodies) == {"retrain-loans-weekly", "retrain-loans-nightly"}
    weekly = bodies["retrain-loans-weekly"]
    assert weekly["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}  # 6 fields
    assert bodies["retrain-loans-nightly"]["trigger"]["cron_schedule"]["cron"] == "0 30 1 * * *"
    assert int(weekly["max_concurrency"]) == 1
    assert weekly["no_catchup"] is True
    assert weekly["mode"] == "ENABLE"
    assert weekly["experiment_id"] == exp_id
    params = weekly["runtime_config"]["parameters"]
    assert set(params) == {"config_yaml", "window_id", "run_id"}
    assert yaml.safe_load(params["config_yaml"])["name"] == "loans"
    assert weekly["pipeline_spec"]["pipelineInfo"]["name"] == "retrain"
    images = json.dumps(weekly["pipeline_spec"]["deploymentSpec"])
    assert "registry.example/retrain:1.2.3" in images
    assert "spec-sha256: " in weekly["description"]

    # Listing was scoped to the experiment and filtered by our name prefix.
    listing = [
        r for r in api.requests if (r["method"], r["path"]) == ("GET", f"{API}/recurringruns")
    ]
    assert listing == []  # no experiment existed yet: nothing to list


def test_second_apply_changes_nothing(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    config = write_config(tmp_path, [WEEKLY, NIGHTLY])
    assert schedule(config, host, package) == EXIT_OK
    api.requests.clear()
    assert schedule(config, host, package) == EXIT_OK
    assert api.writes() == []
    listing = [r for r in api.requests if r["path"] == f"{API}/recurringruns"]
    assert listing and all(r["query"]["experiment_id"] == "exp-1" for r in listing)
    predicates = json.loads(listing[0]["query"]["filter"])["predicates"]
    assert predicates[0]["key"] == "display_name"
    assert predicates[0]["stringValue"] == "retrain-loans-"
    assert len(api.recurring) == 2


def test_changed_cron_replaces_delete_then_create(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    assert schedule(write_config(tmp_path, [WEEKLY]), host, package) == EXIT_OK
    old_id = api.recurring[0]["recurring_run_id"]
    api.requests.clear()

    changed = write_config(tmp_path, [{"name": "weekly", "cron": "0 4 * * 1"}])
    assert schedule(changed, host, package) == EXIT_OK
    assert api.writes() == [
        ("DELETE", f"{API}/recurringruns/{old_id}"),
        ("POST", f"{API}/recurringruns"),
    ]
    assert [r["trigger"]["cron_schedule"]["cron"] for r in api.recurring] == ["0 0 4 * * 1"]


def test_no_replace_while_a_run_is_in_flight(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    assert schedule(write_config(tmp_path, [WEEKLY]), host, package) == EXIT_OK
    rr = api.recurring[0]
    # Finished runs of it, and more runs than one page holds, are no obstacle ...
    for i, state in enumerate(["SUCCEEDED", "FAILED", "SUCCEEDED", "CANCELED", "RUNNING"]):
        api.runs.append(
            {
                "run_id": f"run-{i}",
                "experiment_id": rr["experiment_id"],
                "recurring_run_id": rr["recurring_run_id"],
                "state": state,
            }
        )
    api.requests.clear()
    changed = write_config(tmp_path, [{"name": "weekly", "cron": "0 5 * * 1"}])
    # ... but the RUNNING one (on the third page) defers the change: exit 75, nothing written.
    assert schedule(changed, host, package) == EXIT_TRANSIENT
    assert api.writes() == []
    run_pages = [r for r in api.requests if r["path"] == f"{API}/runs"]
    assert len(run_pages) == 3

    # Beside a refused config (exit 2 alone), the deferred change still asks for a retry.
    (tmp_path / "broken.yaml").write_text("name: broken\n")
    both = ["--config", changed, str(tmp_path / "broken.yaml"), "--host", host]
    assert main(["schedule", "apply", *both, "--pipeline-package", package]) == EXIT_TRANSIENT

    api.runs[-1]["state"] = "SUCCEEDED"
    assert schedule(changed, host, package) == EXIT_OK
    assert [r["trigger"]["cron_schedule"]["cron"] for r in api.recurring] == ["0 0 5 * * 1"]


def test_removed_schedules_go_and_foreign_ones_stay(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    assert schedule(write_config(tmp_path, [WEEKLY, NIGHTLY]), host, package) == EXIT_OK
    exp_id = api.experiments[0]["experiment_id"]
    foreign = {
        "recurring_run_id": "rr-foreign",
        "display_name": "retrain-loans2-weekly",  # another model: prefix differs at the '-'
        "experiment_id": exp_id,
        "description": "",
        "trigger": {"cron_schedule": {"cron": "0 0 0 * * *"}},
    }
    api.recurring.append(foreign)
    ids = {r["display_name"]: r["recurring_run_id"] for r in api.recurring}
    nightly_id, weekly_id = ids["retrain-loans-nightly"], ids["retrain-loans-weekly"]
    api.requests.clear()
    assert schedule(write_config(tmp_path, [WEEKLY]), host, package) == EXIT_OK
    writes = api.writes()
    assert ("DELETE", f"{API}/recurringruns/{nightly_id}") in writes
    assert all("rr-foreign" not in path for _, path in writes)
    # The runs carry the whole config as a parameter, and it changed: weekly is replaced too.
    assert writes.count(("DELETE", f"{API}/recurringruns/{weekly_id}")) == 1
    names = sorted(r["display_name"] for r in api.recurring)
    assert names == ["retrain-loans-weekly", "retrain-loans2-weekly"]


def test_disabling_a_schedule_replaces_it_in_disabled_mode(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    assert schedule(write_config(tmp_path, [WEEKLY]), host, package) == EXIT_OK
    off = write_config(tmp_path, [dict(WEEKLY, enabled=False)])
    assert schedule(off, host, package) == EXIT_OK
    assert [r["mode"] for r in api.recurring] == ["DISABLE"]
    api.requests.clear()
    assert schedule(off, host, package) == EXIT_OK
    assert api.writes() == []


def test_one_pass_reconciles_every_model_of_a_directory(
    kfp_api: tuple[FakeKfpApi, str],
    tmp_path: Path,
    package: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api, host = kfp_api
    models, args = models_dir(tmp_path, host, package, loans=[WEEKLY], fraud=[NIGHTLY])
    assert main(["schedule", "apply", *args, "--workers", "2"]) == EXIT_OK
    names = {r["display_name"] for r in api.recurring}
    assert names == {"retrain-loans-weekly", "retrain-fraud-nightly"}
    out = capsys.readouterr().out
    assert "loans: " in out and "fraud: " in out
    assert "reconciled 2 models: 2 ok (exit 0)" in out
    # Again: nothing to change for either model.
    writes = len(api.writes())
    assert main(["schedule", "apply", *args]) == EXIT_OK
    assert len(api.writes()) == writes
    # An invalid config among them is refused alone, named; the others are reconciled.
    (models / "fraud.yaml").write_text("name: fraud\n")
    write_config(models, [WEEKLY, NIGHTLY], name="loans")
    assert main(["schedule", "apply", *args]) == EXIT_VALIDATION
    captured = capsys.readouterr()
    assert "fraud.yaml: schedule apply failed:" in captured.err
    assert "fraud.yaml is invalid" in captured.err
    assert "reconciled 2 models: 1 ok (exit 2)" in captured.out
    names = {r["display_name"] for r in api.recurring}
    assert {"retrain-loans-weekly", "retrain-loans-nightly"} <= names
    assert len(api.writes()) > writes


def test_an_experiment_created_meanwhile_by_another_pass_is_used(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    api, host = kfp_api
    api.created_meanwhile = "retrain"  # appears between the client's read and its create
    assert schedule(write_config(tmp_path, [WEEKLY]), host, package) == EXIT_OK
    posts = [r for r in api.requests if (r["method"], r["path"]) == ("POST", f"{API}/experiments")]
    assert len(posts) == 1 and len(api.experiments) == 1  # refused (409), then read
    [made] = api.recurring
    assert made["experiment_id"] == api.experiments[0]["experiment_id"]


def test_a_model_whose_name_extends_another_keeps_its_schedules(
    kfp_api: tuple[FakeKfpApi, str], tmp_path: Path, package: str
) -> None:
    # "retrain-loans-" also starts "retrain-loans-eu-weekly": each model manages only the
    # recurring runs its description names it in.
    api, host = kfp_api
    models, args = models_dir(tmp_path, host, package, **{"loans": [WEEKLY], "loans-eu": [NIGHTLY]})
    assert main(["schedule", "apply", *args]) == EXIT_OK
    writes = len(api.writes())
    assert main(["schedule", "apply", *args]) == EXIT_OK
    assert len(api.writes()) == writes  # nothing deleted, nothing recreated
    names = {r["display_name"] for r in api.recurring}
    assert names == {"retrain-loans-weekly", "retrain-loans-eu-nightly"}
    # Removing loans' schedule deletes loans' only.
    write_config(models, [], name="loans")
    assert main(["schedule", "apply", *args]) == EXIT_OK
    assert {r["display_name"] for r in api.recurring} == {"retrain-loans-eu-nightly"}
