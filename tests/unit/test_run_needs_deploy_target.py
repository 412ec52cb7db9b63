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


def _cluster_gitops_config(tmp_path: Path) -> Path:
    """A config meant for the cluster (every location a gs:// URI) in GitOps mode, with
    neither deploy.gitops_repo nor deploy.gitops_remote."""
    path = tmp_path / "loans.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "loans",
                "task": "classification",
                "target": "defaulted",
                "storage_root": "gs://bucket/store",
                "data": {
                    "uri": "gs://bucket/events",
                    "id_column": "id",
                    "time_column": "week",
                    "time_kind": "period",
                    "features": {"salary": "numeric"},
                },
                "labels": {
                    "uri": "gs://bucket/labels",
                    "id_column": "id",
                    "label_column": "defaulted",
                },
                "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
                "deploy": {"mode": "gitops", "deployment_name": "loans"},
            }
        )
    )
    return path


@pytest.mark.parametrize("extra", [["--host", "http://127.0.0.1:9"], ["--dry-run"]])
def test_submit_without_a_gitops_repo_is_refused_before_compiling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    # `retrain submit` refuses as `retrain run` does (exit 2, the same message) before it
    # compiles the pipeline or contacts the host: nothing listens on port 9, so a request
    # would end in exit 75, and --output would be written by a compile.
    require("kfp", "submit compiles the pipeline with the KFP SDK (extra 'kfp')")
    from retrain.cli import main

    path = _cluster_gitops_config(tmp_path)
    out = tmp_path / "build" / "pipeline.yaml"
    argv = ["submit", "--config", str(path), "--window", "7", "--output", str(out), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "deploy.gitops_repo is required when deploy.mode is 'gitops'" in err
    _assert_cluster_hint(err)
    assert not out.exists()
    # The fix the message names lets it through (compiled, not submitted).
    raw = yaml.safe_load(path.read_text())
    raw["deploy"]["gitops_remote"] = "https://git.example.com/org/gitops.git"
    path.write_text(yaml.safe_dump(raw))
    assert main(["submit", "--config", str(path), "--window", "7", "--output", str(out),
                 "--dry-run"]) == 0  # fmt: skip
    assert out.is_file()


def test_a_cluster_launch_without_a_gitops_repo_fails_before_any_request(
    tmp_path: Path,
) -> None:
    # The monitor's and `retrain trigger --launch kfp`'s cluster launches: the launch fails
    # at once, naming the fix; no KFP client is made and no pipeline compiled.
    from retrain.config import load_config
    from retrain.launchers import KfpLauncher

    cfg = load_config(_cluster_gitops_config(tmp_path))
    clients: list[str] = []

    def factory(host: str, namespace: str | None) -> object:
        clients.append(host)
        raise AssertionError("no KFP client should be needed")

    launcher = KfpLauncher(cfg, "http://127.0.0.1:9", client_factory=factory)
    result = launcher.launch("7", "w7-test", None)  # type: ignore[arg-type]
    assert result.status == "failed"
    assert "deploy.gitops_repo is required when deploy.mode is 'gitops'" in result.detail
    _assert_cluster_hint(result.detail)
    assert clients == []


def _assert_cluster_hint(message: str) -> None:
    # A pod has no local "gitops" directory, and `check_cluster_paths` refuses a relative one.
    assert "gitops_repo: gitops" not in message
    assert "deploy.gitops_remote" in message and "absolute path" in message


def test_the_cluster_hint_names_a_remote_and_the_local_one_a_directory(tmp_path: Path) -> None:
    from retrain.config import load_config
    from retrain.deploy import require_deploy_target
    from retrain.errors import ValidationError
    from retrain.submit import check_cluster_paths

    cfg = load_config(_cluster_gitops_config(tmp_path))
    with pytest.raises(ValidationError) as cluster:
        require_deploy_target(cfg, cluster=True)
    _assert_cluster_hint(str(cluster.value))
    with pytest.raises(ValidationError) as local:
        require_deploy_target(cfg)
    assert "gitops_repo: gitops" in str(local.value)
    # The local hint is no fix on a cluster: a relative gitops_repo is refused there.
    with pytest.raises(ValidationError, match="relative"):
        check_cluster_paths({"deploy": {"gitops_repo": "gitops"}}, "loans.yaml")
