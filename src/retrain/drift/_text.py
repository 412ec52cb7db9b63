"""Text drift: new words, a moved word distribution, longer or emptier texts.

The reference profile of a text column (`TextProfile`) keeps its vocabulary with counts: the
`max_terms` most frequent terms (runs of word characters, lower-cased unless
`training.text.lowercase` is false, as the model's vectoriser reads them; the profile records
which, and windows are read the same way) and the number of tokens beyond them. Terms are
single words whatever `training.text.ngram_range` says: a word that appears, vanishes or
moves shows in its own share, and n-grams would multiply the vocabulary and the null's cost
for little more. A window is compared with it on:

- **out-of-vocabulary rate**: the share of the window's tokens that are not kept reference
  terms (beside it, the reference's own share beyond its kept terms: 0 unless the vocabulary
  was cut);
- **token distribution**: the Jensen-Shannon distance (base 2) between the reference's and the
  window's shares over the buckets *each kept term*, *any other token* and *an empty text*
  (an empty text counts once in the last bucket, so a window of empty texts is far from a
  reference of words). It is the verdict, judged as every distance in `retrain.drift`: at or
  above its threshold (Jensen-Shannon's, 0.1) and above its null threshold. The null comes
  from `retrain.drift._null`'s permutation of the pooled bucket counts, which takes tokens
  for independent draws. They are not: a review about a refund says "refund" twice, so
  token counts vary more between samples of texts than between samples of tokens. The
  threshold is therefore widened by the window's own *design effect*: random halves of its
  texts are compared with random halves of its tokens (`_DESIGN_DRAWS` seeded draws each),
  and the ratio of their mean squared distances (at least 1) scales the squared threshold.
  A window of fewer than `_MIN_TEXTS_FOR_DESIGN` texts takes the worst case, a text's mean
  token count (every word of a text alike). The window's texts are all counted, one at a
  time, so memory grows with its vocabulary, not its size; the design effect alone is
  estimated on a seeded sample of at most `drift.profile_sample_size` texts (the report's
  `design_sample` and `design_seed`). A ratio of two variances that both shrink as one over
  the size, it needs no correction for the sample, and the null itself is computed at the
  window's full size, the size its distance is measured at;
- **length and emptiness**: mean tokens per text and the share of empty texts, both sides;
- **named terms**: the window's most frequent terms the reference never kept ("new") and the
  reference's most frequent terms the window lacks although at least `_MIN_EXPECTED_VANISHED`
  occurrences were expected at its size ("vanished").

Missing values are not texts here: they are counted in the null rate, as for every column.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from retrain.drift._methods import Comparison, jensenshannon_of, shares
from retrain.drift._null import null_threshold
from retrain.drift._report import FeatureDrift
from retrain.settings.drift import DriftConfig

__all__ = [
    "DESIGN_SAMPLE",
    "MAX_TERMS",
    "TextComparison",
    "TextProfile",
    "compare_text",
    "design_effect",
    "text_buckets",
    "text_profile",
    "text_verdict",
    "tokenize",
]

#: Reference terms kept per text column (the most frequent; ties by term).
MAX_TERMS = 5000
_TOKEN = re.compile(r"\w+", re.UNICODE)
_NAMED_TERMS = 10
# Random halves of the window's texts and of its tokens that estimate the design effect.
_DESIGN_DRAWS = 64
_MIN_TEXTS_FOR_DESIGN = 20
_SEED = 20_241_114
#: Texts of a window (at most) whose tokens estimate the design effect, by default
#: (`drift.profile_sample_size` in a report).
DESIGN_SAMPLE = int(DriftConfig.model_fields["profile_sample_size"].default)
# A reference term is named as vanished only when the window was expected to hold it this
# often: a rare word missing from a small window is chance, not a change.
_MIN_EXPECTED_VANISHED = 5.0


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Runs of word characters, lower-cased unless `lowercase` is False (as the model's
    vectoriser reads them per `training.text.lowercase`)."""
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class TextProfile:
    """A reference text column: kept term counts and the totals around them.

    Attributes:
        n: non-null texts; `nulls`: missing ones.
        tokens: tokens in all texts; `other`: tokens of terms beyond the kept ones.
        empty: texts without a token.
        terms: the kept terms and their counts, most frequent first.
    """

    n: int
    nulls: int
    tokens: int
    other: int
    empty: int
    terms: dict[str, int] = field(default_factory=dict)
    lowercase: bool = True
    kind: str = "text"

    @property
    def mean_length(self) -> float:
        """Mean tokens per text (0 without texts)."""
        return self.tokens / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "nulls": self.nulls,
            "tokens": self.tokens,
            "other": self.other,
            "empty": self.empty,
            "terms": dict(self.terms),
            "lowercase": self.lowercase,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TextProfile:
        """Parse `to_dict` output (KeyError, TypeError or ValueError if malformed)."""
        terms = {str(k): int(v) for k, v in raw["terms"].items()}
        out = cls(
            n=int(raw["n"]),
            nulls=int(raw["nulls"]),
            tokens=int(raw["tokens"]),
            other=int(raw["other"]),
            empty=int(raw["empty"]),
            terms=terms,
            # Profiles written before the setting was followed were all lower-cased.
            lowercase=bool(raw.get("lowercase", True)),
        )
        if sum(terms.values()) + out.other != out.tokens or min(terms.values(), default=1) < 1:
            raise ValueError("term counts do not add up to the token count")
        return out


