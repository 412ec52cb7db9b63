"""Task attempts: what earlier attempts of one retried pipeline task ended with.

KFP's retry policy retries a failed task whatever its exit code, after the backoff it was
compiled with. So the cluster pipeline compiles its retries with no backoff, and the step
launcher decides instead, from the attempts recorded here under ``attempts/<task key>.json``:

- the last attempt failed permanently (exit 2, bad input): exit 2 at once, without running
  the step again, so a bad-input failure costs no backoff wait and repeats no work;
- earlier attempts failed otherwise (75 transient, or internal): wait the backoff (base x
  factor^(n-1), capped) and run again;
- no failure recorded (the first attempt, or a pod lost before it could record): run at once.

The task key names one task of one run (the launcher hashes its executor input, which is the
same for every retry of a task and differs between tasks and runs), so a new run of the same
window starts afresh. Should a backend ever hand a retry a different executor input, the retry
would find no record and run the step again: slower, never wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from retrain.errors import EXIT_VALIDATION, NotFound
from retrain.steps.records import now_iso
from retrain.storage import Storage

__all__ = [
    "ATTEMPTS_PREFIX",
    "AttemptPlan",
    "RetryBackoff",
    "plan_attempt",
    "read_failures",
    "record_failure",
]

ATTEMPTS_PREFIX = "attempts"


@dataclass(frozen=True)
class RetryBackoff:
    """The wait before retry n (1-based): ``base * factor**(n-1)``, at most `max_seconds`."""

    base_seconds: float = 30.0
    factor: float = 2.0
    max_seconds: float = 600.0

    def wait(self, failures: int) -> float:
        if failures < 1:
            return 0.0
        return float(min(self.base_seconds * self.factor ** (failures - 1), self.max_seconds))


@dataclass(frozen=True)
class AttemptPlan:
    """What this attempt does: run (after `wait_seconds`), or exit with `exit_code` at once."""

    run: bool
    wait_seconds: float = 0.0
    exit_code: int = 0
    reason: str = ""


def plan_attempt(failures: list[dict[str, object]], backoff: RetryBackoff) -> AttemptPlan:
    """The plan for the next attempt of a task whose earlier attempts failed as `failures`."""
    if not failures:
        return AttemptPlan(run=True)
    last = failures[-1]
    if last.get("exit_code") == EXIT_VALIDATION:
        return AttemptPlan(
            run=False,
            exit_code=EXIT_VALIDATION,
            reason=f"an earlier attempt of this task failed on bad input at "
            f"{last.get('at')} (exit 2; not retried): {last.get('message')}",
        )
    return AttemptPlan(run=True, wait_seconds=backoff.wait(len(failures)))


def _key(task_key: str) -> str:
    return f"{ATTEMPTS_PREFIX}/{task_key}.json"


def read_failures(store: Storage, task_key: str) -> list[dict[str, object]]:
    """The failed attempts recorded for a task, oldest first ([] if none)."""
    try:
        data = json.loads(store.read_text(_key(task_key)))
    except NotFound:
        return []
    failures = data.get("failures", [])
    return list(failures) if isinstance(failures, list) else []


def record_failure(store: Storage, task_key: str, step: str, exit_code: int, message: str) -> None:
    """Append a failed attempt; retries of one task run one after another, never at once."""
    failures = read_failures(store, task_key)
    failures.append({"step": step, "exit_code": exit_code, "message": message, "at": now_iso()})
    store.write_text(_key(task_key), json.dumps({"failures": failures}, indent=2))
