"""Pieces every backend renders the same way: object metadata and the model server's pod.

Seldon and KServe wrap the pod differently (a predictor's ``componentSpecs`` versus the
predictor itself), but the container, its hardening and its scratch volume are one thing, so
both backends build them here and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from retrain.deploy._base import VERSION_LABEL, DeploymentState, PredictorSpec
from retrain.errors import ValidationError

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "DEFAULT_RESOURCES",
    "check_state_matches",
    "model_container",
    "object_metadata",
    "pod_fields",
]

DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}


def check_state_matches(state: DeploymentState, cfg: Config) -> None:
    """Refuse a state whose name/namespace differ from ``deploy.deployment_name/namespace``."""
    d = cfg.deploy
    if (state.name, state.namespace) != (d.deployment_name, d.namespace):
        raise ValidationError(
            f"deployment state {state.namespace}/{state.name} does not match the config's "
            f"deploy.namespace/deploy.deployment_name {d.namespace}/{d.deployment_name}"
        )


def object_metadata(
    state: DeploymentState, cfg: Config, annotations: Mapping[str, str]
) -> dict[str, Any]:
    """``metadata`` of the rendered object; its version label is the champion's."""
    return {
        "name": state.name,
        "namespace": state.namespace,
        "labels": {
            "app.kubernetes.io/name": cfg.name,
            "app.kubernetes.io/managed-by": "retrain",
            VERSION_LABEL: state.champion.version,
        },
        "annotations": dict(annotations),
    }


def model_container(
    name: str,
    image: str,
    predictor: PredictorSpec,
    resources: Mapping[str, Mapping[str, str]] | None,
    port: int | None = None,
) -> dict[str, Any]:
    """The model server container serving `predictor` (`DEFAULT_RESOURCES` when None)."""
    res = resources if resources is not None else DEFAULT_RESOURCES
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
    }
    if port is not None:
        container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    container |= {
        "env": [
            {"name": "MODEL_URI", "value": predictor.model_uri},
            {"name": "MODEL_VERSION", "value": predictor.version},
        ],
        "resources": {k: dict(v) for k, v in res.items()},
        # Restricted Pod Security Standard, container level.
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The Python model server writes to /tmp (gunicorn heartbeats, Prometheus
        # multiprocess files), which a read-only root filesystem would refuse.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return container


def pod_fields(container: Mapping[str, Any]) -> dict[str, Any]:
    """Pod-spec fields around `container`: hardening, the container and its /tmp volume."""
    return {
        # The model server never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        # Pod level too, so containers the platform injects (such as Seldon's executor)
        # inherit it.
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [dict(container)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
