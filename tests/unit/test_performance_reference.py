"""The labelled performance signal counts the reference's own sampling error: a metric recorded
at training on few rows (a dozen frauds) is not taken as exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrain.drift import (
    ReferenceProfile,
    check_performance,
    metric_sd,
    performance_against_profile,
    performance_fired,
)
from retrain.evaluation.metrics import compute_metrics
from retrain.settings.drift import DriftConfig

DC = DriftConfig()


def _fraud_like(rng: np.random.Generator, n: int, positives: int, separation: float):  # type: ignore[no-untyped-def]
    y = np.zeros(n, dtype=np.int64)
    y[:positives] = 1
    return y, separation * y + rng.standard_normal(n)


def _profile(y: np.ndarray, s: np.ndarray, sd: float | None) -> ReferenceProfile:
    ap = compute_metrics("classification", y, s, [0, 1], ("average_precision",))
    return ReferenceProfile(
        task="classification",
        rows=len(y),
        features={},
        bins=0,
        sample_size=0,
        classes=[0, 1],
        metric="average_precision",
        metrics={"average_precision": ap["average_precision"]},
        metric_sd=sd,
    )


def test_a_perfect_score_on_a_dozen_positives_is_not_exact() -> None:
    rng = np.random.default_rng(1)
    y, s = _fraud_like(rng, 1500, 12, 12.0)  # perfectly separated: AP 1.0 in every resample
    assert compute_metrics("classification", y, s, [0, 1], ("average_precision",))[
        "average_precision"
    ] == pytest.approx(1.0)
    sd = metric_sd("classification", "average_precision", y, s, [0, 1], n_boot=200, seed=0)
    assert sd is not None and sd > 0.03
    # Many positives, an imperfect model: the bootstrap's own spread, small.
    y, s = _fraud_like(rng, 20_000, 6000, 1.5)
    big = metric_sd("classification", "average_precision", y, s, [0, 1], n_boot=200, seed=0)
    assert big is not None and 0.0 < big < 0.01


def test_the_reference_error_widens_the_drop_interval() -> None:
    rng = np.random.default_rng(2)
    y, s = _fraud_like(rng, 3000, 900, 1.2)
    kwargs = {"confidence": 0.95, "n_boot": 200, "seed": 0}
    bare = check_performance("classification", "roc_auc", 0.9, y, s, [0, 1], **kwargs)
    wide = check_performance(
        "classification", "roc_auc", 0.9, y, s, [0, 1], reference_sd=0.05, **kwargs
    )
    assert bare is not None and wide is not None
    assert wide.drop == bare.drop and wide.current == bare.current
    assert wide.drop_lower < bare.drop_lower and wide.drop_upper > bare.drop_upper
    # At least the reference's own 95% half-width on each side.
    assert wide.drop - wide.drop_lower >= 1.96 * 0.05
    assert wide.drop_upper - wide.drop >= 1.96 * 0.05


def _lucky_reference() -> tuple[np.ndarray, np.ndarray]:
    """One day's evaluation rows at training, 12 frauds, from a model whose true average
    precision is about 0.85: the first of the seeded draws that scored 0.93 or more (about
    one day in ten does)."""
    for seed in range(100):
        y, s = _fraud_like(np.random.default_rng(seed), 1500, 12, 3.6)
        ap = compute_metrics("classification", y, s, [0, 1], ("average_precision",))
        if ap["average_precision"] >= 0.93:
            return y, s
    raise AssertionError("no lucky draw in 100 seeds")


def test_a_lucky_reference_does_not_fire_on_an_unchanged_model_but_a_real_drop_does() -> None:
    y_ref, s_ref = _lucky_reference()
    sd = metric_sd("classification", "average_precision", y_ref, s_ref, [0, 1], n_boot=200, seed=0)
    # Later: the same model (same score distributions) on many labelled rows.
    rng = np.random.default_rng(7)
    y, s = _fraud_like(rng, 20_000, 200, 3.6)
    exact = performance_against_profile(
        _profile(y_ref, s_ref, None), y, s, primary="average_precision", dc=DC, seed=0
    )
    assert exact is not None and performance_fired(
        exact, DC
    )  # a false alarm, reference taken as exact
    counted = performance_against_profile(
        _profile(y_ref, s_ref, sd), y, s, primary="average_precision", dc=DC, seed=0
    )
    assert counted is not None and not performance_fired(counted, DC)
    # A new fraud pattern the model misses: a third of the frauds now look legitimate.
    y2, s2 = _fraud_like(rng, 20_000, 200, 3.6)
    s2[:67] = rng.standard_normal(67)
    dropped = performance_against_profile(
        _profile(y_ref, s_ref, sd), y2, s2, primary="average_precision", dc=DC, seed=0
    )
    assert dropped is not None and dropped.drop > 0.2 and performance_fired(dropped, DC)


def test_the_profile_keeps_the_reference_error_and_reads_profiles_without_it() -> None:
    rng = np.random.default_rng(4)
    y, s = _fraud_like(rng, 1000, 50, 2.0)
    profile = _profile(y, s, 0.031)
    assert ReferenceProfile.from_json(profile.to_json()).metric_sd == 0.031
    older = json.loads(profile.to_json())
    del older["metric_sd"]
    assert ReferenceProfile.from_json(json.dumps(older)).metric_sd is None


@pytest.mark.parametrize(
    ("metric", "n", "positives"),
    [("roc_auc", 1000, 300), ("roc_auc", 3000, 60), ("accuracy", 4000, 40)],
)
def test_away_from_the_boundary_the_error_is_the_metric_s_own_spread(
    metric: str, n: int, positives: int
) -> None:
    """`metric_sd` from one sample against the spread of the metric over many samples of the
    same model (Monte Carlo truth)."""
    rng = np.random.default_rng(5)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        y, s = _fraud_like(rng, n, positives, 2.0)
        return y, 1.0 / (1.0 + np.exp(-(s - 1.0) * 2.0))  # probabilities, for accuracy

    values = [
        compute_metrics("classification", *draw(), [0, 1], (metric,))[metric] for _ in range(400)
    ]
    truth = float(np.std(values, ddof=1))
    estimates = [
        metric_sd("classification", metric, *draw(), [0, 1], n_boot=200, seed=k) for k in range(5)
    ]
    for estimate in estimates:
        assert estimate is not None and 0.65 < estimate / truth < 1.4
