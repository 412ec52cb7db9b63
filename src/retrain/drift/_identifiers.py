"""Drift of identifier columns (user, item, merchant ids) that does not fire on the long tail.

An id column of a live system always brings values the reference never saw: new users sign
up every day. A category test would call every window drifted, and a list of every id would
grow without bound. An identifier column is judged instead on two things:

- **Unseen share**: the share of the window's rows whose id the reference never saw, against
  the share expected from the reference's own turnover. The turnover ``r`` is measured across
  window-sized blocks of the reference (by its time column, on the grid of `data.window_size`):
  the share of the reference's latest window (of `MIN_TURNOVER_ROWS` rows or more) whose id
  the windows before it never saw,
  so ids that arrive in batches at window boundaries count. A window ``k`` windows past the
  reference's end is expected to show ``1 - (1 - r)(1 - g)^(k-1)`` (new ids accumulate), ``g``
  the share of the seen rows that turn unseen when the window before the latest is left out
  of the reference (age measured inside it; ``g = r`` with fewer than three windows). A reference of
  one window (or without times) falls back to its within-window churn: its latest fifth of
  rows, in event-time order, unseen in the rows before; it cannot see ids that arrive only at
  window boundaries. It drifted when ``unseen > expected + max(min_increase, z * se)``,
  where ``se`` combines the binomial standard errors of both shares inflated by their design
  effects (the rows of one id move together: ``sum(c^2) / sum(c)`` over the ids' row counts c)
  and ``z`` the normal quantile at the Bonferroni-divided `drift.null_alpha`.
- **Top-k mass**: the shares of the reference's `TOP_K` most frequent ids plus one bucket for
  everything else (chosen on half the reference's rows, counted on the other half), compared
  by the categorical method with its permutation null threshold (`retrain.drift._null`): a
  shift of mass between the heavy ids, or from them to the tail.

Memory is bounded whatever the reference's cardinality: the profile keeps the top `TOP_K`
ids with their counts and a bottom-k (theta) sketch of the rest: the `SKETCH_SIZE` smallest
64-bit hashes of the distinct ids. A window's unseen share is then measured exactly on the
ids whose hash falls at or below the sketch's largest (a uniform sample of ids, the same on
both sides, so no collision error), and it is exact outright when the reference has at most
`SKETCH_SIZE` distinct ids beyond the top.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from retrain.drift._report import Bar, FeatureDrift

__all__ = [
    "CHURN_TAIL",
    "MIN_TURNOVER_ROWS",
    "MIN_UNSEEN_INCREASE",
    "SKETCH_SIZE",
    "TOP_K",
    "IdentifierProfile",
    "UnseenVerdict",
    "hash_ids",
    "identifier_bars",
    "identifier_profile",
    "judge_identifier",
    "top_counts",
    "unseen_verdict",
    "windows_elapsed",
]

#: Ids kept by name with their counts. Twenty buckets keep the permutation null low enough
#: that a window of the same law under natural churn stays below it (at 50, slow churn alone
#: fired in 4 of 30 simulated 1,000-row windows; README, Drift).
TOP_K = 20
#: Hashes kept in the bottom-k sketch of the ids beyond the top.
SKETCH_SIZE = 4096
#: The reference's latest share of rows, judged against the rest for its own churn: close to
#: how a window (the newest data) relates to the reference it is compared with.
CHURN_TAIL = 0.2
#: Fewest rows of a reference window that measure its turnover against the windows before.
MIN_TURNOVER_ROWS = 50
#: Smallest rise of the unseen share over the reference's churn that counts as drift.
MIN_UNSEEN_INCREASE = 0.05
_HASH_KEY = "retrain-ids-0001"  # 16 characters, as pandas' hash key must be
_MAX_HASH = np.uint64(np.iinfo(np.uint64).max)


def hash_ids(values: pd.Series) -> np.ndarray:
    """Stable 64-bit hashes of ids as text (same value, same hash, in any process)."""
    text = values.astype(str).to_numpy(dtype=object)
    return np.asarray(pd.util.hash_array(text, hash_key=_HASH_KEY, categorize=True))


def _ids_as_text(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str)


def _design_effect(counts: np.ndarray) -> float:
    """How much clustering by id inflates a share's variance: sum(c^2) / sum(c), at least 1."""
    total = float(counts.sum())
    return max(1.0, float((counts.astype(float) ** 2).sum()) / total) if total else 1.0


