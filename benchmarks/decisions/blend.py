"""What the blended improvement evidence (`evaluation.improvement_evidence: blend`) blesses,
with a known truth.

    from decisions.blend import section   # with benchmarks/ on sys.path
    print(section())          # about fifteen minutes on one core; section(quick=True): one

The recent-gates cells of `benchmarks.decisions.gates` (binormal scores with a known AUC,
the champion's true AUC 0.80, the two models' noise correlated at 0.8, balanced classes, the
default paired bootstrap), plus 2,000 history evaluation rows on which the champion's true AUC
is 0.80 too and the challenger's differs by its own true history gain. Each run is judged by
`decide` with the default settings, then, when the blend waits for its interval, with the
interval `evaluate_challenger` computes (`bootstrap_gain_blend`: the mean of the two paired
gains, the sets resampled independently) and the shift's (`bootstrap_gain_shift`, which must
not show the recent gain below the history gain). Per cell, the share of runs blessed with
`improvement_evidence: recent` (the default) and with `blend`, side by side on the same rows.

- *Equal everywhere* (0, 0): every blessing is a false one; nominal 2.5%.
- *Better everywhere* (+0.01 or +0.02 on both sets): the power the blend adds.
- *Better on the recent rows only*: the world moved and the challenger learnt it.
- *Equal on the recent rows, better on history*: a challenger no better for what it will
  serve; blessing it changes the model for nothing (no loss either).
- *Worse on the recent rows, better on history*: the price; a blessing deploys a challenger
  worse on what it will serve. Far better on history is what a change of regime looks like
  (history is the old world): there the shift must keep the sets apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import expit

from decisions.gates import _CHAMPION_AUC, _DEFAULTS, _auc, _Cell, _interval, _scores, _table
from retrain.evaluation._blend import BLEND_WEIGHTS
from retrain.evaluation.bootstrap import bootstrap_gain_blend, bootstrap_gain_shift
from retrain.evaluation.gates import GateInputs, decide

__all__ = ["section"]

_HISTORY_ROWS = 2000
_SIZES = (500, 1000)
#: (true recent gain, true history gain) of the challenger, and what the case is.
_CASES = (
    ((0.0, 0.0), "equal everywhere (false blessing)"),
    ((0.01, 0.01), "better everywhere"),
    ((0.02, 0.02), "better everywhere"),
    ((0.01, 0.0), "better on recent only"),
    ((0.02, 0.0), "better on recent only"),
    ((0.0, 0.02), "equal on recent, better on history"),
    ((-0.01, 0.02), "worse on recent, better on history"),
    ((-0.01, 0.03), "worse on recent, better on history"),
    ((-0.02, 0.03), "worse on recent, better on history"),
    ((-0.01, 0.06), "worse on recent, far better on history"),
    ((-0.02, 0.10), "worse on recent, far better on history"),
)


def _cells(n: int, recent_gain: float, history_gain: float, runs: int) -> tuple[_Cell, _Cell]:
    """Share blessed of `runs` comparisons on `n` recent rows: (recent alone, blend)."""
    alone = blended = 0
    for seed in range(runs):
        key = [n, round(recent_gain * 1000) % 100_000, round(history_gain * 1000) % 100_000]
        rng = np.random.default_rng([*key, seed, 29])
        y, challenger, champion = _scores(n, _CHAMPION_AUC + recent_gain, _CHAMPION_AUC, rng)
        y_h, challenger_h, champion_h = _scores(
            _HISTORY_ROWS, _CHAMPION_AUC + history_gain, _CHAMPION_AUC, rng
        )
        inputs = GateInputs(
            "roc_auc",
            True,
            _auc(y, challenger),
            _auc(y, champion),
            _interval(y, challenger, champion, seed),
            _auc(y_h, challenger_h),
            _auc(y_h, champion_h),
            history_ci=_interval(y_h, challenger_h, champion_h, seed),
            max_history_loss=_DEFAULTS.max_history_loss,
            recent_rows=n,
            min_rows=_DEFAULTS.min_rows,
            improvement_evidence="blend",
        )
        first = decide(inputs)
        result = first
        if first.comparison.get("blend_needs_interval"):  # as evaluate_challenger: bootstrap
            sets = (
                (y, expit(challenger), expit(champion)),
                (y_h, expit(challenger_h), expit(champion_h)),
            )
            boot = {
                "n": _DEFAULTS.bootstrap_samples,
                "confidence": _DEFAULTS.confidence,
                "seed": seed,
                "stratify": False,
            }
            _, lower, upper = bootstrap_gain_blend(
                "classification", "roc_auc", *sets, [0, 1], weights=BLEND_WEIGHTS, **boot
            )
            _, s_lower, s_upper = bootstrap_gain_shift(
                "classification", "roc_auc", *sets, [0, 1], **boot
            )
            result = decide(
                dataclasses.replace(inputs, blend_ci=(lower, upper), shift_ci=(s_lower, s_upper))
            )
        # The blend only ever adds a pass to the improvement gate: without it, the first
        # decision's verdict is the default rule's.
        alone += first.blessed
        blended += result.blessed
    return _Cell(alone / runs, runs, float("nan")), _Cell(blended / runs, runs, float("nan"))


def section(quick: bool = False) -> str:
    runs = 40 if quick else 200
    equal_runs = 40 if quick else 1000  # the false-blessing cell: a rate near 2.5-4% needs more
    header = ["challenger's true gain: recent, history", "case"]
    for n in _SIZES:
        header += [f"{n} rows: recent alone", f"{n} rows: blend"]
    rows = []
    for (recent_gain, history_gain), case in _CASES:
        row = [f"{recent_gain:+.2f}, {history_gain:+.2f}", case]
        for n in _SIZES:
            cell_runs = equal_runs if (recent_gain, history_gain) == (0.0, 0.0) else runs
            alone, blended = _cells(n, recent_gain, history_gain, cell_runs)
            row += [alone.rate_text(), blended.rate_text()]
        rows.append(row)
    lines = [
        "## The blended improvement evidence (`evaluation.improvement_evidence: blend`)",
        "",
        "Share of runs blessed on the recent evaluation rows alone (the default) and with the "
        "blend (also when the mean of the recent gain and the gain on "
        f"{_HISTORY_ROWS:,} history evaluation rows is shown above 0, the recent gain at least "
        "0 on its point estimate and not shown below the history gain), on the same rows. The "
        "champion's true AUC is 0.80 on both sets. The blend needs `min_rows` (500) recent rows. "
        f"{runs} runs per cell ({equal_runs} for equal models), ± the 95% binomial interval.",
        "",
        *_table(header, rows),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
