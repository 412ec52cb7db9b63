"""Generated use cases beyond the demo: rare events that evolve daily.

Like `retrain.data.demo`, each generator writes ``events/`` (one Parquet file per window),
``labels/`` (ground truth arriving later, about 3% never) and a complete config beside them;
same arguments, same bytes. Nothing is downloaded: the data is drawn with numpy.

- `generate_fraud`: card transactions in daily windows, about 0.8% fraud. Before the change
  point, fraud is the classic pattern (large amounts, far from home, at night, card not
  present). From `drift_window` on, a new pattern appears, card testing: small online
  amounts at digital-goods merchants from young accounts making many transactions a day. Its
  rate starts at 0.3% of transactions and rises by 0.3 points a day to at most 2.4%, on top
  of the classic fraud. A model of the old pattern misses it; the loop should catch up.
  Chargebacks label a transaction one to six days after it happened.
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

__all__ = ["FRAUD_BASE_RATE", "fraud_new_pattern_rate", "generate_fraud"]

_FRAUD_START = pd.Timestamp("2024-03-01", tz="UTC")
_DAY_SECONDS = 86400
#: Share of transactions that are classic fraud, before and after the change.
FRAUD_BASE_RATE = 0.008
_NEW_PATTERN_START = 0.003
_NEW_PATTERN_STEP = 0.003
_NEW_PATTERN_CAP = 0.024
#: Largest amount a card allows: amounts are log-normal, and ingest checks ranges.
_CARD_LIMIT = 5000.0
_MERCHANTS = [
    "grocery",
    "fuel",
    "restaurants",
    "clothing",
    "electronics",
    "travel",
    "pharmacy",
    "digital_goods",
]
_MERCHANT_SHARES = [0.24, 0.14, 0.16, 0.12, 0.08, 0.06, 0.08, 0.12]


def fraud_new_pattern_rate(day: int, drift_window: int) -> float:
    """Share of a day's transactions that are the new pattern (card testing): 0 before the
    change point, then 0.3% rising by 0.3 points a day up to 2.4%."""
    if day < drift_window:
        return 0.0
    return min(_NEW_PATTERN_CAP, _NEW_PATTERN_START + _NEW_PATTERN_STEP * (day - drift_window))


def _legit(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {
        "amount": rng.lognormal(3.5, 1.0, n),
        "hour": rng.choice(24, n, p=_day_hours()),
        "distance_km": rng.exponential(8.0, n),
        "account_age_days": rng.exponential(900.0, n).astype(np.int64),
        # One customer in twenty pays many times a day: the normal range reaches card testing's.
        "txn_last_24h": rng.poisson(np.where(rng.random(n) < 0.05, 10.0, 2.0)),
        "merchant_category": rng.choice(_MERCHANTS, n, p=_MERCHANT_SHARES),
        "card_present": rng.choice(["yes", "no"], n, p=[0.7, 0.3]),
    }


def _classic_fraud(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {
        "amount": rng.lognormal(5.3, 0.9, n),
        "hour": rng.choice(24, n, p=_night_hours()),
        "distance_km": rng.exponential(250.0, n),
        "account_age_days": rng.exponential(700.0, n).astype(np.int64),
        "txn_last_24h": rng.poisson(3.0, n),
        "merchant_category": rng.choice(["electronics", "travel", "clothing"], n),
        "card_present": rng.choice(["yes", "no"], n, p=[0.15, 0.85]),
    }


def _card_testing(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {
        "amount": rng.uniform(0.5, 6.0, n),
        "hour": rng.integers(0, 24, n),
        "distance_km": rng.exponential(8.0, n),
        "account_age_days": rng.integers(0, 30, n),
        "txn_last_24h": rng.poisson(9.0, n),
        "merchant_category": np.full(n, "digital_goods"),
        "card_present": np.full(n, "no"),
    }


def _day_hours() -> np.ndarray:
    w = np.exp(-0.5 * ((np.arange(24) - 14) / 4.0) ** 2) + 0.02
    return np.asarray(w / w.sum())


def _night_hours() -> np.ndarray:
    w = np.exp(-0.5 * ((np.arange(24) - 2) / 3.0) ** 2) + 0.1
    return np.asarray(w / w.sum())


def generate_fraud(
    out_dir: Path,
    *,
    windows: int = 21,
    rows_per_window: int = 8000,
    drift_window: int = 10,
    seed: int = 7,
) -> Path:
    """Write the fraud case (rare-event classification, daily windows); return its config."""
    _check_sizes(windows, rows_per_window, drift_window)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    frames = []
    for day in range(windows):
        n = rows_per_window
        n_classic = int(rng.binomial(n, FRAUD_BASE_RATE))
        n_new = int(rng.binomial(n, fraud_new_pattern_rate(day, drift_window)))
        n_legit = n - n_classic - n_new
        parts = [
            pd.DataFrame(_legit(rng, n_legit)).assign(is_fraud=0),
            pd.DataFrame(_classic_fraud(rng, n_classic)).assign(is_fraud=1),
            pd.DataFrame(_card_testing(rng, n_new)).assign(is_fraud=1),
        ]
        frame = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=rng)
        seconds = np.sort(rng.integers(0, _DAY_SECONDS, size=n))
        frame["transacted_at"] = _FRAUD_START + pd.to_timedelta(
            day * _DAY_SECONDS + seconds, unit="s"
        )
        frame["day"] = day
        frames.append(frame.reset_index(drop=True))
    events = pd.concat(frames, ignore_index=True)
    events.insert(0, "transaction_id", _ids("txn", len(events)))
    events["amount"] = events["amount"].clip(upper=_CARD_LIMIT).round(2)
    events["distance_km"] = events["distance_km"].round(1)
    # The deployed rule knows the classic pattern only.
    events["served_prediction"] = (
        (events["amount"] > 150) & (events["distance_km"] > 80) & (events["card_present"] == "no")
    ).astype(np.int64)

    columns = ["transaction_id", "transacted_at"]
    events = events[columns + [c for c in events.columns if c not in columns]]
    write_late_labelled(
        out_dir,
        events,
        rng,
        id_column="transaction_id",
        time_column="transacted_at",
        target="is_fraud",
        label_time_column="charged_back_at",
        window_column="day",
        delay_days=(1, 6),
        windows=windows,
    )

    numeric = ["amount", "hour", "distance_km", "account_age_days", "txn_last_24h"]
    features = {c: "numeric" for c in numeric}
    features.update({"merchant_category": "categorical", "card_present": "categorical"})
    config = {
        "name": "fraud",
        "task": "classification",
        "target": "is_fraud",
        "storage_root": "store",
        "seed": seed,
        "data": {
            "uri": "events",
            "format": "parquet",
            "id_column": "transaction_id",
            "time_column": "transacted_at",
            "time_kind": "timestamp",
            "window_size": "1d",
            "features": features,
            "prediction_column": "served_prediction",
            "min_rows": min(100, rows_per_window),
            # Amounts and distances are heavy-tailed: a day's largest often doubles the first
            # day's, which is not broken data. Ingest allows three widths beyond the range.
            "range_tolerance": 3.0,
        },
        "labels": {
            "uri": "labels",
            "format": "parquet",
            "id_column": "transaction_id",
            "label_column": "is_fraud",
            "time_column": "charged_back_at",
            "min_coverage": 0.9,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            # Class weights are a model parameter; probabilities stay calibrated without them
            # and the gates judge the ranking (average precision), so none are set here.
            "params": {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15},
        },
        "evaluation": {
            "metric": "average_precision",
            "min_positives": 20,
            # A day's evaluation rows (a fifth of 8,000) fall short of the default 500-row
            # minimum only in tiny test runs; frauds are what is scarce, hence min_positives.
            "min_rows": min(500, rows_per_window // 5),
        },
        "deploy": {"deployment_name": "fraud", "gitops_repo": "gitops"},
        # Accuracy is ~99% for any model at a 1% fraud rate, so the canary is judged on log
        # loss (a proper score that a missed fraud moves) and on its ranking of frauds
        # (average precision) once rollout.min_positives (100) frauds are pooled. A day's
        # evaluation rows hold 10-40 frauds and a replay step counts each row once, so the
        # ranking check is skipped when the replayed days cannot bring 100; small test runs
        # replay fewer rows than the default min_labelled.
        "rollout": {
            "interval_seconds": 1,
            "progress_deadline_seconds": 60,
            "min_labelled": 50,
            "replay": {"windows": 3},
            "checks": [
                {"name": "error_rate", "max": 0.01},
                {"name": "latency_p95", "max": 0.5},
                {"name": "loss_increase", "max": 0.02},
                {"name": "average_precision_drop", "max": 0.02, "on_missing": "skip"},
            ],
        },
    }
    return _write_config(out_dir / "fraud.yaml", config)
