"""Stopping on SIGTERM at a safe point, and step processes that die with their runner.

`stop_on_sigterm` turns the first SIGTERM into a `retrain.errors.Terminated` raised in the main
thread: the step in progress unwinds through its context managers, so its record says it was
stopped (exit 75, safe to re-run), every store write is all or nothing (a temporary file and a
rename, removed on the way out) and the run lease is released by the code that took it. Later
SIGTERMs during that unwinding are remembered, not raised, so the clean-up is not cut short.

Under kfp.local each step is a child process of the runner (through a shell). The runner
sends its own SIGTERM on to every descendant (`terminate_descendants`); and, for a runner
killed outright (SIGKILL, which no handler sees), `steps_die_with_this_process` marks the step
processes and runs the `retrain._reaper` watchdog, which stops them once the runner is gone,
so no step outlives its run and keeps writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from retrain._reaper import PARENT_PID_ENV
from retrain.errors import Terminated

__all__ = [
    "PARENT_PID_ENV",
    "SigtermGuard",
    "descendants",
    "sigterm_after",
    "steps_die_with_this_process",
    "stop_on_sigterm",
    "stop_step_on_sigterm",
    "terminate_descendants",
]


class SigtermGuard:
    """The state of one `stop_on_sigterm` block: whether a SIGTERM came, and if it raises."""

    def __init__(self, on_signal: Callable[[], None] | None) -> None:
        self.received = False
        self.raised = False  # True once `Terminated` was raised into the block
        self.armed = True  # False: a SIGTERM is only remembered (see `deferred`)
        self._on_signal = on_signal

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.received
        self.received = True
        if first and self._on_signal is not None:
            self._on_signal()
        if first and self.armed:
            self.armed = False  # the unwinding that follows is not interrupted again
            self.raised = True
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
    _GUARDS.append(guard)
    try:
        yield guard
    finally:
        _GUARDS.remove(guard)
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_step_on_sigterm() -> Iterator[SigtermGuard]:
    """`stop_on_sigterm` for a step: a stop its code caught still stops it.

    A step's code may catch broad errors to record them as verdicts (a champion comparison
    that failed is a note in ingest's report, not a failed step). A `Terminated` raised inside
    such a block is caught there like any error: the step would then finish and be recorded
    as succeeded with a verdict the stop made up, or fail with an exit code that says "do not
    retry". Here, once `Terminated` was raised into the block, the block ends in `Terminated`
    whatever it did with it: finished, it is raised at the end; failed with another error, that
    error is chained to it. Exit 75: the step is re-run and its verdicts made again.
    """
    with stop_on_sigterm() as guard:
        try:
            yield guard
        except Terminated:
            raise
        except Exception as err:
            if guard.raised:
                raise Terminated(_CAUGHT_STOP.format(f"failed with {type(err).__name__}")) from err
            raise
        if guard.raised:
            raise Terminated(_CAUGHT_STOP.format("caught the stop and went on"))


_CAUGHT_STOP = (
    "stopped by SIGTERM: the step {} (its verdicts may have counted the stop as an error), so "
    "it is recorded as stopped, not as finished; re-run it"
)

#: The main thread's `stop_on_sigterm` guards, innermost last.
_GUARDS: list[SigtermGuard] = []


@contextlib.contextmanager
def sigterm_after() -> Iterator[None]:
    """Run the block to its end even if a SIGTERM comes meanwhile, then stop after it.

    For work that catches broad errors to record them (a canary analysis records a failed
    request as the canary's error; an unreachable metrics backend past the deadline rolls the
    canary back): a `Terminated` raised inside it would be recorded as the canary's fault.
    Within the innermost `stop_on_sigterm` block of the main thread, a SIGTERM during this
    block is only remembered, and `Terminated` is raised once the block has finished, at the
    safe point after it (not when an outer `SigtermGuard.deferred` block holds SIGTERMs: it
    deals with them). Elsewhere (no guard, another thread) the block just runs.
    """
    main = threading.current_thread() is threading.main_thread()
    guard = _GUARDS[-1] if _GUARDS and main else None
    if guard is None:
        yield
        return
    armed = guard.armed  # False: an outer block defers SIGTERMs and deals with them itself
    try:
        with guard.deferred():
            yield
    finally:
        # Also when the block failed (a lock held by another): a caller that would try again
        # must stop instead, or the SIGTERM, now spent, would never stop it.
        if armed and guard.received:
            raise Terminated(
                "stopped by SIGTERM at a safe point, after the work in progress finished: "
                "nothing was half-written; re-run to go on"
            )


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


@contextlib.contextmanager
def steps_die_with_this_process() -> Iterator[None]:
    """For the block: mark the step processes started in it (`PARENT_PID_ENV`) and run the
    `retrain._reaper` watchdog, which stops them if this process dies without a handler."""
    os.environ[PARENT_PID_ENV] = str(os.getpid())
    reaper = subprocess.Popen(
        [sys.executable, "-m", "retrain._reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        reaper.terminate()
        reaper.wait()
        os.environ.pop(PARENT_PID_ENV, None)
