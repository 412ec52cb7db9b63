from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from required import require
from retrain.config import load_config
from retrain.data.demo import generate_housing, generate_loans
from retrain.data.ingest import ingest_window
from retrain.data.io import read_source
from retrain.data.windows import parse_window, window_ids_in
from retrain.errors import ValidationError
from retrain.labels.join import join_labels

require("river", "the demo data generator uses river (extra 'demo')")

SMALL = {"windows": 4, "rows_per_window": 400, "drift_window": 2}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def loans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_loans(tmp_path_factory.mktemp("loans"), **SMALL)


@pytest.fixture(scope="module")
def housing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_housing(tmp_path_factory.mktemp("housing"), **SMALL)


@pytest.mark.parametrize("generate", [generate_loans, generate_housing])
def test_same_seed_same_bytes_other_seed_other_data(
    generate: Callable[..., Path], tmp_path: Path
) -> None:
    a = generate(tmp_path / "a", **SMALL)
    b = generate(tmp_path / "b", **SMALL)
    c = generate(tmp_path / "c", **SMALL, seed=8)
    files = tree_bytes(a.parent)
    assert len(files) == 2 * SMALL["windows"] + 1
    assert files == tree_bytes(b.parent)
    assert files["events/week-000.parquet"] != tree_bytes(c.parent)["events/week-000.parquet"]


def test_loans_config_loads_and_points_at_the_generated_files(loans: Path) -> None:
    cfg = load_config(loans)
    assert loans.name == "loans.yaml"
    assert cfg.task == "classification"
    assert cfg.data.uri == str(loans.parent / "events")
    assert cfg.labels.uri == str(loans.parent / "labels")
    assert cfg.storage_root == str(loans.parent / "store")
    assert cfg.deploy.gitops_repo == str(loans.parent / "gitops")
    assert cfg.model.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert cfg.evaluation.floor == 0.6
    assert (cfg.data.time_kind, cfg.data.window_size) == ("period", 1)
    assert cfg.categorical_features == ["elevel", "car", "zipcode"]


def test_loans_look_like_production_logs(loans: Path) -> None:
    cfg = load_config(loans)
    ev = read_source(cfg.data.uri, "parquet")
    lab = read_source(cfg.labels.uri, "parquet")
    assert len(ev) == 4 * 400
    assert ev["application_id"].iloc[0] == "app-000001"
    assert ev["application_id"].is_unique
    assert ev["event_week"].value_counts().sort_index().to_dict() == {
        0: 400,
        1: 400,
        2: 400,
        3: 400,
    }
    assert ev["car"].str.fullmatch(r"car_([1-9]|1\d|20)").all()
    assert set(ev["served_prediction"]) == {0, 1}
    missing = 1 - len(lab) / len(ev)
    assert 0.01 < missing < 0.06
    merged = lab.merge(ev[["application_id", "event_week"]], on="application_id")
    assert set(merged["labelled_at_week"] - merged["event_week"]) == {1, 2}
    assert set(lab["defaulted"]) == {0, 1}


def test_loans_drift_at_the_drift_window(loans: Path) -> None:
    cfg = load_config(loans)
    ev = read_source(cfg.data.uri, "parquet")
    lab = read_source(cfg.labels.uri, "parquet").merge(ev, on="application_id")
    after = lab["event_week"] >= SMALL["drift_window"]
    # Concept: the default rate jumps (function 0 -> 2) and the served rule stops matching.
    rate_before, rate_after = (
        lab.loc[~after, "defaulted"].mean(),
        lab.loc[after, "defaulted"].mean(),
    )
    assert rate_after - rate_before > 0.08
    hit = lab["served_prediction"] == lab["defaulted"]
    assert hit[~after].mean() > 0.85
    assert hit[after].mean() < 0.7
    # Data: loans grow by a quarter.
    loan_after = ev.loc[ev["event_week"] >= 2, "loan"].mean()
    assert loan_after / ev.loc[ev["event_week"] < 2, "loan"].mean() > 1.15


def test_housing_is_a_weekly_regression_case(housing: Path) -> None:
    cfg = load_config(housing)
    assert (cfg.task, cfg.primary_metric, cfg.data.time_kind) == ("regression", "rmse", "timestamp")
    assert cfg.model.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"
    ev = read_source(cfg.data.uri, "parquet")
    ids = window_ids_in(cfg.data, ev[cfg.data.time_column])
    assert ids == ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]
    lab = read_source(cfg.labels.uri, "parquet")
    merged = lab.merge(ev, on="listing_id")
    assert (merged["sold_at"] > merged["listed_at"]).all()
    assert 0.01 < 1 - len(lab) / len(ev) < 0.06


def test_housing_concept_drifts_at_the_drift_window(housing: Path) -> None:
    cfg = load_config(housing)
    ev = read_source(cfg.data.uri, "parquet")
    lab = read_source(cfg.labels.uri, "parquet").merge(ev, on="listing_id")
    after = lab["listed_at"] >= pd.Timestamp("2024-01-15", tz="UTC")

    def corr(mask: pd.Series, col: str) -> float:
        return float(np.corrcoef(lab.loc[mask, col], lab.loc[mask, "sale_price_k"])[0, 1])

    # Before: school rating drives price; after: floor area does and school rating no longer.
    assert corr(~after, "school_rating") > 0.2 and abs(corr(after, "school_rating")) < 0.1
    assert corr(after, "floor_area_m2") - corr(~after, "floor_area_m2") > 0.1


@pytest.mark.parametrize("path_fixture", ["loans", "housing"])
def test_every_window_ingests_and_joins(path_fixture: str, request: pytest.FixtureRequest) -> None:
    cfg = load_config(request.getfixturevalue(path_fixture))
    ev = read_source(cfg.data.uri, cfg.data.format)
    lab = read_source(cfg.labels.uri, cfg.labels.format)
    schema = None
    for wid in window_ids_in(cfg.data, ev[cfg.data.time_column]):
        res = ingest_window(cfg, ev, parse_window(cfg.data, wid), schema)
        schema = res.schema
        joined = join_labels(cfg, res.data, lab)
        assert joined.coverage > 0.9 and joined.leakage == 0


def test_bad_settings_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        generate_loans(tmp_path, windows=3, rows_per_window=0, drift_window=3)
    assert len(err.value.problems) == 2


def test_regenerating_with_fewer_windows_leaves_no_stale_files(tmp_path: Path) -> None:
    generate_loans(tmp_path, windows=4, rows_per_window=50, drift_window=2)
    generate_loans(tmp_path, windows=3, rows_per_window=50, drift_window=2)
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == [
        "week-000.parquet",
        "week-001.parquet",
        "week-002.parquet",
    ]
