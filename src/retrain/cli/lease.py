"""`retrain lease status | break`: the run lease by hand.

    retrain lease status --config F [--json]       who holds it, until when
    retrain lease break  --config F --reason TEXT  release it whoever holds it

A run that dies without releasing its lease (SIGKILL, a lost node) blocks every other run of
the model until ``triggers.lease_ttl`` passes. `break` frees it now and records a
``lease_broken`` event (who held it, why it was broken) in the model's event log. Break a lease
only once its run is known to be gone: a live run that loses its lease may overlap the next.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from retrain.config import load_config
from retrain.errors import EXIT_OK, EXIT_VALIDATION
from retrain.registry import Registry
from retrain.steps.lease import iso, lease_dict
from retrain.storage import open_storage
from retrain.triggers.lease import break_lease, lease_key, read_lease

__all__ = ["add_commands"]


def add_commands(subparsers: Any) -> None:
    """Add the `lease` command group to the `retrain` parser."""
    lease = subparsers.add_parser("lease", help="the run lease: status, break")
    sub = lease.add_subparsers(dest="lease_command", required=True)

    s = sub.add_parser("status", help="who holds the run lease, and until when")
    s.add_argument("--config", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_status)

    b = sub.add_parser("break", help="release the run lease now, whoever holds it")
    b.add_argument("--config", required=True)
    b.add_argument("--reason", required=True, help="why (recorded in the event log)")
    b.set_defaults(func=_cmd_break)


def _cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = open_storage(cfg.storage_root)
    lease, _ = read_lease(store, cfg.name)
    now = datetime.now(timezone.utc)
    doc = {
        "model": cfg.name,
        "key": store.uri(lease_key(cfg.name)),
        "held": bool(lease is not None and lease.held(now)),
        "lease": lease_dict(lease) if lease is not None else None,
    }
    if args.json:
        print(json.dumps(doc, indent=2), flush=True)
    elif lease is None:
        print(f"run lease of {cfg.name}: never taken", flush=True)
    else:
        state = "HELD" if doc["held"] else "free"
        if lease.released_at is not None:
            state += f" (released {iso(lease.released_at)})"
        elif not doc["held"]:
            state += f" (expired {iso(lease.expires_at)})"
        print(
            f"run lease of {cfg.name}: {state}\n"
            f"  owner {lease.owner}, run {lease.run_id}, window {lease.snapshot}\n"
            f"  taken {iso(lease.acquired_at)}, expires {iso(lease.expires_at)}"
            + (f"\n  external id {lease.external_id}" if lease.external_id else ""),
            flush=True,
        )
    return EXIT_OK


def _cmd_break(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = open_storage(cfg.storage_root)
    now = datetime.now(timezone.utc)
    broken = break_lease(store, cfg.name, now)
    if broken is None:
        print(f"run lease of {cfg.name}: not held, nothing to break", flush=True)
        return EXIT_VALIDATION
    Registry(store, cfg.name).append_event(
        "lease_broken",
        owner=broken.owner,
        run_id=broken.run_id,
        window=broken.snapshot,
        expired=not broken.held(now),
        reason=args.reason,
    )
    print(
        f"run lease of {cfg.name}: broken (was {broken.owner}'s, run {broken.run_id}, "
        f"expiring {iso(broken.expires_at)}); the next run may start",
        flush=True,
    )
    return EXIT_OK
