"""The champion's decline after a change of regime: its unpaired bootstrap, and the forgetting
guard's exception judged on that interval's lower bound."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error
from sklearn.pipeline import Pipeline

from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError
from retrain.evaluation.bootstrap import bootstrap_decline
from retrain.evaluation.gates import EvaluationResult, evaluate_challenger
from retrain.training.model import fit_model

# --- bootstrap_decline ------------------------------------------------------------------------


def _errors(n: int, sd: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions off by N(0, sd): the mean absolute error is sd * sqrt(2 / pi)."""
    y = rng.normal(0.0, 3.0, n)
    return y, y + rng.normal(0.0, sd, n)


def test_decline_interval_has_the_width_of_two_independent_samples() -> None:
    # History: errors N(0, 1) on 2,000 rows; recent: N(0, 2) on 500 rows. The true decline in
    # mae is sqrt(2/pi), and its standard error adds both sets' variances (|N(0, s)| has
    # variance s^2 (1 - 2/pi)), as nothing is shared between the two sets of rows.
    rng = np.random.default_rng(3)
    history, recent = _errors(2000, 1.0, rng), _errors(500, 2.0, rng)
    point, lower, upper = bootstrap_decline(
        "regression", "mae", recent, history, None, n=1000, confidence=0.95, seed=7, stratify=False
    )
    seen = mean_absolute_error(*recent) - mean_absolute_error(*history)
    assert point == pytest.approx(seen)  # positive: worse on the recent rows
    assert lower < math.sqrt(2 / math.pi) < upper
    se = math.sqrt((1 - 2 / math.pi) * (1.0 / 2000 + 4.0 / 500))
    assert (upper - lower) / 2 == pytest.approx(1.96 * se, rel=0.15)
    # Seeded; a metric where greater is better is oriented the same way (worse on recent > 0).
    again = bootstrap_decline(
        "regression", "mae", recent, history, None, n=1000, confidence=0.95, seed=7, stratify=False
    )
    assert again == (point, lower, upper)
    r2 = bootstrap_decline(
        "regression", "r2", recent, history, None, n=200, confidence=0.95, seed=7, stratify=False
    )
    assert r2[0] > 0 and r2[1] > 0


def test_decline_of_a_model_that_did_not_change_straddles_zero() -> None:
    rng = np.random.default_rng(4)
    history, recent = _errors(1500, 1.0, rng), _errors(300, 1.0, rng)
    _, lower, upper = bootstrap_decline(
        "regression", "rmse", recent, history, None, n=500, confidence=0.95, seed=1, stratify=False
    )
    assert lower < 0 < upper


def test_decline_needs_rows_on_both_sides() -> None:
    rng = np.random.default_rng(5)
    empty = (np.empty(0), np.empty(0))
    with pytest.raises(ValidationError, match="zero rows"):
        bootstrap_decline(
            "regression",
            "mae",
            empty,
            _errors(10, 1.0, rng),
            None,
            n=50,
            confidence=0.95,
            seed=1,
            stratify=False,
        )


# --- the forgetting guard's exception, end to end ----------------------------------------------


def _cfg(**evaluation: Any) -> Config:
    """Regression judged on mae, two numeric features; 20 recent rows may decide."""
    source = {"uri": "/tmp/unused", "id_column": "id"}
    features = {"a": "numeric", "b": "numeric"}
    return config_from_dict(
        {
            "name": "regime",
            "task": "regression",
            "target": "y",
            "storage_root": "/tmp/unused",
            "data": source | {"time_column": "ts", "window_size": "7d", "features": features},
            "labels": source | {"label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LinearRegression"},
            "evaluation": {"metric": "mae", "min_rows": 20} | evaluation,
            "deploy": {"deployment_name": "regime"},
        }
    )


def _frame(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": np.arange(len(y)), "ts": pd.Timestamp("2024-01-01"), "a": a, "b": b, "y": y}
    )


@pytest.fixture(scope="module")
def models() -> tuple[Pipeline, Pipeline]:
    """A champion that predicts column a and a challenger that predicts column b, so each
    case below sets both models' errors row by row."""
    cfg = _cfg()
    a, b = np.random.default_rng(0).normal(size=(2, 200))
    return fit_model(cfg, _frame(a, a, b)), fit_model(cfg, _frame(b, a, b))


