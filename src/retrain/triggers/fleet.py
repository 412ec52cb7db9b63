"""Many models from one process: their configs, and one pass over all of them.

A platform with fifty models runs one monitor and one schedule reconciler, not fifty. Each
model keeps everything that is its own: its store, its run lease (``leases/<name>``: one per
model, so two models never block each other and one model's runs never overlap), its trigger
state and its Prometheus series (labelled ``model``). A pass runs every model's work on a
bounded pool of threads (`run_for_each`: for work that is mostly I/O, such as the schedule
reconciler's KFP calls) or of processes (`retrain.triggers.fleet_pool`: for Python-bound work,
such as the monitor's checks), and one model's failure is reported beside the others' results
instead of ending the pass.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar

from retrain._threads import limit_this_thread, worker_threads
from retrain.config import Config, load_config
from retrain.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    NotFound,
    TransientError,
    ValidationError,
    exit_code_for,
)
from retrain.storage import open_storage

__all__ = [
    "Fleet",
    "ModelResult",
    "NotStarted",
    "PassGate",
    "config_paths",
    "fleet_exit_code",
    "last_checked",
    "load_configs",
    "load_fleet",
    "not_started",
    "note_check_start",
    "priority_order",
    "raise_refused",
    "run_for_each",
]

_CONFIG_SUFFIXES = (".yaml", ".yml")
#: A check marker dated further ahead than this counts as unknown (see `last_checked`).
_MARKER_AHEAD = timedelta(hours=1)
#: Threads reading the models' priorities at once (one small object each, whatever --workers).
_PRIORITY_READS = 8
#: At most this long for the keys of `priority_order` (a tenth of a shorter pass deadline).
_PRIORITY_SECONDS = 10.0
T = TypeVar("T")


def config_paths(given: Sequence[str]) -> list[Path]:
    """The config files named by `given`: files as given, directories by their YAML files.

    A directory contributes its ``*.yaml`` / ``*.yml`` files in name order, skipping hidden
    ones (a Kubernetes ConfigMap volume keeps its ``..data`` links there).

    Raises:
        ValidationError: a path does not exist, or a directory holds no config.
    """
    paths: list[Path] = []
    for item in given:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                c
                for c in p.iterdir()
                if c.suffix in _CONFIG_SUFFIXES and not c.name.startswith(".") and c.is_file()
            )
            if not found:
                raise ValidationError(f"config directory {p} holds no .yaml or .yml file")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise ValidationError(f"config file not found: {p}")
    return paths


def load_configs(given: Sequence[str]) -> list[Config]:
    """Every config named by `given` (see `config_paths`), validated.

    Raises:
        ValidationError: a config is invalid (the message names its file), or two configs
            share a model name: they would share one lease, one store's trigger state and
            one set of metric series.
    """
    configs = [load_config(p) for p in config_paths(given)]
    seen: dict[str, int] = {}
    for cfg in configs:
        seen[cfg.name] = seen.get(cfg.name, 0) + 1
    twice = sorted(name for name, n in seen.items() if n > 1)
    if twice:
        raise ValidationError(
            f"model names must be unique across configs; given more than once: {twice}"
        )
    return configs


@dataclass(frozen=True)
class ModelResult(Generic[T]):
    """One model's share of a pass: its result, or the error that ended its work."""

    model: str
    result: T | None
    error: Exception | None
    seconds: float
    skipped: str | None = None  # why the model's work did not run in this pass (not a failure)

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


@dataclass(frozen=True)
class Fleet:
    """The configs of one pass: the valid ones, and each refused one as a failed result
    (`ModelResult.error`) named by its file's name (``fraud.yaml``: never a model's name)."""

    configs: list[Config]
    refused: list[ModelResult[Any]]
    # Named as many (a directory, or several paths) even if one model is there: commands then
    # answer in their many-model form, so adding a model does not change their output's shape.
    many: bool = False

    @property
    def size(self) -> int:
        return len(self.configs) + len(self.refused)

    @property
    def one(self) -> bool:
        """One config named as one file: the commands' one-model form."""
        return self.size == 1 and not self.many


