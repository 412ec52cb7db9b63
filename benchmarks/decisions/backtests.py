"""The backtests with label delays, as the decisions report quotes them.

    from benchmarks.decisions.backtests import section
    print(section())          # instant: it reads committed results, it runs nothing

The standard backtests replay each stream with its labels arriving by their own times
(`python -m retrain.backtest.standard benchmarks/results`, about an hour and a half on the
shared machine), and `benchmarks/bench_provisional.py` replays the same streams with
provisional labels. Both write their tables to ``benchmarks/results``; this section gathers
them, with the commit each was measured on, so the decisions report holds every table with
label delays in one place. Re-run those scripts to refresh it.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["section"]

RESULTS = Path(__file__).resolve().parents[1] / "results"
STANDARD = ("loans", "housing", "fraud", "shop", "reviews", "concept")
PROVISIONAL = ("loans", "housing", "fraud", "shop", "reviews", "fraud-biased")


def _table(name: str) -> list[str]:
    """The config line and the policy table of a committed backtest, with its commit."""
    md, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
    if not md.exists() or not js.exists():
        return [f"`{name}`: not in benchmarks/results (run its script)", ""]
    commit = json.loads(js.read_text()).get("code", "unknown")
    lines = md.read_text().splitlines()
    config = next((line for line in lines if line.startswith("config:")), "")
    table = [line for line in lines if line.startswith("|")]
    return [f"**{name}** (commit {commit}): {config}", "", *table, ""]


def section(quick: bool = False) -> str:
    """The markdown section: every committed backtest table with label delays."""
    del quick  # nothing is simulated here
    lines = [
        "## Backtests with label delays",
        "",
        *(part.strip().replace("\n", " ") + "\n" for part in (__doc__ or "").split("\n\n")[2:]),
        "",
        "### The standard streams, labels by their own times",
        "",
    ]
    for case in STANDARD:
        lines += _table(f"backtest-{case}")
    lines += ["### Provisional labels (`always@provisional`), labels by their own times", ""]
    for case in PROVISIONAL:
        lines += _table(f"provisional-{case}")
    return "\n".join(lines) + "\n"
