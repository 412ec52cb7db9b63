"""Named crash points: where the crash tests and `make chaos` kill a real run with SIGKILL.

Code that must converge after a crash calls `crash_point("deploy:registered")` (say) between
two effects. Nothing happens unless the environment variable ``RETRAIN_CRASH_AT`` names that
point, as ``name`` or ``name:n`` (the n-th time this process passes it); then the process
group is killed on the spot: no `finally`, no lease release, no flush, as with an OOM kill or
a node loss. It is read when a point is passed, never at import, and is meant for tests.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["CRASH_ENV", "CRASH_POINTS", "crash_point"]

#: The environment variable that arms a crash point.
CRASH_ENV = "RETRAIN_CRASH_AT"

#: Every point the code passes, by where it is (rollout points: `FAULT_POINTS`).
CRASH_POINTS: tuple[str, ...] = (
    "step:ingest",
    "step:label",
    "step:train",
    "step:evaluate",
    "register:file",
    "deploy:registered",
    "deploy:alias_moved",
    "deploy:applied",
    "step:deploy",
    "rollout:decided",
    "rollout:state_saved",
    "rollout:champion_moved",
    "rollout:canary_cleared",
    "rollout:deployment_applied",
    "rollout:event_appended",
    "rollout:pending_cleared",
    "step:rollout",
)

_passed: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL this process group if ``RETRAIN_CRASH_AT`` arms `name` (and this is pass n)."""
    armed = os.environ.get(CRASH_ENV)
    if not armed:
        return
    point, nth = armed, 1
    head, _, tail = armed.rpartition(":")
    if tail.isdigit():
        point, nth = head, int(tail)
    if point != name:
        return
    _passed[name] += 1
    if _passed[name] >= nth:
        os.killpg(os.getpgrp(), signal.SIGKILL)
