"""How `retrain monitor` hears SIGTERM and SIGINT: at a safe point, or at once (Ctrl-C)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "EXIT_INTERRUPTED",
    "interrupted",
    "signals_restored",
    "stop_on_signals",
    "stop_on_sigterm",
]

#: The exit code of a command that Ctrl-C (SIGINT) ended: 128 + 2, as a shell reports it.
EXIT_INTERRUPTED = 128 + signal.SIGINT


@contextlib.contextmanager
def signals_restored() -> Iterator[None]:
    """The SIGTERM and SIGINT handlers after the block as they were before it (in the main
    thread: elsewhere none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in before.items():
            # None: a handler not set from Python, which cannot be put back; the default is
            # the closest.
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT instead of ending the process (`--every`)."""
    stop = stop_on_sigterm()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    return stop


def stop_on_sigterm() -> threading.Event:
    """An event set by SIGTERM instead of ending the process (Ctrl-C still interrupts); in
    the main thread only (elsewhere Python handles no signal: the event is never set)."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    return stop


def interrupted() -> int:
    """Say that Ctrl-C ended the monitor, in one line (no traceback), and give its exit code."""
    print(
        "interrupted (Ctrl-C): the monitor stopped before the end of its pass",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_INTERRUPTED
