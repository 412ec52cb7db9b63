"""The improvement gate on the recent rows alone, and on the recent and history rows blended
(`evaluation.improvement_evidence`), on the published streams.

    python benchmarks/bench_blend.py [CASE ...]   # ~30 min for the five cases

For each stream of `retrain.backtest.standard` (loans, housing, fraud, shop, reviews) it
replays ``drift`` and ``always`` twice, with ``improvement_evidence: recent`` and with
``blend``, and ``full_refit`` once (it has no gates); all of it with each window's labels
arriving by its end (``--ignore-label-times``) and by their own times, as
`bench_refresh.py` does. Writes ``benchmarks/results/blend.{md,json}``: each policy's mean
prequential metric, retrains and deploys, and the decisions issue's goals read on them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench_refresh import CASES, RESULTS, run_variants, variant_tables

from retrain.config import Config

VARIANTS = ("recent", "blend")


def _with_evidence(cfg: Config, variant: str) -> Config:
    evaluation = cfg.evaluation.model_copy(update={"improvement_evidence": variant})
    return cfg.model_copy(update={"evaluation": evaluation})


def main(argv: list[str]) -> int:
    report = run_variants(argv or list(CASES), VARIANTS, _with_evidence, "blend")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "blend.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "blend.md").write_text(_markdown(report))
    print(f"wrote {RESULTS / 'blend.md'}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The improvement gate: the recent rows alone, or blended with history",
        "",
        f"`python benchmarks/bench_blend.py` on commit `{report['commit']}`: each stream's"
        " windows replayed with their labels arriving at once, by each window's end"
        " (`--ignore-label-times`), and by their own times; `drift` and `always` with"
        " `evaluation.improvement_evidence: recent` (a gain shown on the recent evaluation"
        " rows) and `blend` (or on the mean of the recent and the history gain, the recent"
        " one at least 0), `full_refit` (no gates) once.",
        "",
    ]
    return "\n".join(lines + variant_tables(report, {v: v for v in VARIANTS})) + "\n"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
