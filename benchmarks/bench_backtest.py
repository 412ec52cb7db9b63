"""Benchmark: a 50-window x 10k-row backtest of five policies on this machine.

Writes ``benchmarks/results/bench-backtest.md`` and ``.json`` (wall time, per-policy replay
time, trainings and cache hits). A measurement, not a test:

    .venv/bin/python benchmarks/bench_backtest.py [--windows 50] [--rows 10000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from retrain.backtest import parse_policies, run_backtest
from retrain.config import load_config
from retrain.data.demo import generate_loans

POLICIES = "never,every:5,drift,continuous,always"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=50)
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        t0 = time.perf_counter()
        config = generate_loans(
            Path(tmp) / "data",
            windows=args.windows,
            rows_per_window=args.rows,
            drift_window=args.windows // 2,
            seed=11,
        )
        generate_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = run_backtest(
            load_config(config),
            parse_policies(POLICIES),
            Path(tmp) / "out",
            jobs=args.jobs,
            known_drift=[str(args.windows // 2)],
        )
        backtest_s = time.perf_counter() - t1
    doc = {
        "windows": args.windows,
        "rows_per_window": args.rows,
        "policies": POLICIES,
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "generate_seconds": round(generate_s, 1),
        "backtest_seconds": round(backtest_s, 1),
        "per_policy": [
            {
                "policy": s.policy,
                "replay_seconds": round(r.seconds, 1),
                "retrains": s.retrains,
                "cache_hits": s.cache_hits,
                "train_seconds": s.train_seconds,
                "mean": s.mean,
                "mean_after_drift": s.mean_after_drift,
            }
            for r, s in zip(result.results, result.summaries, strict=True)
        ],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-backtest.json").write_text(json.dumps(doc, indent=2) + "\n")
    rows = "\n".join(
        f"| {p['policy']} | {p['replay_seconds']} | {p['retrains']} | {p['cache_hits']} | "
        f"{p['train_seconds']} |"
        for p in doc["per_policy"]
    )
    (out / "bench-backtest.md").write_text(
        f"# Backtest benchmark\n\n{args.windows} windows x {args.rows} rows, policies {POLICIES}, "
        f"{args.jobs} processes on {doc['cpus']} CPUs: **{doc['backtest_seconds']} s** "
        f"(data generation {doc['generate_seconds']} s).\n\n"
        "| policy | replay s | retrains | cache hits | training s |\n|---|---|---|---|---|\n"
        + rows
        + "\n"
    )
    print((out / "bench-backtest.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
