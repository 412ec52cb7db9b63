"""The reference profile: what it keeps, its JSON round trip, and bad input."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, config_from_dict
from retrain.drift import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    estimate_performance,
    fit_estimate_calibration,
)
from retrain.errors import ValidationError
from retrain.evaluation.metrics import compute_metrics


def config(kinds: dict[str, str], task: str = "classification", **drift: Any) -> Config:
    return config_from_dict(
        {
            "name": "m",
            "task": task,
            "target": "y",
            "storage_root": "store",
            "data": {"uri": "e", "id_column": "id", "time_column": "t", "features": kinds},
            "labels": {"uri": "l", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "m"},
            "drift": drift,
        }
    )


KINDS = {"amount": "numeric", "plan": "categorical", "flat": "numeric"}


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(3, 1, n), 1)
    amount[rng.random(n) < 0.1] = np.nan
    plan = rng.choice(["basic", "pro", "team"], size=n, p=[0.6, 0.3, 0.1]).astype(object)
    plan[:7] = None
    return pd.DataFrame({"amount": amount, "plan": pd.Series(plan, dtype="str"), "flat": 2.5})


def test_numeric_profile_keeps_quantile_edges_counts_and_the_sorted_column() -> None:
    df = frame()
    profile = build_profile(df, config(KINDS, bins=5))
    col = profile.features["amount"]
    assert isinstance(col, NumericProfile)
    values = df["amount"].dropna().to_numpy()
    assert (col.n, col.nulls) == (len(values), int(df["amount"].isna().sum()))
    assert np.array_equal(col.sample, np.sort(values))  # under the cap: the full column
    assert col.edges[0] == values.min()
    assert col.edges[-1] == np.nextafter(values.max(), np.inf)
    assert np.allclose(col.edges[1:-1], np.quantile(values, [0.2, 0.4, 0.6, 0.8]))
    # Buckets below the minimum and above the maximum hold no reference values.
    assert col.counts[0] == col.counts[-1] == 0
    assert col.counts.sum() == col.n
    assert col.mean == pytest.approx(values.mean())
    assert col.std == pytest.approx(values.std())


def test_a_constant_column_gets_its_own_bucket_between_two_out_of_range_ones() -> None:
    col = build_profile(frame(), config(KINDS)).features["flat"]
    assert isinstance(col, NumericProfile)
    assert list(col.edges) == [2.5, np.nextafter(2.5, np.inf)]
    assert list(col.counts) == [0, 1000, 0]
    assert col.std == 0.0


def test_categorical_profile_counts_categories_most_frequent_first() -> None:
    df = frame()
    col = build_profile(df, config(KINDS)).features["plan"]
    assert isinstance(col, CategoricalProfile)
    assert col.categories == ("basic", "pro", "team")
    assert list(col.counts) == [int((df["plan"] == c).sum()) for c in col.categories]
    assert col.nulls == 7


def test_long_columns_keep_a_sketch_whose_cdf_is_within_its_bound() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=50_000)
    df = pd.DataFrame({"x": values})
    col = build_profile(df, config({"x": "numeric"}, profile_sample_size=10_000)).features["x"]
    assert isinstance(col, NumericProfile) and col.weights is not None
    assert len(col.sample) <= 10_000 and len(col.weights) == len(col.sample)
    assert col.weights.sum() == 50_000  # every value in exactly one run
    # The extremes are kept exactly: runs of one value at both ends.
    assert col.sample[0] == values.min() and col.sample[-1] == values.max()
    assert col.weights[0] == 1 and col.weights[-1] == 1
    assert (np.diff(col.sample) >= 0).all()
    grid = np.linspace(-3, 3, 601)
    full = np.searchsorted(np.sort(values), grid, side="right") / len(values)
    ranks = np.concatenate([[0], np.cumsum(col.weights)])
    sketched = ranks[np.searchsorted(col.sample, grid, side="right")] / ranks[-1]
    assert np.max(np.abs(full - sketched)) <= np.pi / 2 / 10_000 + 1e-12
    assert col.n == 50_000 and col.counts.sum() == 50_000  # counts use the full column


def test_the_sketch_keeps_wasserstein_close_to_the_full_column_on_heavy_tails() -> None:
    """Evenly spaced order statistics miss a Pareto tail by 7e-2 sd here; the sketch does not."""
    from retrain.drift._methods import ecdf_area

    rng = np.random.default_rng(4)
    ref = np.sort(rng.pareto(1.5, size=400_000))
    cur = np.sort(rng.pareto(1.5, size=400_000) * 1.2)
    # Every value (no sample): this measures the sketch alone.
    settings = config({"x": "numeric"}, profile_sample_size=10_000, max_sample_rows=None)
    col = build_profile(pd.DataFrame({"x": ref}), settings).features["x"]
    assert isinstance(col, NumericProfile)
    exact = ecdf_area(ref, cur) / col.std
    assert abs(ecdf_area(col.sample, cur, col.weights) / col.std - exact) < 1e-3
    even = ref[np.round(np.linspace(0, len(ref) - 1, 10_000)).astype(np.int64)]
    assert abs(ecdf_area(even, cur) / col.std - exact) > 1e-2  # what the sketch avoids


def test_a_format_1_profile_of_a_long_column_still_detects_against_its_sample() -> None:
    """Format 1 kept evenly spaced order statistics of a long column and no counts: each
    sample value stands for an equal share of the column."""
    from scipy.stats import ks_2samp, wasserstein_distance

    from retrain.drift import detect_drift

    rng = np.random.default_rng(6)
    ref = rng.normal(size=200_000)
    cur = rng.normal(0.3, 1.0, size=50_000)
    cfg = config({"x": "numeric"}, profile_sample_size=10_000)
    raw = json.loads(build_profile(pd.DataFrame({"x": ref}), cfg).to_json())
    even = np.sort(ref)[np.round(np.linspace(0, len(ref) - 1, 20_000)).astype(np.int64)]
    col = raw["features"]["x"]
    col.pop("weights")
    col["sample"] = {
        "dtype": "<f8",
        "base64": base64.b64encode(even.astype("<f8").tobytes()).decode(),
    }
    raw["format"] = 1
    old = ReferenceProfile.from_json(json.dumps(raw))
    frame = pd.DataFrame({"x": cur})
    for method in ("ks", "wasserstein"):
        c = config({"x": "numeric"}, features={"x": {"method": method}})
        f = detect_drift(old, frame, c).features[0]
        if method == "ks":
            assert f.statistic == pytest.approx(ks_2samp(even, cur).statistic, abs=1e-12)
        else:
            expected = wasserstein_distance(even, cur) / np.std(ref)
            assert f.statistic == pytest.approx(expected, abs=1e-9)
        assert f.drifted  # a 0.3 sd shift against 200,000 reference values


def test_a_format_1_profile_without_counts_is_still_read() -> None:
    profile = build_profile(frame(), config(KINDS))
    raw = json.loads(profile.to_json())
    raw["format"] = 1
    for col in raw["features"].values():
        col.pop("weights", None)
    again = ReferenceProfile.from_json(json.dumps(raw))
    amount = again.features["amount"]
    assert isinstance(amount, NumericProfile) and amount.weights is None
    assert np.array_equal(amount.sample, profile.features["amount"].sample)  # type: ignore[union-attr]


def test_model_side_reference_scores_metrics_estimate_and_importances() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 400)
    y = (rng.random(400) < p).astype(int)
    proba = np.column_stack([1 - p, p])
    cfg = config(KINDS)
    profile = build_profile(
        frame(),
        cfg,
        scores=proba,
        labels=y,
        classes=np.array([0, 1]),
        importances={"amount": 3.0, "plan": 1.0, "flat": 0.0},
    )
    assert profile.scores is not None
    assert np.array_equal(profile.scores.sample, np.sort(p))  # positive-class probability
    assert profile.metric == "roc_auc"
    assert profile.metrics == pytest.approx(compute_metrics("classification", y, proba, [0, 1]))
    # The estimate is calibrated on these rows and measured out-of-fold.
    assert profile.estimate_calibration is not None
    _, out_of_fold = fit_estimate_calibration(proba, y, [0, 1], seed=cfg.seed)
    assert profile.estimated_accuracy == out_of_fold
    uncalibrated = config(KINDS, calibrate_estimate=False)
    raw = build_profile(frame(), uncalibrated, scores=proba, labels=y, classes=[0, 1])
    assert raw.estimate_calibration is None
    assert raw.estimated_accuracy == pytest.approx(estimate_performance(proba).value)
    assert profile.importances == {"amount": 0.75, "plan": 0.25, "flat": 0.0}
    assert profile.classes == [0, 1] and type(profile.classes[0]) is int


def test_json_round_trip_is_exact() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(300)
    profile = build_profile(
        frame(),
        config(KINDS),
        scores=p,
        labels=(rng.random(300) < p).astype(int),
        classes=[0, 1],
        importances={"amount": 1.0},
    )
    text = profile.to_json()
    again = ReferenceProfile.from_json(text)
    assert again.to_json() == text
    a, b = profile.features["amount"], again.features["amount"]
    assert isinstance(a, NumericProfile) and isinstance(b, NumericProfile)
    assert np.array_equal(a.sample, b.sample) and np.array_equal(a.edges, b.edges)
    assert again.scores is not None and np.array_equal(again.scores.sample, np.sort(p))
    json.loads(text)  # strict JSON: no NaN


def test_missing_feature_columns_are_all_named() -> None:
    with pytest.raises(ValidationError) as err:
        build_profile(frame().drop(columns=["amount", "plan"]), config(KINDS))
    assert "'amount'" in str(err.value) and "'plan'" in str(err.value)


def test_text_in_a_numeric_feature_is_refused_naming_the_column() -> None:
    df = frame()
    df["amount"] = df["amount"].astype(object)
    df.loc[3, "amount"] = "n/a"
    with pytest.raises(ValidationError, match=r"'amount'.*not numbers.*n/a"):
        build_profile(df, config(KINDS))


def test_bad_importances_and_labels_without_scores_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown feature 'nope'"):
        build_profile(frame(), config(KINDS), importances={"nope": 1.0})
    with pytest.raises(ValidationError, match="bad value for 'amount'"):
        build_profile(frame(), config(KINDS), importances={"amount": -1.0})
    with pytest.raises(ValidationError, match="labels were given without scores"):
        build_profile(frame(), config(KINDS), labels=[0, 1])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format=99), "format 99 is not supported"),
        (lambda d: d.pop("features"), "missing key 'features'"),
        (lambda d: d["features"]["amount"].update(counts=[1, 2]), "feature 'amount'.*counts"),
        (lambda d: d["features"]["plan"].update(kind="image"), "feature 'plan'.*unknown kind"),
        (lambda d: d["features"]["amount"]["sample"].update(base64="@@"), "feature 'amount'"),
        (lambda d: d.update(seen={"amount": ["low", 3.0]}), "seen.*'amount'.*range"),
        (lambda d: d.update(seen={"amount": [5.0, 1.0]}), "seen.*'amount'.*range"),
        (lambda d: d.update(seen={"amount": [0.0, float("inf")]}), "seen.*'amount'.*finite"),
        (lambda d: d.update(seen={"plan": "basic"}), "seen.*'plan'.*list"),
    ],
)
def test_malformed_profiles_are_refused_with_the_place_named(edit: Any, message: str) -> None:
    raw = json.loads(build_profile(frame(), config(KINDS)).to_json())
    edit(raw)
    with pytest.raises(ValidationError, match=message):
        ReferenceProfile.from_json(json.dumps(raw))


def test_not_json_is_refused() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        ReferenceProfile.from_json(b"\x00not json")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda w: w.__setitem__(0, w[0] + 1), "weights must sum to n"),
        (lambda w: w.__setitem__(0, 0), "one count >= 1"),
        (lambda w: w.pop(), "one count >= 1 per sample value"),
    ],
)
def test_sketch_counts_that_do_not_add_up_are_refused(tamper: Any, message: str) -> None:
    values = np.random.default_rng(5).normal(size=30_000)
    profile = build_profile(
        pd.DataFrame({"x": values}), config({"x": "numeric"}, profile_sample_size=10_000)
    )
    raw = json.loads(profile.to_json())
    tamper(raw["features"]["x"]["weights"])
    with pytest.raises(ValidationError, match=f"feature 'x' is malformed.*{message}"):
        ReferenceProfile.from_json(json.dumps(raw))
