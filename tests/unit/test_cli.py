"""The `retrain` command line: exit codes, compile, status, and the direct engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from required import require
from retrain.cli import main
from retrain.data.demo import generate_loans


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "compile", "status", "demo", "generate"):
        assert command in out


def test_compile_writes_a_pipeline_with_the_given_image(tmp_path: Path) -> None:
    require("kfp", "compile uses the KFP SDK (extra 'kfp')")
    out = tmp_path / "p.yaml"
    assert main(["compile", "--output", str(out), "--image", "r.example/retrain:1.2.3"]) == 0
    spec = yaml.safe_load(out.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"r.example/retrain:1.2.3"}


def test_unknown_config_key_exits_2_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = generate_loans(tmp_path, windows=2, rows_per_window=200, drift_window=1)
    raw = yaml.safe_load(cfg.read_text())
    raw["training"] = {"historical_shar": 0.7}
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["status", "--config", str(cfg)]) == 2
    assert "training.historical_shar: unknown key" in capsys.readouterr().err


@pytest.mark.integration  # a whole cycle: trains, then deploys through git
def test_run_then_status_direct_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = generate_loans(tmp_path, windows=3, rows_per_window=400, drift_window=2, seed=11)
    assert main(["run", "--config", str(cfg), "--window", "0", "--engine", "direct"]) == 0
    out = capsys.readouterr().out
    for step in ("ingest", "label", "train", "evaluate", "deploy"):
        assert f"  {step:<9} ok" in out
    assert "=> deployed" in out
    assert main(["status", "--config", str(cfg), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["aliases"]["champion"] == status["versions"][0]
    assert status["aliases"]["canary"] is None
    kinds = [e["kind"] for e in status["events"]]
    assert kinds == ["registered", "alias_moved", "deployed"]
    assert status["events"][0]["blessed_by"] == "gates"  # the first model: no refresh
    assert main(["status", "--config", str(cfg)]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if "registered  " in line]
    assert len(shown) == 1 and "blessed_by=gates" in shown[0]


@pytest.mark.integration  # a whole cycle: trains, then deploys through git
def test_rerunning_a_window_trains_the_same_version_and_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same data, same seed: the same content-addressed version, judged no better than itself."""
    cfg = generate_loans(tmp_path, windows=3, rows_per_window=400, drift_window=2, seed=11)
    args = ["run", "--config", str(cfg), "--window", "0", "--engine", "direct"]
    assert main(args) == 0
    assert main(args) == 0
    out = capsys.readouterr().out
    # About 80 evaluation rows and no earlier window to pool: the copy shows no gain, and these
    # rows could not have shown one, so the verdict is undecided rather than rejected.
    assert "UNDECIDED" in out and "not enough evaluation rows" in out
    assert main(["status", "--config", str(cfg), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert len(status["versions"]) == 1
    assert [e["kind"] for e in status["events"]].count("deployed") == 1


@pytest.mark.integration  # deploys a champion: commits to a real git repository
def test_deploy_step_rerun_converges_without_new_writes(tmp_path: Path) -> None:
    """A deploy re-run (KFP retry after a crash) registers nothing new and commits nothing."""
    from retrain import steps
    from retrain.config import load_config

    cfg = load_config(generate_loans(tmp_path, windows=3, rows_per_window=400, drift_window=2))
    text, run, t = cfg.to_yaml(), "r1", tmp_path / "run"
    steps.ingest(text, "0", run, str(t / "d.parquet"))
    steps.label(text, "0", run, str(t / "d.parquet"), str(t / "l.parquet"))
    steps.train(text, "0", run, str(t / "l.parquet"), str(t / "model"), str(t / "hold"))
    first = steps.deploy(text, run, str(t / "model"))
    second = steps.deploy(text, run, str(t / "model"))
    assert first.details["changed"] is True
    assert second.details["changed"] is False
    assert second.commit == first.commit
    from retrain.registry import Registry
    from retrain.storage import open_storage

    events = Registry(open_storage(cfg.storage_root), cfg.name).events()
    assert [e["kind"] for e in events] == ["registered", "alias_moved", "deployed"]
    assert "blessed_by" not in events[0]  # no evaluate step ran: nothing to say
