"""Are the labels known early a fair sample? The check before provisional labels are used.

Provisional windows (`retrain.labels._provisional`) train and judge on the labels known so far
of recent windows. That is a fair sample of a window only when how late a label comes (and
what it says when it first comes) does not depend on its final value. Where it does
(chargebacks within days, legitimate transactions confirmed only when the dispute window
closes; quick sales at low prices; a default label later corrected) the early labels
over-represent one class or one end of the target, and both the challenger and the gate that
judges it see a biased window.

**The reference.** A window of history whose labels have stopped arriving shows what the
early labels of a window look like against its final ones. The run's own window and up to
`SEARCH_WINDOWS` windows before it are joined with the labels known at the run's time, newest
first; the first that is *settled* is the reference: labelled to `COMPLETE` (99%), or gaining
labels for less than `SETTLED` (0.5%) of its events since the oldest provisional window
started (some labels never arrive; those events stay out of history, as out of the check).
Without one, the best covered. Each provisional window is then re-enacted on it: the labels of
a window that started ``a`` before the run's time are what was known of the reference ``a``
after *its* start, i.e. the reference joined as of its start plus ``a``, by the same join
(latest label by then, undated labels counted as known, corrections included).

**The test.** For each provisional window and each class, the share of the class among the
re-enacted early labels gets an exact (Clopper-Pearson) interval at level `ALPHA` divided by the
number of such comparisons (Bonferroni), the rarer class alone of two; the reference's final
share is its labelled share when it is settled, else known only up to its unlabelled events
(between ``share * coverage`` and ``share * coverage + 1 - coverage``). A bias is shown
when the early share's interval lies wholly outside that range widened by `CLASS_TOLERANCE`
(20%, relative). For regression the early labels' mean gets a t interval, the final mean is
bounded by the target's observed range over the unlabelled share, and the band is
`MEAN_TOLERANCE` (0.1) standard deviations. A bias shown for any window: no provisional window
is used, and the report says which class, its two shares and the window.

So a fair source, and one whose bias is within the tolerance, is refused at most `ALPHA` of the
time whatever the number of rows; a bias beyond it is caught once the early labels hold enough
of the class to show it. No settled reference (labels still arriving everywhere) widens the
final share's range and costs power, not error. The measured rates are in
``benchmarks/decisions/arrival.py``.
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
from retrain.labels.join import join_labels, without_coverage_floor

__all__ = [
    "ALPHA",
    "CLASS_TOLERANCE",
    "COMPLETE",
    "MEAN_TOLERANCE",
    "SEARCH_WINDOWS",
    "SETTLED",
    "ArrivalCheck",
    "Reference",
    "check_arrival",
    "find_reference",
]

#: The test's level over all its comparisons: a fair source is refused at most this often.
#: A refusal costs one run its provisional rows (it waits, as without them); using a biased
#: sample costs a biased model and gate: so the level leans to refusing.
ALPHA = 0.05
#: The smallest relative difference in a class's share among early labels that counts.
CLASS_TOLERANCE = 0.2
#: Regression: the smallest difference of the early labels' mean, in standard deviations.
MEAN_TOLERANCE = 0.1
#: A reference window labelled to this share is taken as complete.
COMPLETE = 0.99
#: ... or one that gained labels for less than this share of its events since the oldest
#: provisional window started: its labels have stopped arriving (some never do).
SETTLED = 0.005
#: How many windows before the run's own are tried as the reference.
SEARCH_WINDOWS = 8


@dataclass(frozen=True)
class Reference:
    """A labelled window as the check reads it.

    `values`: its labels known at the run's time (one per labelled event); `coverage`: the
    share of its events they cover; `early`: per provisional window, its id and the labels
    that would be known of the reference in that window's place (values as known then).
    Labels that never arrive are left out of history as they are here, so against a settled
    reference the early labels are compared with every label the window will have.
    """

    window: str
    events: int
    coverage: float
    values: pd.Series
    early: list[tuple[str, pd.Series]] = field(default_factory=list)
    #: Its labels have stopped arriving: the labelled events are all it will have, and
    #: `values` are final (else the events still unlabelled may hold any value).
    settled: bool = False

    @property
    def known(self) -> float:
        """The share of the events whose final label the reference shows (1 when settled)."""
        return 1.0 if self.settled else self.coverage


@dataclass(frozen=True)
class ArrivalCheck:
    """The verdict, and the figures behind it."""

    fair: bool
    window: str | None  # the reference window (None: none could be joined)
    coverage: float | None
    effect: float  # the largest relative difference seen (regression: standard deviations)
    detail: str

    def report(self) -> dict[str, Any]:
        """JSON-able: for the label report."""
        return {
            "fair": self.fair,
            "reference_window": self.window,
            "reference_coverage": self.coverage,
            "effect": self.effect,
            "alpha": ALPHA,
            "detail": self.detail,
        }


def find_reference(
    cfg: Config,
    candidates: Sequence[str],
    events_for: Callable[[str], pd.DataFrame],
    labels_for: Callable[[pd.DataFrame], pd.DataFrame],
    as_of: Any,
    provisional: Sequence[str],
) -> Reference | None:
    """The reference among the `candidates` (window ids, newest first; `events_for` reads a
    window's events, `labels_for` the labels of some events): the first settled as of `as_of`
    (labelled to `COMPLETE`, or gaining less than `SETTLED` of its events' labels since the
    oldest `provisional` window started), else the best covered; with the early labels of
    each `provisional` window re-enacted on it. None if no candidate's labels can be joined."""
    anyhow = without_coverage_floor(cfg)
    starts = [parse_window(cfg.data, w).start for w in provisional]
    since = min(starts) if starts else as_of
    best: tuple[str, pd.DataFrame, pd.DataFrame, float, pd.Series, bool] | None = None
    for window_id in candidates:
        try:
            events = events_for(window_id)
            if events.empty:
                continue
            labels = labels_for(events)
            joined = join_labels(anyhow, events, labels, as_of=as_of, events_ids_only=True)
            earlier = join_labels(anyhow, events, labels, as_of=since, events_ids_only=True)
        except RetrainError:  # not readable, nothing to join: try an older one
            continue
        coverage = joined.coverage
        settled = coverage >= COMPLETE or coverage - earlier.coverage < SETTLED
        found = (window_id, events, labels, coverage, joined.labelled[cfg.target], settled)
        if best is None or (settled, coverage) > (best[5], best[3]):
            best = found
        if settled:
            break
    if best is None:
        return None
    window_id, events, labels, coverage, values, settled = best
    start = parse_window(cfg.data, window_id).start
    early = []
    for other, other_start in zip(provisional, starts, strict=True):
        cut = start + (as_of - other_start)
        joined = join_labels(anyhow, events, labels, as_of=cut, events_ids_only=True)
        early.append((other, joined.labelled[cfg.target].reset_index(drop=True)))
    values = values.reset_index(drop=True)
    return Reference(window_id, len(events), coverage, values, early, settled=settled)


def _share_interval(count: int, n: int, level: float) -> tuple[float, float]:
    """Clopper-Pearson interval of a share at two-sided `level`."""
    from scipy.stats import beta  # here: scipy.stats costs ~0.4 s to import

    lo = 0.0 if count == 0 else float(beta.ppf(level / 2, count, n - count + 1))
    hi = 1.0 if count == n else float(beta.ppf(1 - level / 2, count + 1, n - count))
    return lo, hi


def _classification(ref: Reference) -> tuple[bool, float, str]:
    final = as_category_strings(ref.values).to_numpy()
    early = [(w, as_category_strings(v).to_numpy()) for w, v in ref.early if len(v)]
    classes = sorted({*pd.unique(final), *(k for _, e in early for k in pd.unique(e))}, key=str)
    if len(classes) == 2:  # one share says the other; the rarer one's band is the narrower
        classes = [min(classes, key=lambda k: float(np.mean(final == k)))]
    comparisons = max(1, len(early) * len(classes))
    level, cov = ALPHA / comparisons, ref.known
    biased, biggest, words = False, 0.0, ""
    for window, values in early:
        n = len(values)
        for k in classes:
            share = float(np.mean(final == k)) if len(final) else 0.0
            low, high = share * cov, share * cov + (1 - cov)  # the window's true share
            count = int(np.sum(values == k))
            lo, hi = _share_interval(count, n, level)
            seen = count / n
            # A class the final labels lack: as if half a label of it (a finite figure).
            effect = abs(seen / max(share, 0.5 / max(len(final), 1)) - 1)
            what = (
                f"{k!r} is {seen:.1%} of the {n} labels that would be known in window"
                f" {window}'s place (interval {lo:.1%}-{hi:.1%}), {share:.1%} of window"
                f" {ref.window}'s {len(final)} labels"
            )
            shown = lo > high * (1 + CLASS_TOLERANCE) or hi < low * (1 - CLASS_TOLERANCE)
            # The largest difference shown, else the largest seen, is the one reported.
            if (shown, effect) > (biased, biggest):
                biased, biggest, words = shown, effect, what
    return biased, biggest, words


def _regression(ref: Reference) -> tuple[bool, float, str]:
    from scipy.stats import t as student_t

    final = pd.to_numeric(ref.values, errors="coerce").to_numpy(dtype=float)
    final = final[np.isfinite(final)]
    early = [(w, pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)) for w, v in ref.early]
    early = [(w, v[np.isfinite(v)]) for w, v in early]
    early = [(w, v) for w, v in early if len(v) >= 2]
    if len(final) < 2 or not early:
        return False, 0.0, ""
    mean, sd, cov = float(final.mean()), float(final.std()), ref.known
    if sd == 0:
        return False, 0.0, ""
    # The final mean, with the unlabelled share anywhere in the observed range.
    low = cov * mean + (1 - cov) * float(final.min())
    high = cov * mean + (1 - cov) * float(final.max())
    level = ALPHA / len(early)
    biased, biggest, words = False, 0.0, ""
    for window, values in early:
        n, seen = len(values), float(values.mean())
        half = float(student_t.ppf(1 - level / 2, n - 1)) * float(values.std(ddof=1)) / np.sqrt(n)
        effect = abs(seen - mean) / sd
        what = (
            f"the {n} labels that would be known in window {window}'s place average {seen:.4g}"
            f" (interval {seen - half:.4g} to {seen + half:.4g}), window {ref.window}'s"
            f" {len(final)} labels {mean:.4g} ({effect:.2f} standard deviations)"
        )
        band = MEAN_TOLERANCE * sd
        shown = seen - half > high + band or seen + half < low - band
        if (shown, effect) > (biased, biggest):
            biased, biggest, words = shown, effect, what
    return biased, biggest, words


def check_arrival(task: str, ref: Reference | None, why: str = "") -> ArrivalCheck:
    """Whether the labels known early are shown to be an unfair sample, on `ref` (see the
    module's words); `why` says what was wrong when there is no reference."""
    if ref is None:
        return ArrivalCheck(
            True,
            None,
            None,
            0.0,
            f"not checked: {why or 'no window before the provisional ones could be joined'};"
            " the provisional windows are used unchecked",
        )
    biased, effect, where = (_classification if task == "classification" else _regression)(ref)
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
    return ArrivalCheck(not biased, ref.window, ref.coverage, float(effect), detail)
