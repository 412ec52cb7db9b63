"""Compile-and-inspect the cluster pipeline: image, resources, retries and the platform spec.

The cluster variant carries a second YAML document, the kfp-kubernetes platform spec, with the
pod settings KFP applies to each step. KFP v2 has no per-step service account (the account is
a run setting): `tests/manifests/test_submit.py` checks that runs are started with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_spec import (
    EXPECTED_BACKOFF,
    EXPECTED_POLICY,
    all_tasks,
    compiled_policy,
    retry_backoffs,
)
from required import require

require("kfp", "the pipeline is compiled with the KFP SDK (extra 'kfp')")
require("kfp.kubernetes", "the cluster settings are compiled by kfp-kubernetes (extra 'kfp')")

# After `require`: these import kfp.
from kfp import components  # noqa: E402
from retrain_pipelines.retrain_pipeline import (  # noqa: E402
    DEPLOYER_TOKEN_SECRET,
    PIPELINE_SERVICE_ACCOUNT,
    ClusterOptions,
    compile_pipeline,
    pinned_image,
)

IMAGE = "registry.example.com/retrain/retrain:9.9.9"
DIGEST = "sha256:" + "0123456789abcdef" * 4
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
GIT_SECRET = ("retrain-gitops-credentials", "/var/run/secrets/retrain/git")
OPTIONS = ClusterOptions(
    pvc=("retrain-store", "/var/lib/retrain"),
    secret_volumes={"deploy": (GIT_SECRET,)},
    deployer_token_secret=DEPLOYER_TOKEN_SECRET,
    image_pull_secrets=("registry-credentials",),
)
#: Resource quantities as the compiler writes them: `Policy` field -> executor resources key.
_QUANTITY_KEYS = {
    "cpu_request": "resourceCpuRequest",
    "cpu_limit": "resourceCpuLimit",
    "memory_request": "resourceMemoryRequest",
    "memory_limit": "resourceMemoryLimit",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    path = compile_pipeline(
        tmp_path_factory.mktemp("c") / "p.yaml", IMAGE, cluster=OPTIONS, image_digest=DIGEST
    )
    # The two-document file still loads with the SDK (what `kfp pipeline create` accepts).
    assert components.load_component_from_file(str(path)).name == "retrain"
    docs = list(yaml.safe_load_all(Path(path).read_text()))
    assert len(docs) == 2, "the cluster pipeline must carry the kfp-kubernetes platform spec"
    return docs[0], docs[1]


def _executor_of(spec: dict, task: dict) -> str:
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def _k8s(platform: dict) -> dict[str, Any]:
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_task_runs_the_pinned_project_image(compiled: tuple[dict, dict]) -> None:
    spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    steps = {n: t for n, t in all_tasks(spec).items() if n in EXPECTED_POLICY}
    assert set(steps) == set(EXPECTED_POLICY)
    assert "resolve" in steps, "the first task resolves scheduled runs' 'auto' ids"
    for name, task in steps.items():
        image = executors[_executor_of(spec, task)]["container"]["image"]
        assert image == f"{IMAGE}@{DIGEST}", name


def test_every_task_compiles_to_the_expected_policy(compiled: tuple[dict, dict]) -> None:
    # The cluster settings change nothing of the policy table (tests/pipeline_spec.py).
    spec, _ = compiled
    assert compiled_policy(spec) == EXPECTED_POLICY
    assert retry_backoffs(spec) == {
        step: EXPECTED_BACKOFF for step, policy in EXPECTED_POLICY.items() if policy.retries
    }


def test_resources_match_the_step_policy(compiled: tuple[dict, dict]) -> None:
    spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    for name, task in all_tasks(spec).items():
        if name not in EXPECTED_POLICY:
            continue
        res = executors[_executor_of(spec, task)]["container"]["resources"]
        for field, key in _QUANTITY_KEYS.items():
            assert res[key] == getattr(EXPECTED_POLICY[name], field), (name, key)


def test_retries_only_on_steps_safe_to_retry(compiled: tuple[dict, dict]) -> None:
    spec, _ = compiled
    tasks = all_tasks(spec)
    for name, policy in EXPECTED_POLICY.items():
        retry = tasks[name].get("retryPolicy")
        if policy.retries:
            assert retry == {
                "backoffDuration": "0s",
                "backoffFactor": 2.0,
                "backoffMaxDuration": "3600s",
                "maxRetryCount": policy.retries,
            }, name
        else:
            assert retry is None, f"{name} is deterministic: a retry fails the same way"


def test_every_step_runs_as_the_image_user_with_scratch_and_labels(
    compiled: tuple[dict, dict],
) -> None:
    spec, platform = compiled
    k8s = _k8s(platform)
    for name, task in all_tasks(spec).items():
        if name not in EXPECTED_POLICY:
            continue
        cfg = k8s[_executor_of(spec, task)]
        assert cfg["securityContext"] == {
            "runAsUser": "10001",
            "runAsGroup": "10001",
            "runAsNonRoot": True,
        }, name
        assert cfg["emptyDirMounts"] == [
            {"mountPath": "/tmp", "sizeLimit": "2Gi", "volumeName": "tmp"}
        ], name
        assert cfg["podMetadata"]["labels"] == {
            "app.kubernetes.io/part-of": "retrain",
            "app.kubernetes.io/component": "pipeline-step",
            "retrain.dev/step": name,
        }
        assert cfg["activeDeadlineSeconds"] == str(OPTIONS.timeout_seconds)
        assert [(m["constant"], m["mountPath"]) for m in cfg["pvcMount"]] == [OPTIONS.pvc]
        assert [s["secretName"] for s in cfg["imagePullSecret"]] == ["registry-credentials"]


def test_resolve_runs_with_the_store_but_no_secrets(compiled: tuple[dict, dict]) -> None:
    # It writes its run record to the store (the dev overlay's PVC) and needs nothing else.
    spec, platform = compiled
    cfg = _k8s(platform)[_executor_of(spec, all_tasks(spec)["resolve"])]
    assert [(m["constant"], m["mountPath"]) for m in cfg["pvcMount"]] == [OPTIONS.pvc]
    assert "secretAsVolume" not in cfg
    res = spec["deploymentSpec"]["executors"]["exec-resolve"]["container"]["resources"]
    assert (res["resourceCpuRequest"], res["resourceMemoryRequest"]) == ("100m", "256Mi")


def test_the_exit_task_releases_with_the_store_small_and_uncached(
    compiled: tuple[dict, dict],
) -> None:
    # It reads and compare-and-swaps the lease in the store, after every other task.
    spec, platform = compiled
    release = spec["root"]["dag"]["tasks"]["release"]
    assert release["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert release["cachingOptions"].get("enableCache", False) is False
    cfg = _k8s(platform)[_executor_of(spec, release)]
    assert [(m["constant"], m["mountPath"]) for m in cfg["pvcMount"]] == [OPTIONS.pvc]
    assert "secretAsVolume" not in cfg
    res = spec["deploymentSpec"]["executors"]["exec-release"]["container"]["resources"]
    assert (res["resourceCpuRequest"], res["resourceMemoryRequest"]) == ("100m", "128Mi")


def test_only_the_deploy_step_gets_the_deployer_token_and_its_secret(
    compiled: tuple[dict, dict],
) -> None:
    spec, platform = compiled
    k8s = _k8s(platform)
    for name, task in all_tasks(spec).items():
        if name not in EXPECTED_POLICY:
            continue
        mounts = {
            (s["secretName"], s["mountPath"])
            for s in k8s[_executor_of(spec, task)].get("secretAsVolume", [])
        }
        if name == "deploy":
            assert mounts == {(DEPLOYER_TOKEN_SECRET, SA_TOKEN_DIR), GIT_SECRET}
        else:
            assert mounts == set(), f"{name} must not see the deployer's token or git secrets"


def test_without_cluster_options_there_is_no_platform_spec(tmp_path: Path) -> None:
    path = compile_pipeline(tmp_path / "p.yaml", IMAGE)
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 1
    assert "platforms" not in path.read_text()


def test_gitops_mode_mounts_no_token(tmp_path: Path) -> None:
    path = compile_pipeline(tmp_path / "p.yaml", IMAGE, cluster=ClusterOptions())
    assert DEPLOYER_TOKEN_SECRET not in path.read_text()
    assert SA_TOKEN_DIR not in path.read_text()


def test_the_run_service_account_is_the_manifests_pipeline_runner() -> None:
    sa_file = Path(__file__).parents[2] / "manifests" / "base" / "serviceaccounts.yaml"
    accounts = {d["metadata"]["name"] for d in yaml.safe_load_all(sa_file.read_text()) if d}
    assert PIPELINE_SERVICE_ACCOUNT in accounts


@pytest.mark.parametrize(
    ("image", "digest", "expected"),
    [
        ("r.io/a/b:1.2.3", None, "r.io/a/b:1.2.3"),
        ("r.io/a/b:1.2.3", DIGEST, f"r.io/a/b:1.2.3@{DIGEST}"),
        (f"r.io/a/b:1.2.3@{DIGEST}", DIGEST, f"r.io/a/b:1.2.3@{DIGEST}"),
        ("localhost:5000/b:1", None, "localhost:5000/b:1"),
    ],
)
def test_pinned_image(image: str, digest: str | None, expected: str) -> None:
    assert pinned_image(image, digest) == expected


@pytest.mark.parametrize(
    ("image", "digest"),
    [
        ("r.io/a/b", None),  # no tag means latest
        ("r.io/a/b:latest", None),
        ("localhost:5000/b", None),  # the port is not a tag
        ("r.io/a/b:1", "sha256:abc"),
        ("r.io/a/b:1", "md5:" + "0" * 64),
        (f"r.io/a/b:1@{DIGEST}", "sha256:" + "f" * 64),
    ],
)
def test_pinned_image_refuses(image: str, digest: str | None) -> None:
    with pytest.raises(ValueError):
        pinned_image(image, digest)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"run_as_user": 0},
        {"timeout_seconds": 5},
        {"secret_volumes": {"nonexistent-step": (("s", "/x"),)}},
        {"secret_volumes": {"deploy": (("s", "/tmp"),)}},
        {"secret_volumes": {"deploy": (("s", "relative/path"),)}},
        {"pvc": ("claim", "/")},
    ],
)
def test_cluster_options_refuse_unsafe_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ClusterOptions(**kwargs)
