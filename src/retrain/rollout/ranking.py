"""Ranking checks for rare events: the canary's fall in average precision or recall at P%.

``average_precision_drop`` and ``recall_at_precision_<P>_drop`` judge a binary classifier on
how it ranks the positive class (``labels.positive_class``, else ``classes[1]``; e.g. frauds),
where accuracy says nothing at a 1% rate. Neither metric is a sum over rows, so unlike accuracy
they cannot be pooled as totals: a paired provider (replay: both models score the same labelled
rows) reports each analysis' rows as *cells*, counts of rows by (champion score bin, canary
score bin, label), under flat keys ``cells.<champion bin>.<canary bin>.<0|1>``. Cells add up
over a step's analyses (`retrain.rollout.pool`), and a cell holds rows that are identical once
binned, so resampling cells by their counts is resampling the pooled rows.

Scores are P(positive) binned every 0.1 on the logit scale (-12 to 12): a bin is one
threshold of the precision-recall curve, its rows are ties (grouped as scikit-learn groups
equal scores), and both models are binned alike. The value is champion minus canary; its
uncertainty is the standard deviation of that difference over a *stratified paired
bootstrap* of the pooled rows (positives and negatives each resampled within themselves, so
every resample keeps the pool's positives; both models on the same resampled rows). The check
then fails, like the other quality checks, only when the drop exceeds ``max`` and its lower
bound (drop minus z x that deviation) is above 0. Below ``min_labelled`` rows or
``min_positives`` positives it is not evaluated (an all-negative sample has no ranking).

A provider that only counts (Prometheus) cannot give cells: the configuration refuses these
checks with ``provider: prometheus`` (`retrain.settings.rollout`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrain.evaluation.metrics import rank_metric_from_bins
from retrain.rollout.checks import PATTERN_CHECKS, CheckFn, Measurement, register_check
from retrain.settings.rollout import RECALL_AT_PRECISION_DROP

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CELL_PREFIX",
    "RankEvidence",
    "is_cell",
    "rank_evidence",
    "score_bins",
    "score_cells",
]

CELL_PREFIX = "cells."
#: Bin edges on the logit scale; scores beyond +-12 (p below 6e-6) share the end bins.
_EDGES = np.arange(-12.0, 12.0 + 1e-9, 0.1)
N_BINS = len(_EDGES) + 1
#: Resamples of the stratified paired bootstrap behind each ranking check's bound.
BOOTSTRAP_RESAMPLES = 200

Ints = npt.NDArray[np.int64]


def is_cell(key: str) -> bool:
    """Whether a metric key is a paired score cell (additive over analyses)."""
    return key.startswith(CELL_PREFIX)


def score_bins(scores: npt.ArrayLike) -> Ints:
    """The bin of each P(positive), 0 (lowest) to `N_BINS` - 1 (highest)."""
    p = np.clip(np.asarray(scores, dtype=float), 1e-12, 1.0 - 1e-12)
    logit = np.log(p) - np.log1p(-p)
    return np.asarray(np.searchsorted(_EDGES, logit, side="right"), dtype=np.int64)


def score_cells(
    champion_scores: npt.ArrayLike, canary_scores: npt.ArrayLike, positive: npt.ArrayLike
) -> dict[str, float]:
    """Counts of paired rows by (champion bin, canary bin, label) as flat ``cells.`` keys."""
    a, b = score_bins(champion_scores), score_bins(canary_scores)
    y = np.asarray(positive, dtype=bool).astype(np.int64)
    if not len(a) == len(b) == len(y):
        raise ValueError("champion scores, canary scores and labels must be paired row by row")
    code = (a * N_BINS + b) * 2 + y
    values, counts = np.unique(code, return_counts=True)
    out: dict[str, float] = {}
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        cell, label = divmod(value, 2)
        champion, canary = divmod(cell, N_BINS)
        out[f"{CELL_PREFIX}{champion}.{canary}.{label}"] = float(count)
    return out


@dataclass(frozen=True)
class RankEvidence:
    """A ranking metric of both models on the pooled rows, and the bootstrap deviation of
    champion minus canary (None when no resample defines it)."""

    champion: float
    canary: float
    diff_std: float | None
    labelled: float
    positives: float


def _parse(metrics: Mapping[str, float | None]) -> tuple[Ints, Ints, Ints, Ints]:
    rows = []
    for key, value in metrics.items():
        if is_cell(key) and value:
            champion, canary, label = key[len(CELL_PREFIX) :].split(".")
            rows.append((int(champion), int(canary), int(label), round(value)))
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def _by_bin(weights: np.ndarray, bins: Ints, mask: np.ndarray) -> np.ndarray:
    """Weight of the `mask` cells per score bin, highest bin first (resamples x bins)."""
    out = np.zeros((weights.shape[0], N_BINS))
    cells, where = weights[:, mask], N_BINS - 1 - bins[mask]
    if not len(where):
        return out
    order = np.argsort(where, kind="stable")
    where = where[order]
    starts = np.r_[0, np.flatnonzero(np.diff(where)) + 1]
    out[:, where[starts]] = np.add.reduceat(cells[:, order], starts, axis=1)
    return out


def rank_evidence(metric_name: str, metrics: Mapping[str, float | None]) -> RankEvidence | None:
    """`metric_name` (average_precision or recall_at_precision_<P>) for both models from the
    cells in `metrics`, with a stratified paired bootstrap; None without cells."""
    champion_bin, canary_bin, label, count = _parse(metrics)
    if not count.sum():
        return None
    positive = label == 1
    n_pos, n_neg = int(count[positive].sum()), int(count[~positive].sum())
    # The same pooled rows give the same bound on every re-evaluation (a re-run converges).
    rng = np.random.default_rng([n_pos, n_neg, len(count), int(champion_bin.sum())])
    weights = np.zeros((BOOTSTRAP_RESAMPLES + 1, len(count)))
    weights[0] = count
    for mask, total in ((positive, n_pos), (~positive, n_neg)):
        if total:
            drawn = rng.multinomial(total, count[mask] / total, size=BOOTSTRAP_RESAMPLES)
            weights[1:, mask] = drawn
    values = {}
    for role, bins in (("champion", champion_bin), ("canary", canary_bin)):
        values[role] = rank_metric_from_bins(
            metric_name,
            _by_bin(weights, bins, positive),
            _by_bin(weights, bins, ~positive),
        )
    diff = values["champion"][1:] - values["canary"][1:]
    diff = diff[np.isfinite(diff)]
    return RankEvidence(
        champion=float(values["champion"][0]),
        canary=float(values["canary"][0]),
        diff_std=float(np.std(diff, ddof=1)) if len(diff) > 1 else None,
        labelled=float(n_pos + n_neg),
        positives=float(n_pos),
    )


def _rank_check(check_name: str, metric_name: str) -> CheckFn:
    def check(metrics: Mapping[str, float | None], z: float) -> Measurement:
        ev = rank_evidence(metric_name, metrics)
        if ev is None:
            return Measurement(
                None,
                f"no paired scores for {metric_name} (a binary classifier replayed on "
                "labelled rows gives them)",
                0.0,
                0.0,
                0.0,
            )
        drop = ev.champion - ev.canary
        return Measurement(
            None if np.isnan(drop) else drop,
            f"{metric_name} canary {ev.canary:.3f} vs champion {ev.champion:.3f} "
            f"(drop {drop:+.3f}, {ev.positives:.0f} positives)",
            None if ev.diff_std is None else z * ev.diff_std,
            ev.labelled,
            ev.positives,
        )

    check.__name__ = check_name
    return check


register_check("average_precision_drop")(_rank_check("average_precision_drop", "average_precision"))


def _recall_at_precision_check(name: str) -> CheckFn:
    level = RECALL_AT_PRECISION_DROP.fullmatch(name)
    assert level is not None
    return _rank_check(name, f"recall_at_precision_{level.group(1)}")


PATTERN_CHECKS.append((RECALL_AT_PRECISION_DROP, _recall_at_precision_check))
