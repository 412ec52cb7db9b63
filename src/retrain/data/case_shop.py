"""Generated use case: e-commerce recommendations retrained weekly, with user and item ids.

`generate_shop` writes ``events/`` (one Parquet file per week: products shown to users),
``labels/`` (whether the user bought it, known one to ten days later; about 3% never) and a
config beside them; same arguments, same bytes. Nothing is downloaded.

Each event is a product shown to a user: ``user_id`` and ``item_id`` (identifier features:
thousands of values, new users and items arriving every week), ``item_category``, ``price``,
the user's ``user_age``, ``tenure_weeks`` and ``visits_last_week``, and the ``device``. Whether
the user buys depends on how much the item's category appeals at the time, on whether it is
the user's own favourite category, on the item's quality (a fixed property of each item id),
on the price and on how active the user is.

**The change point** (`drift_window`): category preferences shift, as with a season. Garden,
sports and toys gain appeal and electronics, fashion and books lose it; 40% of users move
their favourite category, drawn from the new appeal; and the recommender shows more of the
categories now in favour. A model that learned the old appeal (in its item-id and category
encodings) ranks the wrong products; the loop should catch up.
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

__all__ = ["SHOP_CATEGORIES", "category_appeal", "generate_shop"]

_SHOP_START = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday: windows are ISO weeks
_WEEK_SECONDS = 7 * 86400
SHOP_CATEGORIES = (
    "books",
    "electronics",
    "fashion",
    "home",
    "garden",
    "toys",
    "sports",
    "beauty",
)
#: How much each category appeals (a logit shift), before and after the change point.
_APPEAL_BEFORE = np.array([0.6, 0.9, 0.8, 0.2, -0.6, 0.0, -0.4, 0.3])
_APPEAL_AFTER = np.array([-0.2, -0.3, 0.0, 0.2, 1.1, 0.8, 0.9, 0.3])
_PRICE_MEDIAN = np.array([15.0, 180.0, 45.0, 60.0, 35.0, 25.0, 50.0, 20.0])
_USERS_AT_START = 2500
_NEW_USERS_PER_WEEK = 250
_ITEMS_PER_CATEGORY = 120
_NEW_ITEMS_PER_WEEK = 40
_FAVOURITE_MOVES = 0.4


def category_appeal(week: int, drift_window: int) -> np.ndarray:
    """Each category's appeal (a logit shift, in `SHOP_CATEGORIES` order) in a week."""
    return _APPEAL_AFTER.copy() if week >= drift_window else _APPEAL_BEFORE.copy()


def _shares(appeal: np.ndarray) -> np.ndarray:
    """What the recommender shows: more of what appeals."""
    w = np.exp(0.8 * appeal)
    return np.asarray(w / w.sum())


