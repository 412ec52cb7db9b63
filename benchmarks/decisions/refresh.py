"""What the refresh (`evaluation.refresh_after`, opt-in) lets through, with a known truth.

    from decisions.refresh import section   # with benchmarks/ on sys.path
    print(section())          # about ten minutes on one core; section(quick=True): a minute

The recent-gates cells of `benchmarks.decisions.gates` (binormal scores with a known AUC,
champion AUC 0.80, the two models' noise correlated at 0.8, balanced classes, the default
paired bootstrap), with the challenger trained on data one window newer than the champion's
and `refresh_after: 1`: a challenger not shown better is deployed when it is no worse on its
point estimate and its interval does not show it worse. Per cell, the share of runs deployed
(blessed on a shown gain or refreshed); negative gains are a truly worse challenger, so their
share is the rate at which the refresh lets one through.
"""

from __future__ import annotations

from decisions.gates import _recent_cell, _table

__all__ = ["section"]

_GAINS = (-0.05, -0.02, -0.01, 0.0, 0.01, 0.02)
_SIZES = (100, 250, 500, 1000)


def section(quick: bool = False) -> str:
    runs = 40 if quick else 400
    sizes = _SIZES[1::2] if quick else _SIZES
    lines = [
        "## The refresh (opt-in): share deployed when the challenger is trained on newer data",
        "",
        "The recent-gates cells above, the challenger trained on data one window newer than the "
        "champion's, with `evaluation.refresh_after: 1` (off by default): a challenger no worse "
        "on its point estimate, not shown worse by its interval, is deployed without a shown "
        "gain. Negative gains are a truly worse challenger: the share deployed is the rate at "
        f"which a refresh lets it through; gain 0 is an equal one. {runs} runs per cell, ± the "
        "95% binomial interval.",
        "",
    ]
    rows = []
    for n in sizes:
        cells = [_recent_cell(n, g, runs, age=1.0, refresh_after=1) for g in _GAINS]
        rows.append([str(n), *(c.rate_text() for c in cells)])
    lines += _table(["evaluation rows", *(f"gain {g:+.2f}" for g in _GAINS)], rows)
    return "\n".join(lines) + "\n"
