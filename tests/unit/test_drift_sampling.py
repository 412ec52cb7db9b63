"""Long numeric columns judged on a seeded sample (`drift.max_sample_rows`)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kstwo

from retrain.config import Config, config_from_dict
from retrain.drift import NumericProfile, ReferenceProfile, build_profile, detect_drift
from retrain.errors import ValidationError


def config(seed: int = 7, **drift: Any) -> Config:
    return config_from_dict(
        {
            "name": "m",
            "task": "classification",
            "target": "y",
            "storage_root": "store",
            "seed": seed,
            "data": {
                "uri": "e",
                "id_column": "id",
                "time_column": "t",
                "features": {"x": "numeric", "c": "categorical"},
            },
            "labels": {"uri": "l", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "m"},
            "drift": drift,
        }
    )


def frame(n: int, seed: int, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < missing] = np.nan
    c = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    return pd.DataFrame({"x": x, "c": pd.Series(c, dtype="str")})


def numeric(profile: ReferenceProfile) -> NumericProfile:
    col = profile.features["x"]
    assert isinstance(col, NumericProfile)
    return col


def test_the_setting_is_at_least_1000_or_null() -> None:
    assert config().drift.max_sample_rows == 100_000
    assert config(max_sample_rows=None).drift.max_sample_rows is None
    with pytest.raises(ValidationError, match="max_sample_rows"):
        config(max_sample_rows=999)


def test_a_sampled_comparison_is_the_same_on_every_run() -> None:
    ref, cur = frame(30_000, seed=1), frame(30_000, seed=2, shift=0.05)
    settings = config(max_sample_rows=2000)
    first = build_profile(ref, settings)
    assert numeric(first).sample_n == 2000  # sampled, not sorted whole
    again = build_profile(ref.copy(), settings)
    assert first.to_json() == again.to_json()
    report = detect_drift(first, cur, settings).to_dict()
    assert detect_drift(again, cur.copy(), settings).to_dict() == report
    # The seed is the config's: another seed draws another sample.
    other = config(seed=8, max_sample_rows=2000)
    moved = detect_drift(build_profile(ref, other), cur, other).to_dict()
    assert moved["features"][0]["statistic"] != report["features"][0]["statistic"]


def test_ks_p_values_use_the_sample_sizes() -> None:
    """Both sides sampled to 12,000 values: the p-value is the KS law's at n = m = 12,000."""
    cap = 12_000
    settings = config(max_sample_rows=cap, features={"x": {"method": "ks"}})
    profile = build_profile(frame(60_000, seed=3), settings)
    x = detect_drift(profile, frame(80_000, seed=4, shift=0.03), settings).features[0]
    assert x.method == "ks" and x.statistic is not None and x.p_value is not None
    at_sample = float(kstwo.sf(x.statistic, round(cap * cap / (2 * cap))))
    assert x.p_value == pytest.approx(at_sample, rel=1e-9)
    at_full = float(kstwo.sf(x.statistic, round(60_000 * 80_000 / 140_000)))
    assert at_full < x.p_value / 10  # what the whole columns' sizes would have claimed


def test_the_wasserstein_null_threshold_is_that_of_the_sample_size() -> None:
    cap = 5000
    ref, cur = frame(200_000, seed=5), frame(150_000, seed=6)

    def threshold(settings: Config, ref: pd.DataFrame, cur: pd.DataFrame) -> float:
        value = detect_drift(build_profile(ref, settings), cur, settings).features[0]
        assert value.null_threshold is not None
        return value.null_threshold

    sampled = threshold(config(max_sample_rows=cap), ref, cur)
    # A column of the cap's size, not sampled: the same law, so about the same threshold.
    assert sampled == pytest.approx(threshold(config(), frame(cap, 7), frame(cap, 8)), rel=0.05)
    # Every value: the threshold of the whole columns' sizes, sqrt(1/n + 1/m) / sqrt(2/cap)
    # of the sampled one.
    whole = threshold(config(max_sample_rows=None), ref, cur)
    ratio = math.sqrt(1 / 200_000 + 1 / 150_000) / math.sqrt(2 / cap)
    assert whole == pytest.approx(sampled * ratio, rel=0.05)


