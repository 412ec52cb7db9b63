"""The refresh (`evaluation.refresh_after`, opt-in) on the published streams: off, on age alone,
and on a shown shift of the gain.

    python benchmarks/bench_refresh.py [CASE ...]   # ~40 min for the five cases

For each stream of `retrain.backtest.standard` (loans, housing, fraud, shop, reviews) it
replays ``drift`` and ``always`` three times: with ``evaluation.refresh_after: 0`` (the
default: only a shown gain replaces a champion), with ``refresh_after: 1`` on the age alone
(``refresh_evidence: age``), and with ``refresh_after: 1`` on a shown shift of the
challenger's gain from history to the recent rows (``refresh_evidence: shift``, the
default); and ``full_refit`` once (it has no gates). All of it twice: with each window's
labels arriving by its end (``--ignore-label-times``: what a stream without label times
gives, so the gates, not the wait for labels, make the difference) and with the labels by
their own times. Writes ``benchmarks/results/refresh.{md,json}``: each policy's mean
prequential metric, retrains and deploys, and the goals of the decisions issue read on them
(``drift`` reaching 99% of ``always`` with at most 25% of its retrains; ``always`` at least
as good as ``full_refit``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from retrain.backtest.policies import parse_policies
from retrain.backtest.run import run_backtest
from retrain.backtest.standard import generate_case
from retrain.backtest.timing import ReplayOptions
from retrain.config import Config, load_config
from retrain.evaluation.metrics import GREATER_IS_BETTER

CASES = ("loans", "housing", "fraud", "shop", "reviews")
RESULTS = Path(__file__).resolve().parent / "results"


def _generate(name: str, work: Path) -> Path:
    return generate_case(name, work)[0]


#: variant -> (refresh_after, refresh_evidence)
VARIANTS = {"off": (0, "shift"), "age": (1, "age"), "shift": (1, "shift")}


def _with_refresh(cfg: Config, variant: str) -> Config:
    after, evidence = VARIANTS[variant]
    update = {"refresh_after": after, "refresh_evidence": evidence}
    evaluation = cfg.evaluation.model_copy(update=update)
    return cfg.model_copy(update={"evaluation": evaluation})


def _replay(cfg: Config, policies: str, out: Path, whole: bool) -> dict[str, dict[str, Any]]:
    result = run_backtest(
        cfg,
        parse_policies(policies),
        out,
        options=ReplayOptions(ignore_label_times=whole),
        jobs=2,
    )
    return {
        s.policy: {
            "metric": s.metric,
            "mean": s.mean,
            "retrains": s.retrains,
            "deploys": s.deploys,
            "windows": s.common_windows,
        }
        for s in result.summaries
    }


def _goals(rows: dict[str, dict[str, Any]], greater: bool) -> dict[str, Any]:
    drift, always, refit = rows["drift"], rows["always"], rows.get("full_refit")
    ratio = drift["mean"] / always["mean"] if greater else always["mean"] / drift["mean"]
    out: dict[str, Any] = {
        "drift_share_of_always": ratio,
        "drift_retrain_share": drift["retrains"] / max(always["retrains"], 1),
    }
    if refit is not None:
        out["always_at_least_refit"] = (
            always["mean"] >= refit["mean"] if greater else always["mean"] <= refit["mean"]
        )
    return out


def run_variants(
    names: list[str],
    variants: Sequence[str],
    with_variant: Callable[[Config, str], Config],
    prefix: str,
) -> dict[str, Any]:
    """Each stream of `names`, labels at once and by their times: ``drift`` and ``always``
    under each variant (`with_variant` sets it), ``full_refit`` once (under the first
    variant; it has no gates) and shared by all; with the goals read on each."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report: dict[str, Any] = {"commit": commit, "cases": {}}
    with tempfile.TemporaryDirectory(prefix=f"retrain-{prefix}-") as tmp:
        for name in names:
            cfg = load_config(_generate(name, Path(tmp) / name))
            greater = GREATER_IS_BETTER[cfg.primary_metric]
            for mode, whole in (("at once", True), ("by their times", False)):
                work = Path(tmp) / f"{name}-{'whole' if whole else 'timed'}"
                runs = {}
                for variant in variants:
                    policies = "drift,always" + (",full_refit" if variant == variants[0] else "")
                    runs[variant] = _replay(
                        with_variant(cfg, variant), policies, work / variant, whole
                    )
                for variant in variants[1:]:
                    runs[variant]["full_refit"] = runs[variants[0]]["full_refit"]
                report["cases"][f"{name}, labels {mode}"] = {
                    **runs,
                    "goals": {v: _goals(r, greater) for v, r in runs.items()},
                }
                print(f"{name} ({mode}): done", file=sys.stderr, flush=True)
    return report


