"""Is a label's arrival independent of its value? The check before provisional labels are used.

Provisional windows (`retrain.labels._provisional`) train and judge on the labels known so far
of recent windows. That is a fair sample of a window only when how late a label comes does not
depend on what it says. Where it does (chargebacks within days, legitimate transactions
confirmed only when the dispute window closes; quick sales at low prices) the early labels
over-represent one class or one end of the target, and both the challenger and the gate that
judges it see a biased window.

The run's own window, labelled to ``labels.min_coverage`` just before, shows how late each of
its labels came. `check_arrival` asks two things of it:

- **is there a dependence?** The delays are compared across the label's values: a
  Kruskal-Wallis test of the delays by class (classification), a Spearman rank correlation of
  delay and target (regression). Its p-value must be below `ALPHA` (0.01);
- **would it bias what the run uses?** Each provisional window's known labels are re-enacted on
  the own window: a row whose label came within the age its place in that window has at the
  run's time would be known. The share of each class among those rows is compared with its
  share among all the window's labels (regression: the mean, in standard deviations). The
  largest relative difference must exceed `CLASS_TOLERANCE` (20%; regression
  `MEAN_TOLERANCE`, 0.1 standard deviations), judged only on subsets of at least
  `MIN_EARLY_ROWS` rows.

Both: the arrival is not fair, and no provisional window is used (the report says why, with
the figures). A shown dependence too small to matter, or a large difference the test cannot
tell from chance, lets them through. Where labels arrive independently of their value, the
first condition holds at most `ALPHA` of the time, so provisional labels are refused on a fair
source at most that often; the measured rates (fair sources refused, biased ones caught, by
rows and strength) are in ``benchmarks/decisions/arrival.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.schema import as_category_strings
from retrain.data.windows import event_times, parse_window
from retrain.labels.join import elapsed, join_labels, without_coverage_floor

__all__ = [
    "ALPHA",
    "CLASS_TOLERANCE",
    "MEAN_TOLERANCE",
    "MIN_EARLY_ROWS",
    "ArrivalCheck",
    "ArrivalSample",
    "arrival_sample",
    "check_arrival",
    "start_ages",
]

#: The dependence test's level: a fair label source is refused at most this often.
ALPHA = 0.01
#: The smallest relative difference in a class's share among early labels that counts.
CLASS_TOLERANCE = 0.2
#: Regression: the smallest difference of the early labels' mean, in standard deviations.
MEAN_TOLERANCE = 0.1
#: An early subset with fewer rows is too small to measure a bias on.
MIN_EARLY_ROWS = 30


@dataclass(frozen=True)
class ArrivalSample:
    """A labelled window as the check reads it, one entry per labelled row with a dated label.

    `offsets`: the event's time minus the window's start; `delays`: the label's time minus the
    event's (both in seconds, or periods for period sources); `values`: the labels.
    """

    window: str
    offsets: np.ndarray
    delays: np.ndarray
    values: pd.Series

    def __post_init__(self) -> None:
        if not len(self.offsets) == len(self.delays) == len(self.values):
            raise ValueError("offsets, delays and values must be one entry per labelled row")


@dataclass(frozen=True)
class ArrivalCheck:
    """The verdict, and the figures behind it."""

    fair: bool
    window: str
    rows: int
    p_value: float | None  # the dependence test's; None: nothing to test
    effect: float  # the largest relative difference (regression: standard deviations)
    detail: str

    def report(self) -> dict[str, Any]:
        """JSON-able: for the label report."""
        return {
            "fair": self.fair,
            "reference_window": self.window,
            "rows": self.rows,
            "p_value": self.p_value,
            "effect": self.effect,
            "alpha": ALPHA,
            "detail": self.detail,
        }


def arrival_sample(
    cfg: Config, window_id: str, rows: pd.DataFrame, labels: pd.DataFrame, as_of: Any
) -> ArrivalSample:
    """The labelled window `window_id` (its committed `rows`: ids and event times) with each
    label's delay, from the labels known as of `as_of` (the join the label step made).

    Raises:
        ValidationError: the join refuses the labels (as it would have refused the window).
    """
    joined = join_labels(
        without_coverage_floor(cfg), rows, labels, as_of=as_of, events_ids_only=True
    )
    window = parse_window(cfg.data, window_id)
    times = event_times(joined.labelled[cfg.data.time_column], cfg.data.time_kind, errors="coerce")
    delays = joined.delays if joined.delays is not None else np.full(len(times), np.nan)
    values = joined.labelled[cfg.target].reset_index(drop=True)
    return ArrivalSample(
        window.id, elapsed(times.reset_index(drop=True), window.start), delays, values
    )


def start_ages(cfg: Config, window_ids: Sequence[str], as_of: Any) -> list[tuple[str, float]]:
    """Each window's id and how long before `as_of` it started (seconds, or periods)."""
    starts = [parse_window(cfg.data, w).start for w in window_ids]
    if not starts:
        return []
    ages = elapsed(pd.Series([as_of] * len(starts)), pd.Series(starts))
    return list(zip(window_ids, (float(a) for a in ages), strict=True))


