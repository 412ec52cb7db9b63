"""Verdicts that hold at any n and cardinality (null thresholds), units-free Wasserstein, and a
calibrated label-free estimate that warns when it misses at reference.

False-positive rates are measured on simulated windows from the reference's own distribution
(the truth is "no drift"); the allowed counts are binomial margins over a 1% rate: at most 3
alarms in 100 windows (a rate of 1% exceeds it with chance 1.8%).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench_script import load_script
from retrain.config import Config
from retrain.drift import (
    CategoricalProfile,
    ReferenceProfile,
    build_profile,
    detect_drift,
)
from retrain.settings.drift import DriftConfig

WINDOWS = 100
MAX_ALARMS = 3  # of WINDOWS, for a rate of at most 1%

# The config and generator the published benchmark uses (benchmarks/decisions/drift.py), so
# the tests and the figures in benchmarks/results/decisions.md judge the same data.
_bench = load_script("decisions/drift")
KINDS: dict[str, str] = _bench.KINDS
WIDE: dict[str, str] = _bench.WIDE
dataset = _bench._dataset
config = _bench.drift_config


def zipf(k: int) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1)
    return np.asarray(w / w.sum())


def categorical_window(rng: np.random.Generator, k: int, n: int) -> pd.DataFrame:
    names = [f"c{i:03d}" for i in range(k)]
    codes = rng.choice(k, size=n, p=zipf(k))
    return pd.DataFrame({"c": pd.Categorical.from_codes(codes, categories=names)})


@pytest.mark.parametrize("k", [2, 50, 500])
@pytest.mark.parametrize("n", [200, 1000, 100_000])
def test_a_categorical_feature_false_alarms_at_most_1pct_at_any_n_and_cardinality(
    k: int, n: int
) -> None:
    """Zipf-distributed categories (many rare ones: the reference misses some at small n)."""
    rng = np.random.default_rng(1000 * k + n)
    cfg = config({"c": "categorical"})
    alarms = 0
    for _ in range(WINDOWS):
        profile = build_profile(categorical_window(rng, k, n), cfg)
        report = detect_drift(profile, categorical_window(rng, k, n), cfg)
        alarms += report.features[0].drifted
    assert alarms <= MAX_ALARMS


@pytest.mark.parametrize("n", [200, 1000, 100_000])
def test_a_numeric_feature_false_alarms_at_most_1pct_at_any_n(n: int) -> None:
    """Skewed values with ties (lognormal rounded to 2 digits)."""
    rng = np.random.default_rng(n)
    cfg = config({"x": "numeric"})

    def window() -> pd.DataFrame:
        return pd.DataFrame({"x": np.round(rng.lognormal(0.0, 1.0, n), 2)})

    alarms = 0
    for _ in range(WINDOWS):
        report = detect_drift(build_profile(window(), cfg), window(), cfg)
        alarms += report.features[0].drifted
    assert alarms <= MAX_ALARMS


# --- a dataset at the defaults ---------------------------------------------------------------


def dataset_profile(n: int, kinds: dict[str, str] = KINDS) -> tuple[ReferenceProfile, Config]:
    cfg = config(kinds)
    df, scores = dataset(n, seed=1, kinds=kinds)
    labels = (np.random.default_rng(2).random(n) < scores).astype(int)
    # One feature carries 60% of the importance: the weighted share fires on it alone.
    importances = {name: (0.6 if name == "x0" else 0.4 / (len(kinds) - 1)) for name in kinds}
    profile = build_profile(
        df, cfg, scores=scores, labels=labels, classes=[0, 1], importances=importances
    )
    return profile, cfg


@pytest.mark.parametrize("kinds", [KINDS, WIDE], ids=["12 features", "6 wide features"])
def test_a_dataset_at_n_2000_false_alarms_at_most_1pct_at_the_defaults(
    kinds: dict[str, str],
) -> None:
    """Every signal counts: the feature share, the weighted share and prediction drift."""
    profile, cfg = dataset_profile(2000, kinds)
    alarms = 0
    for seed in range(100, 100 + WINDOWS):
        df, scores = dataset(2000, seed, kinds=kinds)
        alarms += detect_drift(profile, df, cfg, scores=scores).drift_detected
    assert alarms <= MAX_ALARMS


def test_a_shift_of_a_fifth_of_a_standard_deviation_is_caught_at_n_10000() -> None:
    profile, cfg = dataset_profile(10_000)
    caught = windows = 0
    for seed in range(200, 220):
        df, _ = dataset(10_000, seed, shift=0.2)
        report = detect_drift(profile, df, cfg)
        windows += 1
        caught += "x0" in report.drifted_features
    assert caught >= 0.9 * windows


def test_the_null_threshold_is_reported_per_feature() -> None:
    profile, cfg = dataset_profile(2000)
    df, scores = dataset(2000, seed=300)
    report = detect_drift(profile, df, cfg, scores=scores)
    for f in report.features:
        if f.test == "distance":
            assert f.null_threshold is not None and f.null_threshold > 0.0
    # 200 categories at 2,000 rows: noise alone reaches past Jensen-Shannon's 0.1.
    shop = next(f for f in report.features if f.feature == "shop")
    assert shop.statistic is not None and shop.statistic > 0.1 and not shop.drifted
    assert shop.null_threshold is not None and shop.null_threshold > shop.statistic
    doc = json.loads(report.to_json())
    assert {f["feature"]: f["null_threshold"] for f in doc["features"]}["shop"] == pytest.approx(
        shop.null_threshold
    )
    assert "(null " in report.markdown()


# --- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1e-6, 1e6])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_scaling_a_column_keeps_its_verdict_and_statistic(factor: float, shift: float) -> None:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"x": rng.normal(5.0, 1.0, 5000)})
    cur = pd.DataFrame({"x": rng.normal(5.0 + shift, 1.0, 5000)})
    cfg = config({"x": "numeric"})
    plain = detect_drift(build_profile(ref, cfg), cur, cfg).features[0]
    scaled = detect_drift(build_profile(ref * factor, cfg), cur * factor, cfg).features[0]
    assert scaled.drifted == plain.drifted == (shift > 0)
    assert scaled.statistic == pytest.approx(plain.statistic, rel=1e-6)
    assert scaled.null_threshold == pytest.approx(plain.null_threshold, rel=1e-6)


@pytest.mark.parametrize("factor", [1e-6, 1.0, 1e6])
def test_a_constant_reference_is_scaled_by_its_own_magnitude(factor: float) -> None:
    cfg = config({"x": "numeric"})
    profile = build_profile(pd.DataFrame({"x": np.full(2000, 3.0 * factor)}), cfg)
    same = detect_drift(profile, pd.DataFrame({"x": np.full(2000, 3.0 * factor)}), cfg)
    moved = detect_drift(profile, pd.DataFrame({"x": np.full(2000, 3.3 * factor)}), cfg)
    assert not same.features[0].drifted
    assert moved.features[0].drifted
    assert moved.features[0].statistic == pytest.approx(0.3 / (1e-3 * 3.0))


# --- the label-free estimate --------------------------------------------------------------------


def scored(n: int, seed: int, overconfident: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows, the model's positive-class probabilities, and labels drawn from the true ones.

    The overconfident model pushes the true log-odds three times further from zero."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(0.0, 1.0, n)})
    logit = 1.2 * df["x"].to_numpy()
    truth = 1.0 / (1.0 + np.exp(-logit))
    labels = (rng.random(n) < truth).astype(int)
    scores = 1.0 / (1.0 + np.exp(-(3.0 if overconfident else 1.0) * logit))
    return df, scores, labels


def estimate_profile(overconfident: bool, calibrate: bool) -> tuple[ReferenceProfile, Config]:
    cfg = config({"x": "numeric"}, calibrate_estimate=calibrate)
    df, scores, labels = scored(4000, 1, overconfident)
    return build_profile(df, cfg, scores=scores, labels=labels, classes=[0, 1]), cfg


def test_an_uncalibrated_estimate_of_a_misspecified_model_is_flagged() -> None:
    profile, cfg = estimate_profile(overconfident=True, calibrate=False)
    gap = profile.estimated_accuracy - profile.metrics["accuracy"]  # type: ignore[operator]
    assert gap > 0.05  # the overconfident model promises more than it delivers
    df, scores, _ = scored(2000, 2, overconfident=True)
    report = detect_drift(profile, df, cfg, scores=scores)
    assert len(report.warnings) == 1 and "label-free accuracy estimate" in report.warnings[0]
    assert "Warning" in report.markdown() and report.to_dict()["warnings"] == report.warnings


def test_calibration_makes_the_estimate_of_a_misspecified_model_hold() -> None:
    profile, cfg = estimate_profile(overconfident=True, calibrate=True)
    assert profile.estimate_calibration is not None
    measured = profile.metrics["accuracy"]
    assert abs(profile.estimated_accuracy - measured) <= 0.02  # type: ignore[operator]
    df, scores, labels = scored(4000, 3, overconfident=True)
    report = detect_drift(profile, df, cfg, scores=scores)
    assert report.warnings == []
    accuracy = float(np.mean((scores >= 0.5) == labels))
    assert report.estimated_performance is not None
    assert abs(report.estimated_performance.value - accuracy) <= 0.02


def test_a_calibrated_model_needs_no_warning_even_uncalibrated() -> None:
    profile, cfg = estimate_profile(overconfident=False, calibrate=False)
    df, scores, _ = scored(2000, 4, overconfident=False)
    assert detect_drift(profile, df, cfg, scores=scores).warnings == []


def test_a_profile_written_without_a_calibration_still_loads() -> None:
    profile, cfg = estimate_profile(overconfident=False, calibrate=True)
    raw = json.loads(profile.to_json())
    del raw["estimate_calibration"]
    older = ReferenceProfile.from_json(json.dumps(raw))
    assert older.estimate_calibration is None
    df, scores, _ = scored(500, 5, overconfident=False)
    assert detect_drift(older, df, cfg, scores=scores).estimated_performance is not None


def test_a_drift_config_alone_judges_a_hand_built_profile() -> None:
    """The null threshold needs only the counts: a profile built by hand works as well."""
    k = 50
    rng = np.random.default_rng(9)
    counts = np.bincount(rng.choice(k, size=1000, p=zipf(k)), minlength=k)
    cats = tuple(f"c{i:03d}" for i in range(k) if counts[i] > 0)
    ref = CategoricalProfile(int(counts.sum()), 0, cats, counts[counts > 0].astype(np.int64))
    profile = ReferenceProfile("classification", 1000, {"c": ref}, 10, 10_000)
    f = detect_drift(profile, categorical_window(rng, k, 1000), DriftConfig()).features[0]
    assert f.null_threshold is not None and f.statistic is not None
    assert f.statistic > 0.1 and not f.drifted  # above the old fixed threshold: noise


# --- the null thresholds themselves ----------------------------------------------------------


def test_the_jensen_shannon_null_matches_its_chi_square_limit_at_large_n() -> None:
    """With every category well filled, 8 ln2 JS^2 / (1/n + 1/m) tends to chi-square(k-1)."""
    from scipy.stats import chi2

    from retrain.drift._methods import Comparison
    from retrain.drift._null import null_threshold

    k, n = 50, 100_000
    rng = np.random.default_rng(11)
    ref, cur = rng.multinomial(n, np.full(k, 1 / k)), rng.multinomial(n, np.full(k, 1 / k))
    c = Comparison("categorical", np.append(ref, 0), np.append(cur, 0))
    limit = np.sqrt(chi2.ppf(0.99, k - 1) * (2 / n) / (8 * np.log(2)))
    assert null_threshold("jensenshannon", c, 0.01) == pytest.approx(limit, rel=0.05)


def test_the_wasserstein_null_bounds_the_simulated_quantile_without_overshooting_much() -> None:
    from retrain.drift._methods import METHODS, Comparison
    from retrain.drift._null import null_threshold

    rng = np.random.default_rng(12)
    n = 2000
    ref = np.sort(rng.normal(0.0, 1.0, n))

    def comparison(cur: np.ndarray) -> Comparison:
        return Comparison(
            "numeric", np.zeros(1), np.zeros(1), ref, np.sort(cur), ref_n=n, ref_scale=ref.std()
        )

    simulated = [
        METHODS["wasserstein"](comparison(rng.normal(0.0, 1.0, n))).statistic for _ in range(400)
    ]
    # The window against a fixed reference: the reference's own noise is part of the bound.
    bound = null_threshold("wasserstein", comparison(rng.normal(0.0, 1.0, n)), 0.01)
    assert bound is not None
    assert np.quantile(simulated, 0.99) < bound < 2.5 * np.quantile(simulated, 0.99)
