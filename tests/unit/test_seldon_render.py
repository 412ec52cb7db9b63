"""Deployment state rules, SeldonDeployment rendering and its schema check."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from deploy_support import IMAGE, V1, V2, make_cfg
from retrain.config import Config
from retrain.deploy import (
    DeploymentState,
    ModelRef,
    PredictorSpec,
    SeldonBackend,
    applier_for,
    backend_for,
    to_yaml,
    validate_seldon,
)
from retrain.errors import ValidationError


@pytest.fixture
def cfg() -> Config:
    return make_cfg()


def problems_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return exc.value.problems


# --- DeploymentState -------------------------------------------------------------------------


def test_single_state_is_champion_at_full_traffic() -> None:
    state = DeploymentState.single("fraud-model", "models", V1)
    assert state.predictors == (PredictorSpec("champion", V1.version, V1.model_uri, 100),)
    assert state.canary is None
    assert state.summary() == "champion 20240101-abc 100%"


def test_with_canary_splits_traffic() -> None:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, 25)
    assert [(p.name, p.version, p.traffic) for p in state.predictors] == [
        ("champion", "20240101-abc", 75),
        ("canary", "20240108-def", 25),
    ]
    assert state.canary == PredictorSpec("canary", V2.version, V2.model_uri, 25)


def test_predictors_are_kept_in_role_order() -> None:
    canary = PredictorSpec("canary", "b", "gs://x/b", 10)
    champion = PredictorSpec("champion", "a", "gs://x/a", 90)
    state = DeploymentState("fraud-model", "models", (canary, champion))
    assert [p.name for p in state.predictors] == ["champion", "canary"]
    assert state == DeploymentState("fraud-model", "models", (champion, canary))


def test_traffic_must_sum_to_100() -> None:
    with pytest.raises(ValidationError) as exc:
        DeploymentState(
            "fraud-model",
            "models",
            (
                PredictorSpec("champion", "a", "gs://x/a", 80),
                PredictorSpec("canary", "b", "gs://x/b", 10),
            ),
        )
    assert problems_of(exc) == ["traffic: must sum to 100, got 90 (champion=80, canary=10)"]


def test_state_reports_every_problem_at_once() -> None:
    p = PredictorSpec("champion", "a", "gs://x/a", 50)
    with pytest.raises(ValidationError) as exc:
        DeploymentState("Bad_Name", "models", (p, p, p))
    problems = problems_of(exc)
    assert problems[0].startswith("name 'Bad_Name': must be a Kubernetes name")
    assert "predictors: expected 1 or 2 (champion and canary), got 3" in problems
    assert "predictors: duplicate names ['champion']" in problems
    assert "traffic: must sum to 100, got 150 (champion=50, champion=50, champion=50)" in problems


def test_a_canary_alone_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        DeploymentState("fraud-model", "models", (PredictorSpec("canary", "b", "gs://x/b", 100),))
    assert problems_of(exc) == ["predictors: a champion is required"]


def test_same_version_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="same version '20240101-abc'"):
        DeploymentState.with_canary("fraud-model", "models", V1, V1, 10)


@pytest.mark.parametrize("traffic", [0, 100, -5, 150, True, 10.0])
def test_with_canary_needs_a_real_split(traffic: Any) -> None:
    with pytest.raises(ValidationError, match="between 1 and 99 percent"):
        DeploymentState.with_canary("fraud-model", "models", V1, V2, traffic)


def test_predictor_with_zero_traffic_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        PredictorSpec("canary", "b", "gs://x/b", 0)
    assert problems_of(exc)[0].startswith("traffic 0: remove the predictor instead")


def test_predictor_reports_every_field() -> None:
    with pytest.raises(ValidationError) as exc:
        PredictorSpec("shadow", "v 1", "", 101)
    problems = problems_of(exc)
    assert len(problems) == 4
    assert problems[0] == "name 'shadow': must be one of champion, canary"
    assert problems[1].startswith("version 'v 1': must be 1-63 letters")
    assert problems[2].startswith("model_uri '': must be a non-empty")
    assert problems[3] == "traffic 101: must be between 1 and 100 percent"


def test_version_longer_than_a_label_value_is_refused() -> None:
    PredictorSpec("champion", "a" * 63, "gs://x/a", 100)
    with pytest.raises(ValidationError, match=r"version 'a{64}'"):
        PredictorSpec("champion", "a" * 64, "gs://x/a", 100)


# --- rendering --------------------------------------------------------------------------------


def expected_predictor(role: str, model: ModelRef, traffic: int) -> dict[str, Any]:
    return {
        "name": role,
        "traffic": traffic,
        "replicas": 1,
        "labels": {"retrain.dev/model-version": model.version, "retrain.dev/role": role},
        "graph": {"name": "model", "type": "MODEL", "endpoint": {"type": "REST"}, "children": []},
        "componentSpecs": [
            {
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "model",
                            "image": IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "MODEL_URI", "value": model.model_uri},
                                {"name": "MODEL_VERSION", "value": model.version},
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "securityContext": {
                                "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                }
            }
        ],
    }


def test_render_single_predictor(cfg: Config) -> None:
    obj = SeldonBackend().render(DeploymentState.single("fraud-model", "models", V1), cfg)
    assert obj == {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {
            "name": "fraud-model",
            "namespace": "models",
            "labels": {
                "app.kubernetes.io/name": "fraud",
                "app.kubernetes.io/managed-by": "retrain",
                "retrain.dev/model-version": "20240101-abc",
            },
            "annotations": {
                "retrain.dev/champion-version": "20240101-abc",
                "retrain.dev/champion-model-uri": "gs://bucket/models/fraud/20240101-abc",
                "retrain.dev/champion-traffic": "100",
                "retrain.dev/task": "classification",
            },
        },
        "spec": {"predictors": [expected_predictor("champion", V1, 100)]},
    }


def test_render_canary(cfg: Config) -> None:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, 10)
    obj = SeldonBackend().render(state, cfg)
    assert obj["spec"]["predictors"] == [
        expected_predictor("champion", V1, 90),
        expected_predictor("canary", V2, 10),
    ]
    # The object-level version label names the champion; the annotations record both roles.
    assert obj["metadata"]["labels"]["retrain.dev/model-version"] == "20240101-abc"
    assert obj["metadata"]["annotations"] == {
        "retrain.dev/champion-version": "20240101-abc",
        "retrain.dev/champion-model-uri": "gs://bucket/models/fraud/20240101-abc",
        "retrain.dev/champion-traffic": "90",
        "retrain.dev/canary-version": "20240108-def",
        "retrain.dev/canary-model-uri": "gs://bucket/models/fraud/20240108-def",
        "retrain.dev/canary-traffic": "10",
        "retrain.dev/task": "classification",
    }


def test_promotion_renders_one_predictor_not_a_zero_split(cfg: Config) -> None:
    promoted = DeploymentState.single("fraud-model", "models", V2)
    predictors = SeldonBackend().render(promoted, cfg)["spec"]["predictors"]
    assert [(p["name"], p["traffic"]) for p in predictors] == [("champion", 100)]
    assert predictors[0]["componentSpecs"][0]["spec"]["containers"][0]["env"][1] == {
        "name": "MODEL_VERSION",
        "value": "20240108-def",
    }


def test_render_uses_configured_resources_and_replicas(cfg: Config) -> None:
    backend = SeldonBackend(resources={"requests": {"cpu": "2", "memory": "1Gi"}}, replicas=3)
    obj = backend.render(DeploymentState.single("fraud-model", "models", V1), cfg)
    pred = obj["spec"]["predictors"][0]
    assert pred["replicas"] == 3
    container = pred["componentSpecs"][0]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"}}


def test_render_refuses_a_state_for_another_deployment(cfg: Config) -> None:
    state = DeploymentState.single("other-model", "models", V1)
    with pytest.raises(ValidationError, match="models/other-model does not match"):
        SeldonBackend().render(state, cfg)


def test_to_yaml_is_deterministic_and_round_trips(cfg: Config) -> None:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, 10)
    first = to_yaml(SeldonBackend().render(state, cfg))
    # Same content built in another key order gives the same text.
    shuffled = json.loads(json.dumps(SeldonBackend().render(state, cfg)))
    shuffled = dict(reversed(list(shuffled.items())))
    assert to_yaml(shuffled) == first
    assert yaml.safe_load(first) == SeldonBackend().render(state, cfg)
    assert first.splitlines()[:3] == [
        "apiVersion: machinelearning.seldon.io/v1",
        "kind: SeldonDeployment",
        "metadata:",
    ]
    # Strings that YAML would read as numbers stay strings.
    assert "    retrain.dev/canary-traffic: '10'" in first.splitlines()


def test_registry_lookup_by_config_names(cfg: Config) -> None:
    assert isinstance(backend_for(cfg), SeldonBackend)
    with pytest.raises(ValidationError, match=r"deploy\.gitops_repo is required"):
        applier_for(cfg)


# --- schema -----------------------------------------------------------------------------------


@pytest.fixture
def rendered(cfg: Config) -> dict[str, Any]:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, 10)
    return SeldonBackend().render(state, cfg)


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    text = resources.files("retrain.deploy").joinpath("schemas/seldondeployment.schema.json")
    schema = json.loads(text.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_rendered_objects_validate(rendered: dict[str, Any]) -> None:
    validate_seldon(rendered)


def invalid(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        validate_seldon(obj)
    assert str(exc.value).startswith("SeldonDeployment 'fraud-model' is invalid")
    return exc.value.problems


def test_traffic_above_100_is_rejected(rendered: dict[str, Any]) -> None:
    rendered["spec"]["predictors"][0]["traffic"] = 120
    assert invalid(rendered) == [
        "$.spec.predictors[0].traffic: 120 is greater than the maximum of 100"
    ]


def test_missing_image_is_rejected(rendered: dict[str, Any]) -> None:
    del rendered["spec"]["predictors"][1]["componentSpecs"][0]["spec"]["containers"][0]["image"]
    assert invalid(rendered) == [
        "$.spec.predictors[1].componentSpecs[0].spec.containers[0]: 'image' is a required property"
    ]


def test_latest_image_is_rejected(rendered: dict[str, Any]) -> None:
    container = rendered["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
    container["image"] = "ghcr.io/example/serving:latest"
    [problem] = invalid(rendered)
    assert problem.startswith("$.spec.predictors[0].componentSpecs[0].spec.containers[0].image:")


def test_unknown_field_is_rejected(rendered: dict[str, Any]) -> None:
    rendered["spec"]["predictors"][0]["trafic"] = 10
    assert invalid(rendered) == [
        "$.spec.predictors[0]: Additional properties are not allowed ('trafic' was unexpected)"
    ]


def test_bad_graph_type_and_endpoint_are_rejected(rendered: dict[str, Any]) -> None:
    graph = rendered["spec"]["predictors"][0]["graph"]
    graph["type"] = "MODELL"
    graph["endpoint"]["type"] = "HTTP"
    problems = invalid(rendered)
    assert [p.split(":")[0] for p in problems] == [
        "$.spec.predictors[0].graph.endpoint.type",
        "$.spec.predictors[0].graph.type",
    ]


def test_all_schema_problems_are_reported_together(rendered: dict[str, Any]) -> None:
    rendered["kind"] = "Deployment"
    rendered["spec"]["predictors"][1]["traffic"] = -1
    assert [p.split(":")[0] for p in invalid(rendered)] == [
        "$.kind",
        "$.spec.predictors[1].traffic",
    ]


def test_traffic_sum_is_checked(rendered: dict[str, Any]) -> None:
    rendered["spec"]["predictors"][0]["traffic"] = 80
    assert invalid(rendered) == ["$.spec.predictors: traffic must sum to 100, got 90"]


def test_zero_traffic_beside_another_predictor_is_rejected(rendered: dict[str, Any]) -> None:
    rendered["spec"]["predictors"][0]["traffic"] = 100
    rendered["spec"]["predictors"][1]["traffic"] = 0
    [problem] = invalid(rendered)
    assert problem.startswith("$.spec.predictors[1].traffic: 0 is not allowed")


def test_duplicate_predictor_names_are_rejected(rendered: dict[str, Any]) -> None:
    rendered["spec"]["predictors"][1]["name"] = "champion"
    assert invalid(rendered) == ["$.spec.predictors[1].name: duplicate predictor name 'champion'"]


def test_graph_node_needs_a_container_of_its_name(rendered: dict[str, Any]) -> None:
    child = copy.deepcopy(rendered["spec"]["predictors"][0]["graph"])
    child["name"] = "scaler"
    rendered["spec"]["predictors"][0]["graph"]["children"] = [child]
    assert invalid(rendered) == [
        "$.spec.predictors[0].graph.children[0].name: graph node 'scaler' has no container "
        "of that name in componentSpecs (have ['model'])"
    ]
