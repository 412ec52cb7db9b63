"""Are the labels known early a fair sample? The check before provisional labels are used.

Provisional windows (`retrain.labels._provisional`) train and judge on the labels known so far
of recent windows. That is a fair sample of a window only when how late a label comes (and
what it says when it first comes) does not depend on its final value. Where it does
(chargebacks within days, legitimate transactions confirmed only when the dispute window
closes; quick sales at low prices; a default label later corrected) the early labels
over-represent one class or one end of the target, and both the challenger and the gate that
judges it see a biased window.

**The reference.** A window of history whose labels have stopped arriving shows what the
early labels of a window look like against its final ones. The run's own window and the
windows before it (`SEARCH_WINDOWS`, or twice the provisional windows if more) are joined with
the labels known at the run's time. The newest *settled* one is the reference: labelled to at
least ``labels.min_coverage``, and either to `COMPLETE` (99%) or as far as the best labelled of
the windows searched (within `SETTLED`, 0.5 points) while gaining less than `SETTLED` of its
events' labels since the oldest provisional window started (some labels never arrive; those
events stay out of history, as out of the check). Without one, the best covered, whose
unlabelled events could hold any value. Labels that arrive in batches further apart than the
windows searched look settled between batches: the check cannot tell.

Each provisional window is then re-enacted on it: the labels of a window that started ``a``
before the run's time are what was known of the reference ``a`` after *its* start (the latest
label by then, undated labels counted as known, corrections included: the join's reading,
without its checks).

**The test.** For each provisional window, the share of a class among the re-enacted early
labels gets an exact (Clopper-Pearson) interval at level `ALPHA` divided by the number of such
comparisons (Bonferroni). Its share among the reference's labels is known exactly when the
reference is settled, else only up to its unlabelled events (between ``share * coverage`` and
``share * coverage + 1 - coverage``). A bias is shown when the interval lies wholly outside that
range widened by a factor `ODDS_TOLERANCE` (1.25) on the odds: a measure of the arrival that
does not depend on how common the class is. Two classes: the rarer alone (one share says the
other); more: each. Regression: the share of early labels above the reference's median, the
same way (a rank, so a skewed target is judged as a symmetric one). A bias shown for any
window: no provisional window is used, and the report says which class, its two shares and the
window. A check that cannot be made (no window with a label) uses none either.

So a fair source, and one whose bias is within the tolerance, is refused at most `ALPHA` of the
time whatever the number of rows; a bias beyond it is caught once the early labels hold enough
of the class to show it. No settled reference widens the range and costs power, not error.
The measured rates are in ``benchmarks/decisions/arrival.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.schema import as_category_strings
from retrain.data.windows import parse_window
from retrain.errors import RetrainError
from retrain.labels.join import known_labels

__all__ = [
    "ALPHA",
    "COMPLETE",
    "ODDS_TOLERANCE",
    "SEARCH_WINDOWS",
    "SETTLED",
    "ArrivalCheck",
    "Reference",
    "check_arrival",
    "find_reference",
    "search_depth",
]

#: The test's level over all its comparisons: a fair source is refused at most this often.
#: A refusal costs one run its provisional rows (it waits, as without them); using a biased
#: sample costs a biased model and gate: so the level leans to refusing.
ALPHA = 0.05
#: The smallest factor on the odds of a class among the early labels that counts as a bias.
ODDS_TOLERANCE = 1.25
#: A reference window labelled to this share is taken as complete.
COMPLETE = 0.99
#: ... or one labelled as far as the best of the windows searched, within this share, that
#: gained labels for less than this share of its events since the oldest provisional window
#: started: its labels have stopped arriving (some never do).
SETTLED = 0.005
#: How many windows before the run's own are searched (at least; twice the provisional ones).
SEARCH_WINDOWS = 8


def search_depth(provisional: int) -> int:
    """How many windows before the run's own the reference is searched among."""
    return max(SEARCH_WINDOWS, 2 * provisional)


