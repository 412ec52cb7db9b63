"""GitOps applier against real git repositories (and `kubectl kustomize` when present)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import retrain.deploy.gitops as gitops_module
from deploy_support import V1, V2, make_cfg
from retrain.config import Config
from retrain.deploy import DeploymentState, GitOpsApplier, SeldonBackend, to_yaml
from retrain.errors import ValidationError

pytestmark = pytest.mark.integration

OBJ_PATH = "deployments/models/fraud-model.yaml"
KUST_PATH = "deployments/models/kustomization.yaml"
KUSTOMIZATION = (
    "apiVersion: kustomize.config.k8s.io/v1beta1\n"
    "kind: Kustomization\n"
    "resources:\n"
    "- fraud-model.yaml\n"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    # Deliberately absent: the applier must create and initialise it.
    return tmp_path / "gitops"


@pytest.fixture
def cfg(repo: Path) -> Config:
    return make_cfg(
        storage_root=str(repo.parent / "store"),
        gitops_repo=str(repo),
        gitops_path="deployments",
    )


def render(cfg: Config, state: DeploymentState) -> dict[str, Any]:
    return SeldonBackend().render(state, cfg)


def single(cfg: Config) -> dict[str, Any]:
    return render(cfg, DeploymentState.single("fraud-model", "models", V1))


def canary(cfg: Config) -> dict[str, Any]:
    return render(cfg, DeploymentState.with_canary("fraud-model", "models", V1, V2, 10))


def git(repo: Path, *args: str) -> str:
    # Identity on the command line: the test machine has no global git config.
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


def changed_lines(repo: Path, rev_range: str, path: str) -> tuple[list[str], list[str]]:
    diff = git(repo, "diff", "--unified=0", rev_range, "--", path).splitlines()
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    return removed, added


def test_first_apply_creates_the_repo_and_commits(repo: Path, cfg: Config) -> None:
    obj = single(cfg)
    result = GitOpsApplier.from_config(cfg).apply(obj, cfg)

    assert result.changed is True
    assert result.ref == git(repo, "rev-parse", "HEAD").strip()
    assert result.detail == f"committed {result.ref[:12]}: {OBJ_PATH}"
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert commit_count(repo) == 1
    assert git(repo, "show", "--format=", "--name-only", "HEAD").split() == [OBJ_PATH, KUST_PATH]
    # The commit holds exactly the canonical text, and the tree is clean afterwards.
    assert git(repo, "show", f"HEAD:{OBJ_PATH}") == to_yaml(obj)
    assert git(repo, "show", f"HEAD:{KUST_PATH}") == KUSTOMIZATION
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "retrain <retrain@localhost>"
    assert git(repo, "log", "-1", "--format=%B") == (
        "deploy models/fraud-model: champion 20240101-abc 100%\n\n"
        "SeldonDeployment models/fraud-model\n"
        "champion: 20240101-abc (100%) gs://bucket/models/fraud/20240101-abc\n\n"
    )


def test_reapplying_the_same_object_makes_no_commit(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    first = applier.apply(single(cfg), cfg)
    again = applier.apply(single(cfg), cfg)

    assert again.changed is False
    assert again.ref == first.ref
    assert again.detail == f"{OBJ_PATH} unchanged at {first.ref[:12]}"
    assert commit_count(repo) == 1


def test_canary_commit_touches_only_the_expected_lines(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    result = applier.apply(canary(cfg), cfg, message="start canary 20240108-def")

    assert result.changed is True
    assert commit_count(repo) == 2
    assert git(repo, "show", "--format=", "--name-only", "HEAD").split() == [OBJ_PATH]
    removed, added = changed_lines(repo, "HEAD~1..HEAD", OBJ_PATH)
    # Only the champion's share changes; everything else is the new predictor and its notes.
    assert removed == ["    retrain.dev/champion-traffic: '100'", "    traffic: 100"]
    assert "    retrain.dev/champion-traffic: '90'" in added
    assert "    traffic: 90" in added
    for line in (
        "    retrain.dev/canary-version: 20240108-def",
        "    retrain.dev/canary-model-uri: gs://bucket/models/fraud/20240108-def",
        "    retrain.dev/canary-traffic: '10'",
        "    name: canary",
        "            value: gs://bucket/models/fraud/20240108-def",
        "    traffic: 10",
    ):
        assert line in added
    assert not any("20240101-abc" in line for line in added)
    assert git(repo, "log", "-1", "--format=%B") == (
        "start canary 20240108-def\n\n"
        "SeldonDeployment models/fraud-model\n"
        "champion: 20240101-abc (90%) gs://bucket/models/fraud/20240101-abc\n"
        "canary: 20240108-def (10%) gs://bucket/models/fraud/20240108-def\n\n"
    )


def test_promotion_removes_the_old_predictor(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(canary(cfg), cfg)
    applier.apply(render(cfg, DeploymentState.single("fraud-model", "models", V2)), cfg)

    committed = yaml.safe_load(git(repo, "show", f"HEAD:{OBJ_PATH}"))
    predictors = committed["spec"]["predictors"]
    assert [(p["name"], p["traffic"]) for p in predictors] == [("champion", 100)]
    assert predictors[0]["labels"]["retrain.dev/model-version"] == "20240108-def"


def test_hand_edited_file_is_refused(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    target = repo / OBJ_PATH
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 5"))

    with pytest.raises(ValidationError) as exc:
        applier.apply(canary(cfg), cfg)
    assert exc.value.problems == [f"{OBJ_PATH}: has uncommitted changes (edited by hand?)"]
    assert commit_count(repo) == 1
    assert "replicas: 5" in target.read_text()


def test_hand_edited_kustomization_is_refused(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    (repo / KUST_PATH).write_text(KUSTOMIZATION + "- other.yaml\n")

    with pytest.raises(ValidationError) as exc:
        applier.apply(canary(cfg), cfg)
    assert exc.value.problems == [f"{KUST_PATH}: has uncommitted changes (edited by hand?)"]


def test_an_interrupted_apply_is_completed(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    # As if an earlier apply wrote the file and stopped before committing.
    (repo / OBJ_PATH).write_text(to_yaml(canary(cfg)))

    result = applier.apply(canary(cfg), cfg)
    assert result.changed is True
    assert git(repo, "show", f"HEAD:{OBJ_PATH}") == to_yaml(canary(cfg))


def test_other_staged_work_stays_out_of_our_commit(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    (repo / "notes.md").write_text("work in progress\n")
    git(repo, "add", "notes.md")

    applier.apply(canary(cfg), cfg)
    assert git(repo, "show", "--format=", "--name-only", "HEAD").split() == [OBJ_PATH]
    assert git(repo, "status", "--porcelain") == "A  notes.md\n"


def test_existing_kustomization_entries_are_kept(repo: Path, cfg: Config) -> None:
    folder = repo / "deployments" / "models"
    folder.mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "commonLabels:\n  team: risk\nresources:\n- zz-service.yaml\n"
    )
    (folder / "zz-service.yaml").write_text("apiVersion: v1\nkind: Namespace\n")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "seed")

    GitOpsApplier.from_config(cfg).apply(single(cfg), cfg)
    assert yaml.safe_load(git(repo, "show", f"HEAD:{KUST_PATH}")) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "commonLabels": {"team": "risk"},
        "resources": ["fraud-model.yaml", "zz-service.yaml"],
    }


def test_push_to_a_configured_remote(repo: Path, cfg: Config, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(remote)], check=True)
    applier = GitOpsApplier(repo, "deployments", push=True)

    with pytest.raises(ValidationError, match="no remote 'origin'"):
        applier.apply(single(cfg), cfg)
    git(repo, "remote", "add", "origin", str(remote))
    result = applier.apply(single(cfg), cfg)

    assert result.detail.endswith(", pushed to origin")
    assert git(remote, "rev-parse", "main").strip() == result.ref


def test_object_for_another_deployment_is_refused(repo: Path, cfg: Config) -> None:
    obj = single(cfg)
    obj["metadata"]["name"] = "other-model"
    with pytest.raises(ValidationError, match="not this config's deployment models/fraud-model"):
        GitOpsApplier.from_config(cfg).apply(obj, cfg)
    assert not repo.exists()


def test_paths_cannot_leave_the_repository(repo: Path, cfg: Config) -> None:
    obj = single(cfg)
    obj["metadata"]["name"] = "../escape"
    with pytest.raises(ValidationError) as exc:
        GitOpsApplier.from_config(cfg).apply(obj, cfg)
    assert exc.value.problems == ["metadata.name '../escape': must be a Kubernetes name"]
    with pytest.raises(
        ValidationError,
        match=r"gitops_path '\.\./outside' must be a relative path inside the repository",
    ):
        GitOpsApplier(repo, "../outside").apply(single(cfg), cfg)
    assert not repo.exists()


def kubectl() -> str | None:
    found = shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("kubectl is required in CI for the kustomize rendering test")
    return found


def test_kubectl_kustomize_renders_the_directory(repo: Path, cfg: Config) -> None:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl not installed")
    obj = canary(cfg)
    GitOpsApplier.from_config(cfg).apply(obj, cfg)

    out = subprocess.run(
        [binary, "kustomize", str(repo / "deployments" / "models")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert list(yaml.safe_load_all(out)) == [obj]


class GitCalls:
    """Counts the git commands the applier runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commands: list[str] = []
        run = gitops_module._Git.run

        def counted(git: Any, *args: str, check: bool = True) -> Any:
            self.commands.append(args[0])
            return run(git, *args, check=check)

        monkeypatch.setattr(gitops_module._Git, "run", counted)


