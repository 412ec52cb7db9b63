"""Every compiled pipeline parses into KFP's own protobuf messages, unknown fields rejected.

YAML that loads is not yet a spec the backend accepts: the KFP API server reads the pipeline as
`PipelineSpec` (its `deploymentSpec` as `PipelineDeploymentConfig`) and the kfp-kubernetes
platform spec, the second YAML document of a cluster pipeline, as `PlatformSpec` with one
`KubernetesExecutorConfig` per executor. A misspelt or misplaced field is an error there, so it
is one here (`ignore_unknown_fields=False`), and each message must convert back to exactly the
YAML it came from (nothing dropped, nothing renamed).

The variants are those the code compiles: the `kfp.local` one (`build_pipeline(local=True)`,
what `retrain run` executes), `retrain compile`'s, the cluster one with every Kubernetes
setting, and the pipeline.yaml each kustomization under manifests/ ships.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from required import require

require("kfp", "the pipeline is compiled with the KFP SDK (extra 'kfp')")
require("kfp.kubernetes", "the platform spec's messages come with kfp-kubernetes (extra 'kfp')")

# After `require`: these import kfp.
from google.protobuf import json_format  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from kfp import compiler  # noqa: E402
from kfp.kubernetes import kubernetes_executor_config_pb2  # noqa: E402
from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: E402
from retrain_pipelines import build_pipeline  # noqa: E402
from retrain_pipelines.retrain_pipeline import (  # noqa: E402
    DEPLOYER_TOKEN_SECRET,
    ClusterOptions,
    compile_pipeline,
)

MANIFESTS = Path(__file__).parents[2] / "manifests"
IMAGE = "registry.example.com/retrain/retrain:9.9.9"
DIGEST = "sha256:" + "0123456789abcdef" * 4
#: Every Kubernetes setting the pipeline can carry, so that each one is parsed.
OPTIONS = ClusterOptions(
    pvc=("retrain-store", "/var/lib/retrain"),
    secret_volumes={"deploy": (("retrain-gitops-credentials", "/var/run/secrets/retrain/git"),)},
    deployer_token_secret=DEPLOYER_TOKEN_SECRET,
    image_pull_secrets=("registry-credentials",),
)
SHIPPED = sorted(str(p.parent.relative_to(MANIFESTS)) for p in MANIFESTS.glob("**/pipeline.yaml"))
#: variant -> whether it is compiled for a cluster (and so carries the platform spec).
VARIANTS = {
    "local": False,
    "compile": False,
    "cluster": True,
    **{f"manifests/{target}": True for target in SHIPPED},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """variant -> the YAML documents of its pipeline file."""
    tmp = tmp_path_factory.mktemp("protos")
    local = tmp / "local.yaml"
    compiler.Compiler().compile(build_pipeline(local=True), str(local))
    paths = {
        "local": local,
        "compile": compile_pipeline(tmp / "compile.yaml", IMAGE),
        "cluster": compile_pipeline(
            tmp / "cluster.yaml", IMAGE, cluster=OPTIONS, image_digest=DIGEST
        ),
        **{f"manifests/{t}": MANIFESTS / t / "pipeline.yaml" for t in SHIPPED},
    }
    return {
        name: [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        for name, path in paths.items()
    }


def parse_strictly(doc: dict[str, Any], message: Message) -> Message:
    """`doc` parsed into `message`, unknown fields rejected; it must convert back unchanged."""
    parsed = json_format.ParseDict(doc, message, ignore_unknown_fields=False)
    assert json_format.MessageToDict(parsed) == doc, f"{type(message).__name__} changed the doc"
    return parsed


def test_every_kustomization_ships_a_pipeline() -> None:
    assert SHIPPED == ["base", "overlays/dev", "overlays/gcp"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_pipeline_spec_parses_strictly(
    compiled: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    docs = compiled[variant]
    assert len(docs) == (2 if VARIANTS[variant] else 1)
    spec = parse_strictly(docs[0], pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == "retrain"
    # deploymentSpec is a free-form Struct in PipelineSpec: parse it as the backend does.
    deployment = parse_strictly(
        docs[0]["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig()
    )
    labels = {c["executorLabel"] for c in docs[0]["components"].values() if "executorLabel" in c}
    assert set(deployment.executors) == labels and len(labels) == 8
    assert all(e.container.image for e in deployment.executors.values())


@pytest.mark.parametrize("variant", [v for v, cluster in VARIANTS.items() if cluster])
def test_every_platform_executor_parses_strictly(
    compiled: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    spec, platform = compiled[variant]
    parse_strictly(platform, pipeline_spec_pb2.PlatformSpec())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # Executors are free-form Structs in PlatformSpec: each is a KubernetesExecutorConfig.
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    for name, executor in executors.items():
        config = parse_strictly(executor, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
        assert isinstance(config, kubernetes_executor_config_pb2.KubernetesExecutorConfig)
        assert config.security_context.run_as_non_root, name
        assert [m.mount_path for m in config.empty_dir_mounts] == ["/tmp"], name


def test_a_misspelt_field_is_rejected(compiled: dict[str, list[dict[str, Any]]]) -> None:
    # The checks above have teeth: a typo that YAML loads (and Kubernetes would drop) fails.
    spec, platform = copy.deepcopy(compiled["cluster"])
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    executor["securityContex"] = executor.pop("securityContext")
    with pytest.raises(json_format.ParseError, match="securityContex"):
        parse_strictly(executor, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
    spec["root"]["dag"]["taks"] = spec["root"]["dag"].pop("tasks")
    with pytest.raises(json_format.ParseError, match="taks"):
        parse_strictly(spec, pipeline_spec_pb2.PipelineSpec())
