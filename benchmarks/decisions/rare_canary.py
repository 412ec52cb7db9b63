"""How often the canary's ranking check decides wrongly on rare positives (fraud-like rates).

The pure state machine (`retrain.rollout.machine`) runs whole rollouts at the default
`rollout:` settings (steps, interval, confidence, `min_labelled`, `min_positives`, failure
limit, deadlines) with the checks error_rate, latency_p95 and ``average_precision_drop``
(max 0.02), fed what the replay provider reports: each analysis replays `ReplaySettings.rows`
fresh labelled rows through both models (paired), as score cells. Truth: a positive rate of
1.5 % (or 1 %), ``latent = 2.5 * y + N(0, 1)``; the champion scores ``latent + N(0, 1)``, the
canary ``latent + s * N(0, 1)`` with s = 1 (equal) or s = 2 (clearly worse: its average
precision is given in the table, from 400,000 rows). A false rollback is an equal canary rolled
back; a false promotion is the worse canary promoted; a rollout short of positives by its cap
ends inconclusive.

    python benchmarks/decisions/rare_canary.py [--trials 200]   # writes rare-canary.md
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

from retrain.rollout.machine import (
    INCONCLUSIVE,
    PROMOTED,
    ROLLED_BACK,
    Observations,
    advance,
    start_rollout,
)
from retrain.rollout.ranking import score_cells
from retrain.settings.rollout import ReplaySettings, RolloutConfig

__all__ = ["POLICY", "rates", "section", "simulate"]

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RATES = (0.015, 0.01)
NOISE = {"equal": 1.0, "worse": 2.0}
CHECKS = [
    {"name": "error_rate", "max": 0.01},
    {"name": "latency_p95", "max": 0.5},
    {"name": "average_precision_drop", "max": 0.02},
]
POLICY = RolloutConfig.model_validate({"checks": CHECKS})
ROWS = ReplaySettings().rows


def _draw(rng: np.random.Generator, n: int, rate: float, noise: float) -> dict[str, np.ndarray]:
    y = rng.random(n) < rate
    latent = 2.5 * y + rng.normal(size=n) - 4.0
    return {
        "y": y,
        "champion": 1.0 / (1.0 + np.exp(-(latent + rng.normal(size=n)))),
        "canary": 1.0 / (1.0 + np.exp(-(latent + noise * rng.normal(size=n)))),
    }


def observe(rng: np.random.Generator, rate: float, noise: float) -> Observations:
    d = _draw(rng, ROWS, rate, noise)
    metrics: dict[str, float | None] = {
        "canary.error_rate": 0.0,
        "champion.error_rate": 0.0,
        "canary.latency_p95": 0.02,
        "champion.latency_p95": 0.02,
    }
    metrics.update(score_cells(d["champion"], d["canary"], d["y"]))
    return Observations(ready=True, metrics=metrics, source="simulated replay")


def simulate(rng: np.random.Generator, rate: float, noise: float) -> tuple[str, int]:
    """One rollout: its final phase and the number of analyses it took."""
    state, _ = start_rollout("sim", "champion", "canary", POLICY, T0)
    now, analyses = T0, 0
    while not state.terminal:
        now += timedelta(seconds=POLICY.interval_seconds)
        state, _ = advance(state, observe(rng, rate, noise), now)
        analyses += 1
    return state.phase, analyses


def rates(rate: float, noise: float, trials: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng([seed, round(rate * 10000), round(noise * 10)])
    outcomes = [simulate(rng, rate, noise) for _ in range(trials)]
    share = {
        phase: sum(o[0] == phase for o in outcomes) / trials
        for phase in (PROMOTED, ROLLED_BACK, INCONCLUSIVE)
    }
    return {**share, "median_analyses": float(np.median([o[1] for o in outcomes]))}


def true_ap(rate: float, noise: float) -> tuple[float, float]:
    d = _draw(np.random.default_rng(99), 400_000, rate, noise)
    return (
        float(average_precision_score(d["y"], d["champion"])),
        float(average_precision_score(d["y"], d["canary"])),
    )


def section(
    quick: bool = False, trials: int | None = None, positive_rates: tuple[float, ...] = RATES
) -> str:
    trials = trials or (20 if quick else 100)
    lines = [
        "## Canary analysis on rare positives: average_precision_drop",
        "",
        f"Method: {trials} rollouts per cell through the pure state machine at the default "
        f"settings (steps {'/'.join(map(str, POLICY.steps))} %, `min_labelled` "
        f"{POLICY.min_labelled}, `min_positives` {POLICY.min_positives}, confidence "
        f"{POLICY.confidence:g}, failure limit {POLICY.failure_limit}) with the checks "
        "error_rate, latency_p95 and average_precision_drop (max 0.02); each analysis replays "
        f"{ROWS} fresh paired rows (the replay provider's default). Scores as in "
        "`benchmarks/decisions/rare_canary.py`. Seeded. A rate over n rollouts has a standard "
        "error of up to 0.5 / sqrt(n).",
        "",
        "| positive rate | champion AP | worse canary AP | equal canary: rolled back "
        "| equal: inconclusive | worse canary: promoted | worse: rolled back "
        "| median analyses (equal / worse) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in positive_rates:
        ap_champion, ap_worse = true_ap(rate, NOISE["worse"])
        equal = rates(rate, NOISE["equal"], trials)
        worse = rates(rate, NOISE["worse"], trials)
        lines.append(
            f"| {rate:.1%} | {ap_champion:.3f} | {ap_worse:.3f} | {equal[ROLLED_BACK]:.1%} | "
            f"{equal[INCONCLUSIVE]:.1%} | {worse[PROMOTED]:.1%} | {worse[ROLLED_BACK]:.1%} | "
            f"{equal['median_analyses']:g} / {worse['median_analyses']:g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rates", default=",".join(map(str, RATES)), help="positive rates")
    p.add_argument(
        "--output",
        default=str(Path(__file__).resolve().parents[1] / "results" / "rare-canary.md"),
    )
    args = p.parse_args(argv)
    text = "# Canary analysis with rare positives\n\n" + section(
        args.quick, args.trials, tuple(float(r) for r in args.rates.split(","))
    )
    Path(args.output).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
