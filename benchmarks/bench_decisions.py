"""Benchmark: the error rates of every decision retrain makes, from simulations with a known truth.

Each section comes from a module of `benchmarks/decisions/` with a ``section(quick) -> str``
function: the evaluation gates (blessing rate of equal models, forgetting gate on identical
models, power), the canary analysis (false rollback of an equal canary, false promotion of a
worse one; also on average precision at fraud-like positive rates), the drift verdicts
(false positives by sample size and cardinality, power), the labelled performance signal
(false alarms and misses by the labelled rows), the trigger policy's drift back-off
(launches saved against deployments delayed), the arrival check of provisional labels
(fair label sources refused, biased ones missed), and the backtest tables with label delays
(gathered from the committed backtest results, with their commits: those take an hour or
more to replay).
Writes ``benchmarks/results/decisions.md``. A measurement, not a test:

    .venv/bin/python benchmarks/bench_decisions.py [--quick] [--only gates,canary,...,backoff]
    .venv/bin/python benchmarks/bench_decisions.py --only drift --drift-sampled --output /tmp/d.md
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = (
    "gates",
    "refresh",
    "blend",
    "first_model",
    "canary",
    "rare_canary",
    "drift",
    "performance",
    "backoff",
    "arrival",
    "backtests",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small simulations (a smoke run)")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--output", default=str(HERE / "results" / "decisions.md"))
    p.add_argument(
        "--drift-sampled",
        action="store_true",
        help="drift: only the sizes above drift.max_sample_rows (judged on a sample)",
    )
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    sys.path.insert(0, str(HERE))  # benchmarks/ is not a package: decisions/ is
    parts = [
        "# Decisions: measured error rates\n",
        f"Python {platform.python_version()} on {platform.machine()}; "
        f"{'quick (smoke) run' if args.quick else 'full run'}. Every figure below is a rate "
        "over simulated cases whose truth is known; each section says how it was simulated.\n",
    ]
    for name in wanted:
        module = importlib.import_module(f"decisions.{name}")
        t0 = time.perf_counter()
        options = {"sampled_only": True} if name == "drift" and args.drift_sampled else {}
        text = module.section(quick=args.quick, **options)
        parts.append(text.rstrip() + f"\n\n_({name}: {time.perf_counter() - t0:.0f} s)_\n")
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
