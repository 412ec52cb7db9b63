"""How often the canary analysis decides wrongly, from a simulation with a known truth.

The pure state machine (`retrain.rollout.machine`) runs whole rollouts at the default
`rollout:` settings, tick by tick on a simulated clock, fed synthetic observations drawn from
a known truth: the champion is right on 80 % (or 60 %: a noisier proportion) of labelled
predictions, the canary on as many (equal) or 5 or 10 points fewer. Health metrics are
perfect, so every decision is the quality check's. Two ways of observing, as the two providers do:

- ``split`` (Prometheus): each analysis sees `labels` labelled predictions split by the
  canary's traffic share (10, 25, 50 %); each predictor's correct count is binomial.
- ``paired`` (replay): both models answer the same `labels` rows; per row the two outcomes are
  drawn jointly (the canary alone right on 5 % of rows, the champion alone on 5 % plus the
  accuracy gap), and the provider reports the spread of the per-row difference.

The quality check is judged on the labels pooled over the analyses of the current step
(`retrain.rollout.pool`); a step waits for labels while they arrive, up to the cap
(`retrain.rollout.wait`). A false rollback is an equal canary rolled back on evidence (failed
checks, or a failed look that stands at the deadline); a false promotion is a worse canary
promoted. A rollout whose step is still short of labels at its cap ends *inconclusive*: the
canary leaves traffic unjudged, counted apart from both.

    python benchmarks/decisions/canary.py           # the full table (2000 rollouts per cell)
    python benchmarks/decisions/canary.py --quick   # 200 per cell
    python benchmarks/decisions/canary.py --trials 600
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from retrain.rollout.machine import (
    INCONCLUSIVE,
    PROMOTED,
    ROLLED_BACK,
    Observations,
    advance,
    start_rollout,
)
from retrain.rollout.pool import SPLIT_FIRST_LOOK
from retrain.settings.rollout import RolloutConfig

__all__ = ["Outcome", "observe", "rates", "section", "simulate"]

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CHAMPION_ACCURACIES = (0.8, 0.6)
#: Rows where only the canary is right (paired draws); the champion alone: this plus the gap.
CANARY_ONLY = 0.05
GAPS = (0.0, 0.05, 0.10)
LABELS = {"split": (20, 100, 300, 2000), "paired": (5, 10, 500)}


@dataclass(frozen=True)
class Outcome:
    """How one rollout ended: promoted, rolled back on evidence, or inconclusive (too few
    labels by the cap); and after how many analyses."""

    promoted: bool
    rolled_back: bool
    inconclusive: bool
    analyses: int = 0


def observe(
    rng: np.random.Generator,
    mode: str,
    labels: int,
    traffic: int,
    gap: float,
    accuracy: float = 0.8,
) -> Observations:
    """One analysis' observations of a canary `gap` accuracy points below its champion, which
    is right on `accuracy` of the labelled predictions."""
    metrics: dict[str, float | None] = {
        "canary.error_rate": 0.0,
        "champion.error_rate": 0.0,
        "canary.latency_p95": 0.02,
        "champion.latency_p95": 0.02,
    }
    if mode == "split":
        n_canary = max(round(labels * traffic / 100), 1)
        n_champion = max(labels - n_canary, 1)
        metrics["canary.labelled"] = float(n_canary)
        metrics["champion.labelled"] = float(n_champion)
        correct = rng.binomial(n_canary, accuracy - gap)
        metrics["canary.accuracy"] = correct / n_canary
        metrics["champion.accuracy"] = rng.binomial(n_champion, accuracy) / n_champion
    elif mode == "paired":
        champion_only = CANARY_ONLY + gap
        both = accuracy - champion_only
        p = [both, champion_only, CANARY_ONLY, 1.0 - both - champion_only - CANARY_ONLY]
        counts = rng.multinomial(labels, p)
        champion_right = counts[0] + counts[1]
        canary_right = counts[0] + counts[2]
        metrics["canary.labelled"] = metrics["champion.labelled"] = float(labels)
        metrics["paired_labelled"] = float(labels)
        metrics["canary.accuracy"] = canary_right / labels
        metrics["champion.accuracy"] = champion_right / labels
        # Per-row difference champion minus canary: +1, -1 or 0.
        diff = np.repeat([1.0, -1.0, 0.0], [counts[1], counts[2], counts[0] + counts[3]])
        metrics["accuracy_diff_std"] = float(np.std(diff, ddof=1))
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return Observations(ready=True, metrics=metrics, source=f"simulated {mode}")


def simulate(
    rng: np.random.Generator,
    mode: str,
    labels: int,
    gap: float,
    accuracy: float = 0.8,
    policy: RolloutConfig | None = None,
) -> Outcome:
    """One rollout, stepped at its analysis interval until it ends."""
    policy = policy or RolloutConfig()
    state, _ = start_rollout("sim", "champion", "canary", policy, T0)
    now = T0
    analyses = 0
    while not state.terminal:
        now += timedelta(seconds=policy.interval_seconds)
        obs = observe(rng, mode, labels, state.traffic, gap, accuracy)
        state, _ = advance(state, obs, now)
        analyses += 1
    return Outcome(
        promoted=state.phase == PROMOTED,
        rolled_back=state.phase == ROLLED_BACK,
        inconclusive=state.phase == INCONCLUSIVE,
        analyses=analyses,
    )


def rates(
    mode: str, labels: int, gap: float, trials: int, seed: int = 0, accuracy: float = 0.8
) -> dict[str, float]:
    """Shares of `trials` rollouts promoted, rolled back on evidence, and ended inconclusive;
    and the median number of analyses to the decision."""
    key = [seed, labels, round(gap * 1000), round(accuracy * 1000), mode == "paired"]
    rng = np.random.default_rng(key)
    outcomes = [simulate(rng, mode, labels, gap, accuracy) for _ in range(trials)]
    return {
        "promoted": sum(o.promoted for o in outcomes) / trials,
        "rolled_back": sum(o.rolled_back for o in outcomes) / trials,
        "inconclusive": sum(o.inconclusive for o in outcomes) / trials,
        "median_analyses": float(np.median([o.analyses for o in outcomes])),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def section(quick: bool = False, trials: int | None = None) -> str:
    """The Markdown section: false rollback and false promotion rates at the defaults."""
    trials = trials or (200 if quick else 2000)
    policy = RolloutConfig()
    per_step = math.floor(policy.max_step_seconds / policy.interval_seconds)
    first = policy.steps[0] / 100
    least_split = math.ceil(policy.min_labelled / (first * per_step))
    full_split = math.ceil(SPLIT_FIRST_LOOK * policy.min_labelled / (first * per_step))
    least_paired = math.ceil(policy.min_labelled / per_step)
    lines = [
        "## Canary analysis: false rollbacks and false promotions",
        "",
        f"Method: {trials} rollouts per cell through the pure state machine at the default "
        f"settings (steps {'/'.join(map(str, policy.steps))} %, analysis every "
        f"{policy.interval_seconds:g} s, `min_labelled` {policy.min_labelled}, confidence "
        f"{policy.confidence:g}, failure limit {policy.failure_limit}, progress deadline "
        f"{policy.progress_deadline_seconds:g} s, a step waits for arriving labels up to "
        f"`max_step_seconds` {policy.max_step_seconds:g} s, `accuracy_drop` max 0.02), fed "
        "labelled outcomes drawn from a known truth (champion accuracy 0.8 or 0.6; canary "
        "equal, 5 or 10 points worse); `split` splits each analysis' labels by the canary's "
        "traffic share (Prometheus), `paired` has both models answer the same rows (replay). "
        "The quality check is judged on the labels pooled over the step's analyses. Seeded; "
        "`python benchmarks/decisions/canary.py` reproduces it.",
        "",
        "| observed as | labels per analysis | champion accuracy | equal canary: rolled back "
        "| equal canary: inconclusive | 5 points worse: promoted | 10 points worse: promoted "
        "| median analyses to a decision (equal / 5 worse) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, counts in LABELS.items():
        for labels in counts:
            for accuracy in CHAMPION_ACCURACIES:
                equal, worse5, worse10 = (
                    rates(mode, labels, gap, trials, accuracy=accuracy) for gap in GAPS
                )
                lines.append(
                    f"| {mode} | {labels} | {accuracy:g} | {_pct(equal['rolled_back'])} | "
                    f"{_pct(equal['inconclusive'])} | {_pct(worse5['promoted'])} | "
                    f"{_pct(worse10['promoted'])} | "
                    f"{equal['median_analyses']:g} / {worse5['median_analyses']:g} |"
                )
    lines += [
        "",
        f"A step waits for labels while its pooled count grows, up to {per_step} analyses; "
        f"the canary's pool at the first ({policy.steps[0]} %) step reaches `min_labelled` by "
        f"then with at least {least_split} labels per analysis under split traffic (the full "
        f"first look, {SPLIT_FIRST_LOOK} x `min_labelled`, with {full_split}) and "
        f"{least_paired} paired. With fewer, the rollout ends *inconclusive*: the canary leaves "
        "traffic unjudged (neither promoted nor counted as a rollback on evidence), and the "
        "rollout's first analyses already say that the observed label rate falls short. "
        "Lengthen `max_step_seconds`, the analysis window (Prometheus) or replay more rows to "
        "get a verdict there.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 rollouts per row, not 2000")
    parser.add_argument("--trials", type=int, default=None, help="rollouts per cell")
    args = parser.parse_args(argv)
    print(section(quick=args.quick, trials=args.trials), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
