"""The reviews case: product reviews whose language changes, with late sentiment labels.

Like `retrain.data.cases`, `generate_reviews` writes ``events/`` (one Parquet file per weekly
window), ``labels/`` and a config beside them; same arguments, same bytes; drawn with numpy.

Each review is a handful of neutral product words plus one to three sentiment words; the
label (positive or not) follows the sentiment words, with 5% of labels flipped (reviews that
say one thing and mean another), and a review's price and category barely matter. The
change point is `drift_window`: from then on, new slang carries the sentiment ("fire",
"bussin", "mid", "cringe", ...) and the old words fade. At the change point half of the
sentiment words are slang, and the share rises by 15 points a week up to 90%. One word
turns around: "sick" was a complaint ("made me sick") and becomes praise. A model of the old
words sees mostly neutral text after the change, and ranks "sick" backwards; the loop must
learn the new words from labelled weeks. Moderators label a review two to ten days after it
is posted (`labelled_at`), and about 3% never.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.data.demo import (
    _check_sizes,
    _ids,
    _write_config,
    write_late_labelled,
)

__all__ = ["OLD_WORDS", "SLANG_WORDS", "generate_reviews", "sample_reviews", "slang_share"]

_START = pd.Timestamp("2024-01-01", tz="UTC")
_WEEK_SECONDS = 7 * 86400
_POSITIVE_SHARE = 0.6
_LABEL_NOISE = 0.05
#: Sentiment words before the change: (positive, negative).
OLD_WORDS = (
    ["great", "love", "excellent", "perfect", "amazing", "recommend", "happy", "solid"],
    ["terrible", "awful", "broken", "refund", "disappointed", "waste", "sick", "poor"],
)
#: Sentiment words after it: "sick" changes sides.
SLANG_WORDS = (
    ["fire", "bussin", "goated", "slaps", "banger", "sick", "valid", "elite"],
    ["mid", "cringe", "trash", "scam", "flop", "sus", "meh", "dead"],
)
_NEUTRAL = [
    "the",
    "this",
    "it",
    "item",
    "product",
    "order",
    "delivery",
    "box",
    "arrived",
    "bought",
    "used",
    "price",
    "size",
    "colour",
    "battery",
    "quality",
    "shipping",
    "seller",
    "week",
    "day",
    "again",
    "for",
    "my",
    "with",
    "and",
    "was",
    "is",
]
_CATEGORIES = ["electronics", "home", "toys", "books", "garden", "fashion"]
_SLANG_START = 0.5
_SLANG_STEP = 0.15
_SLANG_CAP = 0.9


def slang_share(week: int, drift_window: int) -> float:
    """Share of sentiment words that are slang: 0 before the change point, then 50% rising
    by 15 points a week up to 90%."""
    if week < drift_window:
        return 0.0
    return min(_SLANG_CAP, _SLANG_START + _SLANG_STEP * (week - drift_window))


def _review(rng: np.random.Generator, positive: bool, slang: float) -> str:
    side = 0 if positive else 1
    words = list(rng.choice(_NEUTRAL, int(rng.integers(3, 12))))
    for _ in range(int(rng.integers(1, 4))):
        pool = SLANG_WORDS[side] if rng.random() < slang else OLD_WORDS[side]
        words.append(str(pool[int(rng.integers(len(pool)))]))
    rng.shuffle(words)
    return " ".join(words)


def sample_reviews(rng: np.random.Generator, positive: np.ndarray, slang: float) -> list[str]:
    """Review texts, one per entry of `positive`, with `slang` of the sentiment words slang."""
    return [_review(rng, bool(p), slang) for p in positive]


def generate_reviews(
    out_dir: Path,
    *,
    windows: int = 16,
    rows_per_window: int = 1500,
    drift_window: int = 8,
    seed: int = 7,
) -> Path:
    """Write the reviews case (text classification, weekly windows); return its config."""
    _check_sizes(windows, rows_per_window, drift_window)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    frames = []
    for week in range(windows):
        n = rows_per_window
        positive = rng.random(n) < _POSITIVE_SHARE
        slang = slang_share(week, drift_window)
        label = np.where(rng.random(n) < _LABEL_NOISE, ~positive, positive).astype(np.int64)
        seconds = np.sort(rng.integers(0, _WEEK_SECONDS, size=n))
        frames.append(
            pd.DataFrame(
                {
                    "posted_at": _START + pd.to_timedelta(week * _WEEK_SECONDS + seconds, "s"),
                    "review": sample_reviews(rng, positive, slang),
                    "product_category": rng.choice(_CATEGORIES, n),
                    "price": np.round(rng.lognormal(3.0, 0.8, n), 2),
                    "positive": label,
                    "week": week,
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    events.insert(0, "review_id", _ids("rev", len(events)))
    write_late_labelled(
        out_dir,
        events,
        rng,
        id_column="review_id",
        time_column="posted_at",
        target="positive",
        label_time_column="labelled_at",
        window_column="week",
        delay_days=(2, 10),
        windows=windows,
    )

    config: dict[str, Any] = {
        "name": "reviews",
        "task": "classification",
        "target": "positive",
        "storage_root": "store",
        "seed": seed,
        "data": {
            "uri": "events",
            "format": "parquet",
            "id_column": "review_id",
            "time_column": "posted_at",
            "time_kind": "timestamp",
            "window_size": "7d",
            "window_anchor": _START.strftime("%Y-%m-%d"),
            "features": {
                "review": "text",
                "product_category": "categorical",
                "price": "numeric",
            },
            "min_rows": min(100, rows_per_window),
            # Prices are log-normal: a week's largest can be twice the first week's.
            "range_tolerance": 3.0,
        },
        "labels": {
            "uri": "labels",
            "format": "parquet",
            "id_column": "review_id",
            "label_column": "positive",
            "time_column": "labelled_at",
            "min_coverage": 0.9,
        },
        "training": {
            # Hashing keeps new words learnable by continuous updates (no frozen vocabulary).
            "text": {"vectorizer": "hashing", "n_features": 2**16, "ngram_range": [1, 1]},
        },
        "model": {
            "estimator": "sklearn.linear_model.SGDClassifier",
            "params": {"loss": "log_loss", "alpha": 1e-4, "max_iter": 50, "tol": None},
        },
        # A week's evaluation rows are a fifth of its labelled reviews (about 19% of them):
        # the minimum stays below that, so a week can be judged on its own.
        "evaluation": {"min_rows": min(500, rows_per_window // 6)},
        "deploy": {"deployment_name": "reviews", "gitops_repo": "gitops"},
        # Small test runs replay fewer rows than the default min_labelled (see loans).
        "rollout": {
            "interval_seconds": 1,
            "progress_deadline_seconds": 60,
            "min_labelled": 50,
        },
    }
    return _write_config(out_dir / "reviews.yaml", config)
