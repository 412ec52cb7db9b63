"""A watchdog process that stops a runner's step processes once the runner is gone.

A runner killed outright (SIGKILL, OOM) runs no handler, and kfp.local's step processes
(children of a shell, so no parent-death signal reaches them) would run on and keep writing.
The runner starts this module as its own small process (``python -m retrain._reaper <pid>``;
standard library only, so it starts in milliseconds) and stops it when its pipeline ends. If
the runner dies first, it sends SIGTERM to every process whose environment carries
``RETRAIN_PARENT_PID=<pid>`` (what the runner sets for its steps), which a step in progress
turns into a clean stop, and exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["PARENT_PID_ENV", "marked_processes", "watch"]

#: Set by the runner for the kfp.local step processes it starts: the runner's pid.
PARENT_PID_ENV = "RETRAIN_PARENT_PID"
_POLL_SECONDS = 0.2


def start_time(pid: int) -> str | None:
    """The start time of `pid` (jiffies since boot), to tell it from a reused pid; None if
    it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def marked_processes(parent: int) -> list[int]:
    """Processes whose environment says they are steps of runner `parent`."""
    marker = f"{PARENT_PID_ENV}={parent}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def watch(parent: int) -> None:
    """Wait for `parent` to end, then SIGTERM its marked step processes."""
    born = start_time(parent)
    while born is not None and start_time(parent) == born:
        time.sleep(_POLL_SECONDS)
    for pid in marked_processes(parent):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the runner ended normally
    watch(int(sys.argv[1]))
