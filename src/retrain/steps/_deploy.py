"""`deploy`: register the blessed version, move its alias, and render or apply the deployment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from retrain.config import Config
from retrain.deploy import applier_for, backend_for
from retrain.deploy.plan import deployment_state_for
from retrain.drift import PROFILE_FILE
from retrain.registry import Registry
from retrain.steps.records import StepOutcome, finish_step, load_step_config, recorded_step
from retrain.training.artifact import MODEL_CARD_FILE, MODEL_FILE, load_model_dir

__all__ = ["DeployDetails", "DeployOutcome", "deploy"]


class DeployDetails(TypedDict):
    """What the deploy step reports (and records under ``runs/<run_id>/deploy.json``)."""

    version: str
    alias: str  # champion or canary
    ref: str | None  # the commit (GitOps) or resource version (Kubernetes API) applied
    changed: bool
    predictors: list[dict[str, Any]]  # name, version, traffic, model URI
    detail: str


@dataclass
class DeployOutcome(StepOutcome):
    version: str = ""
    alias: str = ""
    commit: str | None = None


def deploy(
    config_yaml: str,
    run_id: str,
    model_dir: str,
    report_path: str | None = None,
    *,
    applier_factory: Callable[[Config], Any] | None = None,
    html_path: str | None = None,
) -> DeployOutcome:
    """Register the blessed version, move the alias, and roll it out as a canary (or champion).

    Order matters for crash safety: (1) the version (create-only, idempotent), (2) the alias
    (compare-and-swap), (3) the rendered deployment (idempotent apply). A re-run after a crash
    at any point converges to the same end state.
    """
    cfg, store = load_step_config(config_yaml)
    with recorded_step(store, run_id, "deploy") as rec:
        _, card = load_model_dir(model_dir)  # verifies the sha256 before anything is written
        version = card.version
        reg = Registry(store, cfg.name)
        files = {
            name: (Path(model_dir) / name).read_bytes() for name in (MODEL_FILE, MODEL_CARD_FILE)
        }
        if (Path(model_dir) / PROFILE_FILE).exists():  # drift: the reference profile
            files[PROFILE_FILE] = (Path(model_dir) / PROFILE_FILE).read_bytes()
        if version not in reg.versions():
            reg.register(version, files)
            reg.append_event("registered", version=version, run_id=run_id)
        else:
            reg.register(version, files)  # verifies the bytes match; raises if they differ
        champion = reg.get_alias("champion")
        if champion.version is None or champion.version == version:
            alias = "champion"
            if champion.version != version:
                reg.set_alias("champion", version, champion.generation)
                reg.append_event("alias_moved", alias="champion", version=version, run_id=run_id)
        else:
            alias = "canary"
            canary = reg.get_alias("canary")
            if canary.version != version:
                reg.set_alias("canary", version, canary.generation)
                reg.append_event(
                    "alias_moved",
                    alias="canary",
                    version=version,
                    previous=canary.version,
                    run_id=run_id,
                )
        state = deployment_state_for(cfg, reg)
        obj = backend_for(cfg).render(state, cfg)
        applier = (applier_factory or applier_for)(cfg)
        result = applier.apply(obj, cfg, message=_deploy_message(cfg, state))
        kind = "canary_started" if alias == "canary" else "deployed"
        if result.changed:
            reg.append_event(
                kind,
                version=version,
                run_id=run_id,
                ref=result.ref,
                traffic={p.name: p.traffic for p in state.predictors},
            )
        split = ", ".join(f"{p.name} {p.version} {p.traffic}%" for p in state.predictors)
        summary = f"{version} is now {alias}; serving split: {split}; " + (
            result.detail if result.changed else "no change to apply"
        )
        details: DeployDetails = {
            "version": version,
            "alias": alias,
            "ref": result.ref,
            "changed": result.changed,
            "predictors": [p.__dict__ for p in state.predictors],
            "detail": result.detail,
        }
        markdown = _deploy_markdown(version, alias, state, result)
        finish_step(rec, report_path, summary, details, markdown, html_path=html_path)
        return DeployOutcome(
            "deploy", summary, details, version=version, alias=alias, commit=result.ref
        )


def _deploy_message(cfg: Config, state: Any) -> str:
    split = ", ".join(f"{p.name}={p.version}@{p.traffic}%" for p in state.predictors)
    return f"retrain: {cfg.deploy.deployment_name} -> {split}"


def _deploy_markdown(version: str, alias: str, state: Any, result: Any) -> str:
    rows = "\n".join(
        f"| {p.name} | `{p.version}` | {p.traffic}% | {p.model_uri} |" for p in state.predictors
    )
    return (
        f"# Deploy: `{version}` as {alias}\n\n| predictor | version | traffic | model URI |\n"
        f"|---|---|---|---|\n{rows}\n\nApplied: {result.detail} (ref `{result.ref}`)\n"
    )
