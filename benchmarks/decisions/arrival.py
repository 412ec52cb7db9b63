"""How often the arrival check is right: simulations with a known truth.

    from benchmarks.decisions.arrival import section
    print(section())          # a few minutes on one core; section(quick=True): seconds

Provisional labels (``labels.provisional_windows``) are used only when a reference window of
history shows no bias of the labels known early beyond the tolerance (``labels.check_arrival``,
`retrain.labels._arrival`). Here a reference window of `n` labelled events, spread evenly over
the window, is judged for six provisional windows that started one to six windows before the
run's time, every label arriving within six windows of its event: the early labels of each are
re-enacted on the reference (a row whose label came within the age its place in that window
has), and the project's `check_arrival` judges them on each draw.

Classification (rows positive at rate `r`): on a **fair** source every label's delay is uniform
over the six windows, whatever its class (a refusal is a false alarm: provisional labels lost
for nothing). On a **biased** one a positive's delay is that times `f`, so the positives come
sooner; the column heads give how much, measured on a million draws: how many times as likely
a positive is as a negative to be known in a window that started two windows before the run's
time, which is also the factor on the odds of the positives among those early labels (at any
`r`). The check counts a factor beyond 1.25 (``ODDS_TOLERANCE``): at f 0.9 and 0.85 (1.11 and
1.18) the bias is within it, and a refusal there is a false alarm too; beyond it, a source
that is not refused is a miss.

The reference is settled in the first table (its labels have all arrived: the newest settled
window is what the check looks for). The second has none: the best covered window holds 83%
of its labels and more are still arriving, so a class's true share is known only to within
the unlabelled 17%, and the check must allow for it.

Regression: the delay is six windows times the normal quantile of ``rho * z + sqrt(1 - rho^2)
* e`` for the standardised target ``z`` and independent noise ``e``: uniform over the six
windows whatever ``rho``, fair at ``rho`` 0, and the higher the target the later its label for
``rho`` above 0. The check judges the share of early labels above the reference's median, a
rank: any target with the same ranks (a lognormal price, say) gets the same verdicts. The head
gives the factor on the odds of "above the median" among the labels known in a window that
started two windows before the run's time (a million draws).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from retrain.labels import Reference, check_arrival

__all__ = ["section"]

_SPAN = 6.0  # every label arrives within six windows of its event
_STARTS = [7.0 - k for k in range(1, 7)]  # six provisional windows' start ages, as of 7
_SIZES = (300, 1000, 3000, 10000)
_RATES = (0.01, 0.05, 0.3)
_FACTORS = (0.9, 0.85, 0.7, 0.5, 0.2)
_RHOS = (0.2, 0.3, 0.4)
#: The age of an incomplete reference's start: 83% of its labels arrived.
_CENSORED_AGE = 5.5


def _refused(
    task: str, delays: np.ndarray, values: np.ndarray, offsets: np.ndarray, age: float
) -> bool:
    """Judge a reference of these events, labelled as of `age` after its start (settled when
    every label has arrived)."""
    arrived = delays <= age - offsets
    early = [
        (str(k), pd.Series(values[delays <= start - offsets])) for k, start in enumerate(_STARTS)
    ]
    settled = bool(arrived.all())
    ref = Reference(
        "0", len(values), float(arrived.mean()), pd.Series(values[arrived]), early, settled
    )
    return not check_arrival(task, ref).fair


def _classification(
    rng: np.random.Generator, n: int, rate: float, factor: float, age: float = 7.0
) -> bool:
    y = (rng.uniform(size=n) < rate).astype(int)
    delays = rng.uniform(0, _SPAN, n) * np.where(y == 1, factor, 1.0)
    return _refused("classification", delays, y, rng.uniform(0, 1, n), age)


def _regression(rng: np.random.Generator, n: int, rho: float) -> bool:
    z = rng.normal(size=n)
    u = norm.cdf(rho * z + np.sqrt(1 - rho**2) * rng.normal(size=n))
    return _refused("regression", _SPAN * u, 100.0 + 20.0 * z, rng.uniform(0, 1, n), 7.0)


def _odds_of_known(factor: float, rng: np.random.Generator, n: int = 1_000_000) -> float:
    """How many times as likely a positive is as a negative to be known at start age 2."""
    y = rng.uniform(size=n) < 0.5
    delays = rng.uniform(0, _SPAN, n) * np.where(y, factor, 1.0)
    known = delays <= 2.0 - rng.uniform(0, 1, n)
    return float(known[y].mean() / known[~y].mean())


def _early_odds(rho: float, rng: np.random.Generator, n: int = 1_000_000) -> float:
    """The factor on the odds of "above the median" among the targets known at start age 2."""
    z = rng.normal(size=n)
    u = norm.cdf(rho * z + np.sqrt(1 - rho**2) * rng.normal(size=n))
    known = _SPAN * u <= 2.0 - rng.uniform(0, 1, n)
    share = float(np.mean(z[known] > np.median(z)))
    odds = share / (1 - share)
    return max(odds, 1 / odds)


def _cells(rng: np.random.Generator, n: int, rate: float, trials: int, age: float) -> str:
    fair = np.mean([_classification(rng, n, rate, 1.0, age) for _ in range(trials)])
    cells = [f"{fair:.1%}"]
    for f in _FACTORS:
        refused = np.mean([_classification(rng, n, rate, f, age) for _ in range(trials)])
        cells.append(f"{refused if f > 0.8 else 1 - refused:.1%}")
    return f"| {n} | {rate:g} | " + " | ".join(cells) + " |"


def section(quick: bool = False) -> str:
    """The markdown section: the share of draws the check refuses (or misses), per cell."""
    trials = 40 if quick else 300
    rng = np.random.default_rng(20261205)
    odds_of = [_odds_of_known(f, rng) for f in _FACTORS]
    head = (
        "| labelled rows (n) | positive rate (r) | fair: refused (false alarm) | "
        + " | ".join(
            f"f {f:g} ({o:.2f}x): {'refused' if f > 0.8 else 'missed'}"
            for f, o in zip(_FACTORS, odds_of, strict=True)
        )
        + " |"
    )
    rule = "|---:|---:|---:|---:|---:|---:|---:|---:|"
    lines = [
        "## Arrival check (provisional labels): fair sources refused, biased ones missed",
        "",
        *(part.strip().replace("\n", " ") + "\n" for part in (__doc__ or "").split("\n\n")[2:]),
        "",
        f"{trials} draws per cell; seeded, `python benchmarks/bench_decisions.py --only "
        "arrival` reproduces it. Under a bias within the tolerance the figure is the share "
        "refused (a false alarm); beyond it, the share missed.",
        "",
        "### A settled reference",
        "",
        head,
        rule,
        *(_cells(rng, n, r, trials, 7.0) for n in _SIZES for r in _RATES),
        "",
        f"### No settled reference: {_CENSORED_AGE / 6 - 1 / 12:.0%} of its labels arrived,"
        " more to come",
        "",
        head,
        rule,
        *(_cells(rng, n, r, trials, _CENSORED_AGE) for n in (1000, 10000) for r in _RATES),
        "",
        "### Regression, a settled reference",
        "",
        "| labelled rows (n) | fair (rho 0): refused (false alarm) | "
        + " | ".join(f"rho {r:g} ({_early_odds(r, rng):.2f}x): missed" for r in _RHOS)
        + " |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in _SIZES:
        fair = np.mean([_regression(rng, n, 0.0) for _ in range(trials)])
        missed = [1 - np.mean([_regression(rng, n, rho) for _ in range(trials)]) for rho in _RHOS]
        lines.append(f"| {n} | {fair:.1%} | " + " | ".join(f"{m:.1%}" for m in missed) + " |")
    return "\n".join(lines) + "\n"
