"""Seldon Core v1 backend: a `DeploymentState` rendered as a SeldonDeployment.

Each predictor (champion, optional canary) becomes one `spec.predictors[]` entry running the
serving image with the model's URI and version in its environment; Seldon splits traffic by
`spec.predictors[].traffic`. A state with one predictor renders one predictor at 100%: the old
predictor is removed on promotion rather than left at traffic 0 (a 100/0 split has been
reported to serve 50/50, seldon-core #4067).

Field names follow the published Seldon Core v1 API reference (`machinelearning.seldon.io/v1`).
`validate_seldon` checks an object against our own JSON Schema of the fields we use plus the
rules a schema cannot express (traffic sums, graph nodes backed by containers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from retrain.deploy._base import (
    VERSION_LABEL,
    DeploymentState,
    PredictorSpec,
    state_annotations,
    to_yaml,
)
from retrain.deploy._pod import (
    DEFAULT_RESOURCES,
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
    "DEFAULT_RESOURCES",
    "KIND",
    "MODEL_CONTAINER",
    "SeldonBackend",
    "to_yaml",
    "validate_seldon",
]

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
#: Name shared by the graph node and its container: Seldon binds the two by name.
MODEL_CONTAINER = "model"

_SCHEMA_FILE = "seldondeployment.schema.json"


class SeldonBackend:
    """Renders deployment states as Seldon Core v1 SeldonDeployments.

    Args:
        resources: requests/limits of the model container (defaults to `DEFAULT_RESOURCES`).
        replicas: pods per predictor.
    """

    name = "seldon"

    def __init__(
        self, resources: Mapping[str, Mapping[str, str]] | None = None, replicas: int = 1
    ) -> None:
        self.resources = resources
        self.replicas = replicas

    def render(self, state: DeploymentState, cfg: Config) -> dict[str, Any]:
        """The SeldonDeployment for `state`, validated against our schema."""
        check_state_matches(state, cfg)
        annotations = state_annotations(state)
        annotations["retrain.dev/task"] = cfg.task
        obj: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": object_metadata(state, cfg, annotations),
            "spec": {
                "predictors": [self._predictor(p, cfg) for p in state.predictors],
            },
        }
        validate_seldon(obj)
        return obj

    def _predictor(self, p: PredictorSpec, cfg: Config) -> dict[str, Any]:
        container = model_container(MODEL_CONTAINER, cfg.deploy.image, p, self.resources)
        return {
            "name": p.name,
            "traffic": p.traffic,
            "replicas": self.replicas,
            # Predictor labels reach the pods, so metrics can be split by version.
            "labels": {VERSION_LABEL: p.version, "retrain.dev/role": p.name},
            "graph": {
                "name": MODEL_CONTAINER,
                "type": "MODEL",
                "endpoint": {"type": "REST"},
                "children": [],
            },
            "componentSpecs": [{"spec": pod_fields(container)}],
        }


def validate_seldon(obj: Mapping[str, Any]) -> None:
    """Check a SeldonDeployment; raise ValidationError listing every problem by JSON path."""
    check_object(obj, KIND, _SCHEMA_FILE, _semantic_problems)


def _semantic_problems(obj: Mapping[str, Any]) -> list[str]:
    # Runs only on schema-valid objects, so the shape is known.
    problems = []
    predictors = obj["spec"]["predictors"]
    total = sum(p["traffic"] for p in predictors)
    if total != 100:
        problems.append(f"$.spec.predictors: traffic must sum to 100, got {total}")
    if len(predictors) > 1:
        for i, p in enumerate(predictors):
            if p["traffic"] == 0:
                problems.append(
                    f"$.spec.predictors[{i}].traffic: 0 is not allowed beside other predictors; "
                    "remove the predictor instead (a 100/0 split has been reported to serve 50/50)"
                )
    names = [p["name"] for p in predictors]
    for i, n in enumerate(names):
        if n in names[:i]:
            problems.append(f"$.spec.predictors[{i}].name: duplicate predictor name {n!r}")
    for i, p in enumerate(predictors):
        containers = {c["name"] for cs in p["componentSpecs"] for c in cs["spec"]["containers"]}
        for path, node in _graph_nodes(p["graph"], f"$.spec.predictors[{i}].graph"):
            if node["name"] not in containers:
                problems.append(
                    f"{path}.name: graph node {node['name']!r} has no container of that name "
                    f"in componentSpecs (have {sorted(containers)})"
                )
    return problems


def _graph_nodes(node: Mapping[str, Any], path: str) -> list[tuple[str, Mapping[str, Any]]]:
    out = [(path, node)]
    for j, child in enumerate(node.get("children", [])):
        out.extend(_graph_nodes(child, f"{path}.children[{j}]"))
    return out
