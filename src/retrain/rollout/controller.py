"""The rollout controller: the state machine's effects, under a lock, crash-safe.

One `tick` (what `retrain deploy advance` runs):

1. take the model's lease lock (``rollouts/<model>.lock``; `LockBusy` -> exit 75);
2. read the rollout state (``rollouts/<model>.json``) with its generation; finish the actions
   of a decision a crashed run left pending;
3. follow the registry: a new canary alias starts a rollout, a canary replaced or removed
   outside the rollout ends it as "aborted";
4. if an analysis is due, ask the metrics provider, run `advance`, save the new state with its
   actions as pending (compare-and-swap), carry the actions out, clear pending.

Carrying out a decision, in this order, each step idempotent:

    promote:      champion alias -> canary; canary alias cleared; render + apply ONE predictor
                  at 100 % (the old one removed, never left at traffic 0); event "promoted"
    roll back:    canary alias cleared; render + apply the champion alone; event "rolled_back"
                  (its `outcome` says "inconclusive" when the canary left unjudged)
    set traffic:  render + apply champion + canary at the step's share; event "deployed"

The deployment is always rendered from the registry's aliases plus the rollout's traffic, so a
re-run renders the same object and the applier makes no change. Events carry the rollout id
and the decision number and are written create-only under that key, so each lands once. A
crash at any point (`FAULT_POINTS`, each reachable through the injected `fault` hook)
therefore converges to the same end state when the tick runs again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from retrain._crash import crash_point
from retrain.deploy import DeploymentState, ModelRef, applier_for, backend_for
from retrain.deploy.gitops import served_split
from retrain.errors import AlreadyExists, TransientError, ValidationError
from retrain.registry import MODEL_FILE, Registry, event_key
from retrain.rollout import pool as evidence
from retrain.rollout.lock import StoreLock
from retrain.rollout.machine import (
    Action,
    Promote,
    RollBack,
    RolloutState,
    SetTraffic,
    abort,
    advance,
    is_due,
    metrics_unreachable,
    promote_now,
    roll_back_now,
    start_rollout,
)
from retrain.rollout.observe import MetricsProvider, ObserveRequest
from retrain.storage import NO_OBJECT, Storage, open_storage

if TYPE_CHECKING:
    from retrain.config import Config
    from retrain.deploy import Applier

__all__ = [
    "FAULT_POINTS",
    "RolloutController",
    "TickResult",
    "lock_key",
    "read_rollout",
    "state_key",
]

#: Where `fault` is called, in the order a decision is carried out.
FAULT_POINTS: tuple[str, ...] = (
    "decided",
    "state_saved",
    "champion_moved",
    "canary_cleared",
    "deployment_applied",
    "event_appended",
    "pending_cleared",
)


def state_key(model: str) -> str:
    return f"rollouts/{model}.json"


def lock_key(model: str) -> str:
    return f"rollouts/{model}.lock"


def _history_key(model: str, rollout_id: str) -> str:
    return f"rollouts/{model}/history/{rollout_id}.json"


def read_rollout(store: Storage, model: str) -> tuple[RolloutState | None, int]:
    """The persisted rollout state of a model and its generation (None, 0 if none yet)."""
    key = state_key(model)
    data, generation = store.read_versioned(key)
    if data is None:
        return None, NO_OBJECT
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValidationError(f"{store.uri(key)} is not valid JSON: {err}") from None
    return RolloutState.from_dict(raw), generation


@dataclass(frozen=True)
class TickResult:
    """What a tick (or a manual command) did.

    Attributes:
        state: the latest rollout state (None if this model never had one).
        in_flight: whether a canary rollout is still progressing.
        actions: the actions decided (and carried out) by this call.
        message: what happened, in words.
    """

    state: RolloutState | None
    in_flight: bool
    actions: tuple[Action, ...]
    message: str


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _crash_at(point: str) -> None:
    crash_point(f"rollout:{point}")


class RolloutController:
    """Carries out rollout decisions for one model.

    Args:
        cfg: the use case's config (deploy and rollout sections).
        store: the store (default: ``cfg.storage_root``).
        provider: metrics provider (default: ``provider_for(cfg)``, made on first use).
        applier: deployment applier (default: ``applier_for(cfg)``, made on first use).
        clock: timezone-aware "now"; also stamps registry events and the lock.
        fault: called with each name in `FAULT_POINTS` as it is passed (tests raise from it;
            by default a `retrain._crash` point named ``rollout:<name>``).
        owner: lock owner id (default: host, pid and a random suffix).
    """

    def __init__(
        self,
        cfg: Config,
        store: Storage | None = None,
        *,
        provider: MetricsProvider | None = None,
        applier: Applier | None = None,
        clock: Callable[[], datetime] | None = None,
        fault: Callable[[str], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store if store is not None else open_storage(cfg.storage_root)
        self.clock = clock or _utc_now
        self.registry = Registry(self.store, cfg.name, clock=self.clock)
        self.fault = fault or _crash_at
        self._provider = provider
        self._applier = applier
        self.lock = StoreLock(
            self.store,
            lock_key(cfg.name),
            ttl_seconds=cfg.rollout.lock_ttl_seconds,
            owner=owner,
            clock=self.clock,
            what=f"the rollout of model {cfg.name!r}",
        )

    @property
    def provider(self) -> MetricsProvider:
        if self._provider is None:
            # Imported here: the providers score models (scikit-learn), and the steps that
            # only read the rollout state (ingest, label) should not pay for that import.
            from retrain.rollout.providers import provider_for

            self._provider = provider_for(self.cfg)
        return self._provider

    @property
    def applier(self) -> Applier:
        if self._applier is None:
            self._applier = applier_for(self.cfg)
        return self._applier

    # -- commands ---------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """One analysis tick: start, advance, promote or roll back as the state calls for."""
        with self.lock:
            state, gen, done = self._prepare()
            if state is None or state.terminal:
                converged = self._converge_idle(state)
                return TickResult(state, False, done, converged + self._idle_message(state))
            now = self.clock()
            self._reconcile(state)
            if not is_due(state, now):
                wait = (state.next_analysis_at - now).total_seconds()
                return TickResult(
                    state,
                    True,
                    done,
                    f"{state.canary} at {state.traffic}%: next analysis in {wait:.0f}s",
                )
            champion = self.registry.get_alias("champion").version or state.champion
            try:
                observations = self.provider.observe(
                    ObserveRequest(
                        cfg=self.cfg,
                        store=self.store,
                        champion=champion,
                        canary=state.canary,
                        traffic=state.traffic,
                        analysis=len(state.analyses),
                        now=now,
                        rollout_id=state.rollout_id,
                        step=state.step,
                        pooled=evidence.analyses(state.pool),
                        population=state.population,
                    )
                )
            except TransientError as err:
                # Before the deadline an unreachable backend is retried (exit 75); after it,
                # no metrics is no evidence of health, and the canary is rolled back.
                if now < state.deadline:
                    raise
                new, actions = metrics_unreachable(state, now, f"{type(err).__name__}: {err}")
            else:
                new, actions = advance(state, observations, now)
            new, gen = self._decide(new, gen)
            return TickResult(new, not new.terminal, done + actions, new.reason)

    def finish_pending(self) -> TickResult:
        """Finish what a crashed run left (under the lock), without running an analysis.

        Carries out a pending decision, and with no rollout in flight makes the deployment
        serve what the aliases say (a run killed after moving an alias, before applying).
        """
        with self.lock:
            state, _, done = self._prepare()
            if state is None or state.terminal:
                message = self._converge_idle(state)
            else:
                self._reconcile(state)
                message = ""
            if done and state is not None:
                message += f"carried out {', '.join(a.kind for a in done)} of {state.canary}"
            in_flight = state is not None and not state.terminal
            return TickResult(state, in_flight, done, message or "nothing was left to finish")

    def _converge_idle(self, state: RolloutState | None) -> str:
        """With no rollout in flight, apply what the aliases call for; what changed, in words."""
        champion = self.registry.get_alias("champion").version
        canary = self.registry.get_alias("canary").version
        if champion is None:
            return ""
        applied = self._applied(self.desired_state(state), "converge to the aliases")
        if not applied["changed"]:
            return ""
        live = canary is not None and canary != champion
        version = canary if live else champion
        pointer = self.registry.get_alias("champion")
        if pointer.previous is None:  # a first deploy's move, whose event the killed run owed
            self.registry.append_event(
                "alias_moved",
                once=event_key("champion", pointer.generation),
                alias="champion",
                version=champion,
                previous=None,
            )
        self.registry.append_event(
            "canary_started" if live else "deployed",
            once=event_key(version, applied["ref"]),
            version=version,
            ref=applied["ref"],
            traffic=applied["traffic"],
            reason="the deployment did not serve what the aliases say (a run was interrupted)",
        )
        return f"deployment converged to the aliases ({applied['split']}); "

    def promote(self, reason: str) -> TickResult:
        """Promote the canary now (through the lock and compare-and-swap)."""
        return self._manual(promote_now, reason, "promote")

    def roll_back(self, reason: str) -> TickResult:
        """Roll the canary back now (through the lock and compare-and-swap)."""
        return self._manual(roll_back_now, reason, "roll back")

    def status(self) -> dict[str, Any]:
        """Aliases, the rollout state, the lock and what is served, read without the lock.

        ``served`` is the split the GitOps tree's HEAD holds ("" if nothing is committed;
        None in kubernetes mode), ``desired`` the split the aliases and the rollout call for.
        """
        state, generation = read_rollout(self.store, self.cfg.name)
        champion = self.registry.get_alias("champion").version
        desired = self.desired_state(state).summary() if champion is not None else None
        served = None
        if self.cfg.deploy.mode == "gitops":  # the API mode has no committed object to read
            split = served_split(self.cfg)
            served = "" if split is None else ", ".join(f"{r} {v} {t}%" for r, v, t in split)
        return {
            "model": self.cfg.name,
            "champion": champion,
            "canary": self.registry.get_alias("canary").version,
            "rollout": None if state is None else state.as_dict(),
            "generation": generation,
            "lock": self.lock.holder(),
            "desired": desired,
            "served": served,
            "pending": [] if state is None else [a.kind for a in state.pending],
        }

    # -- internals --------------------------------------------------------------------------

    def _manual(
        self,
        decide: Callable[[RolloutState, datetime, str], tuple[RolloutState, tuple[Action, ...]]],
        reason: str,
        what: str,
    ) -> TickResult:
        if not reason.strip():
            raise ValidationError(f"give a reason to {what} by hand (it goes into the event log)")
        with self.lock:
            state, gen, done = self._prepare()
            if state is None or state.terminal:
                raise ValidationError(
                    f"no canary of model {self.cfg.name!r} to {what}: {self._idle_message(state)}"
                )
            new, actions = decide(state, self.clock(), reason)
            new, gen = self._decide(new, gen)
            return TickResult(new, False, done + actions, new.reason)

    def _prepare(self) -> tuple[RolloutState | None, int, tuple[Action, ...]]:
        """Finish a crashed decision, then follow the registry's canary alias."""
        state, gen = read_rollout(self.store, self.cfg.name)
        done: tuple[Action, ...] = ()
        if state is not None and state.pending:
            done = state.pending
            state, gen = self._carry_out(state, gen)
        champion = self.registry.get_alias("champion").version
        canary = self.registry.get_alias("canary").version
        now = self.clock()
        live = canary is not None and canary != champion
        if state is not None and not state.terminal and (not live or state.canary != canary):
            why = (
                f"canary {state.canary} was replaced by {canary} outside this rollout"
                if live
                else f"canary {state.canary} was removed outside this rollout"
            )
            state = abort(state, now, why)
            gen = self._save(state, gen)
        if not live or champion is None or canary is None:
            return state, gen, done
        if state is not None and state.canary == canary and not state.terminal:
            return state, gen, done
        if state is not None:
            self._archive(state)
        new, _ = start_rollout(
            self.cfg.name, champion, canary, self.cfg.rollout, now, task=self.cfg.task
        )
        new, gen = self._decide(new, gen)
        return new, gen, done

    def _decide(self, state: RolloutState, gen: int) -> tuple[RolloutState, int]:
        """Save a decision with its actions pending, then carry them out."""
        self.fault("decided")
        gen = self._save(state, gen)
        self.fault("state_saved")
        return self._carry_out(state, gen)

    def _carry_out(self, state: RolloutState, gen: int) -> tuple[RolloutState, int]:
        for action in state.pending:
            if isinstance(action, Promote):
                self._promote_aliases(action.version)
            elif isinstance(action, RollBack):
                self._clear_canary(action.version)
            applied = self._apply(state, action)
            self.fault("deployment_applied")
            self._record_event(state, action, applied)
            self.fault("event_appended")
        state = replace(state, pending=())
        gen = self._save(state, gen)
        self.fault("pending_cleared")
        return state, gen

    def _promote_aliases(self, version: str) -> None:
        champion = self.registry.get_alias("champion")
        if champion.version != version:
            self.registry.set_alias("champion", version, champion.generation)
        self.fault("champion_moved")
        self._clear_canary(version)

    def _clear_canary(self, version: str) -> None:
        canary = self.registry.get_alias("canary")
        # Only our canary: a newer one set meanwhile by a deploy must survive a retry.
        if canary.version == version:
            self.registry.set_alias("canary", None, canary.generation)
        self.fault("canary_cleared")

    def desired_state(self, state: RolloutState | None) -> DeploymentState:
        """What should serve: the aliases, with the canary at the rollout's current share."""
        d = self.cfg.deploy
        champion = self.registry.get_alias("champion").version
        if champion is None:
            raise ValidationError(f"model {self.cfg.name!r} has no champion: nothing to serve")
        champ = self._ref(champion)
        canary = self.registry.get_alias("canary").version
        if canary is None or canary == champion:
            return DeploymentState.single(d.deployment_name, d.namespace, champ)
        if state is not None and state.canary == canary and not state.terminal:
            traffic = state.traffic
        else:
            traffic = self.cfg.rollout.steps[0]  # the share its own rollout will start at
        return DeploymentState.with_canary(
            d.deployment_name, d.namespace, champ, self._ref(canary), traffic
        )

    def _ref(self, version: str) -> ModelRef:
        return ModelRef(version, self.registry.file_uri(version, MODEL_FILE))

    def _apply(self, state: RolloutState, action: Action | None) -> dict[str, Any]:
        why = action.reason if isinstance(action, (Promote, RollBack)) else state.reason
        return self._applied(self.desired_state(state), why)

    def _applied(self, desired: DeploymentState, why: str) -> dict[str, Any]:
        obj = backend_for(self.cfg).render(desired, self.cfg)
        message = f"retrain rollout: {desired.name} -> {desired.summary()} ({_short(why)})"
        result = self.applier.apply(obj, self.cfg, message=message)
        return {
            "ref": result.ref,
            "changed": result.changed,
            "traffic": {p.name: p.traffic for p in desired.predictors},
            "split": desired.summary(),
        }

    def _reconcile(self, state: RolloutState) -> None:
        # A deploy step re-run renders the configured first share; put the rollout's back.
        self._apply(state, None)

    def _record_event(self, state: RolloutState, action: Action, applied: dict[str, Any]) -> None:
        kind = {"promote": "promoted", "roll_back": "rolled_back", "set_traffic": "deployed"}[
            action.kind
        ]
        fields: dict[str, Any] = {
            "version": state.canary,
            "rollout_id": state.rollout_id,
            "decision": state.seq,
            "ref": applied["ref"],
            "traffic": applied["traffic"],
        }
        if isinstance(action, SetTraffic):
            fields.update(action="set_traffic", reason=state.reason)
        else:
            fields.update(reason=action.reason, champion=state.champion)
        if isinstance(action, RollBack):
            fields.update(outcome=state.phase)  # "rolled_back" or "inconclusive" (unjudged)
        # Keyed by the decision: an attempt after a crash writes it again, and it lands once.
        once = event_key(state.canary, state.rollout_id, state.seq)
        self.registry.append_event(kind, once=once, **fields)

    def _save(self, state: RolloutState, gen: int) -> int:
        text = json.dumps(state.as_dict(), indent=2, sort_keys=True) + "\n"
        return self.store.compare_and_swap(state_key(self.cfg.name), text.encode(), gen)

    def _archive(self, state: RolloutState) -> None:
        text = json.dumps(state.as_dict(), indent=2, sort_keys=True) + "\n"
        with contextlib.suppress(AlreadyExists):  # archived by an earlier attempt
            self.store.create(_history_key(self.cfg.name, state.rollout_id), text.encode())

    def _idle_message(self, state: RolloutState | None) -> str:
        champion = self.registry.get_alias("champion").version
        serving = f"champion {champion} serves 100%" if champion else "nothing is deployed"
        if state is None:
            return f"no canary in flight; {serving}"
        return (
            f"no canary in flight; {serving}; last rollout {state.canary}: {state.phase} "
            f"({state.reason})"
        )


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