def _present(series: pd.Series) -> tuple[Iterator[str], int, int]:
    """(the non-null values as text, one at a time; their number; the number of nulls)."""
    missing = series.isna().to_numpy()
    values = series.to_numpy(dtype=object)[~missing]
    return (str(v) for v in values), len(values), int(missing.sum())


def text_profile(
    series: pd.Series, max_terms: int = MAX_TERMS, lowercase: bool = True
) -> TextProfile:
    """The reference profile of a text column, keeping its `max_terms` most frequent terms,
    read lower-cased unless `lowercase` is False (windows are then read the same way)."""
    texts, present, nulls = _present(series)
    counts, n, empty, tokens, _ = _count(texts, present, lowercase)
    kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_terms]
    terms = dict(kept)
    return TextProfile(n, nulls, tokens, tokens - sum(terms.values()), empty, terms, lowercase)


def text_buckets(
    ref: TextProfile, counts: Mapping[str, int], empty: int
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, window) counts over the buckets: each kept term, any other token, empty."""
    kept = list(ref.terms)
    cur_kept = np.array([counts.get(t, 0) for t in kept], dtype=np.int64)
    cur_other = sum(counts.values()) - int(cur_kept.sum())
    ref_counts = np.array([*ref.terms.values(), ref.other, ref.empty], dtype=np.int64)
    cur_counts = np.append(cur_kept, [cur_other, empty]).astype(np.int64)
    return ref_counts, cur_counts


def design_effect(docs: list[list[int]], n_buckets: int) -> float:
    """How much more the bucket shares of random halves of these texts vary than those of
    random halves of their tokens (mean squared Jensen-Shannon distance, ratio, at least 1).

    Args:
        docs: per text, the bucket of each of its tokens (an empty text: its one bucket).
        n_buckets: the number of buckets.
    """
    tokens = sum(len(d) for d in docs)
    if len(docs) < _MIN_TEXTS_FOR_DESIGN:
        return max(1.0, tokens / max(len(docs), 1))
    rows = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    cols = np.fromiter((b for d in docs for b in d), dtype=np.int64, count=tokens)
    matrix = sparse.csr_matrix(
        (np.ones(tokens), (rows, cols)), shape=(len(docs), n_buckets), dtype=float
    )
    total = np.asarray(matrix.sum(axis=0)).ravel()
    rng = np.random.default_rng(_SEED)
    halves = (rng.random((_DESIGN_DRAWS, len(docs))) < 0.5).astype(float)
    by_text = np.asarray((matrix.T @ halves.T).T)
    by_token = rng.binomial(total.astype(np.int64), 0.5, size=(_DESIGN_DRAWS, n_buckets))
    js_text = jensenshannon_of(shares(by_text), shares(total - by_text))
    js_token = jensenshannon_of(shares(by_token * 1.0), shares((total - by_token) * 1.0))
    token_mean = float(np.mean(js_token**2))
    if token_mean <= 0.0:
        return 1.0
    return max(1.0, float(np.mean(js_text**2)) / token_mean)


@dataclass(frozen=True)
class TextComparison:
    """A window's text column against its reference profile (see the module docstring)."""

    distance: float | None
    null_threshold: float | None
    n_ref: int
    n_cur: int
    nulls: int
    oov_rate: float | None
    ref_other_rate: float
    mean_length_ref: float
    mean_length_cur: float | None
    empty_share_ref: float
    empty_share_cur: float | None
    new_terms: dict[str, int]
    vanished_terms: dict[str, int]
    design_effect: float | None = None
    design_sample: int | None = None

    def details(self) -> dict[str, Any]:
        """The report's `text` entry: everything but the verdict's own numbers."""
        return {
            "oov_rate": self.oov_rate,
            "reference_other_rate": self.ref_other_rate,
            "mean_length_ref": self.mean_length_ref,
            "mean_length_cur": self.mean_length_cur,
            "empty_share_ref": self.empty_share_ref,
            "empty_share_cur": self.empty_share_cur,
            "new_terms": dict(self.new_terms),
            "vanished_terms": dict(self.vanished_terms),
            "design_effect": self.design_effect,
            "design_sample": self.design_sample,
            "design_seed": _SEED,
        }