@dataclass(frozen=True, eq=False)
class IdentifierProfile:
    """One identifier column of the reference: its heavy ids, a sketch of the rest, its churn.

    Attributes:
        n: non-null rows; nulls: null rows; distinct: distinct ids (counted when profiled).
        top: the `TOP_K` most frequent ids of the even rows, most frequent first (ties by
            name); top_counts their rows among the `top_rows` odd rows.
        sketch: the smallest `SKETCH_SIZE` hashes of the distinct ids outside `top`, sorted
            (all of them when there are fewer); exact membership at or below `sketch[-1]`.
        churn: turnover per window: the share of the reference's latest window's rows whose
            id its earlier windows never saw (one window or no times: of its latest
            `CHURN_TAIL` of rows, in event-time order, unseen in the rows before); churn_se its
            standard error (design-effect inflated).
        end_slot: the grid window (`retrain.data.windows.window_slots`) the reference ends
            in; None without times (a window is then taken to follow the reference directly).
        growth: how much of the seen share each further window of age turns unseen: the rise
            of the latest window's unseen share when the window right before it is left out
            of the reference, over the share seen with it (None with fewer than three windows:
            `churn` is used); growth_se its standard error.
    """

    n: int
    nulls: int
    distinct: int
    top: tuple[str, ...]
    top_counts: np.ndarray
    top_rows: int
    sketch: np.ndarray
    churn: float
    churn_se: float
    end_slot: int | None = None
    growth: float | None = None
    growth_se: float = 0.0

    kind = "identifier"

    @property
    def index(self) -> pd.Index:
        return pd.Index(list(self.top), dtype=object)

    @property
    def sketch_complete(self) -> bool:
        """Whether the sketch holds every id outside the top (membership is exact)."""
        return len(self.sketch) < SKETCH_SIZE

    def to_dict(self) -> dict[str, Any]:
        raw = np.ascontiguousarray(self.sketch, dtype="<u8").tobytes()
        return {
            "kind": self.kind,
            "n": self.n,
            "nulls": self.nulls,
            "distinct": self.distinct,
            "top": list(self.top),
            "top_counts": [int(c) for c in self.top_counts],
            "top_rows": self.top_rows,
            "sketch": {"dtype": "<u8", "base64": base64.b64encode(raw).decode("ascii")},
            "churn": self.churn,
            "churn_se": self.churn_se,
            "end_slot": self.end_slot,
            "growth": self.growth,
            "growth_se": self.growth_se,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdentifierProfile:
        if d["sketch"].get("dtype") != "<u8":
            raise ValueError(f"unsupported sketch dtype {d['sketch'].get('dtype')!r}")
        data = base64.b64decode(d["sketch"]["base64"], validate=True)
        if len(data) % 8:
            raise ValueError("sketch bytes are not whole 64-bit hashes")
        top = tuple(d["top"])
        counts = np.asarray(d["top_counts"], dtype=np.int64)
        if len(counts) != len(top) or not all(isinstance(t, str) for t in top):
            raise ValueError("top and top_counts must be strings and counts of equal length")
        return cls(
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            distinct=int(d["distinct"]),
            top=top,
            top_counts=counts,
            top_rows=int(d["top_rows"]),
            sketch=np.frombuffer(data, dtype="<u8").astype(np.uint64),
            churn=float(d["churn"]),
            churn_se=float(d["churn_se"]),
            end_slot=None if d.get("end_slot") is None else int(d["end_slot"]),
            growth=None if d.get("growth") is None else float(d["growth"]),
            growth_se=float(d.get("growth_se", 0.0)),
        )


def identifier_profile(
    series: pd.Series, order: np.ndarray | None = None, slots: np.ndarray | None = None
) -> IdentifierProfile:
    """Profile an id column; `order` (row positions in event-time order) sets the halves of
    the within-window churn estimate (row order without it); `slots` (each row's grid window,
    NaN without a time) the turnover across windows and the reference's end."""
    ids = _ids_as_text(series)
    # The heaviest ids are chosen on the even rows and counted on the odd ones: counted on
    # the rows that chose them, ids near the cut would be those that happened to come up
    # often, their reference shares biased high, and a window of the same law would look
    # shifted (a winner's curse the permutation null does not know).
    chooser, counter = ids.iloc[::2].value_counts(), ids.iloc[1::2]
    names = chooser.index.to_numpy(dtype=object).astype(str)
    ranked = np.lexsort((names, -chooser.to_numpy()))
    top = tuple(str(names[i]) for i in ranked[:TOP_K])
    measured = counter.value_counts().reindex(list(top), fill_value=0)
    distinct = ids.unique().astype(str)
    rest = distinct[~np.isin(distinct, np.asarray(top, dtype=object))]
    hashes = np.unique(hash_ids(pd.Series(rest, dtype=object)))
    churn, churn_se, end_slot, growth, growth_se = _turnover(series, order, slots)
    return IdentifierProfile(
        n=len(ids),
        nulls=int(len(series) - len(ids)),
        distinct=len(distinct),
        top=top,
        top_counts=measured.to_numpy(dtype=np.int64),
        top_rows=len(counter),
        sketch=hashes[:SKETCH_SIZE],
        churn=churn,
        churn_se=churn_se,
        end_slot=end_slot,
        growth=growth,
        growth_se=growth_se,
    )


def _turnover(
    series: pd.Series, order: np.ndarray | None, slots: np.ndarray | None
) -> tuple[float, float, int | None, float | None, float]:
    """Turnover per window, its standard error, and the reference's last grid window.

    Across windows: the latest window's rows unseen in the windows before (the relation of
    the next window to the whole reference, one window of history short: slightly high, so
    on the side of fewer false alarms). Within a window when the reference has only one.
    """
    if slots is None:
        return (*_churn(series, order), None, None, 0.0)
    at = np.asarray(slots, dtype=float)
    known = np.isfinite(at) & series.notna().to_numpy()
    if not known.any():
        return (*_churn(series, order), None, None, 0.0)
    end = int(at[known].max())
    # The latest window with enough rows to measure a share (a sliver of a window at the
    # reference's end would give 0% or 100% with no error) and a window before it.
    slot, rows = np.unique(at[known], return_counts=True)
    usable = slot[1:][rows[1:] >= MIN_TURNOVER_ROWS]
    if usable.size == 0:
        return (*_churn(series, order), end, None, 0.0)
    values = series.reset_index(drop=True).astype(str)
    last = usable[-1]
    late = values[known & (at == last)]
    share, se = _share_and_se(
        late, (~late.isin(pd.Index(values[known & (at < last)].unique()))).to_numpy()
    )
    previous = slot[slot < last].max()
    if not (slot < previous).any() or share >= 1.0:
        return share, se, end, None, 0.0
    # Age measured inside the reference: leave the window right before out and see how much
    # of the seen share turns unseen. Unlike compounding `share`, this does not count again
    # the existing ids the reference merely happened not to sample.
    older = pd.Index(values[known & (at < previous)].unique())
    seen = late[late.isin(pd.Index(values[known & (at < last)].unique())).to_numpy()]
    # The share of the seen rows that turn unseen, a binomial on those rows (its error is
    # not that of two shares of the same rows subtracted, which are strongly correlated).
    growth, growth_se = _share_and_se(seen, (~seen.isin(older)).to_numpy())
    return share, se, end, growth, growth_se


def _share_and_se(rows: pd.Series, unseen: np.ndarray) -> tuple[float, float]:
    """Share of `rows` flagged `unseen`, and its design-effect inflated standard error."""
    share = float(unseen.mean())
    deff = _design_effect(rows[unseen].value_counts().to_numpy())
    return share, math.sqrt(max(share * (1.0 - share), 0.0) * deff / len(rows))


def _churn(series: pd.Series, order: np.ndarray | None) -> tuple[float, float]:
    """Share of the last `CHURN_TAIL` of rows unseen in the rows before, and its standard error."""
    values = series.reset_index(drop=True)
    if order is not None:
        values = values.iloc[np.asarray(order)]
    values = _ids_as_text(values)
    split = int(len(values) * (1.0 - CHURN_TAIL))
    if split == 0 or split == len(values):
        return 0.0, 0.0
    early, late = values.iloc[:split], values.iloc[split:]
    return _share_and_se(late, (~late.isin(pd.Index(early.unique()))).to_numpy())


def top_counts(profile: IdentifierProfile, series: pd.Series) -> tuple[np.ndarray, int]:
    """A window's rows per reference top id, then one bucket for every other id; its nulls."""
    ids = _ids_as_text(series)
    codes = profile.index.get_indexer(pd.Index(ids.to_numpy(dtype=object)))
    k = len(profile.top)
    counts = np.bincount(np.where(codes >= 0, codes, k), minlength=k + 1).astype(np.int64)
    return counts, int(len(series) - len(ids))


@dataclass(frozen=True)
class UnseenVerdict:
    """The unseen-share verdict of a window on one identifier column.

    `unseen` is the estimated share of the window's non-null rows with an id the reference
    never saw; `churn` the share expected after `windows_elapsed` windows of the reference's
    turnover; `sampled_rows` the rows it was measured on (all rows outside the top when the
    sketch is complete). `examples` are unseen ids with their rows, most frequent first.
    """

    unseen: float
    churn: float
    windows_elapsed: int
    margin: float
    drifted: bool
    sampled_rows: int
    unseen_rows: int
    examples: dict[str, int]

    def describe(self) -> str:
        return (
            f"unseen ids {self.unseen:.1%} of rows vs {self.churn:.1%} expected"
            f" {self.windows_elapsed} window(s) past the reference (margin {self.margin:.1%})"
        )


def windows_elapsed(profile: IdentifierProfile, slots: np.ndarray | None) -> int:
    """Grid windows from the reference's end to the window's latest row (at least 1)."""
    if profile.end_slot is None or slots is None:
        return 1
    at = np.asarray(slots, dtype=float)
    at = at[np.isfinite(at)]
    return max(1, int(at.max()) - profile.end_slot) if at.size else 1


def unseen_verdict(
    profile: IdentifierProfile,
    series: pd.Series,
    alpha: float,
    *,
    examples: int = 20,
    elapsed: int = 1,
) -> UnseenVerdict:
    """Judge a window's unseen-id share against the share expected `elapsed` windows past
    the reference, at level `alpha`."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if elapsed < 1:
        raise ValueError(f"elapsed must be at least 1, got {elapsed}")
    # New ids accumulate: the window right after shows the turnover r; each further window
    # of age turns a share g of the rest unseen (g = r without a measured growth).
    g, g_se = (
        (profile.growth, profile.growth_se)
        if profile.growth is not None
        else (profile.churn, profile.churn_se)
    )
    expected = 1.0 - (1.0 - profile.churn) * (1.0 - g) ** (elapsed - 1)
    expected_se = math.hypot(profile.churn_se, (elapsed - 1) * g_se)
    ids = _ids_as_text(series)
    in_top = ids.isin(pd.Index(list(profile.top)))
    rest = ids[~in_top]
    hashes = hash_ids(rest) if len(rest) else np.array([], dtype=np.uint64)
    limit = _MAX_HASH if profile.sketch_complete else profile.sketch[-1]
    sampled = hashes <= limit
    known = np.isin(hashes, profile.sketch)
    unseen_mask = sampled & ~known
    n_sampled = int(sampled.sum())
    rest_share = float(len(rest)) / len(ids) if len(ids) else 0.0
    share_in_sample = float(unseen_mask.sum()) / n_sampled if n_sampled else 0.0
    unseen = rest_share * share_in_sample
    sampled_counts = pd.Series(hashes[sampled]).value_counts().to_numpy()
    deff = _design_effect(sampled_counts)
    se_cur = (
        rest_share * math.sqrt(share_in_sample * (1 - share_in_sample) * deff / n_sampled)
        if n_sampled
        else 0.0
    )
    z = -NormalDist().inv_cdf(alpha)  # the upper quantile; exact for an alpha near 0 too
    margin = max(MIN_UNSEEN_INCREASE, z * math.hypot(se_cur, expected_se))
    named = rest[unseen_mask].value_counts()
    order = np.lexsort((named.index.to_numpy(dtype=str), -named.to_numpy()))[:examples]
    return UnseenVerdict(
        unseen=unseen,
        churn=expected,
        windows_elapsed=elapsed,
        margin=margin,
        drifted=bool(n_sampled > 0 and unseen > expected + margin),
        sampled_rows=n_sampled,
        unseen_rows=round(unseen * len(ids)),
        examples={str(named.index[i]): int(named.iloc[i]) for i in order},
    )


def identifier_bars(profile: IdentifierProfile, cur_counts: np.ndarray, shown: int) -> list[Bar]:
    """Histogram bars: the `shown` heaviest reference ids, then all other ids in one bar."""
    rest = profile.top_rows - int(profile.top_counts.sum())
    ref = np.append(profile.top_counts, rest).astype(float)
    p = ref / ref.sum() if ref.sum() > 0 else np.zeros(len(ref))
    q = cur_counts / cur_counts.sum() if cur_counts.sum() > 0 else np.zeros(len(cur_counts))
    k = min(shown, len(profile.top))
    bars = [Bar(profile.top[i], float(p[i]), float(q[i])) for i in range(k)]
    others = slice(k, len(p))
    bars.append(Bar("(all other ids)", float(p[others].sum()), float(q[others].sum())))
    return bars


def judge_identifier(
    partial: FeatureDrift,
    profile: IdentifierProfile,
    series: pd.Series,
    alpha: float,
    elapsed: int = 1,
) -> FeatureDrift:
    """Add the unseen-share verdict to the top-k mass verdict already in `partial`: the column
    drifted if either did. The note says both, for the reports."""
    if profile.n == 0 or series.notna().sum() == 0:
        return partial
    v = unseen_verdict(profile, series, alpha, elapsed=elapsed)
    mass = "top-k mass shifted" if partial.drifted else "top-k mass steady"
    return replace(
        partial,
        drifted=bool(partial.drifted or v.drifted),
        warning=bool(partial.warning and not v.drifted),
        unseen_categories=v.examples,
        unseen_rows=v.unseen_rows,
        note=f"{v.describe()}{': drifted' if v.drifted else ''}; {mass} ({len(profile.top)} ids)",
    )
