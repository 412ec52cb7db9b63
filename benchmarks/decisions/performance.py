"""How often the labelled performance signal is right: simulations with a known truth.

    from benchmarks.decisions.performance import section
    print(section())          # several minutes on one core; section(quick=True): under one

The drift engine's labelled signal (and ``triggers.performance_drop``) fires when the
champion's primary metric on the labelled rows of a window is more than
``drift.max_performance_drop`` (0.05) below the metric its profile recorded at training, and
the drop's bootstrap interval lies above zero. Here a model's score is ``mu * y + noise``
(binormal, so its true ROC AUC is ``Phi(mu / sqrt 2)``, 30% positives). At training its AUC
is measured on `m` evaluation rows, as the profile records it, with its own sampling error
(`metric_sd`, which widens the drop's interval); a window then brings `n` labelled rows
whose true AUC is unchanged (a firing is a false alarm) or lower by 0.05, 0.10 or 0.15 (a
silence at 0.10 or more is a miss; 0.05 is the threshold itself). Everything goes through the
project's `performance_against_profile` and `performance_fired` with the default `drift`
settings.

For rmse and mae the threshold is a share of the reference (5% worse by default), so a
second table does the same for a regression: residuals of scale 1 (any unit decides the same),
normal or Student-t with 3 degrees of freedom (the heavy tails of prices and durations; the
squared errors then have no finite variance, so no interval for the RMSE can be sure of
itself), and a window whose residuals are unchanged or 5%, 10% or 20% larger.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from retrain.drift import (
    ReferenceProfile,
    metric_sd,
    performance_against_profile,
    performance_fired,
)
from retrain.evaluation.metrics import compute_metrics
from retrain.settings.drift import DriftConfig

__all__ = ["section"]

_DEFAULTS = DriftConfig()
_AUC = 0.80
_POSITIVE_SHARE = 0.3
_DROPS = (0.0, 0.05, 0.10, 0.15)
_REFERENCE_ROWS = (300, 2000)
_SIZES = (100, 300, 1000, 3000, 10_000)


def _scores(rng: np.random.Generator, n: int, auc: float) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < _POSITIVE_SHARE).astype(np.int64)
    mu = np.sqrt(2.0) * norm.ppf(auc)
    return y, mu * y + rng.standard_normal(n)


def _fired_share(rng: np.random.Generator, m: int, n: int, drop: float, trials: int) -> float:
    fired = 0
    for _ in range(trials):
        y_ref, s_ref = _scores(rng, m, _AUC)
        # What `build_profile` records from the model's evaluation rows.
        profile = ReferenceProfile(
            task="classification",
            rows=m,
            features={},
            bins=0,
            sample_size=0,
            classes=[0, 1],
            metric="roc_auc",
            metrics=compute_metrics("classification", y_ref, s_ref, [0, 1], ("roc_auc",)),
            metric_sd=metric_sd(
                "classification",
                "roc_auc",
                y_ref,
                s_ref,
                [0, 1],
                n_boot=_DEFAULTS.bootstrap_samples,
                seed=int(rng.integers(2**31)),
            ),
        )
        y, s = _scores(rng, n, _AUC - drop)
        check = performance_against_profile(
            profile, y, s, primary="roc_auc", dc=_DEFAULTS, seed=int(rng.integers(2**31))
        )
        fired += int(check is not None and performance_fired(check, _DEFAULTS))
    return fired / trials


_RISES = (0.0, 0.05, 0.10, 0.20)
#: (residuals, degrees of freedom (None: normal), metric)
_REGRESSION_CELLS = (
    ("normal", None, "rmse"),
    ("Student-t (3 df)", 3.0, "rmse"),
    ("Student-t (3 df)", 3.0, "mae"),
)


def _residuals(rng: np.random.Generator, n: int, rmse: float, df: float | None) -> np.ndarray:
    if df is None:
        return rmse * rng.standard_normal(n)
    return rmse * rng.standard_t(df, n) / np.sqrt(df / (df - 2.0))  # unit variance, scaled


def _regression_fired_share(
    rng: np.random.Generator, cell: tuple[int, int, float, float | None, str], trials: int
) -> float:
    m, n, rise, df, metric = cell
    fired = 0
    for _ in range(trials):
        y_ref = rng.standard_normal(m)
        p_ref = y_ref + _residuals(rng, m, 1.0, df)
        profile = ReferenceProfile(
            task="regression",
            rows=m,
            features={},
            bins=0,
            sample_size=0,
            classes=None,
            metric=metric,
            metrics=compute_metrics("regression", y_ref, p_ref, None, (metric,)),
            metric_sd=metric_sd(
                "regression",
                metric,
                y_ref,
                p_ref,
                None,
                n_boot=_DEFAULTS.bootstrap_samples,
                seed=int(rng.integers(2**31)),
            ),
        )
        y = rng.standard_normal(n)
        p = y + _residuals(rng, n, 1.0 + rise, df)
        check = performance_against_profile(
            profile, y, p, primary=metric, dc=_DEFAULTS, seed=int(rng.integers(2**31))
        )
        fired += int(check is not None and performance_fired(check, _DEFAULTS))
    return fired / trials


def _regression_table(rng: np.random.Generator, trials: int) -> list[str]:
    lines = [
        "",
        f"Regression ({trials} windows per cell):",
        "",
        "| residuals | metric | reference rows (m) | labelled rows (n) | no change: fired "
        "(false alarm) | 5% worse: fired | 10% worse: missed | 20% worse: missed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for tail, df, metric in _REGRESSION_CELLS:
        for m in _REFERENCE_ROWS:
            for n in _SIZES[1:-1]:
                shares = [
                    _regression_fired_share(rng, (m, n, r, df, metric), trials) for r in _RISES
                ]
                lines.append(
                    f"| {tail} | {metric} | {m} | {n} | {shares[0]:.1%} | {shares[1]:.1%} | "
                    f"{1 - shares[2]:.1%} | {1 - shares[3]:.1%} |"
                )
    return lines


def section(quick: bool = False) -> str:
    """The markdown section: the share of windows in which the signal fires, per cell."""
    trials = 40 if quick else 200
    rng = np.random.default_rng(20261202)
    lines = [
        "## Labelled performance signal: false alarms and misses",
        "",
        *(part.strip().replace("\n", " ") + "\n" for part in (__doc__ or "").split("\n\n")[2:]),
        "",
        f"{trials} windows per cell; champion AUC {_AUC} at training; seeded, "
        "`python benchmarks/bench_decisions.py --only performance` reproduces it.",
        "",
        "| reference rows (m) | labelled rows (n) | no change: fired (false alarm) | "
        "0.05 lower: fired | 0.10 lower: missed | 0.15 lower: missed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m in _REFERENCE_ROWS:
        for n in _SIZES:
            shares = [_fired_share(rng, m, n, d, trials) for d in _DROPS]
            lines.append(
                f"| {m} | {n} | {shares[0]:.1%} | {shares[1]:.1%} | "
                f"{1 - shares[2]:.1%} | {1 - shares[3]:.1%} |"
            )
    lines += _regression_table(rng, trials)
    return "\n".join(lines) + "\n"
