"""How often the first model's gate decides right: simulations with a known truth.

    from benchmarks.decisions.first_model import section
    print(section())          # 17 minutes on a busy 2-core machine; quick=True: about one

A first model (no champion) is compared with a constant prediction taken from its training
rows' target and scored on the evaluation rows (`retrain.evaluation._baseline`); a constant
ranks nothing, so its AUC is 0.5 whichever rows it is taken from. The paired bootstrap of
the model's gain over the constant,
through `bootstrap_difference` and `decide` at the default `evaluation` settings. The model's
score is ``mu * y + noise`` on balanced labels (binormal, so its true AUC is
``Phi(mu / sqrt 2)``); a constant's AUC is 0.5. Per cell: the share of runs blessed, rejected
and undecided. At a true AUC of 0.50 (a model no better than the constant) a blessing is a
false blessing; above it a rejection is a false refusal.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from retrain.evaluation.bootstrap import bootstrap_difference
from retrain.evaluation.gates import GateInputs, decide
from retrain.settings.evaluation import EvaluationConfig

__all__ = ["section"]

_DEFAULTS = EvaluationConfig()
_AUCS = (0.50, 0.53, 0.55, 0.60, 0.70)
_SIZES = (100, 500, 1000, 2500)


def _cell(n: int, auc: float, runs: int) -> tuple[float, float, float]:
    """Shares blessed, rejected and undecided (with undecided first models held back)."""
    counts = {"blessed": 0, "rejected": 0, "undecided": 0}
    mu = math.sqrt(2.0) * float(norm.ppf(auc))
    y = (np.arange(n) % 2).astype(int)
    constant = np.full(n, 0.5)
    for seed in range(runs):
        rng = np.random.default_rng([n, round(auc * 1000), seed, 13])
        score = expit(mu * y + rng.normal(size=n))
        point, lower, upper = bootstrap_difference(
            "classification",
            "roc_auc",
            y,
            score,
            constant,
            [0, 1],
            n=_DEFAULTS.bootstrap_samples,
            confidence=_DEFAULTS.confidence,
            seed=seed,
        )
        r = decide(
            GateInputs(
                "roc_auc",
                True,
                0.5 + point,
                recent_rows=n,
                min_rows=_DEFAULTS.min_rows,
                baseline_recent=0.5,
                baseline_ci=(lower, upper),
            )
        )
        counts[r.outcome] += 1
    return counts["blessed"] / runs, counts["rejected"] / runs, counts["undecided"] / runs


def section(quick: bool = False) -> str:
    """The Markdown section: method, then one table."""
    runs = 40 if quick else 200
    lines = [
        "## First model: against a constant prediction",
        "",
        f"Simulated with a known truth through the gate code at the default settings "
        f"({_DEFAULTS.confidence:.0%} paired bootstrap, {_DEFAULTS.bootstrap_samples} resamples, "
        f"min_rows {_DEFAULTS.min_rows}): one model's binormal scores with a known true AUC on "
        f"balanced evaluation rows, its gain over a constant prediction (AUC 0.5) "
        f"bootstrapped; {runs} runs per cell. Each cell: blessed / rejected / undecided. At "
        "AUC 0.50 the blessed share is the false-blessing rate (nominal 2.5%); above it the "
        "rejected share is the false-refusal rate. Below min_rows a gain the interval shows "
        "still blesses and a model it shows worse than the constant is rejected; the rest is "
        "undecided: `evaluation.deploy_undecided_first_model` (on by default) then deploys it, "
        "recorded as not evaluated; off, it is held back.",
        "",
        "| evaluation rows | " + " | ".join(f"true AUC {a:.2f}" for a in _AUCS) + " |",
        "|---|" + "---|" * len(_AUCS),
    ]
    for n in _SIZES[:2] if quick else _SIZES:
        cells = [_cell(n, a, runs) for a in _AUCS]
        lines.append(
            f"| {n:,} | " + " | ".join(f"{b:.1%} / {r:.1%} / {u:.1%}" for b, r, u in cells) + " |"
        )
    return "\n".join(lines) + "\n"
