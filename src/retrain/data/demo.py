"""Drifting demo use cases, shaped like production logs, from river's synthetic streams.

Each generator writes ``events/`` (one Parquet file per window: ids, event time, features and
the serving model's logged prediction), ``labels/`` (one Parquet file per window of events:
ground truth that arrives one or more periods later, with about 3% never labelled) and a
complete config next to them. Same arguments, same bytes.

- `generate_loans`: river's Agrawal loan applications (classification). At `drift_window`
  the concept switches from classification function 0 (risk by age) to function 2 (age and
  education) and loans grow by a quarter, so both concept drift and data drift are visible.
- `generate_housing`: river's FriedmanDrift (regression, global abrupt drift) rescaled into
  house listings, with weekly timestamp windows.

`river` is an optional dependency (the ``demo`` extra), imported only when generating.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from retrain.errors import ValidationError

__all__ = ["LABEL_MISSING_RATE", "generate_housing", "generate_loans", "write_late_labelled"]

#: Share of events whose label never arrives (they form the labelling queue).
LABEL_MISSING_RATE = 0.03
_DAY_SECONDS = 86400

_LOANS_NUMERIC = ["salary", "commission", "age", "hvalue", "hyears", "loan"]
_LOANS_WHOLE = {"age", "hyears"}  # whole years, as an application form records them
_LOANS_CATEGORICAL = {"elevel": "elevel", "car": "car", "zipcode": "zipcode"}
# After the drift applicants ask for bigger loans: data drift the monitor can see. Neither
# classification function used here reads `loan`, so labels stay consistent with features.
_LOAN_GROWTH = 1.25
_HOUSING_START = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday: windows are ISO weeks
_WEEK_SECONDS = 7 * 86400
_REGIONS = ["central", "east", "north", "south", "west"]


def _check_sizes(windows: int, rows_per_window: int, drift_window: int) -> None:
    problems = []
    if windows < 2:
        problems.append(f"windows must be at least 2, got {windows}")
    if rows_per_window < 1:
        problems.append(f"rows_per_window must be positive, got {rows_per_window}")
    if not 1 <= drift_window < windows:
        problems.append(
            f"drift_window must be in [1, windows), got {drift_window} with windows={windows}"
        )
    if problems:
        raise ValidationError("invalid demo data settings", problems)


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def _prepare_dirs(out_dir: Path) -> tuple[Path, Path]:
    events_dir, labels_dir = out_dir / "events", out_dir / "labels"
    for d in (events_dir, labels_dir):
        d.mkdir(parents=True, exist_ok=True)
        # A previous run with more windows would otherwise leave extra files behind.
        for stale in d.glob("week-*.parquet"):
            stale.unlink()
    return events_dir, labels_dir


def write_late_labelled(
    out_dir: Path,
    events: pd.DataFrame,
    rng: np.random.Generator,
    *,
    id_column: str,
    time_column: str,
    target: str,
    label_time_column: str,
    window_column: str,
    delay_days: tuple[int, int],
    windows: int,
) -> None:
    """Write `events` and their late labels under `out_dir`, one Parquet file per window.

    Each label arrives between `delay_days[0]` and `delay_days[1]` days after its event (its
    time in `label_time_column`); LABEL_MISSING_RATE of them never arrive. The target and the
    window index (`window_column`) are taken out of the events written.
    """
    labelled = rng.random(len(events)) >= LABEL_MISSING_RATE
    low, high = (d * _DAY_SECONDS for d in delay_days)
    delay = pd.to_timedelta(rng.integers(low, high, len(events)), unit="s")
    labels = pd.DataFrame(
        {
            id_column: events[id_column],
            target: events[target].to_numpy(),
            label_time_column: events[time_column] + delay,
        }
    )
    window_of_row = events[window_column].to_numpy()
    events = events.drop(columns=[window_column, target])
    events_dir, labels_dir = _prepare_dirs(out_dir)
    for w in range(windows):
        in_window = window_of_row == w
        _write_parquet(events.loc[in_window], events_dir / _file_name(w, windows))
        _write_parquet(labels[in_window & labelled], labels_dir / _file_name(w, windows))


def _file_name(window: int, windows: int) -> str:
    return f"week-{window:0{max(3, len(str(windows - 1)))}d}.parquet"


def _ids(prefix: str, n: int) -> list[str]:
    width = max(6, len(str(n)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]


def _write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def generate_loans(
    out_dir: Path,
    *,
    windows: int = 10,
    rows_per_window: int = 2000,
    drift_window: int = 6,
    seed: int = 7,
) -> Path:
    """Write the loans case (classification, weekly periods) and return its config path."""
    _check_sizes(windows, rows_per_window, drift_window)
    from river.datasets import synth

    out_dir = Path(out_dir)
    n_before = drift_window * rows_per_window
    n_after = (windows - drift_window) * rows_per_window
    # Two seeded streams: the concept before the drift, and the new one after it.
    stream = [
        *synth.Agrawal(classification_function=0, seed=seed, perturbation=0.05).take(n_before),
        *synth.Agrawal(classification_function=2, seed=seed + 1, perturbation=0.05).take(n_after),
    ]
    n = len(stream)
    x = pd.DataFrame([row for row, _ in stream])
    approved = np.fromiter((y for _, y in stream), dtype=np.int64, count=n)
    week = np.repeat(np.arange(windows, dtype=np.int64), rows_per_window)

    events = pd.DataFrame({"application_id": _ids("app", n), "event_week": week})
    for name in _LOANS_NUMERIC:
        if name in _LOANS_WHOLE:
            events[name] = x[name].to_numpy(dtype=np.int64)
        else:
            events[name] = x[name].to_numpy(dtype="float64").round(2)
    events.loc[week >= drift_window, "loan"] = (
        events.loc[week >= drift_window, "loan"] * _LOAN_GROWTH
    ).round(2)
    for name, prefix in _LOANS_CATEGORICAL.items():
        events[name] = [f"{prefix}_{v}" for v in x[name].to_numpy(dtype=np.int64)]
    # Agrawal's class 1 is "group A" (a good applicant); a default is the other class.
    defaulted = 1 - approved
    # The deployed model learnt the old concept: a default is predicted for ages 40-59.
    events["served_prediction"] = ((x["age"] >= 40) & (x["age"] < 60)).astype(np.int64).to_numpy()

    rng = np.random.default_rng(seed)
    labelled = rng.random(n) >= LABEL_MISSING_RATE
    delay = rng.integers(1, 3, size=n)  # labels arrive one or two weeks after the event
    labels = pd.DataFrame(
        {
            "application_id": events["application_id"],
            "defaulted": defaulted,
            "labelled_at_week": week + delay,
        }
    )

    events_dir, labels_dir = _prepare_dirs(out_dir)
    for w in range(windows):
        in_week = week == w
        _write_parquet(events[in_week], events_dir / _file_name(w, windows))
        _write_parquet(labels[in_week & labelled], labels_dir / _file_name(w, windows))

    features = {name: "numeric" for name in _LOANS_NUMERIC}
    features.update({name: "categorical" for name in _LOANS_CATEGORICAL})
    config = {
        "name": "loans",
        "task": "classification",
        "target": "defaulted",
        "storage_root": "store",
        "seed": seed,
        "data": {
            "uri": "events",
            "format": "parquet",
            "id_column": "application_id",
            "time_column": "event_week",
            "time_kind": "period",
            "window_size": 1,
            "features": features,
            "prediction_column": "served_prediction",
            "min_rows": min(100, rows_per_window),
        },
        "labels": {
            "uri": "labels",
            "format": "parquet",
            "id_column": "application_id",
            "label_column": "defaulted",
            "time_column": "labelled_at_week",
            "min_coverage": 0.9,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {
                "max_iter": 100,
                "learning_rate": 0.1,
                "max_leaf_nodes": 15,
            },
        },
        "evaluation": {"metric": "roc_auc", "floor": 0.6},
        "deploy": {"deployment_name": "loans", "gitops_repo": "gitops"},
        # A laptop-speed rollout: one analysis a second instead of every five minutes. Replay
        # scores a window's evaluation rows (a fifth of a small demo window), fewer than the
        # default min_labelled; the error rates in the README hold at that default, not here.
        "rollout": {"interval_seconds": 1, "progress_deadline_seconds": 60, "min_labelled": 50},
    }
    return _write_config(out_dir / "loans.yaml", config)


def generate_housing(
    out_dir: Path,
    *,
    windows: int = 8,
    rows_per_window: int = 1500,
    drift_window: int = 5,
    seed: int = 7,
) -> Path:
    """Write the housing case (regression, 7-day timestamp windows) and return its config path."""
    _check_sizes(windows, rows_per_window, drift_window)
    from river.datasets import synth

    out_dir = Path(out_dir)
    n = windows * rows_per_window
    # 'gra' swaps which inputs drive the price at the first position; the second position (the
    # old concept's return) is placed past the end so the drift stays.
    gen = synth.FriedmanDrift(
        drift_type="gra", position=(drift_window * rows_per_window, n + 1), seed=seed
    )
    stream = list(gen.take(n))
    u = np.array([[row[i] for i in range(10)] for row, _ in stream], dtype="float64")
    y = np.fromiter((target for _, target in stream), dtype="float64", count=n)
    week = np.repeat(np.arange(windows, dtype=np.int64), rows_per_window)

    rng = np.random.default_rng(seed)
    # Listing times: uniform within each week, in time order.
    offsets = np.sort(rng.integers(0, _WEEK_SECONDS, size=(windows, rows_per_window)), axis=1)
    listed_at = _HOUSING_START + pd.to_timedelta(week * _WEEK_SECONDS + offsets.ravel(), unit="s")
    # Friedman inputs are uniform on [0, 1]; rescale each into a plausible listing attribute.
    events = pd.DataFrame(
        {
            "listing_id": _ids("home", n),
            "listed_at": listed_at,
            "floor_area_m2": (40 + 160 * u[:, 0]).round(2),
            "lot_area_m2": (100 + 900 * u[:, 1]).round(2),
            "building_age_years": (100 * u[:, 2]).round(2),
            "distance_to_center_km": (30 - 29.5 * u[:, 3]).round(3),
            "school_rating": (1 + 9 * u[:, 4]).round(3),
            "transit_score": (100 * u[:, 5]).round(2),
            "street_noise_db": (40 + 40 * u[:, 6]).round(2),
            "energy_kwh_m2": (50 + 250 * u[:, 7]).round(2),
            "garden_m2": (200 * u[:, 8]).round(2),
            "days_on_market": (90 * u[:, 9]).round(2),
            "region": np.asarray(_REGIONS, dtype=object)[rng.integers(0, len(_REGIONS), size=n)],
        }
    )
    # A fixed hedonic rule stands in for the deployed model (it knows the old concept only).
    events["served_prediction"] = (150 + 25 * (10 * u[:, 3] + 5 * u[:, 4] + 8)).round(1)
    price = (150 + 25 * y).round(1)  # thousands

    labelled = rng.random(n) >= LABEL_MISSING_RATE
    sale_delay = pd.to_timedelta(rng.integers(3 * 86400, 60 * 86400, size=n), unit="s")
    labels = pd.DataFrame(
        {
            "listing_id": events["listing_id"],
            "sale_price_k": price,
            "sold_at": listed_at + sale_delay,
        }
    )

    events_dir, labels_dir = _prepare_dirs(out_dir)
    for w in range(windows):
        in_week = week == w
        _write_parquet(events[in_week], events_dir / _file_name(w, windows))
        _write_parquet(labels[in_week & labelled], labels_dir / _file_name(w, windows))

    features = {c: "numeric" for c in events.columns[2:12]}
    features["region"] = "categorical"
    config = {
        "name": "housing",
        "task": "regression",
        "target": "sale_price_k",
        "storage_root": "store",
        "seed": seed,
        "data": {
            "uri": "events",
            "format": "parquet",
            "id_column": "listing_id",
            "time_column": "listed_at",
            "time_kind": "timestamp",
            "window_size": "7d",
            "features": features,
            "prediction_column": "served_prediction",
            "min_rows": min(100, rows_per_window),
        },
        "labels": {
            "uri": "labels",
            "format": "parquet",
            "id_column": "listing_id",
            "label_column": "sale_price_k",
            "time_column": "sold_at",
            "min_coverage": 0.9,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {
                "max_iter": 100,
                "learning_rate": 0.1,
                "max_leaf_nodes": 15,
            },
        },
        "evaluation": {"metric": "rmse"},
        "deploy": {"deployment_name": "housing", "gitops_repo": "gitops"},
        # Small windows: see the loans demo on min_labelled.
        "rollout": {"interval_seconds": 1, "progress_deadline_seconds": 60, "min_labelled": 50},
    }
    return _write_config(out_dir / "housing.yaml", config)
