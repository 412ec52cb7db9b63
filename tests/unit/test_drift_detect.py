"""Verdicts that mean something at any n, overrides that stay local, and dataset signals."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, config_from_dict
from retrain.drift import (
    DriftReport,
    ReferenceProfile,
    build_profile,
    check_performance,
    detect_drift,
    estimate_performance,
    permutation_importance,
)
from retrain.errors import ValidationError

KINDS = {"x": "numeric", "z": "numeric", "c": "categorical", "d": "categorical"}
CATS = np.array([f"c{i:02d}" for i in range(12)])
CAT_P = np.linspace(1.0, 3.0, 12) / np.linspace(1.0, 3.0, 12).sum()


def config(kinds: dict[str, str] = KINDS, task: str = "classification", **drift: Any) -> Config:
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


def frame(n: int, seed: int, shift: float = 0.0, cat_p: np.ndarray = CAT_P) -> pd.DataFrame:
    """x ~ N(shift, 1); z lognormal rounded to 2 digits (ties); c 12 categories; d 3 categories."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "z": np.round(rng.lognormal(0.0, 1.0, n), 2),
            "c": pd.Series(CATS[rng.choice(12, size=n, p=cat_p)], dtype="str"),
            "d": pd.Series(np.array(["u", "v", "w"])[rng.integers(0, 3, n)], dtype="str"),
        }
    )


def by_name(report: DriftReport) -> dict[str, Any]:
    return {f.feature: f for f in report.features}


# --- the large-n problem (evidentlyai/evidently#50) -----------------------------------------------

MILLION = 1_000_000


@pytest.fixture(scope="module")
def million() -> tuple[ReferenceProfile, pd.DataFrame]:
    """A reference profile of a million rows and an independent million from the same law."""
    return build_profile(frame(MILLION, seed=1), config()), frame(MILLION, seed=2)


@pytest.mark.parametrize(
    "drift",
    [
        {},  # the defaults: wasserstein and jensenshannon
        {"numeric_method": "psi", "categorical_method": "psi"},
        {"numeric_method": "jensenshannon", "categorical_method": "linf"},
    ],
)
def test_identical_distributions_do_not_drift_at_a_million_rows(
    million: tuple[ReferenceProfile, pd.DataFrame], drift: dict[str, str]
) -> None:
    profile, current = million
    report = detect_drift(profile, current, config(**drift))
    assert [f.drifted for f in report.features] == [False] * 4
    assert not any(f.warning for f in report.features)
    assert not report.drift_detected and report.fired == []
    # Far below the thresholds, not just under them.
    assert max(f.strength for f in report.features) < 0.2


def test_a_negligible_shift_at_a_million_rows_is_significant_but_not_drift() -> None:
    """A 0.02-sigma shift: KS calls it 'significant' (p ~ 1e-20), the effect size does not.

    Every value, not a sample (`max_sample_rows: null`): the p-value at n = 1M is the point.
    """
    whole = config(max_sample_rows=None)
    profile = build_profile(frame(MILLION, seed=1), whole)
    shifted = frame(MILLION, seed=3, shift=0.02)
    x = by_name(detect_drift(profile, shifted, whole))["x"]
    assert x.method == "wasserstein" and not x.drifted
    assert x.statistic == pytest.approx(0.02, abs=0.005)
    by_ks = config(max_sample_rows=None, features={"x": {"method": "ks"}})
    ks = by_name(detect_drift(profile, shifted, by_ks))["x"]
    assert ks.p_value < 1e-12 and ks.drifted  # what a p-value test would have said


def test_a_real_shift_at_a_million_rows_is_drift(
    million: tuple[ReferenceProfile, pd.DataFrame],
) -> None:
    profile, _ = million
    moved = frame(MILLION, seed=4, shift=0.25, cat_p=CAT_P[::-1])
    report = detect_drift(profile, moved, config())
    assert [f.feature for f in report.features if f.drifted] == ["x", "c"]
    assert report.fired == ["feature_share"]  # 2 of 4 = the default share of 0.5


# --- small samples --------------------------------------------------------------------------------


