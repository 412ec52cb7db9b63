"""`deploy`: register the blessed version, move its alias, and render or apply the deployment."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

from retrain._crash import crash_point
from retrain.config import Config
from retrain.deploy import applier_for, backend_for
from retrain.deploy.plan import deployment_state_for
from retrain.drift import PROFILE_FILE
from retrain.errors import AlreadyExists, NotFound, PreconditionFailed
from retrain.registry import Registry, event_key
from retrain.rollout.controller import RolloutController, read_rollout
from retrain.steps._state import check_state_kept
from retrain.steps.records import (
    StepOutcome,
    finish_step,
    load_step_config,
    recorded_step,
    run_key,
)
from retrain.storage import Storage
from retrain.training.artifact import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    ModelCard,
    input_differences,
    load_model_dir,
    sha256_hex,
)

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

    Order matters for crash safety: (1) the version (create-only; a version already registered
    from the same recorded inputs is adopted), (2) the alias (compare-and-swap), (3) the
    rendered deployment (idempotent apply). Each event is keyed by what it records and written
    create-only on every attempt. A re-run after a crash at any point converges to the same
    end state, and a version the log says was rolled back is not deployed again.
    """
    cfg, store = load_step_config(config_yaml)
    with recorded_step(store, run_id, "deploy") as rec:
        _, card = load_model_dir(model_dir)  # verifies the sha256 before anything is written
        version = card.version
        reg = Registry(store, cfg.name)
        check_state_kept(store, reg)
        rolled_back = _rolled_back(reg, version)
        if rolled_back is not None:
            summary = (
                f"{version} was rolled back at {rolled_back.get('time')} "
                f"({rolled_back.get('reason', 'no reason recorded')}); not deployed again"
            )
            details: DeployDetails = {
                "version": version,
                "alias": "none",
                "ref": None,
                "changed": False,
                "predictors": [],
                "detail": summary,
            }
            finish_step(
                rec,
                report_path,
                summary,
                details,
                f"# Deploy: skipped\n\n{summary}\n",
                html_path=html_path,
            )
            return DeployOutcome("deploy", summary, details, version=version, alias="none")
        adopted = _register_or_adopt(reg, card, Path(model_dir))
        crash_point("deploy:registered")
        reg.append_event(
            "registered",
            once=event_key(version),
            version=version,
            run_id=run_id,
            **_blessing(store, run_id),
        )
        pointer = reg.get_alias("champion")
        alias = "champion" if pointer.version in (None, version) else "canary"
        if alias == "canary":
            pointer = reg.get_alias("canary")
        if pointer.version != version:
            pointer = reg.set_alias(alias, version, pointer.generation)
        crash_point("deploy:alias_moved")
        # Keyed by the alias generation this move made: every attempt writes it, once. A
        # champion with a previous version got there by promotion, which has its own event.
        if alias == "canary" or pointer.previous is None:
            reg.append_event(
                "alias_moved",
                once=event_key(alias, pointer.generation),
                alias=alias,
                version=version,
                previous=pointer.previous,
                run_id=run_id,
            )
        state = deployment_state_for(cfg, reg)
        rollout, _ = read_rollout(store, cfg.name)
        if rollout is not None and rollout.canary == version and not rollout.terminal:
            # A re-run while this canary's rollout is in flight keeps the rollout's share, so
            # the re-run changes nothing and starts nothing twice.
            state = RolloutController(cfg, store).desired_state(rollout)
        obj = backend_for(cfg).render(state, cfg)
        applier = (applier_factory or applier_for)(cfg)
        result = applier.apply(obj, cfg, message=_deploy_message(cfg, state))
        crash_point("deploy:applied")
        kind = "canary_started" if alias == "canary" else "deployed"
        # An unchanged apply after a crash still owes the event the crashed attempt did not
        # write; an unchanged apply of a version already recorded as deployed owes nothing.
        if result.changed or not any(
            e.get("kind") == kind and e.get("version") == version for e in reg.events()
        ):
            reg.append_event(
                kind,
                once=event_key(version, result.ref),
                version=version,
                run_id=run_id,
                ref=result.ref,
                traffic={p.name: p.traffic for p in state.predictors},
            )
        split = ", ".join(f"{p.name} {p.version} {p.traffic}%" for p in state.predictors)
        summary = (
            f"{version} is now {alias}"
            + (" (the version registered earlier from the same inputs)" if adopted else "")
            + f"; serving split: {split}; "
            + (result.detail if result.changed else "no change to apply")
        )
        details = {
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


def _register_or_adopt(reg: Registry, card: ModelCard, model_dir: Path) -> bool:
    """Register this run's model, or adopt what an earlier run of the same inputs registered.

    A fit is not byte-reproducible (skops names zip members by object id and stamps them with
    the clock), but a version's name is a digest of its recorded inputs. So a version already
    registered, or partly registered by a crashed attempt, whose card records the same inputs
    is the same model: it is kept, and this run's bytes are dropped. Returns whether an earlier
    registration was adopted. Raises AlreadyExists if the recorded inputs differ.
    """
    version = card.version
    if version in reg.versions():
        registered = ModelCard.from_json(reg.read_file(version, MODEL_CARD_FILE).decode())
        _same_inputs_or_raise(reg, registered, card)
        return True
    files = {MODEL_FILE: (model_dir / MODEL_FILE).read_bytes()}
    card_bytes = (model_dir / MODEL_CARD_FILE).read_bytes()
    partial = reg.partial_files(version)
    if MODEL_CARD_FILE in partial:
        _same_inputs_or_raise(reg, ModelCard.from_json(partial[MODEL_CARD_FILE].decode()), card)
    if MODEL_FILE in partial:  # written first: the card must name these bytes
        files[MODEL_FILE] = partial[MODEL_FILE]
        card_bytes = replace(card, model_sha256=sha256_hex(files[MODEL_FILE])).to_json().encode()
    files[MODEL_CARD_FILE] = partial.get(MODEL_CARD_FILE, card_bytes)
    if (model_dir / PROFILE_FILE).exists():  # drift: the reference profile
        files[PROFILE_FILE] = partial.get(PROFILE_FILE, (model_dir / PROFILE_FILE).read_bytes())
    try:
        reg.register(version, files)
    except AlreadyExists:
        if version in reg.versions():  # a concurrent run of the same inputs finished first
            return _register_or_adopt(reg, card, model_dir)
        raise PreconditionFailed(
            f"another run is registering version {version!r} of model {reg.model_name!r} "
            "right now; retry (the re-run adopts its version)"
        ) from None
    return bool(partial)


def _same_inputs_or_raise(reg: Registry, registered: ModelCard, card: ModelCard) -> None:
    differences = input_differences(registered, card)
    if differences:
        raise AlreadyExists(
            f"version {card.version!r} of model {reg.model_name!r} is registered from other "
            f"inputs than this run's ({'; '.join(differences)}); versions are immutable"
        )


def _rolled_back(reg: Registry, version: str) -> dict[str, Any] | None:
    """The event that rolled `version` back, if any (newest)."""
    found = [
        e for e in reg.events() if e.get("kind") == "rolled_back" and e.get("version") == version
    ]
    return found[-1] if found else None


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


def _blessing(store: Storage, run_id: str) -> dict[str, Any]:
    """How the run's evaluate step blessed the version, for its ``registered`` event (and so
    for ``retrain status``): ``blessed_by`` "refresh" (no gain shown; the champion was
    ``champion_age_windows`` windows older, `retrain.evaluation._refresh`), "gates", or "first
    model, not evaluated" (`evaluation.deploy_undecided_first_model`); nothing when the run
    has no readable evaluate record (a version deployed by hand)."""
    try:  # informational: a record that cannot be read must not fail the deploy
        report = json.loads(store.read_text(run_key(run_id, "evaluate"))).get("report") or {}
    except (NotFound, ValueError, AttributeError):
        return {}
    if not isinstance(report, dict) or not report.get("blessed"):
        return {}
    comparison = report.get("comparison") or {}
    if comparison.get("evaluated") is False:  # evaluation.deploy_undecided_first_model
        return {"blessed_by": "first model, not evaluated"}
    if not comparison.get("refresh"):
        return {"blessed_by": "gates"}
    return {"blessed_by": "refresh", "champion_age_windows": comparison.get("champion_age_windows")}
