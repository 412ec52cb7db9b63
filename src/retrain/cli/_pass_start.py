"""``--pass-id``: a retried pod of a Job counts ``--deadline`` from the pass's first start.

A Job whose pod fails (exit 75: a store that did not answer) starts another pod, and a pod
knows only its own start, while the Job's ``activeDeadlineSeconds`` counts from the Job's. So
the first attempt of a pass records when it began in the store, under the pass's id (the
Job's uid, from the downward API), with a create-only write; an attempt that finds the record
there is a retry of that pass and counts ``--deadline`` from the recorded start. A record that
cannot be written or read, or is dated implausibly (ahead of this clock, or older than
`_OLDEST`: not this pass's), is said on stderr and the attempt counts from its own start.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta, timezone

from retrain.errors import AlreadyExists, ValidationError
from retrain.storage import open_storage

__all__ = ["pass_id_option", "pass_key", "seconds_spent"]

#: A Job's uid or name: a single segment of a store key.
_PASS_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: A recorded start older than this is not of this pass (an id used again): ignored.
_OLDEST = timedelta(days=1)
#: A recorded start at most this far ahead of this clock is the two nodes' clocks differing.
_SKEW = timedelta(minutes=1)


def pass_id_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pass-id",
        metavar="ID",
        help="with --once and --deadline: the pass's id, the same for every attempt of it (a "
        "Job's uid): a retry counts --deadline from the first attempt's start, recorded in "
        "the first model's store",
    )


def pass_key(pass_id: str) -> str:
    """The store key of a pass's recorded start."""
    return f"monitor-passes/{pass_id}.json"


def seconds_spent(
    args: argparse.Namespace, storage_root: str | None, *, now: datetime | None = None
) -> float:
    """The seconds of this pass that earlier attempts spent (0 for its first attempt).

    `storage_root` is where the pass's start is recorded (None: a one-model check, which
    starts with its pass and has no deadline to count). A bad ``--pass-id``, or one given with
    ``--every`` (each pass its own start), raises a ValidationError.
    """
    pass_id = args.pass_id
    if pass_id is None:
        return 0.0
    if args.every is not None:
        raise ValidationError("--pass-id is for a --once pass (with --every each pass is new)")
    if pass_id == "":  # a downward-API label the cluster does not set: check, as without one
        _say("--pass-id is empty: --deadline counts from this attempt's start")
        return 0.0
    if not _PASS_ID.fullmatch(pass_id):
        raise ValidationError(
            f"--pass-id: {pass_id!r} is not an id (letters, digits, '.', '_' or '-', at most "
            "128, starting with a letter or digit)"
        )
    if storage_root is None or args.deadline is None:
        return 0.0
    now = now if now is not None else datetime.now(timezone.utc)
    key, fallback = pass_key(pass_id), "--deadline counts from this attempt's start"
    try:
        store = open_storage(storage_root)
        record = json.dumps({"pass_id": pass_id, "started_at": now.isoformat()}) + "\n"
        store.create(key, record.encode())
        return 0.0  # the pass's first attempt
    except AlreadyExists:
        pass
    except Exception as err:  # the pass goes on; only its deadline is counted as before
        _say(f"pass {pass_id}: its start was not recorded ({err}); {fallback}")
        return 0.0
    try:
        started = datetime.fromisoformat(str(json.loads(store.read_text(key))["started_at"]))
    except Exception as err:  # unreadable, damaged, or the store did not answer
        where = store.uri(key)
        _say(f"pass {pass_id}: its recorded start {where} is unreadable ({err}); {fallback}")
        return 0.0
    started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
    if started > now + _SKEW or now - started > _OLDEST:
        _say(
            f"pass {pass_id}: its recorded start {started.isoformat()} is not plausible (now "
            f"{now.isoformat()}); {fallback}"
        )
        return 0.0
    spent = max(0.0, (now - started).total_seconds())
    _say(
        f"pass {pass_id}: a retry of the pass started at {started.isoformat()}, {spent:.0f} s "
        "ago: --deadline counts from then"
    )
    return spent


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
