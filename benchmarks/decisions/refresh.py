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

1. **On the age alone** (`refresh_evidence: age`): a challenger not shown better is deployed
   when it is no worse on its point estimate and its interval does not show it worse.
2. **On a shown shift** (`refresh_evidence: shift`, the default once `refresh_after` is set):
   the same, and the challenger's gain on the recent rows is shown above its gain on 2,000
   history rows (the lower bound of the interval of the difference above 0, the two sets
   resampled independently, as `evaluate_challenger` computes it). Measured in three worlds:
   *not moved* (both models score on history as on the recent rows: every refresh is a false
   one); *a harder window* (both models' true AUC 0.85 on history and 0.80 on the recent rows,
   alike: the window is harder, the world did not move their way, so every refresh is a false
   one there too); *moved* (the challenger gives 0.01 back on history, where the champion
   scores 0.85, and gains the column's gain on the recent rows: it learnt the change).
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
from retrain.evaluation.bootstrap import bootstrap_gain_shift
from retrain.evaluation.gates import GateInputs, decide

__all__ = ["section"]

_GAINS = (-0.05, -0.02, -0.01, 0.0, 0.01, 0.02)
_SIZES = (100, 250, 500, 1000)
_HISTORY_ROWS = 2000
#: (true recent gain, true history loss) of a challenger that only forgot, and the sizes.
_FORGOT = ((0.0, 0.02), (0.0, 0.03), (-0.01, 0.02))
_FORGOT_SIZES = (250, 1000)
#: (world, the champion's true AUC on history rows, the challenger's loss there).
_WORLDS = (
    ("not moved (both 0.80 on history)", _CHAMPION_AUC, 0.0),
    ("a harder window (both 0.85 on history)", 0.85, 0.0),
    ("moved (champion 0.85 on history, the challenger 0.01 below)", 0.85, 0.01),
)


def _shift_cell(n: int, gain: float, runs: int, history_auc: float, loss: float) -> _Cell:
    """Share deployed of `runs` comparisons under the shift rule: on the `n` recent rows the
    champion's true AUC is 0.80 and the challenger's `gain` above; on history rows the
    champion's is `history_auc` and the challenger's `loss` below."""
    deployed = undecided = 0
    widths = []
    for seed in range(runs):
        key = [n, round(gain * 1000) % 100_000, round(history_auc * 100), round(loss * 1000)]
        rng = np.random.default_rng([*key, seed, 13])
        y, challenger, champion = _scores(n, _CHAMPION_AUC + gain, _CHAMPION_AUC, rng)
        y_h, challenger_h, champion_h = _scores(_HISTORY_ROWS, history_auc - loss, history_auc, rng)
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
            max_history_loss=_DEFAULTS.max_history_loss,
            recent_rows=n,
            min_rows=_DEFAULTS.min_rows,
            champion_age=1.0,
            refresh_after=1,
            refresh_evidence="shift",
        )
        r = decide(inputs)
        if r.comparison.get("refresh_needs_shift"):  # as evaluate_challenger: bootstrap it
            _, lower, upper = bootstrap_gain_shift(
                "classification",
                "roc_auc",
                (y, expit(challenger), expit(champion)),
                (y_h, expit(challenger_h), expit(champion_h)),
                [0, 1],
                n=_DEFAULTS.bootstrap_samples,
                confidence=_DEFAULTS.confidence,
                seed=seed,
                stratify=False,
            )
            r = decide(dataclasses.replace(inputs, shift_ci=(lower, upper)))
        deployed += r.blessed
        undecided += r.undecided
        widths.append((ci[1] - ci[0]) / 2)
    return _Cell(deployed / runs, runs, float(np.median(widths)), undecided / runs)


def section(quick: bool = False) -> str:
    runs = 40 if quick else 400
    shift_runs = 40 if quick else 200  # three bootstraps a run: fewer runs per cell
    forgot_runs = 40 if quick else 150
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
        "### On the age alone (`refresh_evidence: age`)",
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
        "### On a shown shift (`refresh_evidence: shift`, the default with `refresh_after`)",
        "",
        "The same, and the challenger's gain on the recent rows must be shown above its gain "
        f"on {_HISTORY_ROWS:,} history rows (the lower bound of the interval of the difference "
        "above 0). Where the world did not move, and where the recent window is only harder "
        "for both models, every refresh is a false one: the share deployed at gain 0 should "
        "stay near the nominal 2.5% of the improvement gate alone. Where it moved (the "
        "challenger 0.01 below the champion on history, its true gain on the recent rows as "
        "the column says), "
        "the rule should deploy more than the improvement gate alone, as far as the rows can "
        f"show the shift. {shift_runs} runs per cell at gain 0, {shift_runs // 2} at the others.",
        "",
    ]
    for label, history_auc, loss in _WORLDS:
        rows = []
        for n in sizes:
            # Each costs three bootstraps: half the runs, but at gain 0 (the false refreshes).
            cells = [
                _shift_cell(n, g, shift_runs if g == 0 else shift_runs // 2, history_auc, loss)
                for g in _GAINS
            ]
            rows.append([str(n), *(c.rate_text() for c in cells)])
        lines += [f"World {label}:", "", *_table(header, rows), ""]
    lines += [
        "### On a shown shift: a challenger that only forgot",
        "",
        "The shift is the recent gain minus the history gain, so a history loss the forgetting "
        "guard lets through (its interval not wholly beyond the 0.02 budget) counts toward it: "
        "a challenger no better on the recent rows but worse on history (champion 0.85 there) "
        "is deployed at these rates. Where the world did not move such a challenger cannot "
        "exist (recent and history rows then come from one law); where it moved, it is one "
        f"that gave up the past for nothing shown now. {forgot_runs} runs per cell.",
        "",
    ]
    header = ["evaluation rows", *(f"recent {g:+.2f}, history -{h:.2f}" for g, h in _FORGOT)]
    rows = []
    for n in _FORGOT_SIZES if not quick else _FORGOT_SIZES[:1]:
        cells = [_shift_cell(n, g, forgot_runs, 0.85, h) for g, h in _FORGOT]
        rows.append([str(n), *(c.rate_text() for c in cells)])
    lines += _table(header, rows)
    return "\n".join(lines).rstrip("\n") + "\n"