@dataclass(frozen=True)
class Reference:
    """A labelled window as the check reads it.

    `values`: its labels known at the run's time (one per labelled event); `coverage`: the
    share of its events they cover; `early`: per provisional window, its id and the labels
    that would be known of the reference in that window's place (values as known then);
    `settled`: its labels have stopped arriving, so `values` are all it will have (labels that
    never arrive stay out of history, as out of the check); else its unlabelled events may
    hold any value.
    """

    window: str
    events: int
    coverage: float
    values: pd.Series
    early: list[tuple[str, pd.Series]] = field(default_factory=list)
    settled: bool = False

    @property
    def known(self) -> float:
        """The share of the events whose final label the reference shows (1 when settled)."""
        return 1.0 if self.settled else self.coverage


@dataclass(frozen=True)
class ArrivalCheck:
    """The verdict, and the figures behind it."""

    fair: bool
    window: str | None  # the reference window (None: the check could not be made)
    coverage: float | None
    effect: float  # the largest factor on the odds seen among the early labels
    detail: str

    def report(self) -> dict[str, Any]:
        """JSON-able: for the label report."""
        return {
            "fair": self.fair,
            "reference_window": self.window,
            "reference_coverage": self.coverage,
            "odds_factor": self.effect,
            "alpha": ALPHA,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class _Candidate:
    window: str
    events: pd.DataFrame
    labels: pd.DataFrame
    values: pd.Series
    coverage: float
    gained: float  # coverage gained since the oldest provisional window started


def find_reference(
    cfg: Config,
    candidates: Sequence[str],
    events_for: Callable[[str], pd.DataFrame],
    labels_for: Callable[[pd.DataFrame], pd.DataFrame],
    as_of: Any,
    provisional: Sequence[str],
) -> tuple[Reference | None, str]:
    """The reference among the `candidates` (window ids, newest first; `events_for` reads a
    window's events, `labels_for` the labels of some events), with the early labels of each
    `provisional` window re-enacted on it; or None and why there is none."""
    if not provisional:
        return None, "no provisional window to judge"
    starts = [parse_window(cfg.data, w).start for w in provisional]
    since = min(starts)
    found: list[_Candidate] = []
    problems: list[str] = []
    for window_id in candidates:
        try:
            events = events_for(window_id)
            if events.empty:
                continue
            labels = labels_for(events)
            values, coverage = known_labels(cfg, events, labels, as_of)
            _, before = known_labels(cfg, events, labels, since)
        except (RetrainError, KeyError, ValueError) as err:  # try the others
            problems.append(f"window {window_id}: {err}")
            continue
        if coverage > 0:
            found.append(_Candidate(window_id, events, labels, values, coverage, coverage - before))
    if not found:
        why = "no window before the provisional ones has a label"
        return None, why + (f" ({'; '.join(problems[:3])})" if problems else "")
    best = max(c.coverage for c in found)
    floor = max(cfg.labels.min_coverage, SETTLED)

    def settled(c: _Candidate) -> bool:
        if c.coverage < floor:
            return False
        return c.coverage >= COMPLETE or (c.gained < SETTLED and c.coverage >= best - SETTLED)

    chosen = next((c for c in found if settled(c)), None)
    if chosen is None:
        chosen = max(found, key=lambda c: c.coverage)
    start = parse_window(cfg.data, chosen.window).start
    early = []
    for other, other_start in zip(provisional, starts, strict=True):
        seen, _ = known_labels(cfg, chosen.events, chosen.labels, start + (as_of - other_start))
        early.append((other, seen))
    ref = Reference(
        chosen.window, len(chosen.events), chosen.coverage, chosen.values, early, settled(chosen)
    )
    return ref, ""


def _share_interval(count: int, n: int, level: float) -> tuple[float, float]:
    """Clopper-Pearson interval of a share at two-sided `level`."""
    from scipy.stats import beta  # here: scipy.stats costs ~0.4 s to import

    lo = 0.0 if count == 0 else float(beta.ppf(level / 2, count, n - count + 1))
    hi = 1.0 if count == n else float(beta.ppf(1 - level / 2, count + 1, n - count))
    return lo, hi


def _scaled(share: float, factor: float) -> float:
    """The share whose odds are `factor` times those of `share`."""
    if share <= 0.0 or share >= 1.0:
        return share
    odds = share / (1 - share) * factor
    return odds / (1 + odds)


def _odds_factor(seen: float, share: float) -> float:
    """How many times the odds of `share` those of `seen` are, as a factor of at least 1."""
    eps = 1e-9
    a = min(max(seen, eps), 1 - eps)
    b = min(max(share, eps), 1 - eps)
    ratio = (a / (1 - a)) / (b / (1 - b))
    return max(ratio, 1 / ratio)


def _judge(
    ref: Reference,
    final: np.ndarray,
    early: list[tuple[str, np.ndarray]],
    name: Callable[[Any], str],
) -> tuple[bool, float, str]:
    """The bias test on category codes `final` (the reference's labels) and each window's
    `early` ones; `name` words a category."""
    classes = sorted(pd.unique(final).tolist(), key=str)
    if len(classes) == 2:  # one share says the other; the rarer one reads best
        classes = [min(classes, key=lambda k: float(np.mean(final == k)))]
    judged = [(w, v) for w, v in early if len(v)]
    level, cov = ALPHA / max(1, len(judged) * len(classes)), ref.known
    biased, biggest, words = False, 1.0, ""
    for k in classes:
        share = float(np.mean(final == k))
        # The class's final share among all the window will have: exact when settled.
        low, high = share * cov, share * cov + (1 - cov)
        band = (_scaled(low, 1 / ODDS_TOLERANCE), _scaled(high, ODDS_TOLERANCE))
        for window, values in judged:
            n, count = len(values), int(np.sum(values == k))
            lo, hi = _share_interval(count, n, level)
            factor = _odds_factor(count / n, share)
            shown = lo > band[1] or hi < band[0]
            if (shown, factor) > (biased, biggest):
                biased, biggest = shown, factor
                words = (
                    f"{name(k)} is {count / n:.1%} of the {n} labels that would be known in"
                    f" window {window}'s place (interval {lo:.1%}-{hi:.1%}), {share:.1%} of"
                    f" window {ref.window}'s {len(final)} labels (odds {factor:.2f} times"
                    " apart)"
                )
    return biased, biggest, words


def check_arrival(task: str, ref: Reference | None, why: str = "") -> ArrivalCheck:
    """Whether the labels known early are shown to be an unfair sample, on `ref` (see the
    module's words); `why` says why there is no reference (then none is used either)."""
    if ref is None or not len(ref.values):
        reason = why or "the reference window has no label"
        return ArrivalCheck(
            False,
            None if ref is None else ref.window,
            None if ref is None else ref.coverage,
            1.0,
            f"not checked: {reason}; so no provisional window is used (labels.check_arrival)",
        )
    if task == "classification":
        final = as_category_strings(ref.values).to_numpy()
        early = [(w, as_category_strings(v).to_numpy()) for w, v in ref.early]
        biased, factor, where = _judge(ref, final, early, lambda k: repr(k))
    else:
        numbers = pd.to_numeric(ref.values, errors="coerce").to_numpy(dtype=float)
        median = float(np.nanmedian(numbers))
        final = numbers[np.isfinite(numbers)] > median
        early = []
        for w, v in ref.early:
            seen = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
            early.append((w, seen[np.isfinite(seen)] > median))
        biased, factor, where = _judge(
            ref,
            final,
            early,
            lambda k: f"above the median ({median:.4g})" if k else "at or below the median",
        )
    state = "settled" if ref.settled else "still arriving: the rest could hold any value"
    on = (
        f"window {ref.window} ({ref.events} events, {ref.coverage:.1%} labelled as of the"
        f" run's time, {state})"
    )
    if biased:
        detail = (
            f"the labels known early are not a fair sample on {on}: {where}; so no provisional"
            " window is used (labels.check_arrival)"
        )
    else:
        largest = f"; the largest difference: {where}" if where else ""
        detail = f"no bias beyond the tolerance shown on {on}{largest}"
    return ArrivalCheck(not biased, ref.window, ref.coverage, float(factor), detail)