def load_fleet(given: Sequence[str]) -> Fleet:
    """Every config named by `given` (see `config_paths`), validated one by one.

    One bad config must not stop every model's monitoring and rollouts: an invalid file, or
    two files naming one model (they would share one lease, one store's trigger state and one
    set of metric series: both are refused), is refused alone, and the pass reports it beside
    the others' results (exit 2 when nothing worse happened).

    Raises:
        ValidationError: a path does not exist, or a directory holds no config.
    """
    loaded: list[tuple[Path, Config]] = []
    refused: list[ModelResult[Any]] = []
    for path in config_paths(given):
        try:
            loaded.append((path, load_config(path)))
        except ValidationError as err:
            refused.append(ModelResult(path.name, None, err, 0.0))
        except (OSError, UnicodeDecodeError) as err:  # unreadable: refused alone too
            unreadable = ValidationError(f"{path}: cannot be read as a config: {err}")
            refused.append(ModelResult(path.name, None, unreadable, 0.0))
    names = [cfg.name for _, cfg in loaded]
    configs = []
    for path, cfg in loaded:
        if names.count(cfg.name) > 1:
            twice = ValidationError(
                f"{path}: model {cfg.name!r} is named by more than one config; model names "
                "must be unique (they would share one lease, one store's trigger state and "
                "one set of metric series)"
            )
            refused.append(ModelResult(path.name, None, twice, 0.0))
        else:
            configs.append(cfg)
    return Fleet(configs, refused, many=len(given) > 1 or any(Path(g).is_dir() for g in given))


def raise_refused(fleet: Fleet) -> NoReturn:
    """Raise the first refused config's error: a pass with no valid config fails as a
    one-config command always has (exit 2), rather than serving nothing."""
    err = fleet.refused[0].error if fleet.refused else None
    if err is None:
        raise ValueError("no refused config to raise")
    raise err


class NotStarted(TransientError):
    """A model's work was not started: the process was asked to stop (SIGTERM) before the
    model's turn. Nothing of it ran; a re-run serves it."""


def not_started(cfg: Config) -> ModelResult[Any]:
    """The result of a model whose turn came after the pass was asked to stop."""
    stopped = NotStarted(
        "not started: the pass was asked to stop (SIGTERM) before this model's turn"
    )
    return ModelResult(cfg.name, None, stopped, 0.0)


class PassGate:
    """Whether a model's work may start now, in a pass that began when this was made.

    No model's work starts once `stop()` is true (a SIGTERM came): those fail with
    `NotStarted` (exit 75), and the work in progress finishes. Nor once `deadline` seconds of
    `clock` have passed since the pass began: those are skipped (`ModelResult.skipped`), which
    is not a failure: the next pass serves them, first when the pass orders the models by
    when they were served (`priority_order`). A pass that earlier attempts began (a Job's
    retried pod) began `spent` seconds before this gate was made.
    """

    def __init__(
        self,
        *,
        deadline: float | None = None,
        stop: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        spent: float = 0.0,
    ) -> None:
        self.deadline, self.stop, self.clock = deadline, stop, clock
        self.began = clock() - spent

    def refusal(self, cfg: Config) -> ModelResult[Any] | None:
        """The result of a model that may not start now, or None: start it."""
        if self.stop is not None and self.stop():
            return not_started(cfg)
        if self.deadline is not None and self.clock() - self.began >= self.deadline:
            late = f"not reached: the pass's deadline of {self.deadline:g} s passed before its turn"
            return ModelResult(cfg.name, None, None, 0.0, skipped=late)
        return None


def priority_order(
    configs: Sequence[Config],
    priority: Callable[[Config], Any] | None,
    deadline: float | None = None,
) -> list[int]:
    """The configs' indexes by `priority` (a sort key per config, smallest first: the model
    served longest ago, say); in the configs' order without one.

    The keys are small reads that wait on a store, made on up to `_PRIORITY_READS` daemon
    threads for at most `_PRIORITY_SECONDS`, or a tenth of the pass's `deadline` (the seconds
    it has left) if that is shorter: ordering must not spend the pass. A model whose key did
    not come in time (a store slow to answer) goes after those that did, in the configs'
    order; its read is not waited for, even at exit.
    """
    order = list(range(len(configs)))
    if priority is None or not configs:
        return order
    budget = _PRIORITY_SECONDS if deadline is None else min(_PRIORITY_SECONDS, deadline / 10)
    keys: dict[int, Any] = {}
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in order:
        todo.put(i)
    lock, all_in = threading.Lock(), threading.Event()

    def read() -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            key = priority(configs[i])
            with lock:
                keys[i] = key
                if len(keys) == len(configs):
                    all_in.set()

    for _ in range(min(_PRIORITY_READS, len(configs))):
        threading.Thread(target=read, name="retrain-priority", daemon=True).start()
    all_in.wait(budget)
    with lock:
        known = dict(keys)
    order.sort(key=lambda i: (0, known[i], i) if i in known else (1, i, i))
    return order