def _dependence_p(task: str, delays: np.ndarray, values: pd.Series) -> float | None:
    """The p-value of the test of delay against value; None when there is nothing to test."""
    from scipy import stats  # here: scipy.stats costs ~0.4 s to import

    if len(delays) < 2 or np.ptp(delays) == 0:
        return None
    if task == "classification":
        keys = as_category_strings(values).to_numpy()
        groups = [delays[keys == k] for k in pd.unique(keys)]
        groups = [g for g in groups if len(g)]
        if len(groups) < 2:
            return None
        return float(stats.kruskal(*groups).pvalue)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if np.ptp(numbers) == 0:
        return None
    p = float(stats.spearmanr(delays, numbers).pvalue)
    return p if np.isfinite(p) else None


def _largest_bias(
    task: str, sample: ArrivalSample, ages: Sequence[tuple[str, float]]
) -> tuple[float, str]:
    """The largest difference an early subset shows, and where, in words."""
    best, words = 0.0, f"no early subset of at least {MIN_EARLY_ROWS} rows"
    if task == "classification":
        keys = as_category_strings(sample.values).to_numpy()
        shares = {k: float(np.mean(keys == k)) for k in pd.unique(keys)}
    else:
        numbers = pd.to_numeric(sample.values, errors="coerce").to_numpy(dtype=float)
        mean, sd = float(np.mean(numbers)), float(np.std(numbers))
    for name, age in ages:
        known = sample.delays <= age - sample.offsets
        n = int(known.sum())
        if n < MIN_EARLY_ROWS or n == len(known):
            continue
        if task == "classification":
            for k, share in shares.items():
                early = float(np.mean(keys[known] == k))
                effect = abs(early / share - 1.0)
                if effect > best:
                    best = effect
                    words = (
                        f"{k!r} is {early:.1%} of the {n} labels that would be known in window"
                        f" {name}'s place, {share:.1%} of all"
                    )
        elif sd > 0:
            early_mean = float(np.mean(numbers[known]))
            effect = abs(early_mean - mean) / sd
            if effect > best:
                best = effect
                words = (
                    f"the {n} labels that would be known in window {name}'s place average"
                    f" {early_mean:.4g}, all {mean:.4g} ({effect:.2f} standard deviations)"
                )
    return best, words


def check_arrival(
    task: str, sample: ArrivalSample, ages: Sequence[tuple[str, float]]
) -> ArrivalCheck:
    """Whether the labels known early are a fair sample, judged on `sample` (the run's own
    labelled window) for provisional windows at `ages`: each window's id and its start's age
    at the run's time (as-of minus start, in the sample's units)."""
    dated = np.isfinite(sample.delays) & np.isfinite(sample.offsets)
    kept = ArrivalSample(
        sample.window,
        sample.offsets[dated],
        sample.delays[dated],
        sample.values[dated].reset_index(drop=True),
    )
    rows = len(kept.delays)
    p = _dependence_p(task, kept.delays, kept.values)
    effect, where = _largest_bias(task, kept, ages) if rows else (0.0, "no dated labels")
    tolerance = CLASS_TOLERANCE if task == "classification" else MEAN_TOLERANCE
    shown = p is not None and p < ALPHA
    fair = not (shown and effect > tolerance)
    test = "no test (too few dated labels or delays)" if p is None else f"p = {p:.2g}"
    if fair:
        detail = (
            f"arrival looks fair on window {sample.window}'s {rows} dated labels"
            f" (delay against label: {test}; largest difference: {where})"
        )
    else:
        detail = (
            f"a label's arrival depends on its value on window {sample.window}'s {rows} dated"
            f" labels (delay against label: {test}): {where}; the labels known early are not a"
            " fair sample, so no provisional window is used (labels.check_arrival)"
        )
    return ArrivalCheck(fair, sample.window, rows, p, effect, detail)