def test_small_samples_use_ks_and_null_thresholds_with_a_bonferroni_alpha() -> None:
    profile = build_profile(frame(5000, seed=5), config())
    current = frame(300, seed=6, shift=0.3)
    report = detect_drift(profile, current, config())
    for f in report.features:
        if f.kind == "numeric":
            assert (f.method, f.test) == ("ks", "p_value")
            assert f.alpha == pytest.approx(0.01 / 4)
            assert f.drifted == (f.p_value < 0.01 / 4)
        else:  # chi-square p-values are wrong on sparse tables: the distance with its null
            assert (f.method, f.test) == ("jensenshannon", "distance")
            assert f.null_threshold is not None
            assert f.drifted == (f.statistic >= max(f.threshold, f.null_threshold))
    # 12 categories at 300 rows: the noise alone exceeds the effect-size threshold.
    assert by_name(report)["c"].null_threshold > 0.1
    assert by_name(report)["x"].drifted
    plain = detect_drift(profile, current, config(bonferroni=False))
    assert {f.alpha for f in plain.features if f.kind == "numeric"} == {0.01}
    loose = by_name(plain)["c"].null_threshold
    assert loose is not None and loose < by_name(report)["c"].null_threshold
    # At or above small_sample in both samples, the distances decide.
    large = detect_drift(profile, frame(1000, seed=6), config())
    assert {f.method for f in large.features} == {"wasserstein", "jensenshannon"}


def test_false_alarms_stay_rare_on_small_windows_from_the_same_law() -> None:
    """Bonferroni keeps the chance that any of 4 features false-alarms near 5%."""
    profile = build_profile(frame(3000, seed=7), config())
    alarms = {True: 0, False: 0}
    for seed in range(100, 180):
        current = frame(200, seed=seed)
        for bonferroni in (True, False):
            report = detect_drift(profile, current, config(bonferroni=bonferroni))
            alarms[bonferroni] += any(f.drifted for f in report.features)
    assert alarms[True] <= 8  # of 80 windows: about 5% expected
    assert alarms[False] > alarms[True]


# --- thresholds and overrides (evidentlyai/evidently#678) -----------------------------------------


def test_a_per_feature_override_changes_that_feature_only() -> None:
    profile = build_profile(frame(2000, seed=8), config())
    cfg = config(features={"x": {"method": "psi", "threshold": 0.2}, "c": {"method": "linf"}})
    f = by_name(detect_drift(profile, frame(2000, seed=9), cfg))
    assert (f["x"].method, f["x"].threshold) == ("psi", 0.2)
    assert (f["c"].method, f["c"].threshold) == ("linf", 0.3)  # the method's own default
    assert (f["z"].method, f["z"].threshold) == ("wasserstein", 0.1)
    assert (f["d"].method, f["d"].threshold) == ("jensenshannon", 0.1)


def test_a_method_threshold_merges_with_the_defaults() -> None:
    cfg = config(thresholds={"jensenshannon": 0.2}, warn_thresholds={"psi": 0.05})
    assert cfg.drift.thresholds == {
        "ks": 0.01,
        "wasserstein": 0.1,
        "psi": 0.25,
        "jensenshannon": 0.2,
        "linf": 0.3,
        "chi2": 0.01,
    }
    assert cfg.drift.warn_thresholds == {"psi": 0.05}
    profile = build_profile(frame(2000, seed=8), config())
    f = by_name(detect_drift(profile, frame(2000, seed=9), cfg))
    assert f["c"].threshold == 0.2 and f["x"].threshold == 0.1


