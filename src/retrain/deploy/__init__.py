"""Deploy: render a serving state for a platform and apply it.

    state = DeploymentState.with_canary("fraud", "models", champion, canary, traffic=10)
    obj = backend_for(cfg).render(state, cfg)    # a SeldonDeployment today
    result = applier_for(cfg).apply(obj, cfg)    # a git commit in GitOps mode

Backends and appliers are looked up by the config's names (``deploy.backend``,
``deploy.mode``), so a KServe backend or a Kubernetes-API applier is one entry each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from retrain.deploy._base import (
    CANARY,
    CHAMPION,
    Applier,
    ApplyResult,
    Backend,
    DeploymentState,
    ModelRef,
    PredictorSpec,
    to_yaml,
)
from retrain.deploy._schema import load_schemas
from retrain.deploy.gitops import GitOpsApplier
from retrain.deploy.gitremote import RemoteGitOpsApplier, gitops_applier
from retrain.deploy.kserve import KServeBackend, validate_kserve
from retrain.deploy.kubernetes import KubernetesApplier
from retrain.deploy.seldon import SeldonBackend, validate_seldon
from retrain.errors import ValidationError

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = [
    "APPLIERS",
    "BACKENDS",
    "CANARY",
    "CHAMPION",
    "Applier",
    "ApplyResult",
    "Backend",
    "DeploymentState",
    "GitOpsApplier",
    "KServeBackend",
    "KubernetesApplier",
    "ModelRef",
    "PredictorSpec",
    "RemoteGitOpsApplier",
    "SeldonBackend",
    "applier_for",
    "backend_for",
    "load_schemas",
    "require_deploy_target",
    "to_yaml",
    "validate_kserve",
    "validate_seldon",
]

_T = TypeVar("_T")

#: Backend factories by ``deploy.backend``.
BACKENDS: dict[str, Callable[[Config], Backend]] = {
    "seldon": lambda cfg: SeldonBackend(),
    "kserve": lambda cfg: KServeBackend(),
}

#: Applier factories by ``deploy.mode``.
APPLIERS: dict[str, Callable[[Config], Applier]] = {
    "gitops": gitops_applier,  # a local repository, or a remote (deploy.gitops_remote)
    "kubernetes": KubernetesApplier.from_config,
}


def backend_for(cfg: Config) -> Backend:
    """The backend named by ``cfg.deploy.backend``."""
    return _lookup(BACKENDS, cfg.deploy.backend, "deploy.backend")(cfg)


def applier_for(cfg: Config) -> Applier:
    """The applier named by ``cfg.deploy.mode``."""
    return _lookup(APPLIERS, cfg.deploy.mode, "deploy.mode")(cfg)


def require_deploy_target(cfg: Config, *, cluster: bool = False) -> None:
    """Refuse a run that would have nowhere to deploy what it blesses (ValidationError).

    GitOps mode commits to ``deploy.gitops_repo`` (or a checkout of ``deploy.gitops_remote``);
    with neither, the deploy step would fail only after ingest, labels and training. With
    `cluster` (``retrain submit``, the KFP launcher) the hint names what a pipeline pod can
    use: a relative local directory is refused there (`check_cluster_paths`)."""
    d = cfg.deploy
    if d.mode == "gitops" and not d.gitops_repo and not d.gitops_remote:
        where = (
            "set deploy.gitops_remote to the git remote the pipeline pods push to (e.g."
            " deploy: {gitops_remote: https://git.example.com/org/serving.git}), or"
            " deploy.gitops_repo to an absolute path mounted in every pod"
            if cluster
            else "set it to a local directory (e.g. deploy: {gitops_repo: gitops}, created on"
            " first use) or set deploy.gitops_remote"
        )
        raise ValidationError(
            "deploy.gitops_repo is required when deploy.mode is 'gitops': a run commits the"
            f" serving state of what it blesses to that git repository; {where}."
            " A backtest needs neither."
        )


def _lookup(
    table: Mapping[str, Callable[[Config], _T]], name: str, key: str
) -> Callable[[Config], _T]:
    if name not in table:
        raise ValidationError(
            f"{key} {name!r} is not available in this version; choose one of {sorted(table)}"
        )
    return table[name]
