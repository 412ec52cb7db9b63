"""`retrain deploy status | advance | promote | rollback`: the rollout by hand.

    retrain deploy status   --config F [--json]   serving split, rollout state, lock
    retrain deploy advance  --config F... [--workers N] [--deadline D] [--pass-id ID] [--json]
                                                  one analysis tick now
    retrain deploy promote  --config F [--reason TEXT]
    retrain deploy rollback --config F --reason TEXT
    retrain deploy restore  --config F             a lost champion alias, from the event log

promote and rollback go through the same lock and compare-and-swap as the automatic rollout.
A held lock exits 75 (retry); nothing to promote or roll back exits 2.

`advance` takes several configs (files, or directories of ``*.yaml`` configs), as `retrain
monitor` does: one pass ticks every model, each line prefixed with its model's name, and one
model's failure (named on stderr) does not stop the others. The pass exits with the most
actionable code among the models (`fleet_exit_code`): 1 for a bug, else 75 if any model may
succeed when tried again (a held lock, a metrics backend down), else 2 if any had bad input,
else 0. A config that cannot be read or does not validate is refused alone, named by its
file (`load_fleet`); with no valid config at all the command fails at once (exit 2).

A SIGTERM lets the ticks in progress finish (a tick cut short would record its half-run
analysis as the canary's fault) and starts no other model's tick: those are named and the
pass exits 75. ``--deadline`` (several configs; ignored for one) starts no tick after that
long from the pass's start, so a Job's ``activeDeadlineSeconds`` does not kill a tick
midway; the models
ticked longest ago go first (by their rollout lock's last use), so a pass that cannot reach
every model serves the ones it left out first next time. Models left out by the deadline are
named on stderr and do not fail the pass. With ``--pass-id`` (a Job's uid) a retried pod counts
the deadline from the Job's first pod's start, recorded in the first model's store
(``advance-passes/<id>.json``; see `retrain.cli._pass_start`), as the Job's own deadline counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from retrain.cli._fleet import (
    config_options,
    deadline_option,
    deadline_seconds,
    fleet_entry,
    models,
)
from retrain.cli._pass_start import checked_pass_id, pass_id_option, seconds_spent
from retrain.config import Config, load_config
from retrain.errors import EXIT_OK
from retrain.rollout.controller import RolloutController, TickResult, lock_key
from retrain.rollout.lock import StoreLock
from retrain.steps import restore_champion
from retrain.steps.signals import SigtermGuard, stop_on_sigterm
from retrain.storage import open_storage
from retrain.triggers.fleet import Fleet, fleet_exit_code, load_fleet, raise_refused, run_for_each

__all__ = ["add_commands"]


def add_commands(subparsers: Any) -> None:
    """Add the `deploy` command group to the `retrain` parser."""
    deploy = subparsers.add_parser("deploy", help="canary rollout: status, advance, promote, ...")
    sub = deploy.add_subparsers(dest="deploy_command", required=True)

    s = sub.add_parser("status", help="serving split, rollout state and lock")
    s.add_argument("--config", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_status)

    a = sub.add_parser("advance", help="run one analysis tick now, for every model given")
    config_options(a)
    deadline_option(a, "tick")
    pass_id_option(a, once=False)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_cmd_advance)

    p = sub.add_parser("promote", help="promote the canary now, skipping the remaining steps")
    p.add_argument("--config", required=True)
    p.add_argument("--reason", default="promoted by an operator")
    p.set_defaults(func=_cmd_promote)

    x = sub.add_parser("restore", help="re-point a lost champion alias at the logged champion")
    x.add_argument("--config", required=True)
    x.set_defaults(func=_cmd_restore)

    r = sub.add_parser("rollback", help="remove the canary now; the champion keeps 100%%")
    r.add_argument("--config", required=True)
    r.add_argument("--reason", required=True)
    r.set_defaults(func=_cmd_rollback)


def _controller(args: argparse.Namespace) -> RolloutController:
    return RolloutController(load_config(args.config))


def _cmd_status(args: argparse.Namespace) -> int:
    status = _controller(args).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str), flush=True)
        return EXIT_OK
    print(
        f"model {status['model']}: champion {status['champion'] or '-'}, "
        f"canary {status['canary'] or '-'}"
    )
    served, desired = status["served"], status["desired"]
    if served is not None:  # GitOps: what HEAD serves, never what the state wishes it did
        print(f"GitOps HEAD serves: {served or 'nothing committed'}")
    if (served is not None and desired is not None and served != desired) or status["pending"]:
        print(
            f"  NOT CONVERGED: the registry and rollout call for {desired or 'nothing'}"
            + (f" (pending: {', '.join(status['pending'])})" if status["pending"] else "")
            + "; `retrain deploy advance` finishes it"
        )
    rollout = status["rollout"]
    if rollout is None:
        print("no rollout yet")
    else:
        where = "" if served is not None else f"; the canary's share: {rollout['traffic']}%"
        print(
            f"rollout {rollout['rollout_id']}: {rollout['phase']} at {rollout['step_label']}{where}"
        )
        print(f"  {rollout['reason']}")
        if rollout["next_analysis_at"]:
            print(f"  next analysis {rollout['next_analysis_at']}, deadline {rollout['deadline']}")
        for a in rollout["analyses"][-5:]:
            print(f"  {a['at']}  {a['traffic']:>3}%  {a['verdict']:<9} {a['reason']}")
    lock = status["lock"]
    if lock and not lock.get("released"):
        print(f"lock held by {lock['owner']} until {lock['expires_at']}")
    return EXIT_OK


def _tick_doc(result: TickResult) -> dict[str, Any]:
    return {
        "in_flight": result.in_flight,
        "actions": [a.kind for a in result.actions],
        "message": result.message,
        "rollout": None if result.state is None else result.state.as_dict(),
    }


def _show(result: TickResult, as_json: bool) -> int:
    if as_json:
        print(json.dumps(_tick_doc(result), indent=2, default=str), flush=True)
    else:
        print(result.message, flush=True)
    return EXIT_OK


def _cmd_advance(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.config)
    if not fleet.configs:
        raise_refused(fleet)
    deadline = deadline_seconds(args.deadline)
    pass_id = checked_pass_id(args)
    # A SIGTERM (the Job's deadline, a node drained) is only noted: a tick cut short would
    # record its half-run analysis as the canary's fault, and could leave its lock held to its
    # TTL. The ticks in progress finish, releasing their locks, and no other tick starts.
    with stop_on_sigterm() as sigterm, sigterm.deferred():
        if fleet.one:  # one tick starts with its pass: no deadline to count
            return _show(_tick(fleet.configs[0]), args.json)
        # --pass-id: the seconds a Job's earlier pods spent, and the record's own (bounded)
        spent = seconds_spent(
            pass_id,
            deadline,
            fleet.configs[0].storage_root,
            stop=lambda: sigterm.received,
            kind="advance",
        )
        return _advance_fleet(
            fleet,
            workers=args.workers,
            as_json=args.json,
            deadline=deadline,
            sigterm=sigterm,
            spent=spent,
        )


def _tick(cfg: Config) -> TickResult:
    return RolloutController(cfg).tick()


def _last_ticked(cfg: Config) -> datetime:
    """When the model's rollout lock was last taken or given back (a tick, a promote, a
    pipeline's rollout step): the earliest time for one never ticked or unreadable, so the
    models served longest ago go first."""
    try:
        held = StoreLock(open_storage(cfg.storage_root), lock_key(cfg.name), ttl_seconds=1).holder()
        if held is not None:
            when = held.get("expires_at") if held.get("released") else held.get("acquired_at")
            stamp = datetime.fromisoformat(str(when))
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    except Exception:  # unknown (a store it may not read: its tick says why): first in line
        pass
    return datetime.min.replace(tzinfo=timezone.utc)


def _advance_fleet(
    fleet: Fleet,
    *,
    workers: int,
    as_json: bool,
    deadline: float | None,
    sigterm: SigtermGuard,
    spent: float = 0.0,
) -> int:
    """One tick per model, on a bounded pool of threads; each model has its own rollout lock.

    Threads, as for `retrain schedule`: a tick waits on the store, Prometheus, git or the
    Kubernetes API (the replay provider's scoring holds the GIL: one model's at a time). With
    ``--json`` the one document is the list of the models' entries.

    The models ticked longest ago start first (`_last_ticked`), so a pass that its deadline
    ends early still serves every model within a few passes. After a SIGTERM no model's tick
    starts (exit 75); the models a deadline left out are named and do not fail the pass.
    `spent`: the pass's seconds before this call (a Job's earlier pods, `seconds_spent`).
    """

    def stopped() -> bool:
        return sigterm.received

    done = run_for_each(
        fleet.configs,
        _tick,
        workers=workers,
        deadline=deadline,
        stop=stopped,
        priority=_last_ticked,
        spent=spent,
    )
    results = [*fleet.refused, *done]
    for r in results:
        if r.error is not None:
            err = f"{type(r.error).__name__}: {r.error}"
            print(f"{r.model}: advance failed: {err}", file=sys.stderr, flush=True)
        elif r.skipped is not None:
            print(f"{r.model}: {r.skipped}; the next pass serves it first", file=sys.stderr)
        elif r.result is not None and not as_json:
            print(f"{r.model}: {r.result.message}", flush=True)
    code = fleet_exit_code(results)
    if as_json:
        entries = [fleet_entry(r, _tick_doc) for r in results]
        print(json.dumps(entries, indent=2, default=str), flush=True)
    else:
        skipped = sum(r.skipped is not None for r in results)
        late = f", {skipped} not reached before --deadline" if skipped else ""
        ok = sum(r.ok for r in results)
        print(f"ticked {models(len(results))}: {ok} ok{late} (exit {code})", flush=True)
    return code


def _cmd_promote(args: argparse.Namespace) -> int:
    return _show(_controller(args).promote(args.reason), False)


def _cmd_rollback(args: argparse.Namespace) -> int:
    return _show(_controller(args).roll_back(args.reason), False)


def _cmd_restore(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(restore_champion(cfg, open_storage(cfg.storage_root)), flush=True)
    return EXIT_OK