def test_a_distance_at_the_threshold_is_drift_and_psi_has_a_warning_band() -> None:
    ref = frame(4000, seed=10)
    cur = frame(4000, seed=11, shift=0.3)
    profile = build_profile(ref, config())
    psi = by_name(detect_drift(profile, cur, config(features={"x": {"method": "psi"}})))["x"]
    assert 0.1 <= psi.statistic < 0.25  # a 0.3-sigma shift: moderate
    assert (psi.drifted, psi.warning, psi.verdict()) == (False, True, "warning")
    at = config(features={"x": {"method": "psi", "threshold": psi.statistic}})
    assert by_name(detect_drift(profile, cur, at))["x"].drifted
    above = config(features={"x": {"method": "psi", "threshold": psi.statistic * 1.001}})
    assert not by_name(detect_drift(profile, cur, above))["x"].drifted


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"features": {"x": {"threshold": 0.2}}}, "drift.features.x: .*needs the method"),
        ({"features": {"x": {"method": "nope"}}}, "drift.features.x.method: .*unknown drift"),
        ({"numeric_method": "chi2"}, "drift.numeric_method: .*does not apply to numeric"),
        ({"thresholds": {"ks": 1.5}}, "drift.thresholds: .*alpha must be < 1"),
        ({"thresholds": {"psi": 0.05}}, "warn_thresholds.psi .* is above thresholds.psi"),
        ({"prediction_threshold": 0.2}, "prediction_threshold needs prediction_method"),
        ({"drift_shar": 0.2}, "drift.drift_shar: unknown key"),
    ],
)
def test_bad_drift_config_is_an_error_naming_the_key(drift: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**drift)


def test_overrides_that_do_not_fit_the_profile_are_errors_naming_them() -> None:
    profile = build_profile(frame(500, seed=12), config())
    with pytest.raises(ValidationError, match=r"drift\.features\.nope: not a feature"):
        detect_drift(profile, frame(500, seed=13), config(features={"nope": {"method": "psi"}}))
    with pytest.raises(ValidationError, match=r"drift\.features\.c\.method: 'ks' does not apply"):
        detect_drift(profile, frame(500, seed=13), config(features={"c": {"method": "ks"}}))
    with pytest.raises(ValidationError, match="lacks feature column 'z'"):
        detect_drift(profile, frame(500, seed=13).drop(columns="z"), config())
    with pytest.raises(ValidationError, match="scores have 3 rows"):
        detect_drift(profile, frame(500, seed=13), config(), scores=[0.1, 0.2, 0.3])


def test_an_all_missing_current_column_is_reported_not_judged() -> None:
    profile = build_profile(frame(500, seed=14), config())
    current = frame(500, seed=15)
    current["x"] = np.nan
    x = by_name(detect_drift(profile, current, config()))["x"]
    assert (x.statistic, x.drifted, x.verdict(), x.null_rate_cur) == (None, False, "n/a", 1.0)
    assert "no non-null values in the current window" in x.note


# --- dataset-level signals ------------------------------------------------------------------------


def scored_profile(
    n: int = 2000, seed: int = 20, importances: dict[str, float] | None = None
) -> tuple[ReferenceProfile, Config]:
    """A profile with confident, calibrated reference scores (labels drawn from them)."""
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(n) < 0.5, rng.uniform(0.02, 0.1, n), rng.uniform(0.9, 0.98, n))
    y = (rng.random(n) < p).astype(int)
    cfg = config()
    return (
        build_profile(
            frame(n, seed), cfg, scores=p, labels=y, classes=[0, 1], importances=importances
        ),
        cfg,
    )


def test_each_signal_says_why_it_is_unavailable() -> None:
    profile = build_profile(frame(1000, seed=21), config())
    report = detect_drift(profile, frame(1000, seed=22), config())
    assert {s.name: s.available for s in report.signals} == {
        "feature_share": True,
        "weighted_feature_share": False,
        "prediction_drift": False,
        "performance_drop": False,
        "estimated_performance_drop": False,
    }
    assert report.signal("performance_drop").detail == "no labels yet"
    assert report.signal("weighted_feature_share").detail == "no feature importances in the profile"


def test_the_importance_weighted_share_fires_when_an_important_feature_drifts() -> None:
    profile, cfg = scored_profile(importances={"x": 0.7, "z": 0.1, "c": 0.1, "d": 0.1})
    report = detect_drift(profile, frame(2000, seed=23, shift=0.5), cfg)
    assert report.drifted_features == ["x"]
    assert report.signal("feature_share").value == 0.25 and not report.signal("feature_share").fired
    weighted = report.signal("weighted_feature_share")
    assert weighted.value == pytest.approx(0.7) and weighted.fired
    assert report.fired == ["weighted_feature_share"]


