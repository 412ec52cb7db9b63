"""The whole KFP pipeline under kfp.local, on small generated data, for real.

No mocks: the components run as subprocesses through kfp's SubprocessRunner, read and write
real files, train real models and commit to a real git repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from required import require
from retrain.config import Config, load_config
from retrain.data.demo import generate_housing, generate_loans
from retrain.deploy.seldon import validate_seldon
from retrain.registry import Registry
from retrain.runner import run_cycle
from retrain.storage import open_storage
from retrain.training.artifact import ModelCard

require("kfp", "the pipeline runs under kfp.local (extra 'kfp')")

pytestmark = pytest.mark.integration


def _git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, *args], capture_output=True, text=True, check=True
    ).stdout


def _registry_state(cfg: Config) -> dict:
    """What a cycle that keeps the champion must leave as it was."""
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    return {
        "champion": reg.get_alias("champion"),
        "canary": reg.get_alias("canary"),
        "versions": reg.versions(),
        "events": reg.events(),
    }


def _kfp_runs(cfg: Config) -> set[Path]:
    """The kfp.local runs' directories under the pipeline root."""
    return set(Path(cfg.storage_root + "-kfp").glob("retrain-*"))


@pytest.fixture(scope="module")
def loans_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Weeks 0, 1 (stable) and 4 (after the concept change) through kfp.local; 2-3 direct
    (faster). The registry and the kfp.local runs are recorded around the stable week."""
    work = tmp_path_factory.mktemp("loans")
    cfg = load_config(generate_loans(work, windows=6, rows_per_window=1000, drift_window=4, seed=3))
    first = run_cycle(cfg, "0", engine="kfp-local", log_path=str(work / "w0.log"))
    before_stable, kfp_before = _registry_state(cfg), _kfp_runs(cfg)
    second = run_cycle(cfg, "1", engine="kfp-local", log_path=str(work / "w1.log"))
    after_stable, stable_kfp_runs = _registry_state(cfg), _kfp_runs(cfg) - kfp_before
    for week in ("2", "3"):
        assert run_cycle(cfg, week, engine="direct").exit_code == 0
    drift = run_cycle(cfg, "4", engine="kfp-local", log_path=str(work / "w4.log"))
    return {
        "cfg": cfg,
        "work": work,
        "first": first,
        "second": second,
        "drift": drift,
        "before_stable": before_stable,
        "after_stable": after_stable,
        "stable_kfp_runs": stable_kfp_runs,
    }


def test_first_window_becomes_champion(loans_run: dict) -> None:
    first = loans_run["first"]
    assert first.exit_code == 0, first.lines()
    # The rollout step runs too, and has nothing to do without a canary.
    assert [r["status"] for r in first.records.values()] == ["succeeded"] * 6
    cfg = loans_run["cfg"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    version = first.records["deploy"]["report"]["version"]
    assert reg.versions()[0] == version
    assert first.records["evaluate"]["report"]["champion"] is None


def test_stable_window_keeps_the_champion_unless_clearly_better(loans_run: dict) -> None:
    second = loans_run["second"]
    assert second.exit_code == 0, second.lines()
    ev = second.records["evaluate"]
    gates = {g["name"]: g["passed"] for g in ev["report"]["gates"]}
    assert ev["blessed"] == all(gates.values())
    assert ("deploy" in second.records) == ev["blessed"], "deploy must run exactly when blessed"
    # Before the concept change the challenger may score a little higher, but the gain's
    # 95% interval reaches below the required improvement: not clearly better, so rejected.
    comparison = ev["report"]["comparison"]
    assert comparison["recent_ci"][0] <= comparison["min_improvement"] < comparison["recent_ci"][1]
    assert gates == {
        "floor": True,
        "recent_non_regression": True,
        "recent_improvement": False,
        "history_bounded_loss": True,
    }
    assert ev["blessed"] is False and second.blessed is False
    assert sorted(second.records) == ["evaluate", "ingest", "label", "train"]
    # The pipeline's `blessed` condition skipped deploy and rollout in the kfp.local run.
    (run,) = loans_run["stable_kfp_runs"]
    output = json.loads((run / "evaluate" / "executor_output.json").read_text())
    assert output["parameterValues"]["Output"] is False
    assert not (run / "deploy").exists() and not (run / "rollout").exists()
    # The champion is kept: its alias did not move (same version, same generation), no
    # canary, no new version registered, no event (nothing deployed or started).
    before, after = loans_run["before_stable"], loans_run["after_stable"]
    assert before["champion"].version == loans_run["first"].records["deploy"]["report"]["version"]
    assert ev["report"]["champion"] == before["champion"].version
    assert after["champion"] == before["champion"]
    assert after["canary"] == before["canary"] and after["canary"].version is None
    assert after["versions"] == before["versions"]
    assert after["events"] == before["events"]


def test_drift_window_is_blessed_committed_as_canary_and_promoted(loans_run: dict) -> None:
    drift, cfg = loans_run["drift"], loans_run["cfg"]
    assert drift.exit_code == 0, drift.lines()
    assert drift.blessed
    comparison = drift.records["evaluate"]["report"]["comparison"]
    assert comparison["recent_ci"][0] > 0.05, "after the concept change the gain must be clear"
    new_version = drift.records["deploy"]["report"]["version"]
    assert drift.records["deploy"]["report"]["alias"] == "canary"
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    # The rollout step analysed the canary step by step and promoted it.
    assert drift.records["rollout"]["status"] == "succeeded"
    assert "promoted" in drift.records["rollout"]["summary"]
    assert reg.get_alias("champion").version == new_version
    assert reg.get_alias("canary").version is None
    kinds = [e["kind"] for e in reg.events()]
    assert kinds.index("canary_started") < kinds.index("promoted")

    # The GitOps history holds the canary commit (both predictors, 90/10), each traffic step,
    # and the promoted state: one predictor at 100 (the old one removed, never set to 0).
    repo = cfg.deploy.gitops_repo
    assert repo is not None
    assert _git(repo, "status", "--porcelain") == ""
    rel = f"{cfg.deploy.gitops_path}/{cfg.deploy.namespace}/loans.yaml"
    shas = _git(repo, "log", "--format=%H", "--", rel).split()
    splits = []
    for sha in reversed(shas):
        obj = yaml.safe_load(_git(repo, "show", f"{sha}:{rel}"))
        validate_seldon(obj)
        splits.append({p["name"]: p["traffic"] for p in obj["spec"]["predictors"]})
    assert {"champion": 90, "canary": 10} in splits
    assert splits[-1] == {"champion": 100}
    canary_at = len(splits) - 1 - splits[::-1].index({"champion": 90, "canary": 10})
    assert [s.get("canary") for s in splits[canary_at:-1]] == [10, 25, 50]
    final = yaml.safe_load((Path(repo) / rel).read_text())
    assert new_version in json.dumps(final["spec"]["predictors"])


def test_every_step_left_a_report_and_kfp_artifacts(loans_run: dict) -> None:
    drift, cfg = loans_run["drift"], loans_run["cfg"]
    store = open_storage(cfg.storage_root)
    for step in ("ingest", "label", "train", "evaluate", "deploy", "rollout"):
        md = store.read_text(f"runs/{drift.run_id}/{step}.md")
        assert md.startswith("#"), step
    kfp_root = Path(cfg.storage_root + "-kfp")
    reports = list(kfp_root.glob("retrain-*/*/report"))
    assert {p.parent.name for p in reports} >= {"ingest", "label", "train", "evaluate", "deploy"}
    # KFP Metrics and ClassificationMetrics live in the artifacts' metadata.
    outputs = sorted(kfp_root.glob("retrain-*/evaluate/executor_output.json"))
    assert outputs
    artifacts = json.loads(outputs[-1].read_text())["artifacts"]
    logged = artifacts["metrics"]["artifacts"][0]["metadata"]
    assert 0.5 < logged["challenger.recent.roc_auc"] <= 1.0
    matrix = artifacts["classification"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert sum(sum(row["row"]) for row in matrix["rows"]) > 0


def test_model_card_carries_lineage(loans_run: dict) -> None:
    drift, cfg = loans_run["drift"], loans_run["cfg"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    version = drift.records["deploy"]["report"]["version"]
    card = ModelCard.from_json(reg.read_file(version, "model.json").decode())
    assert card.window == "4"
    assert card.parent == drift.records["evaluate"]["report"]["champion"]  # at training time
    assert card.parent is not None and card.parent != version
    assert card.data_hashes["new_window"] and card.data_hashes["history"]
    assert card.provenance["requested_share"] == 0.8
    assert card.library_versions["sklearn"]


def test_regression_use_case_runs_from_its_config_alone(tmp_path: Path) -> None:
    """A second, differently shaped dataset (regression, timestamp windows) by config only."""
    cfg = load_config(
        generate_housing(tmp_path, windows=4, rows_per_window=500, drift_window=3, seed=5)
    )
    assert cfg.task == "regression" and cfg.data.time_kind == "timestamp"
    from retrain.data.io import read_source
    from retrain.data.windows import window_ids_in

    events = read_source(cfg.data.uri, cfg.data.format)
    windows = window_ids_in(cfg.data, events[cfg.data.time_column])
    result = run_cycle(cfg, windows[0], engine="kfp-local", log_path=str(tmp_path / "w.log"))
    assert result.exit_code == 0, result.lines()
    ev = result.records["evaluate"]["report"]
    assert "rmse" in ev["metrics"]["challenger"]["recent"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    first_version = result.records["deploy"]["report"]["version"]
    assert reg.get_alias("champion").version == first_version
    nxt = run_cycle(cfg, windows[1], engine="direct")
    assert nxt.exit_code == 0, nxt.lines()
    report = nxt.records["evaluate"]["report"]
    assert report["champion"] == first_version
    assert report["comparison"]["metric"] == "rmse"
    assert report["comparison"]["greater_is_better"] is False


def test_an_empty_window_is_no_new_data_under_kfp_local(tmp_path: Path) -> None:
    """No rows in the window: exit 0, every later step skipped, each with its HTML report."""
    cfg = load_config(generate_loans(tmp_path, windows=2, rows_per_window=200, drift_window=1))
    result = run_cycle(cfg, "9", engine="kfp-local", log_path=str(tmp_path / "w9.log"))

    assert result.exit_code == 0, result.lines()
    assert "no new data" in result.records["ingest"]["summary"]
    for step in ("label", "train", "evaluate"):
        assert result.records[step]["status"] == "skipped", (step, result.lines())
    assert not result.blessed and "deploy" not in result.records  # the blessed gate held
    assert Registry(open_storage(cfg.storage_root), cfg.name).versions() == []
    (kfp_run,) = _kfp_runs(cfg)
    for step in ("ingest", "label", "train", "evaluate"):
        assert "no new data" in (kfp_run / step / "html").read_text(encoding="utf-8"), step