class _Population:
    """Users and items that exist so far; both grow every week."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.user_favourite = np.empty(0, dtype=np.int64)
        self.user_age = np.empty(0, dtype=np.int64)
        self.user_joined = np.empty(0, dtype=np.int64)
        self.user_activity = np.empty(0, dtype=float)
        self.item_category = np.empty(0, dtype=np.int64)
        self.item_quality = np.empty(0, dtype=float)
        self.item_price = np.empty(0, dtype=float)

    def add_users(self, n: int, week: int, appeal: np.ndarray) -> None:
        rng = self.rng
        self.user_favourite = np.append(self.user_favourite, rng.choice(8, n, p=_shares(appeal)))
        self.user_age = np.append(self.user_age, rng.integers(18, 75, n))
        self.user_joined = np.append(self.user_joined, np.full(n, week))
        # A few users are very active: the id column has heavy hitters and a long tail.
        self.user_activity = np.append(self.user_activity, rng.pareto(1.5, n) + 0.2)

    def add_items(self, per_category: np.ndarray) -> None:
        rng = self.rng
        cats = np.repeat(np.arange(8), per_category)
        self.item_category = np.append(self.item_category, cats)
        self.item_quality = np.append(self.item_quality, rng.normal(0.0, 0.7, len(cats)))
        self.item_price = np.append(
            self.item_price, np.round(rng.lognormal(np.log(_PRICE_MEDIAN[cats]), 0.4), 2)
        )

    def move_favourites(self, share: float, appeal: np.ndarray) -> None:
        moving = self.rng.random(len(self.user_favourite)) < share
        self.user_favourite[moving] = self.rng.choice(8, int(moving.sum()), p=_shares(appeal))


def _week(
    rng: np.random.Generator, pop: _Population, week: int, n: int, appeal: np.ndarray
) -> pd.DataFrame:
    users = rng.choice(len(pop.user_activity), n, p=pop.user_activity / pop.user_activity.sum())
    cats = rng.choice(8, n, p=_shares(appeal))
    # Within a category, items are shown uniformly (newer items included).
    items = np.empty(n, dtype=np.int64)
    for c in range(8):
        at = np.flatnonzero(cats == c)
        pool = np.flatnonzero(pop.item_category == c)
        items[at] = rng.choice(pool, len(at))
    visits = rng.poisson(1.0 + 2.0 * np.minimum(pop.user_activity[users], 5.0))
    price = pop.item_price[items]
    logit = (
        -2.3
        + 1.2 * appeal[cats]
        + 1.4 * (pop.user_favourite[users] == cats)
        + 0.9 * pop.item_quality[items]
        - 0.6 * np.log(price / _PRICE_MEDIAN[cats])
        + 0.15 * np.minimum(visits, 8)
    )
    bought = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    seconds = np.sort(rng.integers(0, _WEEK_SECONDS, n))
    return pd.DataFrame(
        {
            "shown_at": _SHOP_START + pd.to_timedelta(week * _WEEK_SECONDS + seconds, unit="s"),
            "user_id": [f"u{u:06d}" for u in users],
            "item_id": [f"i{i:05d}" for i in items],
            "item_category": np.asarray(SHOP_CATEGORIES)[cats],
            "price": price,
            "user_age": pop.user_age[users],
            "tenure_weeks": week - pop.user_joined[users],
            "visits_last_week": visits,
            "device": rng.choice(["mobile", "desktop", "tablet"], n, p=[0.6, 0.32, 0.08]),
            "purchased": bought,
            "week": week,
        }
    )


def generate_shop(
    out_dir: Path,
    *,
    windows: int = 12,
    rows_per_window: int = 4000,
    drift_window: int = 6,
    seed: int = 7,
) -> Path:
    """Write the shop case (weekly recommendations with user and item ids); return its config."""
    _check_sizes(windows, rows_per_window, drift_window)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    pop = _Population(rng)
    pop.add_users(_USERS_AT_START, 0, category_appeal(0, drift_window))
    pop.add_items(np.full(8, _ITEMS_PER_CATEGORY))
    frames = []
    for week in range(windows):
        appeal = category_appeal(week, drift_window)
        if week == drift_window:
            pop.move_favourites(_FAVOURITE_MOVES, appeal)
        if week > 0:  # new users sign up and new items are listed every week
            pop.add_users(_NEW_USERS_PER_WEEK, week, appeal)
            pop.add_items(rng.multinomial(_NEW_ITEMS_PER_WEEK, np.full(8, 1 / 8)))
        frames.append(_week(rng, pop, week, rows_per_window, appeal))
    events = pd.concat(frames, ignore_index=True)
    events.insert(0, "event_id", _ids("evt", len(events)))

    write_late_labelled(
        out_dir,
        events,
        rng,
        id_column="event_id",
        time_column="shown_at",
        target="purchased",
        label_time_column="settled_at",
        window_column="week",
        delay_days=(1, 10),
        windows=windows,
    )

    features = {
        "user_id": "identifier",
        "item_id": "identifier",
        "item_category": "categorical",
        "price": "numeric",
        "user_age": "numeric",
        "tenure_weeks": "numeric",
        "visits_last_week": "numeric",
        "device": "categorical",
    }
    config: dict[str, Any] = {
        "name": "shop",
        "task": "classification",
        "target": "purchased",
        "storage_root": "store",
        "seed": seed,
        "data": {
            "uri": "events",
            "format": "parquet",
            "id_column": "event_id",
            "time_column": "shown_at",
            "time_kind": "timestamp",
            "window_size": "7d",
            "features": features,
            "min_rows": min(100, rows_per_window),
            # Tenure grows by a week each week and prices are log-normal: values past the
            # first week's range are the calendar and the catalogue, not broken data.
            "range_tolerance": 3.0,
        },
        "labels": {
            "uri": "labels",
            "format": "parquet",
            "id_column": "event_id",
            "label_column": "purchased",
            "time_column": "settled_at",
            "min_coverage": 0.9,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15},
        },
        # Ids are target-encoded (cross-fitted), so each user's and item's purchase rate is
        # one input; training.identifier_encoding: hashing is the alternative.
        "training": {"identifier_encoding": "target"},
        "evaluation": {"metric": "roc_auc", "min_rows": min(500, rows_per_window // 5)},
        "deploy": {"deployment_name": "shop", "gitops_repo": "gitops"},
        "rollout": {
            "interval_seconds": 1,
            "progress_deadline_seconds": 60,
            "min_labelled": 50,
            "checks": [
                {"name": "error_rate", "max": 0.01},
                {"name": "latency_p95", "max": 0.5},
                {"name": "loss_increase", "max": 0.02},
            ],
        },
    }
    return _write_config(out_dir / "shop.yaml", config)
