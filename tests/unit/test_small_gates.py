"""Gates on a handful of evaluation rows: no blessing without evidence.

An interval on fewer rows than evaluation.min_rows, or a degenerate one (every resample the
same), is no evidence; an interval of a bounded metric's gain stays within its range; a first
model is compared with a constant prediction, and one that cannot be judged is not deployed
unless evaluation.deploy_undecided_first_model says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

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


def test_a_gain_shown_on_six_rows_is_not_evidence() -> None:
    # The interval a 30-day window of six evaluation rows gave, reported as a pass.
    r = decide(GateInputs("roc_auc", True, 0.95, 0.70, (0.077, 0.340), recent_rows=6, min_rows=500))
    assert not r.blessed and r.undecided, r.reason
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


def test_the_forgetting_guard_does_not_judge_too_few_history_rows() -> None:
    base: dict[str, Any] = {"recent_rows": 5000, "min_rows": 500}
    clean = decide(
        GateInputs(
            "roc_auc", True, 0.90, 0.80, (0.05, 0.15), 0.70, 0.70, (-0.715, 1.0),
            history_rows=4, **base,
        )
    )
    gate = next(g for g in clean.gates if g.name == "history_bounded_loss")
    assert not gate.decided and "not judged: 4 history evaluation rows" in gate.detail
    assert clean.blessed, clean.reason  # as without history rows at all
    # A loss it shows on so few rows holds the model back, but is not a rejection either.
    lost = decide(
        GateInputs(
            "roc_auc", True, 0.90, 0.80, (0.05, 0.15), 0.50, 0.90, (-0.5, -0.3),
            history_rows=40, accept_forgetting_on_change=False, **base,
        )
    )
    assert lost.undecided and not lost.blessed, lost.reason


# --- the first model ------------------------------------------------------------------------


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
    return pd.DataFrame({"id": range(n), "ts": pd.Timestamp("2024-01-01"), "x1": x[:, 0],
                         "x2": x[:, 1], "label": y})


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


def test_a_first_model_on_too_few_rows_is_undecided(models: dict[str, Any]) -> None:
    cfg = _cfg(deploy_undecided_first_model=False)
    r = evaluate_challenger(cfg, models["good"], None, _rows(30, 3), None, 0)
    assert r.undecided and not r.blessed, r.reason
    assert r.comparison["evaluated"] is False
    assert "30 recent evaluation rows, fewer than evaluation.min_rows 500" in r.reason
    # By default it is deployed, and its record says it was not evaluated.
    deployed = evaluate_challenger(_cfg(), models["good"], None, _rows(30, 3), None, 0)
    assert deployed.blessed and deployed.comparison["evaluated"] is False
    assert "not evaluated" in deployed.reason


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