def compare_text(
    ref: TextProfile, series: pd.Series, alpha: float, sample_size: int = DESIGN_SAMPLE
) -> TextComparison:
    """Compare a window's text column with `ref`; the null threshold at level `alpha`.

    Every text is counted, one at a time (memory grows with the vocabulary, not the window);
    the design effect is estimated on a seeded sample of at most `sample_size` of them.
    `distance` and `null_threshold` are None when either side has no texts.
    """
    texts, present, nulls = _present(series)
    counts, n, empty, tokens, docs = _count(
        texts, present, ref.lowercase, list(ref.terms), sample_size
    )
    blank = TextComparison(
        distance=None,
        null_threshold=None,
        n_ref=ref.n,
        n_cur=n,
        nulls=nulls,
        oov_rate=None,
        ref_other_rate=ref.other / ref.tokens if ref.tokens else 0.0,
        mean_length_ref=ref.mean_length,
        mean_length_cur=None,
        empty_share_ref=ref.empty / ref.n if ref.n else 0.0,
        empty_share_cur=None,
        new_terms={},
        vanished_terms={},
    )
    if n == 0 or ref.n == 0:
        return blank
    ref_counts, cur_counts = text_buckets(ref, counts, empty)
    distance = float(jensenshannon_of(shares(ref_counts * 1.0), shares(cur_counts * 1.0)))
    # The null splits the pooled tokens as `retrain.drift._null` splits categories: each
    # term the reference never kept is a cell of its own, and a split that leaves a term
    # without reference tokens counts it as new, as this comparison does. It is computed at
    # the window's full size, the size the distance is measured at; only the design effect
    # (a ratio of two variances, each about inversely proportional to the size, so the same
    # at any size) comes from the sample.
    new_counts = np.array([c for t, c in counts.items() if t not in ref.terms], dtype=np.int64)
    as_categories = Comparison(
        kind="categorical",
        ref_counts=np.append(ref_counts, 0),
        cur_counts=np.append(np.append(cur_counts[:-2], [0, empty]), cur_counts[-2]),
        cur_unseen=new_counts,
    )
    token_null = null_threshold("jensenshannon", as_categories, alpha)
    deff = design_effect(docs, len(ref_counts))
    oov = int(cur_counts[-2])
    new = sorted(((t, c) for t, c in counts.items() if t not in ref.terms), key=_by_count)
    vanished = [
        (t, c)
        for t, c in ref.terms.items()
        if t not in counts and c / max(ref.tokens, 1) * tokens >= _MIN_EXPECTED_VANISHED
    ]
    return dataclasses.replace(
        blank,
        distance=distance,
        null_threshold=None if token_null is None else token_null * math.sqrt(deff),
        design_effect=deff,
        design_sample=len(docs),
        oov_rate=oov / tokens if tokens else 0.0,
        mean_length_cur=tokens / n,
        empty_share_cur=empty / n,
        new_terms=dict(new[:_NAMED_TERMS]),
        vanished_terms=dict(sorted(vanished, key=_by_count)[:_NAMED_TERMS]),
    )