def test_prediction_drift_and_the_label_free_estimate_fire_before_labels() -> None:
    profile, cfg = scored_profile()
    rng = np.random.default_rng(24)
    unsure = rng.uniform(0.35, 0.65, 2000)  # the model lost its confidence
    report = detect_drift(profile, frame(2000, seed=25), cfg, scores=unsure)
    assert report.prediction is not None and report.prediction.drifted
    assert report.signal("prediction_drift").fired
    est = report.signal("estimated_performance_drop")
    assert est.fired and est.value == pytest.approx(profile.estimated_accuracy - 0.5665, abs=0.02)
    assert report.fired == ["prediction_drift", "estimated_performance_drop"]
    steady = detect_drift(profile, frame(2000, seed=25), cfg, scores=scored_scores(2000, 26)[0])
    assert steady.fired == []


def scored_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(n) < 0.5, rng.uniform(0.02, 0.1, n), rng.uniform(0.9, 0.98, n))
    return p, (rng.random(n) < p).astype(int)


def test_performance_drop_fires_on_labels_that_disagree_with_the_model() -> None:
    profile, cfg = scored_profile()
    scores, labels = scored_scores(1500, 27)
    good = detect_drift(profile, frame(1500, seed=28), cfg, scores=scores, labels=labels)
    assert good.performance is not None and not good.signal("performance_drop").fired
    assert good.performance.lower <= good.performance.current <= good.performance.upper
    flipped = labels.astype(float)
    flipped[:600] = 1 - flipped[:600]  # a concept change the scores cannot see
    flipped[600:700] = np.nan  # labels still missing: left out
    bad = detect_drift(profile, frame(1500, seed=28), cfg, scores=scores, labels=flipped)
    perf = bad.performance
    assert perf is not None and perf.n == 1400 and perf.metric == "roc_auc"
    assert perf.drop > 0.05 and perf.drop_lower > 0
    assert bad.fired == ["performance_drop"]  # the estimate, blind to concept change, is quiet


def test_a_drift_config_alone_is_enough_to_detect() -> None:
    profile, cfg = scored_profile()
    scores, labels = scored_scores(500, 29)
    whole = detect_drift(profile, frame(500, seed=30), cfg, scores=scores, labels=labels)
    part = detect_drift(profile, frame(500, seed=30), cfg.drift, scores=scores, labels=labels)
    # The same decision; only the bootstrap seed differs (the config's, or 0).
    assert [(s.name, s.fired, s.value) for s in whole.signals] == [
        (s.name, s.fired, s.value) for s in part.signals
    ]
    assert part.performance is not None and part.performance.metric == "roc_auc"


# --- the report -----------------------------------------------------------------------------------


def test_report_json_and_markdown_explain_the_decision() -> None:
    profile, cfg = scored_profile(importances={"x": 0.4, "z": 0.2, "c": 0.3, "d": 0.1})
    current = frame(2000, seed=31, shift=0.6, cat_p=CAT_P[::-1])
    current.loc[:99, "c"] = "brand-new"
    current.loc[100:149, "x"] = np.nan
    report = detect_drift(profile, current, cfg, scores=np.full(2000, 0.5))
    d = json.loads(report.to_json())  # strict JSON
    assert d["drift_detected"] is True
    assert d["fired"] == report.fired and "feature_share" in d["fired"]
    c = next(f for f in d["features"] if f["feature"] == "c")
    assert c["unseen_categories"] == {"brand-new": 100} and c["unseen_rows"] == 100
    x = next(f for f in d["features"] if f["feature"] == "x")
    assert x["null_rate_cur"] == pytest.approx(0.025) and x["drifted"] is True
    assert set(x) >= {"method", "statistic", "threshold", "p_value", "n_ref", "n_cur"}

    md = report.markdown()
    assert "**Drift detected**" in md
    assert "| feature | kind | method | statistic | threshold | verdict |" in md
    assert "#### `x`: wasserstein" in md and "#### `c`: jensenshannon" in md
    assert "(unseen)" in md and "brand-new (100)" in md
    assert md.count("```text") == 3  # the two drifted features and the model's scores
    assert "estimated accuracy without labels" in md
    assert report.summary().startswith("drift: 2/4 features drifted (")


# --- model-side helpers ---------------------------------------------------------------------------


