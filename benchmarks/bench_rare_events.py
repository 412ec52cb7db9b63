"""How often the promotion gates bless an equal challenger when positives are rare.

    python benchmarks/bench_rare_events.py --output benchmarks/results/rare-events.md

A simulation with a known truth, through the project's own gate code (`bootstrap_difference`
and `decide`, default 95% interval, 200 resamples). Each trial draws an evaluation window of
`ROWS` rows with a fixed number of positives (frauds); both models score
``latent + own noise`` where ``latent = 1.5 * y + N(0, 1)``, so they are equally good but not
identical. The share of trials the gates bless is the false-blessing rate (nominal 2.5%).
Measured for the rare-event metrics, plain and class-stratified bootstrap, by positive count;
with ``evaluation.min_positives`` a window below it is 'undecided: not enough positives' and
is never blessed, so its false-blessing rate is 0 by construction.

A second table gives the power: a challenger with half the champion's noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from retrain.evaluation.decision import GateInputs, decide
from retrain.evaluation.metrics import bootstrap_difference

__all__ = ["blessed_share", "main"]

ROWS = 2000
POSITIVES = (5, 10, 20, 30, 60, 120)
METRICS = ("average_precision", "recall_at_precision_50")


def blessed_share(
    metric: str,
    positives: int,
    *,
    stratify: bool,
    trials: int,
    seed: int,
    challenger_noise: float = 1.0,
    rows: int = ROWS,
) -> float:
    """The share of `trials` windows in which the gates bless the challenger."""
    rng = np.random.default_rng(seed)
    blessed = 0
    for _ in range(trials):
        y = np.zeros(rows, dtype=np.int64)
        y[rng.choice(rows, positives, replace=False)] = 1
        latent = 1.5 * y + rng.normal(size=rows)
        champion = latent + rng.normal(size=rows)
        challenger = latent + challenger_noise * rng.normal(size=rows)
        gain, lower, upper = bootstrap_difference(
            "classification",
            metric,
            y,
            1.0 / (1.0 + np.exp(-challenger)),
            1.0 / (1.0 + np.exp(-champion)),
            [0, 1],
            n=200,
            confidence=0.95,
            seed=int(rng.integers(1 << 31)),
            stratify=stratify,
        )
        result = decide(
            GateInputs(
                metric=metric,
                greater_is_better=True,
                challenger_recent=0.5 + gain,
                champion_recent=0.5,
                recent_ci=(lower, upper),
            )
        )
        blessed += result.blessed
    return blessed / trials


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", default="benchmarks/results/rare-events.md")
    p.add_argument("--trials", type=int, default=400)
    args = p.parse_args(argv)
    lines = [
        "# Promotion gates with rare positives",
        "",
        f"Command: `python benchmarks/bench_rare_events.py --trials {args.trials}`. {ROWS} "
        "evaluation rows per window, 200 bootstrap resamples, 95% interval; "
        f"{args.trials} trials per cell (a rate's standard error is about "
        f"{np.sqrt(0.025 * 0.975 / args.trials):.3f} near 2.5%).",
        "",
        "## False-blessing rate of an equally good challenger (nominal 2.5%)",
        "",
        "| metric | bootstrap | " + " | ".join(f"{k} pos." for k in POSITIVES) + " |",
        "|---|---|" + "---|" * len(POSITIVES),
    ]
    for metric in METRICS:
        for stratify in (False, True):
            cells = [
                blessed_share(metric, k, stratify=stratify, trials=args.trials, seed=k)
                for k in POSITIVES
            ]
            kind = "stratified" if stratify else "plain"
            lines.append(f"| {metric} | {kind} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")
    lines += [
        "",
        "## Power: challenger with half the champion's noise (stratified)",
        "",
        "| metric | " + " | ".join(f"{k} pos." for k in POSITIVES) + " |",
        "|---|" + "---|" * len(POSITIVES),
    ]
    for metric in METRICS:
        cells = [
            blessed_share(
                metric, k, stratify=True, trials=args.trials, seed=1000 + k, challenger_noise=0.5
            )
            for k in POSITIVES
        ]
        lines.append(f"| {metric} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