def run_for_each(
    configs: Sequence[Config],
    work: Callable[[Config], T],
    *,
    workers: int,
    deadline: float | None = None,
    stop: Callable[[], bool] | None = None,
    priority: Callable[[Config], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    spent: float = 0.0,
) -> list[ModelResult[T]]:
    """`work` for every config on at most `workers` threads; results in the configs' order.

    Errors are caught per model (`ModelResult.error`), so a bad config or an unreachable
    store fails that model's work only. The models start in the configs' order, or by
    `priority` (`priority_order`). `stop` and `deadline` end the pass early (`PassGate`;
    `spent`: seconds of the pass spent before this call, by earlier attempts). On Ctrl-C (a
    KeyboardInterrupt in the caller's thread) the work in progress finishes and no other
    starts before the KeyboardInterrupt goes on.
    """
    if workers < 1:
        raise ValidationError(f"workers must be at least 1, not {workers}")
    gate = PassGate(deadline=deadline, stop=stop, clock=clock, spent=spent)
    abandoned = threading.Event()  # Ctrl-C: the work in progress finishes, no other starts

    def one(cfg: Config) -> ModelResult[T]:
        refused = not_started(cfg) if abandoned.is_set() else gate.refusal(cfg)
        if refused is not None:
            return refused
        t0 = time.perf_counter()
        try:
            result = work(cfg)
        except Exception as err:  # reported per model; fleet_exit_code ranks them
            return ModelResult(cfg.name, None, err, time.perf_counter() - t0)
        return ModelResult(cfg.name, result, None, time.perf_counter() - t0)

    left = None if deadline is None else deadline - spent  # the earlier attempts' time
    order = priority_order(configs, priority, left)
    size = min(workers, max(len(configs), 1))
    # OpenMP's limit is per thread: each worker thread gets its share (retrain._threads).
    share = (worker_threads(size),)
    with ThreadPoolExecutor(size, initializer=limit_this_thread, initargs=share) as pool:
        try:
            done = dict(zip(order, pool.map(one, [configs[i] for i in order]), strict=True))
        except BaseException:  # a KeyboardInterrupt here: the rest must not start meanwhile
            abandoned.set()
            raise
    return [done[i] for i in range(len(configs))]


def _last_check_key(model: str) -> str:
    return f"triggers/{model}/last-check.json"


def note_check_start(cfg: Config, at: datetime | None = None) -> None:
    """Note in the model's store that its check starts now (`last_checked` reads it)."""
    when = at if at is not None else datetime.now(timezone.utc)
    doc = json.dumps({"started_at": when.isoformat()}) + "\n"
    open_storage(cfg.storage_root).write_text(_last_check_key(cfg.name), doc)


def last_checked(cfg: Config) -> datetime:
    """When the model's last check started (`note_check_start`), for a pass to take the models
    checked longest ago first.

    A model never checked, or whose marker is unreadable or dated more than
    `_MARKER_AHEAD` in the future (written by a clock running ahead: it would sort last until
    then, and a pass cut short every time would never reach it), counts as never checked: the
    earliest time. One whose store did not answer goes last (the latest time): its check would
    likely wait on that store too, and the others need not wait behind it.
    """
    never = datetime.min.replace(tzinfo=timezone.utc)
    try:
        text = open_storage(cfg.storage_root).read_text(_last_check_key(cfg.name))
    except NotFound:
        return never
    except Exception:  # the store did not answer: after the models whose stores did
        return datetime.max.replace(tzinfo=timezone.utc)
    try:
        stamp = datetime.fromisoformat(str(json.loads(text)["started_at"]))
    except (ValueError, KeyError, TypeError):
        return never
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return never if stamp > datetime.now(timezone.utc) + _MARKER_AHEAD else stamp


def fleet_exit_code(results: Sequence[ModelResult[T]]) -> int:
    """The exit code of a pass: the most actionable of the models' outcomes.

    An internal error (a bug) outranks a transient one (a retry may help), which outranks
    bad input (a retry cannot help); all ok is 0.
    """
    codes = {exit_code_for(r.error) for r in results if r.error is not None}
    for code in (EXIT_INTERNAL, EXIT_TRANSIENT, EXIT_VALIDATION):
        if code in codes:
            return code
    return EXIT_OK if not codes else EXIT_INTERNAL
