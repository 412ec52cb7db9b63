"""Backend-neutral deployment state and the two seams of the deploy step.

A `DeploymentState` says which model versions serve and how traffic is split between them. A
`Backend` turns it into a Kubernetes object (Seldon Core v1 today; KServe can follow) and an
`Applier` makes that object real (a GitOps commit today; server-side apply can follow). A
rollout controller only computes the next state, so it depends on neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from retrain.errors import ValidationError

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "ANNOTATION_PREFIX",
    "CANARY",
    "CHAMPION",
    "VERSION_LABEL",
    "Applier",
    "ApplyResult",
    "Backend",
    "DeploymentState",
    "ModelRef",
    "PredictorSpec",
    "annotated_roles",
    "state_annotations",
    "to_yaml",
]

CHAMPION = "champion"
CANARY = "canary"
_ROLES = (CHAMPION, CANARY)

ANNOTATION_PREFIX = "retrain.dev/"
#: Label carrying a model version, on the object (champion) and on each predictor's pods.
VERSION_LABEL = "retrain.dev/model-version"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Kubernetes label values: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ModelRef:
    """A model version and where its artifact lives."""

    version: str
    model_uri: str


@dataclass(frozen=True)
class PredictorSpec:
    """One serving predictor: a role ("champion" or "canary"), a model and its traffic share."""

    name: str
    version: str
    model_uri: str
    traffic: int

    def __post_init__(self) -> None:
        problems = _predictor_problems(self)
        if problems:
            raise ValidationError(f"predictor {self.name!r} is invalid", problems)


def _predictor_problems(p: PredictorSpec) -> list[str]:
    problems = []
    if p.name not in _ROLES:
        problems.append(f"name {p.name!r}: must be one of {', '.join(_ROLES)}")
    if not isinstance(p.version, str) or not _LABEL_VALUE.match(p.version):
        problems.append(
            f"version {p.version!r}: must be 1-63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit (it becomes a Kubernetes label value)"
        )
    if not isinstance(p.model_uri, str) or not p.model_uri.strip() or "\n" in p.model_uri:
        problems.append(f"model_uri {p.model_uri!r}: must be a non-empty, single-line URI")
    # bool is an int subclass; True would otherwise pass as a traffic of 1.
    if isinstance(p.traffic, bool) or not isinstance(p.traffic, int):
        problems.append(f"traffic {p.traffic!r}: must be an integer percentage")
    elif p.traffic == 0:
        # Seldon Core v1 has been reported to serve a 100/0 split as 50/50 (seldon-core #4067).
        problems.append(
            "traffic 0: remove the predictor instead of giving it no traffic "
            "(a 0% predictor has been reported to receive traffic)"
        )
    elif not 1 <= p.traffic <= 100:
        problems.append(f"traffic {p.traffic}: must be between 1 and 100 percent")
    return problems


@dataclass(frozen=True)
class DeploymentState:
    """The desired serving state of one deployment: a champion and at most one canary.

    Predictors are kept in role order (champion first) so renderings are stable. Traffic must
    sum to 100; a predictor that should get nothing is removed, never set to 0.
    """

    name: str
    namespace: str
    predictors: tuple[PredictorSpec, ...]

    def __post_init__(self) -> None:
        # Accept any iterable but store a tuple in role order: the state stays hashable and two
        # equal states always render the same text.
        preds = tuple(self.predictors)
        order = {role: i for i, role in enumerate(_ROLES)}
        preds = tuple(sorted(preds, key=lambda p: order.get(p.name, len(order))))
        object.__setattr__(self, "predictors", preds)
        problems = _state_problems(self.name, self.namespace, preds)
        if problems:
            raise ValidationError(
                f"deployment state for {self.namespace}/{self.name} is invalid", problems
            )

    @classmethod
    def single(cls, name: str, namespace: str, champion: ModelRef) -> DeploymentState:
        """The champion alone, at 100% traffic."""
        return cls(name, namespace, (_predictor(CHAMPION, champion, 100),))

    @classmethod
    def with_canary(
        cls, name: str, namespace: str, champion: ModelRef, canary: ModelRef, traffic: int
    ) -> DeploymentState:
        """The champion plus a canary receiving `traffic` percent (1-99)."""
        if isinstance(traffic, bool) or not isinstance(traffic, int) or not 1 <= traffic <= 99:
            raise ValidationError(
                f"canary traffic must be an integer between 1 and 99 percent, got {traffic!r} "
                "(to serve only one model, use DeploymentState.single)"
            )
        return cls(
            name,
            namespace,
            (_predictor(CHAMPION, champion, 100 - traffic), _predictor(CANARY, canary, traffic)),
        )

    @property
    def champion(self) -> PredictorSpec:
        return self.predictors[0]

    @property
    def canary(self) -> PredictorSpec | None:
        return self.predictors[1] if len(self.predictors) > 1 else None

    def summary(self) -> str:
        """One line, e.g. ``champion v1 90%, canary v2 10%``."""
        return ", ".join(f"{p.name} {p.version} {p.traffic}%" for p in self.predictors)


def _predictor(role: str, model: ModelRef, traffic: int) -> PredictorSpec:
    return PredictorSpec(role, model.version, model.model_uri, traffic)


def _state_problems(name: str, namespace: str, preds: tuple[PredictorSpec, ...]) -> list[str]:
    problems = []
    for key, value in (("name", name), ("namespace", namespace)):
        if not isinstance(value, str) or not _DNS_LABEL.match(value):
            problems.append(
                f"{key} {value!r}: must be a Kubernetes name (lowercase letters, digits, '-')"
            )
    if not all(isinstance(p, PredictorSpec) for p in preds):
        return [*problems, "predictors: every item must be a PredictorSpec"]
    if not 1 <= len(preds) <= 2:
        problems.append(f"predictors: expected 1 or 2 (champion and canary), got {len(preds)}")
    names = [p.name for p in preds]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"predictors: duplicate names {dupes}")
    if preds and CHAMPION not in names:
        problems.append("predictors: a champion is required")
    versions = [p.version for p in preds]
    if len(set(versions)) != len(versions):
        problems.append(f"predictors: champion and canary are the same version {versions[0]!r}")
    total = sum(p.traffic for p in preds)
    if preds and total != 100:
        split = ", ".join(f"{p.name}={p.traffic}" for p in preds)
        problems.append(f"traffic: must sum to 100, got {total} ({split})")
    return problems


def state_annotations(state: DeploymentState) -> dict[str, str]:
    """Annotations recording each role's version, model URI and traffic.

    Every backend writes these, so appliers and humans can read what a rendered object serves
    without knowing its schema.
    """
    out: dict[str, str] = {}
    for p in state.predictors:
        out[f"{ANNOTATION_PREFIX}{p.name}-version"] = p.version
        out[f"{ANNOTATION_PREFIX}{p.name}-model-uri"] = p.model_uri
        out[f"{ANNOTATION_PREFIX}{p.name}-traffic"] = str(p.traffic)
    return out


def annotated_roles(annotations: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(role, version, traffic, model_uri)`` per role recorded by `state_annotations`."""
    out = []
    for role in _ROLES:
        version = annotations.get(f"{ANNOTATION_PREFIX}{role}-version")
        if version is None:
            continue
        traffic = annotations.get(f"{ANNOTATION_PREFIX}{role}-traffic", "?")
        uri = annotations.get(f"{ANNOTATION_PREFIX}{role}-model-uri", "")
        out.append((role, str(version), str(traffic), str(uri)))
    return out


def to_yaml(obj: Mapping[str, Any]) -> str:
    """Canonical YAML: sorted keys, block style, no line folding.

    Sorting keys (as `kubectl get -o yaml` does) makes the text depend only on the content,
    not on how the mapping was built, so GitOps diffs show real changes only.
    """
    return yaml.safe_dump(
        _plain(obj), sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096
    )


def _plain(value: Any) -> Any:
    # safe_dump refuses tuples and Mapping subclasses; normalise to dict/list first.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ApplyResult:
    """What an applier did.

    Attributes:
        changed: whether the target changed (a commit was made, an object was patched).
        ref: what the target now is: a commit sha or a resourceVersion (None if unknown).
        detail: one human-readable line for logs and reports.
    """

    changed: bool
    ref: str | None
    detail: str


class Backend(Protocol):
    """Turns a deployment state into the serving platform's Kubernetes object."""

    def render(self, state: DeploymentState, cfg: Config) -> dict[str, Any]: ...


class Applier(Protocol):
    """Makes a rendered object the live (or declared) one. Must be idempotent."""

    def apply(
        self, obj: dict[str, Any], cfg: Config, message: str | None = None
    ) -> ApplyResult: ...
