"""How often the promotion gates bless an equal challenger when positives are rare.

    python benchmarks/bench_rare_events.py --output benchmarks/results/rare-events.md

A simulation with a known truth, through the project's own gate code (`bootstrap_difference`
and `decide`, at the gates' default resamples and confidence from `EvaluationConfig`). Each
trial draws an evaluation window of `ROWS` rows with a fixed number of positives (frauds);
both models score ``latent + own noise`` where ``latent = 1.5 * y + N(0, 1)``, so they are
equally good but not identical. The share of trials the gates bless is the false-blessing rate
(nominal 2.5%). Measured for the rare-event metrics with the class-stratified bootstrap the
gates use for them (``--plain``: also the plain one), by positive count;
with ``evaluation.min_positives`` a window below it is 'undecided: not enough positives' and
is never blessed, so its false-blessing rate is 0 by construction.

A second table gives the power: a challenger with half the champion's noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from retrain.evaluation.bootstrap import bootstrap_difference
from retrain.evaluation.decision import GateInputs, decide
from retrain.settings.evaluation import EvaluationConfig

__all__ = ["blessed_share", "main"]

ROWS = 2000
POSITIVES = (5, 10, 20, 30, 60, 120)
METRICS = ("average_precision", "recall_at_precision_50")
#: The gates' defaults (resamples, confidence), so the figures are those of the shipped gate.
GATE = EvaluationConfig()


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
            n=GATE.bootstrap_samples,
            confidence=GATE.confidence,
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
    p.add_argument(
        "--positives",
        default=",".join(map(str, POSITIVES)),
        help="comma-separated positive counts per window (columns of the tables)",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="also measure the plain (unstratified) bootstrap, which the gates do not use for "
        "these metrics by default",
    )
    args = p.parse_args(argv)
    positives = tuple(int(k) for k in args.positives.split(","))
    lines = [
        "# Promotion gates with rare positives",
        "",
        f"Command: `python benchmarks/bench_rare_events.py --trials {args.trials} "
        f"--positives {args.positives}{' --plain' if args.plain else ''}`. {ROWS} "
        f"evaluation rows per window, {GATE.bootstrap_samples} bootstrap resamples, "
        f"{GATE.confidence:.0%} interval (the wider of percentile and t-widened normal at each "
        f"end, as the gates take it); {args.trials} trials per cell (a rate's standard error "
        "is about "
        f"{np.sqrt(0.025 * 0.975 / args.trials):.3f} near 2.5%).",
        "",
        "## False-blessing rate of an equally good challenger "
        f"(nominal {(1 - GATE.confidence) / 2:.1%})",
        "",
        "| metric | bootstrap | " + " | ".join(f"{k} pos." for k in positives) + " |",
        "|---|---|" + "---|" * len(positives),
    ]
    for metric in METRICS:
        for stratify in (False, True) if args.plain else (True,):
            cells = [
                blessed_share(metric, k, stratify=stratify, trials=args.trials, seed=k)
                for k in positives
            ]
            kind = "stratified" if stratify else "plain"
            lines.append(f"| {metric} | {kind} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")
    lines += [
        "",
        "## Power: challenger with half the champion's noise (stratified)",
        "",
        "| metric | " + " | ".join(f"{k} pos." for k in positives) + " |",
        "|---|" + "---|" * len(positives),
    ]
    for metric in METRICS:
        cells = [
            blessed_share(
                metric, k, stratify=True, trials=args.trials, seed=1000 + k, challenger_noise=0.5
            )
            for k in positives
        ]
        lines.append(f"| {metric} | " + " | ".join(f"{c:.1%}" for c in cells) + " |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
