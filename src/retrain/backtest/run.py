"""Run a backtest: every policy replayed in its own process, then one table and one plot."""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from retrain._threads import limit_this_thread, worker_threads
from retrain.backtest._unscored import labels_hint, unscored_reasons
from retrain.backtest.baseline import (
    FULL_REFIT,
    REFUSED,
    TRAIN_ROWS,
    replay_full_refit,
    skip_refused_windows,
)
from retrain.backtest.cache import TrainingCache
from retrain.backtest.policies import PROVISIONAL, PolicySpec
from retrain.backtest.replay import PolicyResult, replay_policy
from retrain.backtest.report import PolicySummary, write_outputs
from retrain.backtest.timing import ReplayOptions
from retrain.config import Config, config_from_text
from retrain.data.io import read_source
from retrain.data.windows import drop_small_leading_windows, window_ids_in, window_sort_key
from retrain.errors import ValidationError

__all__ = [
    "BacktestResult",
    "ProgressBar",
    "check_compared",
    "check_strict",
    "run_backtest",
    "select_windows",
]

_DEFAULT_OPTIONS = ReplayOptions()


@dataclass
class BacktestResult:
    """The replays, their summary rows and where the outputs were written."""

    results: list[PolicyResult]
    summaries: list[PolicySummary]
    out_dir: Path


def select_windows(cfg: Config, spec: str | None = None) -> list[str]:
    """The source's windows in time order, optionally cut to ``a..b`` (inclusive, either open).

    Raises:
        ValidationError: a malformed range, or no window in it (names --windows).
    """
    events = read_source(cfg.data.uri, cfg.data.format)
    if cfg.data.time_column not in events.columns:
        raise ValidationError(f"data: the events have no time column {cfg.data.time_column!r}")
    times = events[cfg.data.time_column]
    windows, skipped = drop_small_leading_windows(cfg.data, times, window_ids_in(cfg.data, times))
    for message in skipped:
        print(f"backtest: {message}", file=sys.stderr)
    if spec:
        lo, sep, hi = spec.partition("..")
        if not sep:
            raise ValidationError(f"--windows {spec!r}: use a..b (either side may be empty)")
        lo_key = window_sort_key(cfg.data, lo) if lo else None
        hi_key = window_sort_key(cfg.data, hi) if hi else None
        windows = [
            w
            for w in windows
            if (lo_key is None or window_sort_key(cfg.data, w) >= lo_key)
            and (hi_key is None or window_sort_key(cfg.data, w) <= hi_key)
        ]
    if len(windows) < 2:
        raise ValidationError(
            f"--windows: a backtest needs at least 2 windows, found {len(windows)}"
        )
    return windows


class ProgressBar:
    """A one-line text progress bar on stderr (no dependency)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()

    def advance(self, label: str = "") -> None:
        self.done += 1
        filled = int(self.width * self.done / self.total)
        took = time.perf_counter() - self.t0
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
            f"{took:5.0f}s {label[:30]:<30}"
        )
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _replay_in_worker(
    cfg_yaml: str,
    spec: PolicySpec,
    windows: list[str],
    out_dir: str,
    options: ReplayOptions,
    cache_dir: str | None,
    progress: Any,
    threads: int | None,
) -> dict[str, Any]:
    # The worker's share of the native threads: OpenMP in several processes, each with a
    # thread per core, thrashes (None: OMP_NUM_THREADS was set by hand, and holds here too).
    limit_this_thread(threads, process=True)
    cfg = config_from_text(cfg_yaml)
    cache = TrainingCache(cache_dir) if cache_dir else None
    result = _replay(
        cfg,
        spec,
        windows,
        Path(out_dir),
        options,
        cache,
        lambda name, i: progress.put(f"{name} {windows[i]}"),
    )
    return result.to_dict()


def _replay(
    cfg: Config,
    spec: PolicySpec,
    windows: list[str],
    out: Path,
    options: ReplayOptions,
    cache: TrainingCache | None,
    on_window: Any,
) -> PolicyResult:
    """One policy's replay: the real steps, or the plain full-history refit baseline."""
    if spec.kind == "full_refit":
        return replay_full_refit(
            cfg,
            windows,
            options=options,
            on_window=on_window,
            train_rows_only=spec.mix == TRAIN_ROWS,
        )
    return replay_policy(cfg, spec, windows, out, options=options, cache=cache, on_window=on_window)