def main(argv: list[str]) -> int:
    report = run_variants(argv or list(CASES), list(VARIANTS), _with_refresh, "refresh")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "refresh.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "refresh.md").write_text(_markdown(report))
    print(f"wrote {RESULTS / 'refresh.md'}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The refresh (`evaluation.refresh_after`, opt-in): off, on the age, on a shown shift",
        "",
        f"`python benchmarks/bench_refresh.py` on commit `{report['commit']}`: each stream's"
        " windows replayed with their labels arriving at once, by each window's end"
        " (`--ignore-label-times`), and by their own times; `drift` and `always` with the"
        " refresh off (`refresh_after: 0`, the default), on the age alone (`refresh_after: 1`,"
        " `refresh_evidence: age`) and on a shown shift of the challenger's gain from history"
        " to the recent rows (`refresh_after: 1`, `refresh_evidence: shift`), `full_refit` (no"
        " gates) once, one process per policy pair.",
        "",
    ]
    labels = {"off": "off", "age": "on age", "shift": "on shift"}
    return "\n".join(lines + variant_tables(report, labels)) + "\n"


RETRAIN_SHARE = "drift's retrains / always's"


def variant_tables(report: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The policy table and the goals table of a report whose cases each hold one run per
    variant (`labels`: variant -> its column label, the first the baseline that also ran
    ``full_refit``)."""
    variants = list(labels)

    def columns(what: str) -> str:
        names = [f"{what}, {labels[variants[0]]}", *(labels[v] for v in variants[1:])]
        return " | ".join(names)

    def rule(count: int, align: str) -> str:
        return f"{align}|" * count

    lines = [
        f"| stream | metric | policy | {columns('mean')} | {columns('retrains')}"
        f" | {columns('deploys')} |",
        "|---|---|---|" + rule(3 * len(variants), "---:"),
    ]
    for name, case in report["cases"].items():
        for policy in ("drift", "always", "full_refit"):
            rows = [case[v][policy] for v in variants]
            if policy == "full_refit":
                rows = rows[:1]
            dashes = " | -" * (len(variants) - len(rows))
            cells = [
                " | ".join(f"{r['mean']:.4f}" for r in rows) + dashes,
                " | ".join(str(r["retrains"]) for r in rows) + dashes,
                " | ".join(str(r["deploys"]) for r in rows) + dashes,
            ]
            lines.append(f"| {name} | {rows[0]['metric']} | {policy} | {' | '.join(cells)} |")
    lines += [
        "",
        "The decisions issue's goals read on these rows: `drift` reaches 99% of `always`'s mean"
        " (for rmse, `always`'s over `drift`'s) with at most 25% of its retrains; `always` is"
        " at least as good as `full_refit`.",
        "",
        f"| stream | {columns('drift / always')} | {columns(RETRAIN_SHARE)}"
        f" | {columns('always >= full_refit')} |",
        "|---|" + rule(2 * len(variants), "---:") + rule(len(variants), "---"),
    ]
    for name, case in report["cases"].items():
        goals = [case["goals"][v] for v in variants]
        shares = " | ".join(f"{g['drift_share_of_always']:.1%}" for g in goals)
        retrains = " | ".join(f"{g['drift_retrain_share']:.0%}" for g in goals)
        beats = " | ".join("yes" if g["always_at_least_refit"] else "no" for g in goals)
        lines.append(f"| {name} | {shares} | {retrains} | {beats} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