def test_an_unchanged_tree_is_checked_with_one_git_call(
    repo: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = GitOpsApplier.from_config(cfg).apply(single(cfg), cfg)
    calls = GitCalls(monkeypatch)
    again = GitOpsApplier.from_config(cfg).apply(single(cfg), cfg)  # a new applier each tick
    assert calls.commands == ["rev-parse"]
    assert (again.changed, again.ref) == (False, first.ref)
    assert again.detail == f"{OBJ_PATH} unchanged at {first.ref[:12]}"
    calls.commands.clear()
    moved = GitOpsApplier.from_config(cfg).apply(canary(cfg), cfg)  # another object: in full
    assert moved.changed is True and "commit" in calls.commands
    assert commit_count(repo) == 2


def test_a_commit_by_someone_else_is_seen_and_undone(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    target = repo / OBJ_PATH
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 5"))
    git(repo, "commit", "--quiet", "-am", "scale by hand")

    result = applier.apply(single(cfg), cfg)
    assert result.changed is True
    assert git(repo, "show", f"HEAD:{OBJ_PATH}") == to_yaml(single(cfg))
    assert commit_count(repo) == 3


def test_a_reset_to_an_older_commit_is_seen(repo: Path, cfg: Config) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    applier.apply(canary(cfg), cfg)
    git(repo, "reset", "--quiet", "--hard", "HEAD~1")  # someone rolled the repo back

    result = applier.apply(canary(cfg), cfg)
    assert result.changed is True
    assert git(repo, "show", f"HEAD:{OBJ_PATH}") == to_yaml(canary(cfg))


@pytest.mark.parametrize("stage", [False, True])
def test_an_edit_after_an_unchanged_apply_is_still_refused(
    repo: Path, cfg: Config, stage: bool
) -> None:
    applier = GitOpsApplier.from_config(cfg)
    applier.apply(single(cfg), cfg)
    applier.apply(single(cfg), cfg)
    target = repo / OBJ_PATH
    # Same size, written at once: only the bytes (or the index) tell.
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 5"))
    if stage:
        git(repo, "add", OBJ_PATH)

    with pytest.raises(ValidationError) as exc:
        applier.apply(single(cfg), cfg)
    assert exc.value.problems == [f"{OBJ_PATH}: has uncommitted changes (edited by hand?)"]
    assert "replicas: 5" in target.read_text()
