"""Benchmark model fits on a pool of workers: each worker at the full thread count vs its share.

    python benchmarks/bench_threads.py        # -> benchmarks/results/threads.md and .json

`W` worker processes fit `HistGradientBoostingClassifier` (100 iterations, no early stopping,
the same seeded data in every fit, so every fit does the same work) `--fits` times each, at
once, as the monitor's worker processes or the backtest's do. Two settings, alternated over
`--rounds` rounds in one run:

- ``full``: every worker's OpenMP at the whole count (`retrain._threads.usable_cpus`), what
  each worker ran before the workers were given their share;
- ``share``: every worker limited by `retrain._threads.limit_this_thread` to
  `worker_threads(W)` (the count / W, at least 1), as `ProcessFleet` and the backtest do now.

Reported per setting: the wall seconds of the round (all workers done) and the CPU seconds of
the workers (user + sys, ``RUSAGE_CHILDREN``), the median over rounds, and their ratios full /
share. `OMP_NUM_THREADS` is removed from the workers' environment, so ``full`` is what OpenMP
picks alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from retrain import _threads  # noqa: E402


def _worker(threads: int | None, rows: int, fits: int, ready: Any, go: Any) -> None:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    _threads.limit_this_thread(threads, process=True)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 20))
    y = (x[:, 0] + np.sin(x[:, 1]) + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
    model.fit(x[:200], y[:200])  # warm: the imports and OpenMP's threads start here
    ready.put(_threads.openmp_threads())
    go.wait()
    for _ in range(fits):
        model.fit(x, y)


def _round(threads: int | None, workers: int, rows: int, fits: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(threads, rows, fits, ready, go)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    seen = [ready.get() for _ in procs]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a worker failed")
    # The children's CPU counts at their exit: the warm-up is in it, the same in both settings.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "openmp_threads": seen}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--fits", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--output", default=str(HERE / "results" / "threads.md"))
    args = p.parse_args(argv)
    os.environ.pop(_threads.THREADS_ENV, None)  # the workers start at OpenMP's own count
    full = _threads.usable_cpus()
    share = max(1, full // args.workers)
    runs: dict[str, list[dict[str, Any]]] = {"full": [], "share": []}
    for _ in range(args.rounds):
        for name, threads in (("full", None), ("share", share)):
            runs[name].append(_round(threads, args.workers, args.rows, args.fits))
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")}
        for name, rs in runs.items()
    }
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "usable_cpus": full,
        "load_before": os.getloadavg()[0],
        "args": {k: v for k, v in vars(args).items() if k != "output"},  # no machine path
        "runs": runs,
        "median": med,
        "ratio": {k: med["full"][k] / med["share"][k] for k in ("wall", "cpu")},
    }
    out = Path(args.output)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    threads_seen = {name: rs[0]["openmp_threads"] for name, rs in runs.items()}
    lines = [
        "# Model fits on a pool of workers: each at the full thread count vs its share",
        "",
        f"`python benchmarks/bench_threads.py --workers {args.workers} --rows {args.rows} "
        f"--fits {args.fits} --rounds {args.rounds}`: measured {report['date']} on "
        f"{report['machine']} (usable CPUs {full}; one-minute load {report['load_before']:.2f} "
        f"before). {args.workers} worker processes at once, each fitting "
        f"HistGradientBoostingClassifier (100 iterations, {args.rows} rows x 20 features) "
        f"{args.fits} times; settings alternated, median of {args.rounds} rounds.",
        "",
        "| setting | OpenMP threads per worker | wall s | CPU s (workers) |",
        "|---|---|---:|---:|",
    ]
    for name in ("full", "share"):
        lines.append(
            f"| {name} | {threads_seen[name]} | {med[name]['wall']:.2f} | {med[name]['cpu']:.2f} |"
        )
    lines += [
        "",
        f"full / share: **{report['ratio']['wall']:.2f}×** wall, "
        f"**{report['ratio']['cpu']:.2f}×** CPU.",
        "",
    ]
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
