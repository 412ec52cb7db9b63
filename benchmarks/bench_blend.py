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
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_refresh import CASES, RESULTS, _generate, _goals, _replay, variant_tables

from retrain.config import Config, load_config
from retrain.evaluation.metrics import GREATER_IS_BETTER

VARIANTS = ("recent", "blend")


def _with_evidence(cfg: Config, variant: str) -> Config:
    evaluation = cfg.evaluation.model_copy(update={"improvement_evidence": variant})
    return cfg.model_copy(update={"evaluation": evaluation})


def main(argv: list[str]) -> int:
    names = argv or list(CASES)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report: dict[str, Any] = {"commit": commit, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="retrain-blend-") as tmp:
        for name in names:
            cfg = load_config(_generate(name, Path(tmp) / name))
            greater = GREATER_IS_BETTER[cfg.primary_metric]
            for mode, whole in (("at once", True), ("by their times", False)):
                work = Path(tmp) / f"{name}-{'whole' if whole else 'timed'}"
                runs = {}
                for variant in VARIANTS:
                    policies = "drift,always" + (",full_refit" if variant == "recent" else "")
                    runs[variant] = _replay(
                        _with_evidence(cfg, variant), policies, work / variant, whole
                    )
                runs["blend"]["full_refit"] = runs["recent"]["full_refit"]
                report["cases"][f"{name}, labels {mode}"] = {
                    **runs,
                    "goals": {v: _goals(r, greater) for v, r in runs.items()},
                }
                print(f"{name} ({mode}): done", file=sys.stderr, flush=True)
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
