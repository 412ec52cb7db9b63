"""Which process holds something: ids naming this host and process, and whether one is gone.

Standard library only, at the bottom of the layers, so every lease and lock that records its
holder (the rollout lock, the run lease) tells a dead holder the same way.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

__all__ = ["host_name", "new_owner_id", "owner_process_gone", "process_gone"]


def host_name() -> str:
    """This host's name, as the holder ids record it."""
    return socket.gethostname()


def new_owner_id() -> str:
    """An owner id naming this host and process, unique per call: ``<host>-<pid>-<random>``."""
    return f"{host_name()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def process_gone(host: str, pid: int) -> bool:
    """Whether process `pid` of `host` is known to no longer exist.

    Only a process on this host can be checked: one elsewhere, this process itself, one that
    is alive (another user's too) is not gone. A zombie (killed, not yet reaped) is gone.
    """
    if host != host_name() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z"


def owner_process_gone(owner: object) -> bool:
    """Whether the holder named by an owner id (`new_owner_id`) is a process gone from this host.

    Anything else (not such an id) is not known to be gone.
    """
    if not isinstance(owner, str):
        return False
    host, _, pid = owner.rpartition("-")[0].rpartition("-")
    return pid.isdigit() and process_gone(host, int(pid))