def test_counts_range_and_moments_stay_the_whole_columns() -> None:
    df = frame(40_000, seed=9, missing=0.1)
    settings = config(max_sample_rows=3000)
    col = numeric(build_profile(df, settings))
    finite = df["x"].dropna().to_numpy()
    assert (col.n, col.nulls) == (len(finite), int(df["x"].isna().sum()))
    assert (col.min, col.max) == (finite.min(), finite.max())
    assert col.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert col.std == pytest.approx(finite.std(), rel=1e-12)
    # The bins and the sketch stand for the sample, drawn from the finite values only.
    assert col.sample_n == 3000 and int(col.counts.sum()) == 3000 and len(col.sample) == 3000
    assert np.isin(col.sample, finite).all()
    assert col.edges[0] == finite.min() and col.edges[-1] == np.nextafter(finite.max(), np.inf)
    cur = frame(50_000, seed=10, missing=0.2)
    x = detect_drift(build_profile(df, settings), cur, settings).features[0]
    assert x.n_ref == len(finite) and x.n_cur == int(cur["x"].notna().sum())
    assert x.null_rate_ref == pytest.approx(df["x"].isna().mean())
    assert x.null_rate_cur == pytest.approx(cur["x"].isna().mean())


def test_a_sampled_profile_round_trips_exactly_and_strictly() -> None:
    profile = build_profile(frame(20_000, seed=11), config(max_sample_rows=1500))
    text = profile.to_json()
    assert json.loads(text)["features"]["x"]["sample_n"] == 1500
    assert ReferenceProfile.from_json(text).to_json() == text
    for bad in (20_000, 0, True, 1500.5):
        raw = json.loads(text)
        raw["features"]["x"]["sample_n"] = bad
        with pytest.raises(ValidationError, match="sample_n"):
            ReferenceProfile.from_json(json.dumps(raw))


def test_a_profile_without_sample_n_still_loads_and_detects() -> None:
    """Written before sampling (or of a short column): its bins stand for all n values."""
    whole = config(max_sample_rows=None)
    profile = build_profile(frame(30_000, seed=12), whole)
    raw = json.loads(profile.to_json())
    assert "sample_n" not in raw["features"]["x"]
    loaded = ReferenceProfile.from_json(json.dumps(raw))
    assert numeric(loaded).judged_n == 30_000
    settings = config(max_sample_rows=2000, features={"x": {"method": "ks"}})
    x = detect_drift(loaded, frame(50_000, seed=13), settings).features[0]
    assert x.statistic is not None and x.p_value is not None and not x.drifted
    # The reference's 30,000 values against the window's sample of 2,000.
    expected = float(kstwo.sf(x.statistic, round(30_000 * 2000 / 32_000)))
    assert x.p_value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_sampled_verdicts_catch_a_real_shift_and_pass_the_same_law(seed: int) -> None:
    settings = config(seed=seed, max_sample_rows=5000)
    profile = build_profile(frame(60_000, seed=seed), settings)
    assert numeric(profile).sample_n == 5000
    same = detect_drift(profile, frame(60_000, seed=seed + 100), settings).features[0]
    moved = detect_drift(profile, frame(60_000, seed=seed + 200, shift=0.2), settings)
    assert same.method == "wasserstein" and not same.drifted
    assert moved.features[0].drifted


def test_the_models_scores_are_sampled_too() -> None:
    settings = config(max_sample_rows=1000)
    rng = np.random.default_rng(31)
    ref, cur = frame(8000, seed=31), frame(9000, seed=32)
    scores = rng.beta(2.0, 5.0, 8000)
    profile = build_profile(ref, settings, scores=scores, classes=[0, 1])
    assert profile.scores is not None and profile.scores.sample_n == 1000
    assert profile.scores.n == 8000 and profile.scores.max == scores.max()
    report = detect_drift(profile, cur, settings, scores=rng.beta(2.0, 5.0, 9000))
    assert report.prediction is not None and report.prediction.n_cur == 9000
    assert report.prediction.method == "wasserstein" and not report.prediction.drifted


def test_the_reference_and_a_window_draw_independent_samples() -> None:
    # A window identical to the reference: drawn at the same positions, the two samples would
    # be equal and every distance exactly 0, below anything two independent samples of this
    # size show, so the null threshold (computed for independent samples) would not hold.
    df = frame(30_000, seed=3)
    settings = config(max_sample_rows=2000)
    report = detect_drift(build_profile(df, settings), df.copy(), settings)
    [x] = [f for f in report.features if f.feature == "x"]
    assert x.statistic is not None and x.statistic > 0.0
    assert not x.drifted
