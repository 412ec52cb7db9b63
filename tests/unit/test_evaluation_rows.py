"""The gates judge on rows no model trained on, and say when they cannot decide.

Scenarios run the real training-set assembly, fit and evaluation on simulated streams with a
known truth: stationary windows where an equally good or a better challenger must not be read
as forgetting, and where two equally good models are blessed at about the nominal rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from retrain.config import Config, config_from_dict
from retrain.data.split import evaluation_mask
from retrain.evaluation.gates import GateInputs, decide, evaluate_challenger
from retrain.training.mix import build_training_set
from retrain.training.model import fit_model, predict_scores

FOREST = "sklearn.ensemble.RandomForestClassifier"
LOGISTIC = "sklearn.linear_model.LogisticRegression"


def _cfg(estimator: str = FOREST, **evaluation: Any) -> Config:
    # liblinear: the fastest exact fit on a few hundred rows, for the Monte Carlo below.
    params = {"n_estimators": 30} if estimator == FOREST else {"solver": "liblinear"}
    raw: dict[str, Any] = {
        "name": "gates",
        "task": "classification",
        "target": "label",
        "storage_root": "/tmp/unused",
        "data": {
            "uri": "/tmp/unused",
            "id_column": "id",
            "time_column": "ts",
            "window_size": "7d",
            "features": {"x1": "numeric", "x2": "numeric", "x3": "numeric"},
        },
        "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
        "model": {"estimator": estimator, "params": params},
        "deploy": {"deployment_name": "gates"},
    }
    if evaluation:
        raw["evaluation"] = evaluation
    return config_from_dict(raw)


def _window(week: int, n: int, seed: int) -> pd.DataFrame:
    """One week of a stationary stream: the label's log-odds are linear in three features."""
    rng = np.random.default_rng([seed, week])
    x = rng.normal(size=(n, 3))
    z = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2]
    label = np.where(rng.random(n) < expit(z), "yes", "no")
    return pd.DataFrame(
        {
            "id": [f"s{seed}-w{week}-{i}" for i in range(n)],
            "ts": pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=week),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "label": label,
        }
    )


def _stream(weeks: int, n: int, seed: int) -> list[pd.DataFrame]:
    return [_window(w, n, seed) for w in range(weeks)]


def _unseen_auc(cfg: Config, model: Any, seed: int) -> float:
    """The model's AUC on a fresh sample of the same stream: its true quality, near enough."""
    fresh = _window(99, 20_000, seed + 1000)
    scores = predict_scores(model, fresh, cfg)[:, 1]
    return float(roc_auc_score(fresh["label"] == "yes", scores))


def _champion_and_next(cfg: Config, seed: int) -> tuple[Any, list[pd.DataFrame]]:
    """A champion trained the way the train step trains it (week 1 + history of week 0)."""
    w = _stream(3, 1500, seed)
    champion = fit_model(cfg, build_training_set(w[1], w[0], cfg, seed).train)
    return champion, w


# --- the forgetting gate on rows no model trained on --------------------------------------------


def test_a_model_identical_to_the_champion_passes_its_own_forgetting_gate() -> None:
    # Same estimator, same mix, same stream: the challenger retrained on week 2 is as good as
    # the champion. A forest scores its own training rows near-perfectly, so a history set that
    # holds rows the champion trained on reads as a large "loss" for the challenger.
    cfg = _cfg()
    champion, w = _champion_and_next(cfg, seed=11)
    ts = build_training_set(w[2], pd.concat(w[:2], ignore_index=True), cfg, seed=11)
    challenger = fit_model(cfg, ts.train)
    r = evaluate_challenger(cfg, challenger, champion, ts.recent_holdout, ts.history_holdout, 11)
    gate = next(g for g in r.gates if g.name == "history_bounded_loss")
    assert gate.passed, r.reason
    assert abs(r.comparison["history_loss"]) < 0.02, r.reason
    # The very same model passes too, with no loss at all.
    same = evaluate_challenger(cfg, champion, champion, ts.recent_holdout, ts.history_holdout, 11)
    assert same.comparison["history_loss"] == 0.0