def test_estimate_performance_is_the_mean_top_probability_with_a_binomial_interval() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]])
    est = estimate_performance(proba, confidence=0.9)
    top = np.array([0.9, 0.8, 0.5, 0.7])
    assert est.value == pytest.approx(top.mean())
    half = 1.6448536269514722 * np.sqrt(np.sum(top * (1 - top))) / 4
    assert (est.lower, est.upper) == pytest.approx((top.mean() - half, min(1.0, top.mean() + half)))
    assert estimate_performance(np.array([0.1, 0.8, 0.5, 0.3])).value == pytest.approx(
        np.mean([0.9, 0.8, 0.5, 0.7])
    )
    with pytest.raises(ValidationError, match=r"probabilities in \[0, 1\]"):
        estimate_performance(np.array([0.2, 1.7]))


def test_the_accuracy_of_a_calibrated_model_falls_inside_the_estimate_interval() -> None:
    rng = np.random.default_rng(32)
    covered = 0
    for _ in range(200):
        p = rng.uniform(0.0, 1.0, 300)
        y = rng.random(300) < p
        est = estimate_performance(p)
        covered += est.lower <= np.mean((p >= 0.5) == y) <= est.upper
    assert 180 <= covered <= 198  # 95% intervals: about 190 of 200


def test_check_performance_orients_the_drop_for_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(33)
    y = rng.normal(size=400)
    pred = y + rng.normal(0, 0.5, 400)
    check = check_performance(
        "regression", "rmse", 0.3, y, pred, None, confidence=0.9, n_boot=100, seed=1
    )
    assert check is not None
    assert check.current == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)))
    assert check.drop == pytest.approx(check.current - 0.3) and check.drop > 0
    assert check.drop_lower <= check.drop <= check.drop_upper


def test_permutation_importance_finds_the_column_the_score_uses() -> None:
    rng = np.random.default_rng(34)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    target = X["a"].to_numpy()
    calls = []

    def predict(df: pd.DataFrame) -> np.ndarray:
        calls.append(len(df))
        return df["a"].to_numpy()  # a model that uses only column a

    def score(scores: np.ndarray) -> float:
        return -float(np.mean((scores - target) ** 2))

    shares = permutation_importance(predict, X, score, repeats=2, seed=0)
    assert shares == {"a": 1.0, "b": 0.0}
    assert calls == [300 * (1 + 2 * 2)]  # one call on every shuffled copy stacked


def test_regression_models_get_prediction_drift_and_a_metric_check_but_no_estimate() -> None:
    rng = np.random.default_rng(35)
    y = rng.normal(size=1500)
    pred = y + rng.normal(0, 0.3, 1500)
    cfg = config(task="regression")
    profile = build_profile(frame(1500, seed=36), cfg, scores=pred, labels=y)
    assert profile.metric == "rmse" and profile.estimated_accuracy is None
    worse = pred[:1000] + rng.normal(0, 1.0, 1000)  # a model gone noisy
    report = detect_drift(profile, frame(1000, seed=37), cfg, scores=worse, labels=y[:1000])
    assert report.performance is not None and report.performance.metric == "rmse"
    assert report.performance.drop > 0.5 and report.signal("performance_drop").fired
    assert report.prediction is not None and report.prediction.method == "wasserstein"
    est = report.signal("estimated_performance_drop")
    assert (est.available, est.detail) == (False, "label-free estimate is for classifiers")


def test_multiclass_scores_compare_the_model_confidence() -> None:
    rng = np.random.default_rng(38)
    proba = rng.dirichlet([8.0, 1.0, 1.0], size=1200)[:, rng.permutation(3)]
    labels = np.array(["a", "b", "c"])[[rng.choice(3, p=row) for row in proba]]
    cfg = config()
    profile = build_profile(
        frame(1200, seed=39), cfg, scores=proba, labels=labels, classes=["a", "b", "c"]
    )
    assert profile.scores is not None
    assert np.array_equal(profile.scores.sample, np.sort(proba.max(axis=1)))
    assert profile.classes == ["a", "b", "c"] and profile.metric == "roc_auc"
    flat = rng.dirichlet([2.0, 2.0, 2.0], size=1200)  # far less confident
    report = detect_drift(profile, frame(1200, seed=40), cfg, scores=flat, labels=labels)
    assert report.fired == [
        "prediction_drift",
        "performance_drop",
        "estimated_performance_drop",
    ]
