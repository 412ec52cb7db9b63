"""KServe backend: a `DeploymentState` rendered as an InferenceService (Apache-2.0 alternative).

KServe splits traffic by *revision*, not by named predictors: the spec always describes the
newest model, and ``spec.predictor.canaryTrafficPercent`` sends that share to the newest
revision while the last revision rolled out at 100% serves the rest. So:

- champion alone: the champion's container, no ``canaryTrafficPercent`` (100% to it);
- champion + canary: the canary's container with ``canaryTrafficPercent`` = its traffic, and
  the champion is the revision that served before;
- promotion: the canary alone, without the field (Knative keeps the same revision);
- rollback: the champion alone again (a fresh revision with the champion's model).

The champion must therefore have been applied alone before its first canary; a very first
apply that already carries a canary serves the canary at 100% on KServe. The state's versions
and traffic are always in the annotations (`state_annotations`), which is what humans and the
rollout controller read.

The split works only in Serverless (Knative) mode: in RawDeployment mode KServe silently
ignores ``canaryTrafficPercent`` (kserve/kserve #5335, #4074). The object therefore sets
``serving.kserve.io/deploymentMode: Serverless`` explicitly, so a cluster whose default is
RawDeployment cannot drop the canary split unnoticed.

The serving image runs as the predictor's single custom container (``kserve-container``) and
must listen on `port`. Field names follow the published KServe v1beta1 API reference;
`validate_kserve` checks the object against our own JSON Schema of the fields we use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from retrain.deploy._base import VERSION_LABEL, DeploymentState, state_annotations
from retrain.deploy._pod import (
    check_state_matches,
    model_container,
    object_metadata,
    pod_fields,
)
from retrain.deploy._schema import check_object

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "API_VERSION",
    "CONTAINER",
    "DEFAULT_PORT",
    "DEPLOYMENT_MODE_ANNOTATION",
    "KIND",
    "KServeBackend",
    "validate_kserve",
]

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
#: KServe's name for a predictor's custom container.
CONTAINER = "kserve-container"
#: KServe's default port for custom containers.
DEFAULT_PORT = 8080
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"

_SCHEMA_FILE = "inferenceservice.schema.json"


class KServeBackend:
    """Renders deployment states as KServe InferenceServices (Serverless mode).

    Args:
        resources: requests/limits of the model container.
        min_replicas: pods kept per revision (1 avoids scale-to-zero cold starts).
        port: the port the serving image listens on.
    """

    name = "kserve"

    def __init__(
        self,
        resources: Mapping[str, Mapping[str, str]] | None = None,
        min_replicas: int = 1,
        port: int = DEFAULT_PORT,
    ) -> None:
        self.resources = resources
        self.min_replicas = min_replicas
        self.port = port

    def render(self, state: DeploymentState, cfg: Config) -> dict[str, Any]:
        """The InferenceService for `state`, validated against our schema."""
        check_state_matches(state, cfg)
        # The newest model is the one the spec describes: the canary when there is one.
        newest = state.canary or state.champion
        annotations = state_annotations(state)
        annotations["retrain.dev/task"] = cfg.task
        annotations[DEPLOYMENT_MODE_ANNOTATION] = "Serverless"
        container = model_container(
            CONTAINER, cfg.deploy.image, newest, self.resources, port=self.port
        )
        predictor: dict[str, Any] = {
            "minReplicas": self.min_replicas,
            # Revision labels reach the pods, so metrics can be split by version.
            "labels": {VERSION_LABEL: newest.version, "retrain.dev/role": newest.name},
            **pod_fields(container),
        }
        if state.canary is not None:
            predictor["canaryTrafficPercent"] = state.canary.traffic
        obj: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": object_metadata(state, cfg, annotations),
            "spec": {"predictor": predictor},
        }
        validate_kserve(obj)
        return obj


def validate_kserve(obj: Mapping[str, Any]) -> None:
    """Check an InferenceService; raise ValidationError listing every problem by JSON path."""
    check_object(obj, KIND, _SCHEMA_FILE, _semantic_problems)


def _semantic_problems(obj: Mapping[str, Any]) -> list[str]:
    # Runs only on schema-valid objects, so the shape is known.
    predictor = obj["spec"]["predictor"]
    container = predictor["containers"][0]
    mounts = {m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"] for v in predictor.get("volumes", [])}
    return [
        f"$.spec.predictor.containers[0].volumeMounts: volume {name!r} is not declared in "
        "$.spec.predictor.volumes"
        for name in sorted(mounts - volumes)
    ]
