"""The serving state the registry's aliases call for.

The registry is the source of truth for *which* versions serve (aliases `champion` and
`canary`); the config says *how* (traffic share, names). Deriving the deployment from the
aliases, instead of from the step that happens to run, is what makes the deploy step
idempotent: a re-run after a crash renders the same object and the applier makes no change.
"""

from __future__ import annotations

from retrain.config import Config
from retrain.deploy._base import DeploymentState, ModelRef
from retrain.errors import ValidationError
from retrain.registry import MODEL_FILE, Registry

__all__ = ["deployment_state_for"]


def deployment_state_for(cfg: Config, registry: Registry) -> DeploymentState:
    """Champion alone, or champion + canary at `deploy.canary_traffic` percent."""
    champion = registry.get_alias("champion").version
    if champion is None:
        raise ValidationError(f"model {cfg.name!r} has no champion yet: nothing to deploy")
    name, ns = cfg.deploy.deployment_name, cfg.deploy.namespace
    champ = ModelRef(champion, registry.file_uri(champion, MODEL_FILE))
    canary = registry.get_alias("canary").version
    if canary is None or canary == champion:
        return DeploymentState.single(name, ns, champ)
    return DeploymentState.with_canary(
        name,
        ns,
        champ,
        ModelRef(canary, registry.file_uri(canary, MODEL_FILE)),
        traffic=cfg.deploy.canary_traffic,
    )
