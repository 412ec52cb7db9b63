"""The performance check's bootstrap: the same resamples as one metric call per resample."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, roc_auc_score

from retrain.drift import check_performance
from retrain.evaluation import bootstrap
from retrain.evaluation.bootstrap import resampled_metric


def _percentiles(values: list[float], confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lower), float(upper)


@pytest.mark.parametrize("chunk_cells", [None, 1_000])  # 1,000 cells: 3 resamples a chunk
def test_interval_matches_scikit_learn_on_each_resample_of_the_same_draws(
    chunk_cells: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk_cells is not None:
        monkeypatch.setattr(bootstrap, "_CHUNK_CELLS", chunk_cells)
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


def test_check_holds_one_chunk_of_resamples_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2,000 resamples of 2,000 rows: all index arrays at once would be 32 MB; a chunk of
    # 20,000 cells (10 resamples) is 160 kB, so the peak must stay a small multiple of that.
    chunk_cells = 20_000
    monkeypatch.setattr(bootstrap, "_CHUNK_CELLS", chunk_cells)
    rng = np.random.default_rng(8)
    y = rng.normal(size=2_000)
    pred = y + rng.normal(0.0, 0.5, 2_000)
    tracemalloc.start()
    try:
        check = check_performance(
            "regression", "mae", 0.4, y, pred, None, confidence=0.9, n_boot=2_000, seed=1
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert check is not None and check.lower < check.current < check.upper
    assert peak < 16 * chunk_cells * 8, f"peak {peak / 1e6:.1f} MB"


def test_resampled_metric_weights_rows_by_how_often_a_resample_drew_them() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(size=50)
    pred = y + rng.normal(0.0, 0.4, 50)
    draws = np.random.default_rng(9)
    picks = [draws.integers(0, 50, size=50) for _ in range(7)]
    got = resampled_metric("regression", "mae", y, pred, None, np.random.default_rng(9), 7)
    want = [mean_absolute_error(y[pick], pred[pick]) for pick in picks]
    assert got == pytest.approx(want, abs=1e-12)


def test_resampled_metric_is_nan_where_a_resample_lacks_a_class() -> None:
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    got = resampled_metric(
        "classification", "roc_auc", y, scores, [0, 1], np.random.default_rng(0), 40
    )
    draws = np.random.default_rng(0)
    picks = [draws.integers(0, 4, size=4) for _ in range(40)]
    one_class = [len(set(y[pick])) == 1 for pick in picks]
    assert any(one_class) and not all(one_class)  # the seed gives both kinds of resample
    for value, pick, lacks in zip(got, picks, one_class, strict=True):
        if lacks:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(roc_auc_score(y[pick], scores[pick]), abs=1e-12)
