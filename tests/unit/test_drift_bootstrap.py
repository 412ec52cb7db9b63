"""The performance check's bootstrap: the same resamples as one metric call per resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, roc_auc_score

from retrain.drift import check_performance
from retrain.evaluation.metrics import resampled_metric


def _percentiles(values: list[float], confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lower), float(upper)


def test_interval_matches_scikit_learn_on_each_resample_of_the_same_draws() -> None:
    rng = np.random.default_rng(5)
    n = 301  # odd: a draw stream that differs between one call per resample and one in all
    p = rng.uniform(0.0, 1.0, n)
    y = np.where(rng.random(n) < p, "yes", "no").astype(object)
    y[::17] = None  # labels not arrived yet are left out
    seed, n_boot = 3, 150
    check = check_performance(
        "classification",
        "roc_auc",
        0.9,
        y,
        p,
        ["no", "yes"],
        confidence=0.9,
        n_boot=n_boot,
        seed=seed,
    )
    assert check is not None
    known = np.array([v is not None for v in y])
    yk, pk = (y[known] == "yes"), p[known]
    draws = np.random.default_rng(seed)
    expected = []
    for _ in range(n_boot):
        pick = draws.integers(0, len(yk), size=len(yk))
        expected.append(roc_auc_score(yk[pick], pk[pick]))
    lower, upper = _percentiles(expected, 0.9)
    assert check.current == pytest.approx(roc_auc_score(yk, pk), abs=1e-12)
    assert check.lower == pytest.approx(lower, abs=1e-12)
    assert check.upper == pytest.approx(upper, abs=1e-12)
    assert check.n == int(known.sum())


def test_resampled_metric_weights_rows_by_how_often_a_resample_drew_them() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(size=50)
    pred = y + rng.normal(0.0, 0.4, 50)
    picks = [rng.integers(0, 50, size=50) for _ in range(7)]
    got = resampled_metric("regression", "mae", y, pred, None, picks)
    want = [mean_absolute_error(y[pick], pred[pick]) for pick in picks]
    assert got == pytest.approx(want, abs=1e-12)


def test_resampled_metric_is_nan_where_a_resample_lacks_a_class() -> None:
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    picks = [np.array([0, 1, 0, 1]), np.array([0, 2, 3, 1])]
    got = resampled_metric("classification", "roc_auc", y, scores, [0, 1], picks)
    assert np.isnan(got[0])
    assert got[1] == pytest.approx(roc_auc_score(y, scores))
