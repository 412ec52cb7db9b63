"""``--pass-id``: a retried pod of a Job counts ``--deadline`` from the pass's first start.

A Job whose pod fails (exit 75: a store that did not answer) starts another pod, and a pod
knows only its own start, while the Job's ``activeDeadlineSeconds`` counts from the Job's. So
the first attempt of a pass records when it began in the store, under the pass's id (the
Job's uid, from the downward API), with a create-only write; an attempt that finds the record
there is a retry of that pass and counts ``--deadline`` from the recorded start. A record that
cannot be written or read, or is dated implausibly (ahead of this clock, or older than
`_OLDEST`: not this pass's), is said on stderr and the attempt counts from its own start.

The record's write and read wait on a store, whose client retries for minutes when it does not
answer: they are given at most `_RECORD_SECONDS`, or a tenth of the deadline if that is
shorter, and a SIGTERM the command heeds ends the wait (its pass then starts no model's work).
A record not written or read in that time is left to its thread (never waited for, even at
exit) and the attempt counts from its own start, as without ``--pass-id``. The time the record
took counts against the deadline.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from retrain.errors import AlreadyExists, ValidationError
from retrain.storage import open_storage

__all__ = ["checked_pass_id", "pass_id_option", "pass_key", "seconds_spent"]

#: A Job's uid or name: a single segment of a store key.
_PASS_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: A recorded start older than this is not of this pass (an id used again): ignored.
_OLDEST = timedelta(days=1)
#: A recorded start at most this far ahead of this clock is the two nodes' clocks differing.
_SKEW = timedelta(minutes=1)
#: At most this long for the record's write and read (a tenth of a shorter deadline).
_RECORD_SECONDS = 10.0
#: How often the wait for the record looks for a SIGTERM.
_POLL_SECONDS = 0.05


def pass_id_option(p: argparse.ArgumentParser, *, once: bool = True) -> None:
    """``--pass-id`` (`once`: the command also has ``--every``, with which it is refused)."""
    p.add_argument(
        "--pass-id",
        metavar="ID",
        help=f"with {'--once and ' if once else ''}--deadline: the pass's id, the same for "
        "every attempt of it (a Job's uid): a retry counts --deadline from the first attempt's "
        "start, recorded in the first model's store",
    )


def pass_key(pass_id: str, kind: str = "monitor") -> str:
    """The store key of a pass's recorded start (`kind`: the command's passes)."""
    return f"{kind}-passes/{pass_id}.json"


def checked_pass_id(args: argparse.Namespace) -> str | None:
    """The ``--pass-id`` to count from, or None (none given, or empty: said on stderr).

    Raises:
        ValidationError: an id that is not one, or one given with ``--every``.
    """
    pass_id = args.pass_id
    if pass_id is None:
        return None
    if getattr(args, "every", None) is not None:
        raise ValidationError("--pass-id is for a --once pass (with --every each pass is new)")
    if pass_id == "":  # a downward-API label the cluster does not set: check, as without one
        _say("--pass-id is empty: --deadline counts from this attempt's start")
        return None
    if not _PASS_ID.fullmatch(pass_id):
        raise ValidationError(
            f"--pass-id: {pass_id!r} is not an id (letters, digits, '.', '_' or '-', at most "
            "128, starting with a letter or digit)"
        )
    return str(pass_id)


def seconds_spent(
    pass_id: str | None,
    deadline: float | None,
    storage_root: str,
    *,
    stop: Callable[[], bool] | None = None,
    kind: str = "monitor",
    now: datetime | None = None,
) -> float:
    """The seconds of pass `pass_id` (from `checked_pass_id`) spent before its models' work: by
    earlier attempts (none for its first attempt), and by recording or reading its start in
    the store at `storage_root`, for at most a tenth of `deadline` (0 without an id or a
    deadline: the pass counts from now). `stop` (a SIGTERM came) ends the wait for the store.
    """
    began = time.monotonic()
    if pass_id is None or deadline is None:
        return 0.0
    budget = min(_RECORD_SECONDS, deadline / 10)
    now = now if now is not None else datetime.now(timezone.utc)
    key = pass_key(pass_id, kind)
    found = _Found(f"{storage_root.rstrip('/')}/{key}")
    worker = threading.Thread(
        target=found.fetch,
        args=(storage_root, key, pass_id, now),
        name="retrain-pass-start",
        daemon=True,  # a store that does not answer is not waited for, even at exit
    )
    worker.start()
    while not found.done.wait(_POLL_SECONDS):
        if time.monotonic() - began >= budget or (stop is not None and stop()):
            break
    took = time.monotonic() - began
    if not found.done.is_set():
        why = "a SIGTERM came" if stop is not None and stop() else f"{took:.1f} s passed"
        _say(_late(pass_id, found, why))
        return took
    if found.started is None:  # the first attempt, or a record it cannot count from
        if found.message:
            retry = f", {_RETRY}" if found.stage == "write" else ""
            _say(f"pass {pass_id}: {found.message}; {_FALLBACK}{retry}")
        return took
    started = found.started
    if started > now + _SKEW or now - started > _OLDEST:
        _say(
            f"pass {pass_id}: its recorded start {started.isoformat()} is not plausible (now "
            f"{now.isoformat()}); {_FALLBACK}"
        )
        return took
    spent = max(0.0, (now - started).total_seconds())
    _say(
        f"pass {pass_id}: a retry of the pass started at {started.isoformat()}, {spent:.0f} s "
        "ago: --deadline counts from then"
    )
    return spent + took


_FALLBACK = "--deadline counts from this attempt's start, as without --pass-id"
_RETRY = "and a retry of this pass may count from its own start too"


def _late(pass_id: str, found: _Found, why: str) -> str:
    """The warning for a record the store did not write or read in time."""
    if found.stage == "read":
        what = f"its recorded start {found.where} was not read ({why}); {_FALLBACK}"
    else:
        what = f"its start was not recorded in {found.where} ({why}); {_FALLBACK}, {_RETRY}"
    return f"pass {pass_id}: {what}"


class _Found:
    """What the record's thread found: a recorded start, a message, or nothing (recorded)."""

    def __init__(self, where: str) -> None:
        self.done = threading.Event()
        self.stage = "write"  # then "read": the record was there
        self.where = where
        self.started: datetime | None = None
        self.message = ""

    def fetch(self, storage_root: str, key: str, pass_id: str, now: datetime) -> None:
        try:
            self._fetch(storage_root, key, pass_id, now)
        finally:
            self.done.set()

    def _fetch(self, storage_root: str, key: str, pass_id: str, now: datetime) -> None:
        try:
            store = open_storage(storage_root)
            self.where = store.uri(key)
            record = json.dumps({"pass_id": pass_id, "started_at": now.isoformat()}) + "\n"
            store.create(key, record.encode())
            return  # the pass's first attempt
        except AlreadyExists:
            self.stage = "read"
        except Exception as err:  # the pass goes on; only its deadline is counted as before
            self.message = f"its start was not recorded ({err})"
            return
        try:
            started = datetime.fromisoformat(str(json.loads(store.read_text(key))["started_at"]))
        except Exception as err:  # unreadable, damaged, or the store did not answer
            self.message = f"its recorded start {self.where} is unreadable ({err})"
            return
        self.started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
