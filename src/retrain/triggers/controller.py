"""The I/O around the pure policy: state and lease in the store, and the launch.

`TriggerController.handle(signal)` reads the policy state (with its generation) and the lease,
asks `decide`, and on a launch takes the lease (create-only, or compare-and-swap over an
expired one) *before* saving the new state by compare-and-swap. A lost race at either step
releases what was taken and decides again from fresh state, so any number of processes and
threads handling signals at once start at most one run, and never two that overlap.

Store layout (keys below the storage root)::

    triggers/<model>/state.json                       policy state, moved by CAS
    triggers/<model>/launches/<time>-<run_id>.json    one create-only record per launch
    leases/<model>.json                               the run lease
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from retrain.errors import PreconditionFailed, TransientError
from retrain.settings.triggers import TriggerConfig
from retrain.storage import NO_OBJECT, Storage
from retrain.triggers.lease import acquire_lease, read_lease, release_lease, renew_lease
from retrain.triggers.policy import Decision, PolicyState, Signal, decide

__all__ = [
    "LaunchResult",
    "Launcher",
    "Outcome",
    "RunStatus",
    "TriggerController",
    "launches_prefix",
    "state_key",
    "trigger_run_id",
]

RunStatus = Literal["running", "succeeded", "failed", "skipped"]
_ATTEMPTS = 200


@dataclass(frozen=True)
class LaunchResult:
    """What a launcher did: a finished local run, a submitted cluster run, or nothing."""

    run_id: str
    status: RunStatus
    external_id: str | None = None
    detail: str = ""


class Launcher(Protocol):
    """Starts a retraining run for a snapshot, and reports on runs it started."""

    name: str

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        """Start (or run to the end) one cycle for `snapshot` under `run_id`."""
        ...

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        """The status of a run this launcher left running (None: it cannot tell)."""
        ...


@dataclass(frozen=True)
class Outcome:
    """A decision, and the launch it led to (if any)."""

    decision: Decision
    launch: LaunchResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.decision.to_dict()
        if self.launch is not None:
            out["run"] = {
                "run_id": self.launch.run_id,
                "status": self.launch.status,
                "external_id": self.launch.external_id,
                "detail": self.launch.detail,
            }
        return out


def state_key(model: str) -> str:
    return f"triggers/{model}/state.json"


def launches_prefix(model: str) -> str:
    """Where the launch records of a model are kept (one JSON per launch, named by time)."""
    return f"triggers/{model}/launches/"


def trigger_run_id(snapshot: str, now: datetime) -> str:
    """A run id naming the snapshot and the time (valid for `retrain.steps.check_run_id`)."""
    safe = "".join(c if c.isalnum() else "-" for c in snapshot)[:60]
    return f"w{safe}-{now.astimezone(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class TriggerController:
    """Applies the trigger policy for one model, with its state and lease in `store`.

    Args:
        store: where the state, lease and launch records live.
        model: the model name (the config's `name`).
        cfg: the `triggers:` section.
        launcher: what starts a run when the policy says so.
        clock: returns the current time (timezone-aware); injectable for tests.
        owner: names this process in the lease (default: host and pid).
    """

    def __init__(
        self,
        store: Storage,
        model: str,
        cfg: TriggerConfig,
        launcher: Launcher,
        *,
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.cfg = cfg
        self.launcher = launcher
        self.clock = clock or _utc_now
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"

    # -- state ------------------------------------------------------------------------------

    def load_state(self) -> tuple[PolicyState, int]:
        key = state_key(self.model)
        data, generation = self.store.read_versioned(key)
        if data is None:
            return PolicyState(), NO_OBJECT
        return PolicyState.from_json(data, self.store.uri(key)), generation

    def _save_state(self, state: PolicyState, generation: int) -> None:
        self.store.compare_and_swap(state_key(self.model), state.to_json().encode(), generation)

    def _update_state(self, change: Callable[[PolicyState], PolicyState]) -> None:
        for attempt in range(_ATTEMPTS):
            state, generation = self.load_state()
            try:
                self._save_state(change(state), generation)
                return
            except PreconditionFailed:
                _backoff(attempt)
        raise TransientError(f"trigger state of {self.model!r} is too contended to update")

    # -- signals ----------------------------------------------------------------------------

    def handle(self, signal: Signal, *, window_key: Callable[[str], Any] | None = None) -> Outcome:
        """Decide on one signal and, if the policy says so, launch the run.

        `window_key` orders window ids by time (`retrain.data.windows.window_sort_key`): the
        drift hysteresis then counts a window only if newer than the last counted (`decide`).
        """
        for attempt in range(_ATTEMPTS):
            state, generation = self.load_state()
            lease, _ = read_lease(self.store, self.model)
            now = self.clock()
            decision, new_state = decide(signal, state, self.cfg, now, lease, window_key=window_key)
            if not decision.launch:
                if new_state == state:
                    return Outcome(decision)
                try:
                    self._save_state(new_state, generation)
                    return Outcome(decision)
                except PreconditionFailed:
                    _backoff(attempt)
                    continue
            run_id = trigger_run_id(signal.snapshot, now)
            taken = acquire_lease(
                self.store,
                self.model,
                owner=self.owner,
                run_id=run_id,
                snapshot=signal.snapshot,
                ttl=self.cfg.lease_delta,
                now=now,
            )
            if taken is None:  # another run holds it now: decide again, seeing its lease
                _backoff(attempt)
                continue
            try:
                self._save_state(new_state, generation)
            except PreconditionFailed:
                release_lease(self.store, self.model, run_id, now)
                _backoff(attempt)
                continue
            return Outcome(decision, self._launch(decision, run_id))
        raise TransientError(f"trigger state of {self.model!r} is too contended to decide")

    def _launch(self, decision: Decision, run_id: str) -> LaunchResult:
        snapshot = decision.signal.snapshot
        try:
            result = self.launcher.launch(snapshot, run_id, decision)
        except BaseException as err:
            self._finish(run_id, snapshot, "failed")
            self._record(decision, LaunchResult(run_id, "failed", detail=repr(err)))
            raise
        self._record(decision, result)
        if result.status == "running":
            renew_lease(
                self.store,
                self.model,
                run_id,
                ttl=self.cfg.lease_delta,
                now=self.clock(),
                external_id=result.external_id,
            )
        else:
            self._finish(run_id, snapshot, result.status)
        return result

    def _finish(self, run_id: str, snapshot: str, status: RunStatus) -> None:
        self._update_state(lambda s: s.with_snapshot_status(snapshot, status))
        release_lease(self.store, self.model, run_id, self.clock())

    def _record(self, decision: Decision, result: LaunchResult) -> None:
        stamp = decision.at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        doc = Outcome(decision, result).to_dict() | {"model": self.model}
        key = f"{launches_prefix(self.model)}{stamp}-{result.run_id}.json"
        self.store.create(key, (json.dumps(doc, indent=2, default=str) + "\n").encode())

    # -- runs left running ------------------------------------------------------------------

    def reconcile(self) -> RunStatus | None:
        """Check the run that holds the lease (if this launcher left one running).

        A finished run releases the lease and records its status; a running one has its lease
        renewed. Returns the run's status, or None when no run holds the lease.
        """
        lease, _ = read_lease(self.store, self.model)
        now = self.clock()
        if lease is None or lease.released_at is not None:
            return None
        if lease.external_id is None:
            # A local run of another process: its owner releases it, or it expires.
            return "running" if lease.held(now) else None
        status = self.launcher.poll(lease.run_id, lease.external_id)
        if status is None:
            return "running" if lease.held(now) else None
        if status == "running":
            renew_lease(self.store, self.model, lease.run_id, ttl=self.cfg.lease_delta, now=now)
        else:
            self._finish(lease.run_id, lease.snapshot, status)
        return status


def _backoff(attempt: int) -> None:
    # Spread racing writers apart; jitter is timing only, never a decision.
    time.sleep(min(0.05, 0.001 * (attempt + 1)) * (0.5 + random.random()))
