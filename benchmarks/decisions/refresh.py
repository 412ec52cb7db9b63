"""What the refresh (`evaluation.refresh_after`, opt-in) lets through, with a known truth.

    from decisions.refresh import section   # with benchmarks/ on sys.path
    print(section())          # about twenty minutes on one core; section(quick=True): two

The recent-gates cells of `benchmarks.decisions.gates` (binormal scores with a known AUC,
champion AUC 0.80 on the recent rows, the two models' noise correlated at 0.8, balanced
classes, the default paired bootstrap), with the challenger trained on data one window newer
than the champion's and `refresh_after: 1`. Per cell, the share of runs deployed (blessed on a
shown gain or refreshed); negative gains are a truly worse challenger, so their share is the
rate at which the refresh lets one through.

Two rules, side by side:

1. **On age alone** (`refresh_on_decline: false`): a challenger not shown better is deployed
   when it is no worse on its point estimate and its interval does not show it worse.
2. **On a shown decline** (`refresh_on_decline: true`, the default once `refresh_after` is
   set): the same, and the champion's metric on the recent rows is shown worse than on the
   history rows (2,000 of them; the lower bound of the unpaired bootstrap interval of the
   decline above 0, as `evaluate_challenger` computes it). Measured where the world did not
   move (the champion's true AUC 0.80 on history as on recent rows: every refresh there is a
   false one) and where it moved under the champion (0.85 on history, 0.80 on recent rows: a
   decline of 0.05). The challenger is as good as the champion on history (no forgetting), so
   the history gate passes and the rule alone decides.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import expit

from decisions.gates import (
    _CHAMPION_AUC,
    _DEFAULTS,
    _auc,
    _Cell,
    _interval,
    _recent_cell,
    _scores,
    _table,
)
from retrain.evaluation.bootstrap import bootstrap_decline
from retrain.evaluation.gates import GateInputs, decide

__all__ = ["section"]

_GAINS = (-0.05, -0.02, -0.01, 0.0, 0.01, 0.02)
_SIZES = (100, 250, 500, 1000)
_HISTORY_ROWS = 2000
#: The champion's true AUC on history rows: the world did not move, or it moved by 0.05.
_WORLDS = (("not moved (history 0.80)", _CHAMPION_AUC), ("moved (history 0.85)", 0.85))


def _decline_cell(n: int, gain: float, runs: int, history_auc: float) -> _Cell:
    """Share deployed of `runs` comparisons under the decline rule: the champion's true AUC is
    `history_auc` on history rows and 0.80 on the `n` recent rows, the challenger's `gain`
    better on recent rows and as good on history."""
    deployed = undecided = 0
    widths = []
    for seed in range(runs):
        rng = np.random.default_rng(
            [n, round(gain * 1000) % 100_000, round(history_auc * 100), seed, 13]
        )
        y, challenger, champion = _scores(n, _CHAMPION_AUC + gain, _CHAMPION_AUC, rng)
        y_h, challenger_h, champion_h = _scores(_HISTORY_ROWS, history_auc, history_auc, rng)
        ci = _interval(y, challenger, champion, seed)
        inputs = GateInputs(
            "roc_auc",
            True,
            _auc(y, challenger),
            _auc(y, champion),
            ci,
            _auc(y_h, challenger_h),
            _auc(y_h, champion_h),
            history_ci=_interval(y_h, challenger_h, champion_h, seed),
            recent_rows=n,
            min_rows=_DEFAULTS.min_rows,
            champion_age=1.0,
            refresh_after=1,
            refresh_on_decline=True,
        )
        r = decide(inputs)
        if r.comparison["champion_decline"] is not None:  # as evaluate_challenger: bootstrap it
            _, lower, upper = bootstrap_decline(
                "classification",
                "roc_auc",
                (y, expit(champion)),
                (y_h, expit(champion_h)),
                [0, 1],
                n=_DEFAULTS.bootstrap_samples,
                confidence=_DEFAULTS.confidence,
                seed=seed,
                stratify=False,
            )
            r = decide(dataclasses.replace(inputs, decline_ci=(lower, upper)))
        deployed += r.blessed
        undecided += r.undecided
        widths.append((ci[1] - ci[0]) / 2)
    return _Cell(deployed / runs, runs, float(np.median(widths)), undecided / runs)


def section(quick: bool = False) -> str:
    runs = 40 if quick else 400
    sizes = _SIZES[1::2] if quick else _SIZES
    header = ["evaluation rows", *(f"gain {g:+.2f}" for g in _GAINS)]
    lines = [
        "## The refresh (opt-in): share deployed when the challenger is trained on newer data",
        "",
        "The recent-gates cells above, the challenger trained on data one window newer than the "
        "champion's, with `evaluation.refresh_after: 1` (off by default). Negative gains are a "
        "truly worse challenger: the share deployed is the rate at which a refresh lets it "
        f"through; gain 0 is an equal one. {runs} runs per cell, ± the 95% binomial interval.",
        "",
        "### On age alone (`refresh_on_decline: false`)",
        "",
        "A challenger no worse on its point estimate, not shown worse by its interval, is "
        "deployed without a shown gain.",
        "",
    ]
    rows = []
    for n in sizes:
        cells = [_recent_cell(n, g, runs, age=1.0, refresh_after=1) for g in _GAINS]
        rows.append([str(n), *(c.rate_text() for c in cells)])
    lines += _table(header, rows)
    lines += [
        "",
        "### On a shown decline (`refresh_on_decline: true`, the default with `refresh_after`)",
        "",
        "The same, and the champion's AUC on the recent rows must be shown below its AUC on "
        f"{_HISTORY_ROWS:,} history rows (the lower bound of the unpaired bootstrap interval of "
        "the decline above 0). Where the world did not move, every refresh is a false one and "
        "the share deployed at gain 0 should stay near the nominal 2.5% of the improvement gate "
        "alone; where it moved under the champion (its true AUC 0.85 on history, 0.80 on "
        "recent rows), the rule should deploy about as the age rule does, as far as the "
        f"recent rows can show the decline. {runs} runs per cell at gain 0, {runs // 2} at the "
        "others.",
        "",
    ]
    for label, history_auc in _WORLDS:
        rows = []
        for n in sizes:
            # Each costs three bootstraps: half the runs, but at gain 0 (the false refreshes).
            cells = [
                _decline_cell(n, g, runs if g == 0 else runs // 2, history_auc) for g in _GAINS
            ]
            rows.append([str(n), *(c.rate_text() for c in cells)])
        lines += [f"World {label}:", "", *_table(header, rows), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
