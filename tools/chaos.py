"""`make chaos`: the local loop under SIGKILL, re-run after every kill, checked for invariants.

    python -m tools.chaos [--seconds 180] [--seed 0] [--workdir DIR]

Each cycle generates the loans case, then runs its windows in order with `retrain run
--engine direct` in a process group of its own. Most runs are armed with a random named crash
point (`retrain._crash.CRASH_POINTS`: step boundaries, inside register and deploy, each step
of a rollout decision), which SIGKILLs the whole group there. A killed run is run again (the
re-run may be armed too) until one finishes; then the store, the registry and the GitOps tree
must hold these invariants:

- every registered version verifies (sha256 of each file) and its model loads;
- the aliases point at registered versions;
- the GitOps tree's HEAD serves what the aliases and the rollout call for, nothing pending;
- each event is in the log once (by kind, version, run or rollout decision);
- no temporary file is left in the store or the GitOps tree, no lock is held.

It stops starting new runs once `--seconds` have passed, prints the kills survived and exits 1
if any invariant broke or any re-run failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from retrain._crash import CRASH_ENV, CRASH_POINTS
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.registry import Registry
from retrain.rollout.controller import RolloutController
from retrain.storage import LocalStorage, open_storage
from retrain.training.artifact import load_registered_model

__all__ = ["check_invariants", "main", "prepare", "run_window"]

#: How long one `retrain run` may take before the chaos run calls it hung.
RUN_TIMEOUT_S = 600
#: Windows per generated case: the first deploys a champion, the concept changes at the third.
WINDOWS = 5


def prepare(workdir: Path, seed: int, windows: int = WINDOWS, drift_window: int = 2) -> Path:
    """Generate the loans case under `workdir` with a fast model and rollout; its config."""
    config = generate_loans(
        workdir, windows=windows, rows_per_window=500, drift_window=drift_window, seed=seed
    )
    raw = yaml.safe_load(config.read_text())
    # A tree fits in well under a second and separates this data; the chaos is in the loop,
    # not the model. Small evaluation sets are enough to bless a clearly better challenger.
    raw["model"] = {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 6}}
    raw["evaluation"]["min_rows"] = 50
    raw["rollout"] = {"interval_seconds": 0.2, "progress_deadline_seconds": 30, "min_labelled": 50}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def run_window(config: Path, window: int, crash: str | None) -> int:
    """`retrain run` of one window (labels as of two periods later); its exit code (-9: killed).

    The run gets a process group of its own, so a crash point kills it and nothing else.
    """
    config = config.resolve()
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash is not None:
        env[CRASH_ENV] = crash
    cmd = [
        sys.executable,
        "-m",
        "retrain.cli",
        "run",
        "--config",
        str(config),
        "--window",
        str(window),
        "--engine",
        "direct",
        "--as-of",
        str(window + 2),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -1
    if proc.returncode not in (0, -signal.SIGKILL):
        sys.stderr.write(err.decode(errors="replace")[-2000:])
    return proc.returncode


def check_invariants(cfg: Config) -> list[str]:
    """What is wrong with the store, registry and GitOps tree of `cfg` ([] if nothing)."""
    problems: list[str] = []
    store = open_storage(cfg.storage_root)
    reg = Registry(store, cfg.name)
    versions = reg.versions()
    for version in versions:
        try:
            load_registered_model(reg, version)
        except Exception as err:
            problems.append(f"version {version} does not verify: {err}")
    champion, canary = reg.get_alias("champion").version, reg.get_alias("canary").version
    for alias, pointed in (("champion", champion), ("canary", canary)):
        if pointed is not None and pointed not in versions:
            problems.append(f"alias {alias} points at {pointed}, not a registered version")
    status = RolloutController(cfg, store).status()
    if status["pending"]:
        problems.append(f"rollout decision left pending: {status['pending']}")
    if (status["served"] or None) != status["desired"]:
        problems.append(
            f"GitOps HEAD serves {status['served']!r}, aliases call for {status['desired']!r}"
        )
    lock = status["lock"]
    if lock is not None and not lock.get("released"):
        problems.append(f"rollout lock still held by {lock.get('owner')}")
    seen = collections.Counter(_event_identity(e) for e in reg.events())
    problems += [f"event {ident} is in the log {n} times" for ident, n in seen.items() if n > 1]
    roots = [Path(cfg.deploy.gitops_repo or ".")]
    if isinstance(store, LocalStorage):
        roots.append(Path(store.root))
    for root in roots:
        left = [p for p in root.rglob("*.tmp") if ".git" not in p.parts[len(root.parts) :]]
        problems += [f"temporary file left: {p}" for p in left]
    git = Path(cfg.deploy.gitops_repo or ".")
    dirty = subprocess.run(
        ["git", "-C", str(git), "status", "--porcelain"], capture_output=True, text=True
    ).stdout.strip()
    if dirty:
        problems.append(f"GitOps tree has uncommitted changes: {dirty}")
    return problems


def _random_point(rng: random.Random) -> str:
    """A crash point and the pass to kill at: later passes where a run passes it repeatedly."""
    point = rng.choice(CRASH_POINTS)
    repeated = point == "register:file" or point.startswith("rollout:")
    return f"{point}:{rng.randint(1, 3) if repeated else 1}"


def _event_identity(event: dict[str, Any]) -> tuple[Any, ...]:
    """What makes an event one fact: its kind and the version, run or decision it records."""
    kind = event.get("kind")
    if kind in ("promoted", "rolled_back") or event.get("rollout_id"):
        return (kind, event.get("version"), event.get("rollout_id"), event.get("decision"))
    if kind == "registered":
        return (kind, event.get("version"))
    if kind == "alias_moved":
        return (kind, event.get("alias"), event.get("version"), event.get("previous"))
    return (kind, event.get("version"), event.get("ref"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180.0, help="time budget for new runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("build/chaos"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    start = time.monotonic()
    kills, runs, failures = 0, 0, 0
    killed_at: collections.Counter[str] = collections.Counter()
    cycle = 0
    while time.monotonic() - start < args.seconds:
        workdir = args.workdir.resolve() / f"cycle-{cycle}"
        if workdir.exists():
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
        config = prepare(workdir, seed=args.seed * 1000 + cycle)
        cfg = load_config(config)
        for window in range(WINDOWS - 2):  # the last two windows' labels are still coming in
            if time.monotonic() - start >= args.seconds:
                break
            attempt = 0
            while True:
                armed = rng.random() < (0.8 if attempt == 0 else 0.3)
                crash = _random_point(rng) if armed else None
                code = run_window(config, window, crash)
                runs += 1
                attempt += 1
                if code == -signal.SIGKILL:
                    kills += 1
                    killed_at[str(crash)] += 1
                    print(f"cycle {cycle} window {window}: killed at {crash}", flush=True)
                    continue
                break
            problems = check_invariants(cfg) if code == 0 else [f"exit {code}"]
            verdict = "ok" if not problems else "BROKEN: " + "; ".join(problems)
            print(f"cycle {cycle} window {window}: {attempt} run(s), {verdict}", flush=True)
            failures += bool(problems)
        cycle += 1
    elapsed = time.monotonic() - start
    print(
        f"chaos: {kills} SIGKILLs survived in {runs} runs ({elapsed:.0f}s); "
        f"{failures} window(s) broke an invariant or failed"
    )
    for point, n in sorted(killed_at.items()):
        print(f"  {n} x {point}")
    if kills == 0:
        print("chaos: no run was killed: the crash points were never reached")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
