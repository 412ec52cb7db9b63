"""A fleet pass on worker processes: every core busy with Python-bound work.

A monitor check is mostly Python-bound (loading the champion's skops file, scoring, drift
statistics, the bootstrap), so threads run checks one at a time under the GIL. `ProcessFleet`
runs them on `workers` processes instead. Each model is always handled by the same process
(model i by process i mod workers), so a process can keep what it built for a model (its
monitor and loaded champion) from one pass to the next.

The processes are forked once, when the fleet starts and before the caller starts any thread
(a metrics server, say): a fork costs no import (the libraries are already loaded), and forking a
single-threaded process inherits no lock held by another thread. What every task would build
lazily in each worker (the caller's `warm_up`: imports, compiled schemas) is built once in the
parent before the fork, and the parent's objects are frozen out of the garbage collector's
reach while forking, so a worker's collections do not copy the pages it shares with the
parent. A worker that dies is replaced by a spawned process (a fresh interpreter that runs
`warm_up` itself), started from the caller's thread between rounds of the pass: by then the
parent runs other threads (a metrics server), and a fork would copy a process with threads.
Workers ignore SIGINT and SIGTERM (the parent decides when a pass ends: its SIGTERM handler
lets the checks in progress finish, as with threads; Ctrl-C in the parent kills the workers
with their checks, see `ProcessFleet.run`) and, on Linux, are killed when the parent dies (no
orphan checks on after a killed monitor).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from retrain._threads import limit_this_thread, worker_threads
from retrain.config import Config
from retrain.errors import RetrainError, ValidationError, exit_code_for
from retrain.triggers.fleet import ModelResult, PassGate, priority_order

__all__ = ["ProcessFleet", "WorkerError", "portable_error"]

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
#: The parent's ends of the workers' pipes, while they are open (see `_serve`).
_PARENT_ENDS: weakref.WeakSet[Connection] = weakref.WeakSet()


class WorkerError(RetrainError):
    """An error raised in a worker process that could not be sent back as itself; it keeps
    the original's message, type name and exit code."""

    def __init__(self, message: str, kind: str, exit_code: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (WorkerError, (str(self), self.kind, self.exit_code))


def portable_error(err: Exception) -> Exception:
    """`err` if it survives pickling with its message, else a `WorkerError` standing for it
    (same message and exit code), so every error reaches the parent."""
    try:
        back = pickle.loads(pickle.dumps(err))
        if isinstance(back, Exception) and str(back) == str(err):
            return back
    except Exception:  # any error of pickling means: send a stand-in
        pass
    return WorkerError(str(err), type(err).__name__, exit_code_for(err))


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (elsewhere: nothing to do)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the parent's shutdown still ends us
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _run_one(work: Callable[[Config], T], cfg: Config) -> ModelResult[T]:
    t0 = time.perf_counter()
    try:
        result = work(cfg)
    except Exception as err:  # reported per model, as by the thread pool
        return ModelResult(cfg.name, None, portable_error(err), time.perf_counter() - t0)
    return ModelResult(cfg.name, result, None, time.perf_counter() - t0)


def _serve(
    conn: Connection,
    warm_up: Callable[[], None] | None,
    inherited: Sequence[Connection] = (),
    threads: int | None = None,
) -> None:
    """A worker's loop: (work, config) in, `ModelResult` out, until None or the pipe closes.

    `warm_up` runs first (given to spawned workers; forked ones inherit the parent's).
    `inherited` are the parent's ends of the workers' pipes that a fork copied into this
    process: closed here, or the parent closing its end (a fleet never closed, dropped) would
    never reach this worker as an end of file, and the interpreter's exit, which waits for its
    non-daemon children, would wait for ever. `threads` is the worker's share of the native
    threads (`retrain._threads.worker_threads`; None: as inherited).
    """
    for end in inherited:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    limit_this_thread(threads, process=True)  # tasks run in this thread
    if warm_up is not None:
        warm_up()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        work, cfg = task
        result = _run_one(work, cfg)
        try:
            conn.send(result)
        except Exception as err:  # the result itself would not pickle
            failed: ModelResult[Any] = ModelResult(
                cfg.name, None, portable_error(err), result.seconds
            )
            conn.send(failed)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(
        self, context: Any, warm_up: Callable[[], None] | None = None, threads: int | None = None
    ) -> None:
        self.conn, child = context.Pipe()
        # A forked child gets a copy of every descriptor: the parent's ends it must close
        # (its own, and those of every worker of any fleet still open here).
        forked = context.get_start_method() == "fork"
        inherited = [*_PARENT_ENDS, self.conn] if forked else []
        _PARENT_ENDS.add(self.conn)
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, warm_up, inherited, threads), daemon=False
        )
        self.process.start()
        child.close()

    def call(self, work: Callable[[Config], T], cfg: Config) -> ModelResult[T]:
        self.conn.send((work, cfg))
        result: ModelResult[T] = self.conn.recv()
        return result

    def stop(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessFleet(Generic[T]):
    """Model work on `workers` processes, each model on the same process at every pass.

    Use as a context manager, or call `close`. `work` must be picklable (a module-level
    function, or a `functools.partial` of one) and so must its results; so must `warm_up`,
    which builds what every task would otherwise build in each worker (see the module).
    """

    def __init__(self, workers: int, *, warm_up: Callable[[], None] | None = None) -> None:
        if workers < 1:
            raise ValidationError(f"workers must be at least 1, not {workers}")
        self._warm_up = warm_up
        self._threads = worker_threads(workers)  # each worker's share of the native threads
        # Replacements are spawned (see the module); so is every worker where fork is missing.
        self._respawn = multiprocessing.get_context("spawn")
        if "fork" not in multiprocessing.get_all_start_methods():
            self._workers: list[_Worker | None] = [
                _Worker(self._respawn, warm_up, self._threads) for _ in range(workers)
            ]
            return
        if warm_up is not None:
            warm_up()
        fork = multiprocessing.get_context("fork")
        gc.collect()
        gc.freeze()  # the children keep it; the parent collects as before once they exist
        try:
            self._workers = [_Worker(fork, threads=self._threads) for _ in range(workers)]
        finally:
            gc.unfreeze()

    def run(
        self,
        configs: Sequence[Config],
        work: Callable[[Config], T],
        *,
        deadline: float | None = None,
        stop: Callable[[], bool] | None = None,
        priority: Callable[[Config], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        spent: float = 0.0,
    ) -> list[ModelResult[T]]:
        """`work` for every config; results in the configs' order, errors per model.

        `stop` (the parent got a SIGTERM) and `deadline` (less the `spent` seconds of earlier
        attempts) end the pass early, as in `retrain.triggers.fleet.run_for_each` (`PassGate`):
        the work in progress finishes. Each process takes its models by `priority`
        (`priority_order`), so a pass cut short leaves out the models served most recently.

        A worker that dies fails its model; its next models wait for its replacement, which
        is started here, in the caller's thread, between rounds: on Linux a process's death
        signal follows the thread that started it, and a dispatch thread ends with its round.

        Ctrl-C (a KeyboardInterrupt in the caller's thread) ends the pass at once: no model
        starts any more, the workers (which ignore SIGINT) are killed with the checks they
        were running, and the KeyboardInterrupt goes on; the next pass starts new workers.
        """
        gate = PassGate(deadline=deadline, stop=stop, clock=clock, spent=spent)
        left = None if deadline is None else deadline - spent  # the earlier attempts' time
        rank = {i: r for r, i in enumerate(priority_order(configs, priority, left))}
        results: list[ModelResult[T] | None] = [None] * len(configs)
        step = len(self._workers)
        pending = {
            k: sorted(range(k, len(configs), step), key=rank.__getitem__) for k in range(step)
        }
        pending = {k: queue for k, queue in pending.items() if queue}

        abandoned = threading.Event()  # Ctrl-C: no model starts any more

        def drain(k: int) -> None:
            queue = pending[k]
            while queue and not abandoned.is_set():
                i = queue.pop(0)
                refused = gate.refusal(configs[i])
                if refused is not None:
                    results[i] = refused
                    continue
                results[i] = self._call(k, work, configs[i])
                if self._workers[k] is None:  # it died: the rest wait for its replacement
                    return

        while pending:
            for k in pending:
                if self._workers[k] is None:
                    self._workers[k] = _Worker(self._respawn, self._warm_up, self._threads)
            try:
                with ThreadPoolExecutor(max_workers=len(pending)) as pool:
                    # Submitted one by one, not by `pool.map`: its results' iterator cancels the
                    # drains not yet started when one raises, and a worker's models would then
                    # be left out of the pass under load (the pool's exit waits for the rest).
                    try:
                        drains = [pool.submit(drain, k) for k in pending]
                        for started in drains:
                            started.result()
                    except KeyboardInterrupt:  # Ctrl-C only: other errors let checks finish
                        abandoned.set()
                        self._kill()  # a dispatch thread waiting on its worker returns now
                        raise
            except BaseException:
                self._drop_killed()
                raise
            pending = {k: queue for k, queue in pending.items() if queue}
        done = [r for r in results if r is not None]
        assert len(done) == len(configs)
        return done

    def _call(self, k: int, work: Callable[[Config], T], cfg: Config) -> ModelResult[T]:
        worker = self._workers[k]
        assert worker is not None
        t0 = time.perf_counter()
        try:
            return worker.call(work, cfg)
        except (EOFError, OSError) as err:  # the process died (killed, out of memory)
            worker.stop(timeout=1.0)
            code = worker.process.exitcode
            self._workers[k] = None  # replaced by `run`, in the caller's thread
            lost = RuntimeError(
                f"the worker process checking {cfg.name} ended unexpectedly "
                f"(exit {code}): {type(err).__name__}"
            )
            return ModelResult(cfg.name, None, lost, time.perf_counter() - t0)

    def _kill(self) -> None:
        """Kill every worker (SIGKILL: they ignore SIGINT and SIGTERM) with its check."""
        for worker in self._workers:
            if worker is not None:
                worker.process.kill()

    def _drop_killed(self) -> None:
        """Reap the killed workers (once no dispatch thread uses them); `run` replaces them."""
        for k, worker in enumerate(self._workers):
            if worker is not None:
                worker.stop(timeout=1.0)
                self._workers[k] = None

    def close(self) -> None:
        """Stop every worker process (each finishes its current model first)."""
        for worker in self._workers:
            if worker is not None:
                worker.stop()

    def __enter__(self) -> ProcessFleet[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
