"""KServe InferenceService rendering and its schema check."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deploy_support import IMAGE, V1, V2, make_cfg
from retrain.config import Config
from retrain.deploy import BACKENDS, DeploymentState, KServeBackend, ModelRef, validate_kserve
from retrain.deploy.kubernetes import RESOURCES, required_rbac
from retrain.errors import ValidationError


@pytest.fixture
def cfg() -> Config:
    return make_cfg()


def single(cfg: Config, model: ModelRef = V1) -> dict[str, Any]:
    return KServeBackend().render(DeploymentState.single("fraud-model", "models", model), cfg)


def canary(cfg: Config, traffic: int = 10) -> dict[str, Any]:
    state = DeploymentState.with_canary("fraud-model", "models", V1, V2, traffic)
    return KServeBackend().render(state, cfg)


def env(obj: dict[str, Any]) -> dict[str, str]:
    container = obj["spec"]["predictor"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_champion_alone_takes_all_traffic_in_serverless_mode(cfg: Config) -> None:
    obj = single(cfg)
    predictor = obj["spec"]["predictor"]

    assert (obj["apiVersion"], obj["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "canaryTrafficPercent" not in predictor
    assert env(obj) == {"MODEL_URI": V1.model_uri, "MODEL_VERSION": V1.version}
    assert predictor["containers"][0]["image"] == IMAGE
    assert predictor["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


def test_canary_is_the_newest_revision_with_its_traffic_share(cfg: Config) -> None:
    obj = canary(cfg, traffic=25)
    annotations = obj["metadata"]["annotations"]

    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert env(obj) == {"MODEL_URI": V2.model_uri, "MODEL_VERSION": V2.version}
    assert obj["spec"]["predictor"]["labels"]["retrain.dev/role"] == "canary"
    # The champion lives in the previous revision; the annotations still say what serves.
    assert annotations["retrain.dev/champion-version"] == V1.version
    assert annotations["retrain.dev/champion-traffic"] == "75"
    assert annotations["retrain.dev/canary-traffic"] == "25"
    assert obj["metadata"]["labels"]["retrain.dev/model-version"] == V1.version


def test_promotion_keeps_the_canary_pod_spec_so_no_new_revision(cfg: Config) -> None:
    during = canary(cfg)["spec"]["predictor"]
    after = single(cfg, V2)["spec"]["predictor"]

    assert "canaryTrafficPercent" not in after
    # Only the traffic field and the role label change; the containers Knative hashes into a
    # revision are identical, so promotion moves traffic instead of starting new pods.
    assert after["containers"] == during["containers"]
    assert after["volumes"] == during["volumes"]


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (
            lambda o: o["metadata"]["annotations"].update(
                {"serving.kserve.io/deploymentMode": "RawDeployment"}
            ),
            "deploymentMode",
        ),
        (lambda o: o["spec"]["predictor"].update({"canaryTrafficPercent": 100}), "canaryTraffic"),
        (
            lambda o: o["spec"]["predictor"]["containers"].append(
                copy.deepcopy(o["spec"]["predictor"]["containers"][0])
            ),
            "containers",
        ),
        (
            lambda o: o["spec"]["predictor"]["containers"][0].update(
                {"image": "ghcr.io/example/serving:latest"}
            ),
            "image",
        ),
        (lambda o: o["spec"].update({"transformer": {}}), "transformer"),
        (lambda o: o["spec"]["predictor"].update({"volumes": []}), "volume 'tmp'"),
    ],
)
def test_schema_refuses_what_would_break_the_rollout(cfg: Config, edit: Any, where: str) -> None:
    obj = canary(cfg)
    validate_kserve(obj)
    edit(obj)
    with pytest.raises(ValidationError, match="InferenceService 'fraud-model' is invalid") as exc:
        validate_kserve(obj)
    assert any(where in p for p in exc.value.problems), exc.value.problems


def test_state_must_match_the_config(cfg: Config) -> None:
    with pytest.raises(ValidationError, match="does not match the config"):
        KServeBackend().render(DeploymentState.single("other", "models", V1), cfg)


def test_registered_by_name_and_applied_through_the_kubernetes_api(cfg: Config) -> None:
    assert isinstance(BACKENDS["kserve"](cfg), KServeBackend)
    rtype = RESOURCES[("serving.kserve.io/v1beta1", "InferenceService")]
    assert rtype.path("models", "fraud-model") == (
        "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud-model"
    )
    assert required_rbac(single(cfg))["resources"] == ["inferenceservices"]