def run_backtest(
    cfg: Config,
    policies: list[PolicySpec],
    out_dir: str | Path,
    *,
    windows: list[str] | None = None,
    options: ReplayOptions = _DEFAULT_OPTIONS,
    jobs: int | None = None,
    slo: float | None = None,
    known_drift: list[str] | None = None,
    cache: bool = True,
    progress: TextIO | None = None,
    stem: str = "backtest",
    title: str = "Backtest",
) -> BacktestResult:
    """Replay every policy (in `jobs` processes; 1 runs in this process) and write the outputs.

    `known_drift` names windows where the data is known to change (drawn on the plot and used
    for the after-drift mean). `progress` is the stream for the progress bar (None: no bar).
    `check_compared` refuses a result that compared nothing (the CLI exits 2 on it).
    """
    ignored = cfg.labels.time_column if options.ignore_label_times else None
    # Before anything is written; from here on the replay sees the labels as it is to use them.
    provisional = any(p.mix == PROVISIONAL for p in policies)
    cfg, options = options.resolve(cfg, provisional=provisional)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    windows = windows or select_windows(cfg)
    jobs = jobs or min(2, len(policies))
    if jobs < 1:
        raise ValidationError(f"--jobs must be at least 1, got {jobs}")
    cache_dir = str(out / "_cache") if cache else None
    bar = ProgressBar(len(policies) * len(windows), progress) if progress else None
    results: dict[str, PolicyResult] = {}
    if jobs == 1:
        tc = TrainingCache(cache_dir) if cache_dir else None
        for spec in policies:
            results[spec.name] = _replay(
                cfg,
                spec,
                windows,
                out,
                options,
                tc,
                (lambda name, i: bar.advance(f"{name} {windows[i]}")) if bar else None,
            )
    else:
        ctx = multiprocessing.get_context("spawn")  # no forked copies of threads or locks
        threads = worker_threads(min(jobs, len(policies)))
        with ctx.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            updates = manager.Queue()
            futures: dict[str, Future[dict[str, Any]]] = {
                spec.name: pool.submit(
                    _replay_in_worker,
                    cfg.to_yaml(),
                    spec,
                    windows,
                    str(out),
                    options,
                    cache_dir,
                    updates,
                    threads,
                )
                for spec in policies
            }
            while not all(f.done() for f in futures.values()) or not updates.empty():
                try:
                    label = updates.get(timeout=0.2)
                except queue.Empty:
                    continue
                if bar:
                    bar.advance(label)
            for name, fut in futures.items():
                results[name] = PolicyResult.from_dict(fut.result())
    ordered = [results[s.name] for s in policies]
    skip_refused_windows(ordered)  # the baseline is compared on the windows the policies had
    index = {w: i for i, w in enumerate(windows)}
    known = [index[w] for w in (known_drift or []) if w in index]
    settings = {
        "config": cfg.name,
        "windows": f"{windows[0]}..{windows[-1]} ({len(windows)})",
        "labels": (
            f"as of each window's end, by their own times ({cfg.labels.time_column})"
            if cfg.labels.time_column
            else f"{options.label_delay or 0} window(s) late (--label-delay)"
            + (f"; their own times ({ignored}) ignored (--ignore-label-times)" if ignored else "")
        ),
        "canary_delay": options.canary_delay,
        "slo": slo,
        "known_drift": ", ".join(known_drift) if known_drift else None,
    }
    summaries = write_outputs(
        ordered, out, settings=settings, slo=slo, known_drift=known, stem=stem, title=title
    )
    return BacktestResult(ordered, summaries, out)


def check_compared(cfg: Config, result: BacktestResult, windows: list[str]) -> None:
    """Refuse a backtest whose table has no means: no window was scored by every policy.

    Raises:
        ValidationError: summarising, per policy, why its windows went unscored (and labels
            whose ids are written unlike the events', if so); the outputs are already written.
    """
    summaries = result.summaries
    if summaries and summaries[0].common_windows:
        return
    raise ValidationError(
        f"the backtest compared nothing: of {len(windows)} windows, none was scored by every "
        f"policy, so the table has no means (records in {result.out_dir}); why the windows "
        "were not scored",
        [*unscored_reasons(result.results), *filter(None, [labels_hint(cfg, windows)])],
    )


def check_strict(summaries: list[PolicySummary]) -> None:
    """``--strict``: refuse a backtest in which a policy could not score a window, or the
    baseline's refit met an unexpected error. A baseline's window skipped because every
    retraining policy's ingest refused it (`skip_refused_windows`) mirrors those policies'
    skips: it is listed, not counted again.

    Raises:
        ValidationError: counting and listing the windows not scored and the errors met.
    """
    skips: list[str] = []
    mirrored: list[str] = []
    for s in summaries:
        for window, why in s.skipped.items():
            same = s.policy.startswith(FULL_REFIT) and why.startswith(REFUSED)
            (mirrored if same else skips).append(f"{s.policy}: window {window}: {why}")
    failures = [
        f"{s.policy}: window {window}: {why}"
        for s in summaries
        for window, why in s.failed.items()
        if window not in s.skipped  # a failed scoring is listed with the skips
    ]
    if not (skips or mirrored or failures):
        return
    raise ValidationError(
        f"--strict: {len(skips)} policy windows were not scored"
        + (f" (and the baseline left out {len(mirrored)} of them too)" if mirrored else "")
        + (f", {len(failures)} refits met an unexpected error" if failures else "")
        + " (see the table)",
        skips + mirrored + failures,
    )
