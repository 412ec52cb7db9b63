"""Stopping on SIGTERM at a safe point, and step processes that die with their runner.

`stop_on_sigterm` turns the first SIGTERM into a `retrain.errors.Terminated` raised in the main
thread: the step in progress unwinds through its context managers, so its record says it was
stopped (exit 75, safe to re-run), every store write is all or nothing (a temporary file and a
rename, removed on the way out) and the run lease is released by the code that took it. Later
SIGTERMs during that unwinding are remembered, not raised, so the clean-up is not cut short.

Under kfp.local each step is a child process of the runner (through a shell). The runner
sends its own SIGTERM on to every descendant (`terminate_descendants`), and sets
`PARENT_PID_ENV` for them; a step process that finds it starts a watchdog (`watch_parent`)
that stops the step, as a SIGTERM would, once that process is gone (even after a SIGKILL,
which no handler sees), so no step outlives its run and keeps writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from retrain.errors import Terminated

__all__ = [
    "PARENT_PID_ENV",
    "SigtermGuard",
    "descendants",
    "stop_on_sigterm",
    "terminate_descendants",
    "watch_parent",
]

#: Set by the runner for the kfp.local step processes it starts: the runner's pid.
PARENT_PID_ENV = "RETRAIN_PARENT_PID"
_WATCH_SECONDS = 0.5


class SigtermGuard:
    """The state of one `stop_on_sigterm` block: whether a SIGTERM came, and if it raises."""

    def __init__(self, on_signal: Callable[[], None] | None) -> None:
        self.received = False
        self.armed = True  # False: a SIGTERM is only remembered (see `deferred`)
        self._on_signal = on_signal

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.received
        self.received = True
        if first and self._on_signal is not None:
            self._on_signal()
        if first and self.armed:
            self.armed = False  # the unwinding that follows is not interrupted again
            raise Terminated(
                "stopped by SIGTERM at a safe point: nothing was half-written and the run "
                "lease is released; re-run to finish"
            )

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block a SIGTERM must not cut short (releasing a lease): it is only remembered."""
        armed, self.armed = self.armed, False
        try:
            yield
        finally:
            self.armed = armed and not self.received


@contextlib.contextmanager
def stop_on_sigterm(on_signal: Callable[[], None] | None = None) -> Iterator[SigtermGuard]:
    """Raise `Terminated` in this thread on the first SIGTERM during the block.

    `on_signal` runs first (the runner stops its step processes there). Outside the main
    thread, where Python cannot handle signals, the block runs unguarded.
    """
    guard = SigtermGuard(on_signal)
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = signal.signal(signal.SIGTERM, guard.handle)
    try:
        yield guard
    finally:
        signal.signal(signal.SIGTERM, previous)


def descendants(pid: int) -> list[int]:
    """Every live descendant of process `pid` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def terminate_descendants() -> None:
    """SIGTERM every descendant of this process (the step processes kfp.local started)."""
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


def _start_time(pid: int) -> str | None:
    """The start time of `pid` (jiffies since boot), to tell it from a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def watch_parent() -> None:
    """In a step process started by the runner: stop the step once the runner is gone.

    Does nothing unless `PARENT_PID_ENV` names a process (so a step run by Kubeflow or by hand
    is unaffected). A daemon thread checks every half second and sends this process a
    SIGTERM, which the step's `stop_on_sigterm` turns into a clean stop.
    """
    text = os.environ.get(PARENT_PID_ENV, "")
    if not text.isdigit() or threading.current_thread() is not threading.main_thread():
        return
    parent = int(text)
    if parent == os.getpid():  # the runner itself, running steps in process
        return
    born = _start_time(parent)
    me = os.getpid()

    def watch() -> None:
        while born is not None and _start_time(parent) == born:
            threading.Event().wait(_WATCH_SECONDS)
        os.kill(me, signal.SIGTERM)

    threading.Thread(target=watch, name="retrain-watch-parent", daemon=True).start()
