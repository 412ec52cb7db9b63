"""Gates on a handful of evaluation rows: decide on what the interval shows.

Below evaluation.min_rows only a failure to show a gain is unsettled (undecided): a gain the
interval shows still blesses, a regression or forgetting it shows still rejects. A degenerate
interval (every resample the same) is no evidence at all; an interval of a bounded metric's
gain stays within its range; a first model is compared with a constant prediction, and one the
rows cannot judge is deployed as not evaluated unless evaluation.deploy_undecided_first_model
is off.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline

from retrain.config import Config, config_from_dict
from retrain.evaluation.bootstrap import bootstrap_decline, bootstrap_difference
from retrain.evaluation.gates import GateInputs, decide, evaluate_challenger
from retrain.training.model import fit_model

# Six rows: the challenger ranks them perfectly, the champion poorly.
Y6 = np.array([0, 1, 0, 1, 1, 0])
GOOD6 = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3])
POOR6 = np.array([0.6, 0.4, 0.5, 0.9, 0.2, 0.1])


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy"])
def test_a_gain_interval_on_few_rows_stays_within_the_metrics_range(metric: str) -> None:
    # The t interval around the point, symmetric on the raw scale, reached past +1 here.
    _, lower, upper = bootstrap_difference(
        "classification", metric, Y6, GOOD6, POOR6, [0, 1], 500, 0.95, 0
    )
    assert -1.0 <= lower <= upper <= 1.0
    _, lower, upper = bootstrap_decline(
        "classification",
        metric,
        (Y6[:4], POOR6[:4]),
        (Y6, GOOD6),
        [0, 1],
        n=500,
        confidence=0.95,
        seed=0,
        stratify=False,
    )
    assert -1.0 <= lower <= upper <= 1.0


def test_six_rows_show_no_gain_so_the_challenger_is_undecided() -> None:
    # A perfect ranking against a poor one on six rows: the interval spans the whole range
    # (on the raw scale it reached past +1), so it shows no gain and, below min_rows, that
    # failure is unsettled rather than a rejection.
    point, lower, upper = bootstrap_difference(
        "classification", "roc_auc", Y6, GOOD6, POOR6, [0, 1], 500, 0.95, 0
    )
    r = decide(
        GateInputs("roc_auc", True, 0.5 + point, 0.5, (lower, upper), recent_rows=6, min_rows=500)
    )
    assert lower < 0 < point and r.undecided and not r.blessed, r.reason
    assert "6 recent evaluation rows, fewer than evaluation.min_rows 500" in r.reason


def test_a_degenerate_interval_is_undecided_not_a_pass() -> None:
    # Every resample gave the same gain (four rows, resamples of one class skipped): even with
    # min_rows met, a zero-width interval shows no spread to judge by.
    r = decide(GateInputs("roc_auc", True, 1.0, 0.5, (0.5, 0.5), recent_rows=4, min_rows=1))
    assert not r.blessed and r.undecided, r.reason
    assert "degenerate interval" in r.reason
    # Zero width at 0 (an identical model) is no degenerate case: it is no improvement.
    same = decide(GateInputs("roc_auc", True, 0.8, 0.8, (0.0, 0.0), recent_rows=4, min_rows=1))
    assert same.outcome == "rejected"
    # Nor does a degenerate interval below min_rows bless or reject: neither recent gate is
    # decided, the shown "gain" and the shown "regression" alike.
    for ci in ((0.5, 0.5), (-0.4, -0.4)):
        few = decide(GateInputs("roc_auc", True, 0.7, 0.7, ci, recent_rows=4, min_rows=500))
        assert few.undecided and "degenerate interval" in few.reason, few.reason
        assert [g.decided for g in few.gates if g.name.startswith("recent_")] == [False, False]


def test_a_degenerate_history_interval_is_not_judged() -> None:
    base: dict[str, Any] = {"recent_rows": 5000, "min_rows": 500}
    clean = decide(
        GateInputs("roc_auc", True, 0.90, 0.80, (0.05, 0.15), 0.70, 0.70, (0.1, 0.1), **base)
    )
    gate = next(g for g in clean.gates if g.name == "history_bounded_loss")
    assert not gate.decided and "not judged" in gate.detail
    assert clean.blessed, clean.reason  # as without history rows at all
    lost = decide(
        GateInputs(
            "roc_auc",
            True,
            0.90,
            0.80,
            (0.05, 0.15),
            0.50,
            0.90,
            (-0.4, -0.4),
            accept_forgetting_on_change=False,
            **base,
        )
    )
    assert lost.undecided and not lost.blessed, lost.reason


# --- end to end: the first model, and forgetting on few history rows ------------------------


def _cfg(**evaluation: Any) -> Config:
    return config_from_dict(
        {
            "name": "small",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": {"x1": "numeric", "x2": "numeric"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
            "deploy": {"deployment_name": "small"},
            "evaluation": {"bootstrap_samples": 200, **evaluation},
        }
    )


def _rows(n: int, seed: int, signal: float = 2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = np.where(rng.random(n) < expit(signal * x[:, 0]), "yes", "no")
    return pd.DataFrame(
        {"id": range(n), "ts": pd.Timestamp("2024-01-01"), "x1": x[:, 0], "x2": x[:, 1], "label": y}
    )


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    cfg = _cfg()
    train = _rows(2000, 1)
    # Learned from a feature that tells nothing about the label on the rows it is judged on.
    noise = train.assign(x1=train["x2"], x2=train["x1"])
    return {"good": fit_model(cfg, train), "noise": fit_model(cfg, noise)}


def test_a_first_model_no_better_than_a_constant_prediction_is_rejected(
    models: dict[str, Any],
) -> None:
    recent = _rows(800, 2)
    r = evaluate_challenger(_cfg(), models["noise"], None, recent, None, 0)
    assert r.outcome == "rejected", r.reason
    assert [g.name for g in r.gates if not g.passed] == ["baseline_improvement"]
    good = evaluate_challenger(_cfg(), models["good"], None, recent, None, 0)
    assert good.blessed and good.comparison["baseline_ci"][0] > 0, good.reason
    assert good.comparison["baseline"] == pytest.approx(0.5)  # a constant's AUC


def test_forgetting_shown_on_few_history_rows_is_a_rejection(models: dict[str, Any]) -> None:
    # The champion learned x1, the challenger x2; the recent rows follow x2 (600 of them), the
    # 60 history rows x1: the challenger's loss there is shown, on however few rows.
    cfg = _cfg(accept_forgetting_on_change=False)
    swap = {"x1": "x2", "x2": "x1"}
    recent = _rows(600, 7).rename(columns=swap)
    r = evaluate_challenger(cfg, models["noise"], models["good"], recent, _rows(60, 8), 0)
    budget = r.comparison["history_loss_budget"]
    assert r.comparison["history_loss_ci"][0] > budget  # shown beyond the budget
    assert r.outcome == "rejected", r.reason
    assert [g.name for g in r.gates if not g.passed] == ["history_bounded_loss"]
    # A challenger that forgets nothing on those 60 rows passes the guard, judged.
    same = evaluate_challenger(cfg, models["good"], models["good"], _rows(600, 7), _rows(60, 8), 0)
    gate = next(g for g in same.gates if g.name == "history_bounded_loss")
    assert gate.passed and gate.decided, gate.detail


def test_a_first_model_on_few_rows_is_judged_on_what_its_interval_shows(
    models: dict[str, Any],
) -> None:
    cfg = _cfg(deploy_undecided_first_model=False)
    # A gain over the constant prediction shown on 30 rows blesses, evaluated.
    good = evaluate_challenger(cfg, models["good"], None, _rows(30, 5), None, 0)
    assert good.comparison["baseline_ci"][0] > 0
    assert good.blessed and good.comparison["evaluated"] is True, good.reason
    # No gain shown on 30 rows (fewer than min_rows) is undecided, not a rejection.
    noise = evaluate_challenger(cfg, models["noise"], None, _rows(30, 3), None, 0)
    lower, upper = noise.comparison["baseline_ci"]
    assert lower < 0 < upper
    assert noise.undecided and not noise.blessed, noise.reason
    assert noise.comparison["evaluated"] is False
    assert "30 recent evaluation rows, fewer than evaluation.min_rows 500" in noise.reason
    # By default such a model is deployed, and its record says it was not evaluated.
    deployed = evaluate_challenger(_cfg(), models["noise"], None, _rows(30, 3), None, 0)
    assert deployed.blessed and deployed.comparison["evaluated"] is False
    assert "not evaluated" in deployed.reason


def test_a_first_model_shown_worse_than_a_constant_is_rejected_on_few_rows() -> None:
    # As a challenger's shown regression: the interval lies below the constant's value.
    r = decide(
        GateInputs(
            "roc_auc",
            True,
            0.30,
            recent_rows=60,
            min_rows=500,
            baseline_recent=0.5,
            baseline_ci=(-0.35, -0.05),
        )
    )
    assert r.outcome == "rejected", r.reason
    assert [g.name for g in r.gates if not g.passed] == ["baseline_improvement"]


def test_a_first_model_without_evaluation_rows_is_never_blessed_silently(
    models: dict[str, Any],
) -> None:
    empty = _rows(10, 4).iloc[0:0]
    held = evaluate_challenger(
        _cfg(deploy_undecided_first_model=False), models["good"], None, empty, None, 0
    )
    assert held.undecided and not held.blessed, held.reason
    assert held.comparison["evaluated"] is False
    deployed = evaluate_challenger(_cfg(), models["good"], None, empty, None, 0)
    assert deployed.blessed and deployed.comparison["evaluated"] is False
    assert "not evaluated" in deployed.reason
    assert "evaluation.deploy_undecided_first_model" in deployed.reason


def test_a_first_model_worse_than_a_constant_on_every_resample_is_rejected(
    models: dict[str, Any],
) -> None:
    # Every resample gave the same gain below 0, the point estimate below 0 too: the model is
    # worse than the constant on every resample, so it is rejected, not left undecided (and
    # then deployed by default).
    worse = decide(
        GateInputs(
            "roc_auc",
            True,
            0.0,
            recent_rows=6,
            min_rows=500,
            baseline_recent=0.5,
            baseline_ci=(-0.5, -0.5),
        )
    )
    assert worse.outcome == "rejected", worse.reason
    assert [g.name for g in worse.gates if not g.passed] == ["baseline_improvement"]
    # A degenerate interval above 0, the constant from the training rows: on min_rows rows a
    # gain on every resample, blessed; on 6 rows no evidence (two rows ranked right give AUC 1
    # on every resample for a model with no skill half the time), undecided.
    above = GateInputs(
        "roc_auc",
        True,
        1.0,
        recent_rows=6,
        min_rows=500,
        baseline_recent=0.5,
        baseline_ci=(0.5, 0.5),
    )
    few = decide(above)
    assert few.undecided and "fewer than evaluation.min_rows 500" in few.reason, few.reason
    enough = decide(dataclasses.replace(above, recent_rows=500))
    assert enough.blessed and not enough.undecided, enough.reason
    # The constant fitted on the rows it is scored on (a card from before the training target
    # was recorded): the same interval is no evidence, undecided.
    fitted = decide(dataclasses.replace(above, baseline_fitted_on_recent=True))
    assert fitted.undecided and "degenerate interval" in fitted.reason, fitted.reason
    # Such a constant (mae: the rows' median) is perfect on one row, and any model worse on
    # every resample: no evidence, still undecided. A constant from the training rows is not
    # fitted on that row, but one row gives a zero-width interval by itself: undecided too
    # (mae ranks nothing), and rejected only on min_rows rows.
    one_row = GateInputs(
        "mae",
        False,
        0.037,
        recent_rows=1,
        min_rows=500,
        baseline_recent=0.0,
        baseline_ci=(-0.037, -0.037),
        baseline_fitted_on_recent=True,
    )
    assert decide(one_row).undecided and "degenerate interval" in decide(one_row).reason
    trained = decide(
        dataclasses.replace(
            one_row,
            baseline_recent=0.01,
            baseline_ci=(-0.027, -0.027),
            baseline_fitted_on_recent=False,
        )
    )
    assert trained.undecided and "fewer than evaluation.min_rows" in trained.reason
    on_enough = decide(
        dataclasses.replace(
            one_row,
            recent_rows=500,
            baseline_recent=0.01,
            baseline_ci=(-0.027, -0.027),
            baseline_fitted_on_recent=False,
        )
    )
    assert on_enough.outcome == "rejected", on_enough.reason
    # End to end: six rows whose labels the model ranks exactly backwards (AUC 0 on every
    # resample holding both classes) are not deployed, whatever the default.
    x1 = np.array([-3.0, -2.5, -2.0, 2.0, 2.5, 3.0])
    rows = pd.DataFrame(
        {
            "id": range(6),
            "ts": pd.Timestamp("2024-01-01"),
            "x1": x1,
            "x2": 0.0,
            "label": np.where(x1 > 0, "no", "yes"),
        }
    )
    r = evaluate_challenger(_cfg(), models["good"], None, rows, None, 0)
    assert r.comparison["baseline_ci"] == pytest.approx([-0.5, -0.5])
    assert r.outcome == "rejected" and not r.blessed, r.reason
    assert r.comparison["evaluated"] is True


def _regression_cfg() -> Config:
    return config_from_dict(
        {
            "name": "skewed",
            "task": "regression",
            "target": "y",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": {"x1": "numeric"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LinearRegression", "params": {}},
            "deploy": {"deployment_name": "skewed"},
            "evaluation": {"metric": "mae", "bootstrap_samples": 200},
        }
    )


def _lognormal(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": range(n),
            "ts": pd.Timestamp("2024-01-01"),
            "x1": rng.normal(size=n),
            "y": rng.lognormal(0.0, 1.0, size=n),
        }
    )


def test_a_first_model_predicting_the_median_is_not_shown_better_than_a_constant_on_mae() -> None:
    # On a skewed target the median beats the mean on MAE by a wide margin; a model that itself
    # predicts the (training) median must not count as better than the best constant for MAE.
    train = _lognormal(2000, 11)
    median = float(np.median(train["y"]))
    model = Pipeline([("constant", DummyRegressor(strategy="constant", constant=median))])
    model.fit(train[["x1"]], train["y"])
    cfg = _regression_cfg()
    for seed in range(5):
        recent = _lognormal(500, 20 + seed)
        r = evaluate_challenger(cfg, model, None, recent, None, 0)
        assert not r.blessed, r.reason
        y = recent["y"].to_numpy()
        assert r.comparison["baseline"] == pytest.approx(np.abs(y - np.median(y)).mean())