def test_a_challenger_better_on_unseen_data_passes_the_history_gate() -> None:
    # The champion is an overfitting forest; the challenger a logistic model, the true form.
    # A stationary stream, so pooling earlier windows' evaluation rows is sound here.
    forest, logistic = _cfg(FOREST), _cfg(LOGISTIC, pool_windows=3)
    champion, w = _champion_and_next(forest, seed=5)
    ts = build_training_set(w[2], pd.concat(w[:2], ignore_index=True), logistic, seed=5)
    challenger = fit_model(logistic, ts.train)
    # Known truth: the challenger is the better model on data neither has seen.
    assert _unseen_auc(logistic, challenger, 5) > _unseen_auc(forest, champion, 5) + 0.01
    r = evaluate_challenger(
        logistic, challenger, champion, ts.recent_holdout, ts.history_holdout, 5
    )
    gate = next(g for g in r.gates if g.name == "history_bounded_loss")
    assert gate.passed, r.reason
    assert r.comparison["history_loss"] < 0, r.reason  # it is better on history too
    assert r.blessed, r.reason


def test_no_evaluation_row_was_ever_trained_on_by_either_model() -> None:
    cfg = _cfg(LOGISTIC)
    w = _stream(3, 1500, 3)
    first = build_training_set(w[1], w[0], cfg, 3)
    second = build_training_set(w[2], pd.concat(w[:2], ignore_index=True), cfg, 3)
    trained = set(first.train["id"]) | set(second.train["id"])
    judged = set(second.recent_holdout["id"])
    assert second.history_holdout is not None
    judged |= set(second.history_holdout["id"])
    assert judged and not trained & judged


def test_equally_good_models_are_blessed_at_most_at_the_nominal_rate() -> None:
    # Champion and challenger are fitted the same way on different weeks of one stationary
    # stream: equally good in expectation. The improvement gate needs the lower bound of a 95%
    # two-sided interval above 0, so the nominal false-blessing rate is 2.5%.
    cfg = _cfg(LOGISTIC, min_rows=100)
    runs, blessed = 200, 0
    for seed in range(runs):
        w = _stream(3, 500, 100 + seed)
        champion = fit_model(cfg, build_training_set(w[1], None, cfg, seed).train)
        ts = build_training_set(w[2], None, cfg, seed)
        challenger = fit_model(cfg, ts.train)
        r = evaluate_challenger(cfg, challenger, champion, ts.recent_holdout, None, seed)
        blessed += r.blessed
    nominal = (1 - cfg.evaluation.confidence) / 2
    margin = 3 * math.sqrt(nominal * (1 - nominal) / runs)  # three binomial standard errors
    assert blessed / runs <= nominal + margin, f"{blessed} of {runs} equal challengers blessed"


# --- deciding, or saying it cannot ------------------------------------------------------------


def test_too_few_rows_to_show_a_gain_is_undecided_not_rejected() -> None:
    cfg = _cfg(LOGISTIC, min_rows=500, pool_windows=0)
    champion, w = _champion_and_next(cfg, seed=8)
    small = _window(2, 300, 8)  # about 60 evaluation rows
    ts = build_training_set(small, pd.concat(w[:2], ignore_index=True), cfg, seed=8)
    assert len(ts.recent_holdout) < 500
    r = evaluate_challenger(cfg, fit_model(cfg, ts.train), champion, ts.recent_holdout, None, 8)
    assert not r.blessed and r.undecided and r.outcome == "undecided"
    assert r.comparison["outcome"] == "undecided"
    assert "not enough evaluation rows" in r.reason
    gate = next(g for g in r.gates if g.name == "recent_improvement")
    assert not gate.decided and "fewer than evaluation.min_rows 500" in gate.detail
    assert "| recent_improvement | UNDECIDED |" in r.markdown()
    assert r.to_dict()["outcome"] == "undecided"
    mdg = r.comparison["recent_min_detectable_gain"]
    lower, upper = r.comparison["recent_ci"]
    assert mdg == pytest.approx((upper - lower) / 2) and mdg > 0