def _case(recent_rows: int, champion_sd: float, outliers: int) -> tuple[pd.DataFrame, ...]:
    """History (2,000 rows): the champion off by N(0, 1), the challenger 15% further off on
    every row (a loss its interval shows beyond the 2% budget). Recent rows: the champion off
    by N(0, champion_sd), its first `outliers` rows by 4; the challenger nearly exact."""
    rng = np.random.default_rng(1)
    y, e = rng.normal(0.0, 3.0, 2000), rng.normal(size=2000)
    history = _frame(y, y + e, y + 1.15 * e)
    y = rng.normal(0.0, 3.0, recent_rows)
    e = rng.normal(0.0, champion_sd, recent_rows)
    e[:outliers] = 4.0
    recent = _frame(y, y + e, y + rng.normal(0.0, 0.05, recent_rows))
    return recent, history


def _evaluate(
    models: tuple[Pipeline, Pipeline], *case: Any, **evaluation: Any
) -> tuple[EvaluationResult, pd.DataFrame, pd.DataFrame]:
    """The challenger judged against the champion on `_case(*case)`, and its two sets."""
    champion, challenger = models
    recent, history = _case(*case)
    r = evaluate_challenger(_cfg(**evaluation), challenger, champion, recent, history, seed=1)
    return r, recent, history


def _decline(recent: pd.DataFrame, history: pd.DataFrame) -> float:
    return float(
        mean_absolute_error(recent["y"], recent["a"])
        - mean_absolute_error(history["y"], history["a"])
    )


def test_a_decline_that_few_noisy_recent_rows_cannot_show_does_not_excuse_forgetting(
    models: tuple[Pipeline, Pipeline],
) -> None:
    # 30 recent rows, three of them far off: the champion's point decline (about 0.3) is more
    # than the challenger can have lost on history (about 0.12), but so few rows cannot show it.
    r, recent, history = _evaluate(models, 30, 1.0, 3)
    assert not r.blessed and r.outcome == "rejected", r.reason
    assert [g.name for g in r.gates if not g.passed] == ["history_bounded_loss"]
    assert r.comparison["history_loss_accepted_on_change"] is False
    high_loss = r.comparison["history_loss_ci"][1]
    assert r.comparison["recent_ci"][0] > high_loss  # the gain alone would have excused it
    assert r.comparison["champion_decline"] == pytest.approx(_decline(recent, history))
    assert r.comparison["champion_decline"] > high_loss > 0.02
    lower, upper = r.comparison["champion_decline_ci"]
    assert lower < high_loss < r.comparison["champion_decline"] < upper


def test_a_decline_the_recent_rows_show_still_excuses_forgetting(
    models: tuple[Pipeline, Pipeline],
) -> None:
    r, recent, history = _evaluate(models, 400, 2.0, 0)
    assert r.blessed, r.reason
    assert r.comparison["history_loss_accepted_on_change"] is True
    lower, upper = r.comparison["champion_decline_ci"]
    assert r.comparison["history_loss_ci"][1] < lower < _decline(recent, history) < upper
    assert "worse on recent rows than on history, 95% CI [" in r.reason
    assert "the decline (lower bound" in r.reason and "its recent gain is shown" in r.reason


def test_the_decline_is_bootstrapped_only_when_the_guard_weighs_a_change(
    models: tuple[Pipeline, Pipeline],
) -> None:
    # The champion against itself: no history loss beyond the budget, nothing to excuse.
    same, _, _ = _evaluate((models[0], models[0]), 400, 2.0, 0)
    assert same.comparison["champion_decline"] is None
    assert same.comparison["champion_decline_ci"] is None
    # The exception turned off: the forgetting is rejected without weighing the decline.
    off, _, _ = _evaluate(models, 400, 2.0, 0, accept_forgetting_on_change=False)
    assert [g.name for g in off.gates if not g.passed] == ["history_bounded_loss"]
    assert off.comparison["champion_decline_ci"] is None
