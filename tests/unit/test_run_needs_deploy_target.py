"""`retrain run` with no deploy target (GitOps mode, no repository) is refused before any
step: the deploy step would otherwise fail only after ingest, labels and training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from required import require


def test_a_run_without_a_gitops_repo_is_refused_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.cli import main
    from retrain.config import load_config
    from retrain.data.demo import generate_loans

    path = generate_loans(tmp_path, windows=3, rows_per_window=200, drift_window=2)
    raw = yaml.safe_load(path.read_text())
    raw["deploy"].pop("gitops_repo")  # as a config relying on the defaults leaves it
    path.write_text(yaml.safe_dump(raw))
    args = ["run", "--config", str(path), "--window", "0", "--as-of", "2", "--engine", "direct"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "deploy.gitops_repo is required when deploy.mode is 'gitops'" in err
    store = Path(load_config(path).storage_root)
    assert not (store / "runs").exists()  # no step ran
    raw["deploy"]["gitops_repo"] = "gitops"  # the fix the message names lets it run
    path.write_text(yaml.safe_dump(raw))
    assert main(args) == 0


def test_a_local_launch_without_a_gitops_repo_fails_before_any_step(tmp_path: Path) -> None:
    # The monitor's and `retrain trigger`'s local launches: the launch fails at once, naming
    # the fix, and no step runs (nothing trained, nothing made champion).
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.config import load_config
    from retrain.data.demo import generate_loans
    from retrain.launchers import LocalLauncher

    path = generate_loans(tmp_path, windows=3, rows_per_window=200, drift_window=2)
    raw = yaml.safe_load(path.read_text())
    raw["deploy"].pop("gitops_repo")
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    result = LocalLauncher(cfg, engine="direct").launch("0", "w0-test", None)  # type: ignore[arg-type]
    assert result.status == "failed"
    assert "deploy.gitops_repo is required when deploy.mode is 'gitops'" in result.detail
    assert not (Path(cfg.storage_root) / "runs").exists()