def _count(
    texts: Iterable[str],
    n: int,
    lowercase: bool,
    kept: Sequence[str] = (),
    sample_size: int = 0,
) -> tuple[Counter[str], int, int, int, list[list[int]]]:
    """(term counts, texts, empty texts, tokens) of the `n` texts, read one at a time, and
    for a seeded sample of at most `sample_size` of them (all when there are no more), the
    bucket of each token over `kept` (`text_buckets` order; an empty text: its bucket)."""
    sampled = np.full(n, n <= sample_size)
    if 0 < sample_size < n:
        sampled[np.random.default_rng(_SEED).choice(n, size=sample_size, replace=False)] = True
    index = {t: i for i, t in enumerate(kept)}
    other, empty_bucket = len(index), len(index) + 1
    counts: Counter[str] = Counter()
    seen = empty = 0
    docs: list[list[int]] = []
    for position, text in enumerate(texts):
        tokens = tokenize(text, lowercase)
        seen += 1
        empty += not tokens
        counts.update(tokens)
        if sampled[position]:
            docs.append([index.get(t, other) for t in tokens] if tokens else [empty_bucket])
    return counts, seen, empty, sum(counts.values()), docs


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def text_verdict(
    name: str, ref: TextProfile, series: pd.Series, dc: DriftConfig, divisor: int
) -> FeatureDrift:
    """The report row of a text feature: Jensen-Shannon over its buckets, judged against its
    threshold (`drift.features.<name>.threshold`, else Jensen-Shannon's) and its null
    threshold at `null_alpha / divisor` (the report's Bonferroni divisor)."""
    method = "jensenshannon"
    override = dc.features.get(name)
    threshold = (override.threshold if override else None) or dc.threshold_for(method)
    result = compare_text(ref, series, dc.null_alpha / divisor, dc.profile_sample_size)
    rows = result.n_cur + result.nulls
    ref_rows = ref.n + ref.nulls
    row = FeatureDrift(
        feature=name,
        kind="text",
        method=method,
        test="distance",
        statistic=result.distance,
        threshold=threshold,
        drifted=False,
        null_threshold=result.null_threshold,
        n_ref=ref.n,
        n_cur=result.n_cur,
        null_rate_ref=ref.nulls / ref_rows if ref_rows else 0.0,
        null_rate_cur=result.nulls / rows if rows else 0.0,
        unseen_categories=dict(result.new_terms),
        text=result.details(),
    )
    if result.distance is None:
        side = "reference" if ref.n == 0 else "current window"
        return dataclasses.replace(row, note=f"no non-null texts in the {side}")
    null = result.null_threshold
    beyond_noise = null is None or result.distance >= null
    drifted = bool(result.distance >= threshold and beyond_noise)
    warn = dc.warn_for(method)
    warning = bool(not drifted and warn is not None and result.distance >= warn and beyond_noise)
    note = ""
    if result.empty_share_cur == 1.0 and ref.empty < ref.n:
        note = "every text in the window is empty"
    return dataclasses.replace(row, drifted=drifted, warning=warning, note=note)