def test_pooling_earlier_windows_gives_the_gate_its_rows() -> None:
    cfg = _cfg(LOGISTIC, min_rows=250, pool_windows=3)
    w = [_window(k, 400, 21) for k in range(5)]  # about 80 evaluation rows a week
    ts = build_training_set(w[4], pd.concat(w[:4], ignore_index=True), cfg, seed=21)
    assert len(ts.recent_holdout) >= 250
    pooled = ts.provenance["evaluation"]["pooled_windows"]
    assert pooled[0] == "2024-01-22" and 1 <= len(pooled) <= 3  # most recent first
    champion = fit_model(cfg, build_training_set(w[3], pd.concat(w[:3]), cfg, 21).train)
    r = evaluate_challenger(cfg, fit_model(cfg, ts.train), champion, ts.recent_holdout, None, 21)
    assert r.comparison["recent_rows"] == len(ts.recent_holdout)
    assert not r.undecided, r.reason


def test_a_shown_regression_on_few_rows_is_still_a_rejection() -> None:
    inputs = GateInputs("roc_auc", True, 0.70, 0.85, (-0.2, -0.1), recent_rows=60, min_rows=500)
    r = decide(inputs)
    assert r.outcome == "rejected"
    assert "recent_non_regression" in r.reason


def test_a_gain_shown_on_few_rows_is_blessed() -> None:
    r = decide(GateInputs("roc_auc", True, 0.90, 0.70, (0.12, 0.28), recent_rows=60, min_rows=500))
    assert r.blessed and r.outcome == "blessed"


def test_a_wider_interval_than_the_detectable_gain_bound_is_undecided() -> None:
    base = {"recent_rows": 5000, "min_rows": 500, "max_detectable_gain": 0.02}
    wide = decide(GateInputs("roc_auc", True, 0.80, 0.80, (-0.04, 0.04), **base))
    assert wide.undecided and "max_detectable_gain 0.02" in wide.reason
    narrow = decide(GateInputs("roc_auc", True, 0.80, 0.80, (-0.01, 0.01), **base))
    assert narrow.outcome == "rejected"


def test_history_gate_fails_only_when_its_interval_shows_the_loss_beyond_the_budget() -> None:
    def history(ci: tuple[float, float]) -> Any:
        return decide(
            GateInputs("roc_auc", True, 0.90, 0.85, (0.02, 0.08), 0.80, 0.83, history_ci=ci)
        )

    # Point loss 0.03, above the 0.02 budget, but the interval reaches down to 0.01: not shown.
    unsure = history((-0.05, -0.01))
    assert unsure.blessed, unsure.reason
    assert unsure.comparison["history_loss_ci"] == [pytest.approx(0.01), pytest.approx(0.05)]
    shown = history((-0.05, -0.025))
    assert not shown.blessed and "history_bounded_loss" in shown.reason
    gate = next(g for g in shown.gates if g.name == "history_bounded_loss")
    assert "whole interval lies beyond" in gate.detail
    assert shown.comparison["history_min_detectable_gain"] == pytest.approx(0.0125)


def test_an_empty_recent_set_is_undecided() -> None:
    cfg = _cfg(LOGISTIC)
    w = _stream(2, 400, 2)
    model = fit_model(cfg, w[0])
    r = evaluate_challenger(cfg, model, model, w[1].iloc[0:0], None, 0)
    assert r.undecided and not r.blessed and "not enough evaluation rows" in r.reason


def test_the_forgetting_gate_scores_every_history_evaluation_row_at_the_defaults() -> None:
    # Ten weeks of 2,000 rows leave about 3,600 history evaluation rows: the forgetting gate's
    # power grows with them (its interval's half-width is about 0.013 AUC at 2,000 rows and
    # 0.006 at 10,000), so the default must not sample them down.
    cfg = _cfg(LOGISTIC)
    weeks = [_window(k, 2000, seed=3) for k in range(10)]
    ts = build_training_set(weeks[-1], pd.concat(weeks[:-1], ignore_index=True), cfg, seed=3)
    assert ts.history_holdout is not None
    history = pd.concat(weeks[:-1], ignore_index=True)
    evaluation_rows = history[evaluation_mask(history["id"], 0.2, cfg.name)]
    assert set(ts.history_holdout["id"]) == set(evaluation_rows["id"])
    assert len(evaluation_rows) > 3000
