"""State a run builds on, checked before it does: nothing lost, no decision left half done.

Two things a run must never do silently:

- **rebaseline**: with the champion alias or the reference schema gone while the registry's
  event log says they existed, the next challenger would be judged as a first model (floor
  only, straight to 100 %) and the schema re-inferred from a drifted window. The run stops
  with exit 2 and says how to restore them instead.
- **build on a half-carried-out decision**: a rollout killed mid-promotion leaves the champion
  alias moved, the deployment at the old split and the decision pending; a deploy killed after
  moving an alias leaves the deployment behind it. The run finishes that first (taking the
  rollout lock; a live holder means exit 75).
"""

from __future__ import annotations

from pathlib import Path

from retrain.config import Config
from retrain.errors import ValidationError
from retrain.registry import Registry, event_key
from retrain.rollout.controller import RolloutController, read_rollout
from retrain.storage import LocalStorage, Storage

__all__ = [
    "SCHEMA_KEY",
    "check_state_kept",
    "finish_pending_rollout",
    "git_credentials_missing",
    "pending_rollout_left",
    "restore_champion",
]

#: The reference schema: inferred by the very first run (create-only), enforced after.
SCHEMA_KEY = "schema/schema.json"


def check_state_kept(store: Storage, reg: Registry) -> None:
    """Raise ValidationError (exit 2) if the champion alias or the schema was lost."""
    problems: list[str] = []
    if reg.get_alias("champion").version is None:
        last = reg.recorded_alias("champion")
        if last is not None:
            problems.append(
                f"the champion alias of model {reg.model_name!r} is missing, but the event log "
                f"made {last['version']} champion ({last['kind']} at {last.get('time')}); "
                f"restore it with `retrain deploy restore --config <config>` (it re-points the "
                f"alias at that version), then re-run"
            )
    if not store.exists(SCHEMA_KEY):
        versions = reg.versions()
        if versions:
            problems.append(
                f"the reference schema {store.uri(SCHEMA_KEY)} is missing, but {len(versions)} "
                f"model version(s) were trained under it (newest {versions[-1]}); restore it "
                f"from a backup or an earlier object generation, then re-run"
            )
    if problems:
        raise ValidationError(
            "state this run builds on was lost; refusing to start over from the current window",
            problems,
        )


def finish_pending_rollout(cfg: Config, store: Storage) -> str | None:
    """Finish what a crashed run left; what was done, or None if nothing was left.

    A pending rollout decision is carried out. In GitOps mode a tree whose HEAD does not serve
    what the aliases say (a run killed between moving an alias and committing) is brought in
    line; the check reads the local clone and takes no lock unless there is work.
    """
    state, _ = read_rollout(store, cfg.name)
    controller = RolloutController(cfg, store)
    if state is None or not state.pending:
        repo = cfg.deploy.gitops_repo
        # The tree is this machine's if it is cloned here or the store is local too; in a
        # cluster pod it is not, and the deploy step or the rollout tick repairs it.
        here = isinstance(store, LocalStorage) or (repo and (Path(repo) / ".git").exists())
        if cfg.deploy.mode != "gitops" or not repo or not here:
            return None
        if Registry(store, cfg.name).get_alias("champion").version is None:
            return None
        status = controller.status()
        if (status["served"] or None) == status["desired"]:
            return None
    return controller.finish_pending().message


def git_credentials_missing(cfg: Config) -> str | None:
    """Why this process cannot push to the GitOps remote, or None if it may.

    On a cluster the git Secret (``deploy.gitops_credentials``) is mounted into the deploy and
    rollout steps and the rollout-advance CronJob only; a step without it cannot push.
    """
    deploy = cfg.deploy
    if deploy.mode != "gitops" or not deploy.gitops_remote or not deploy.gitops_credentials:
        return None
    if Path(deploy.gitops_credentials).is_dir():
        return None
    return (
        f"the git Secret (deploy.gitops_credentials: {deploy.gitops_credentials}) is not "
        "mounted in this step"
    )


def pending_rollout_left(cfg: Config, store: Storage, why: str) -> str | None:
    """What a step that may not push leaves pending (None: nothing), and who finishes it."""
    state, _ = read_rollout(store, cfg.name)
    if state is None or not state.pending:
        return None
    kinds = ", ".join(a.kind for a in state.pending)
    return (
        f"a rollout decision a crashed run left pending ({kinds}) is not finished here: {why}; "
        "the rollout step or the rollout-advance CronJob (`retrain deploy advance`) finishes it"
    )


def restore_champion(cfg: Config, store: Storage) -> str:
    """Re-point a lost champion alias at the version the event log last made champion.

    Under the rollout lock, and only while the alias is missing (`retrain deploy restore`).
    """
    controller = RolloutController(cfg, store)
    reg = controller.registry
    with controller.lock:
        current = reg.get_alias("champion")
        if current.version is not None:
            raise ValidationError(
                f"the champion alias of model {cfg.name!r} is set ({current.version}); "
                "nothing to restore"
            )
        last = reg.recorded_alias("champion")
        if last is None:
            raise ValidationError(f"the event log of model {cfg.name!r} names no champion")
        moved = reg.set_alias("champion", str(last["version"]), current.generation)
        reg.append_event(
            "alias_moved",
            once=event_key("champion", moved.generation),
            alias="champion",
            version=last["version"],
            previous=None,
            reason=f"restored from the event log ({last['kind']} at {last.get('time')})",
        )
    return f"champion restored to {last['version']} ({last['kind']} at {last.get('time')})"
