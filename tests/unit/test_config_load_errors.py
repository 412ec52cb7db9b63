"""Mistakes a config can hold fail when it loads, naming the key and the valid choices."""

from __future__ import annotations

import copy

import pytest

from retrain.config import config_from_dict
from retrain.errors import ValidationError
from tests.unit.test_config import BASE


def _with(path: str, value: object) -> dict:
    """BASE with `value` at the dotted `path`, creating sections that are not there."""
    raw = copy.deepcopy(BASE)
    *sections, key = path.split(".")
    node = raw
    for name in sections:
        node = node.setdefault(name, {})
    node[key] = value
    return raw


def _problems(raw: dict) -> str:
    with pytest.raises(ValidationError) as err:
        config_from_dict(raw)
    return "\n".join(err.value.problems)


def test_a_metric_name_that_does_not_exist_fails_at_load_naming_the_metrics() -> None:
    text = _problems(_with("evaluation.metric", "acc"))
    assert text.startswith("evaluation.metric: Value error, unknown metric 'acc'")
    assert "classification: roc_auc, accuracy, log_loss, f1, brier" in text
    assert "regression: rmse, mae, r2" in text


def test_a_metric_of_the_other_task_fails_at_load() -> None:
    text = _problems(_with("evaluation.metric", "rmse"))
    assert "'rmse' is not a classification metric; use one of roc_auc, accuracy" in text
    assert config_from_dict(_with("evaluation.metric", "accuracy")).primary_metric == "accuracy"


def test_an_estimator_typo_fails_at_load_with_a_suggestion() -> None:
    text = _problems(_with("model.estimator", "sklearn.linear_model.LogisticRegresion"))
    assert text.startswith("model.estimator: Value error, 'sklearn.linear_model.LogisticRegresion'")
    assert "does not exist; did you mean sklearn.linear_model.LogisticRegression?" in text
    assert "Supported in sklearn.linear_model:" in text and "Ridge" in text
    unsupported = _problems(_with("model.estimator", "sklearn.svm.SVC"))
    assert "'sklearn.svm.SVC' is not a supported estimator" in unsupported
    nothing = _problems(_with("model.estimator", "sklearn.nothing_here.Model"))
    assert "there is no module 'sklearn.nothing_here'" in nothing


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("data.format", "xlsx", "data.format: Input should be 'parquet' or 'csv'"),
        ("data.time_kind", "week", "'timestamp', 'date' or 'period'"),
        ("data.extra_columns", "drop", "data.extra_columns: Input should be 'fail' or 'ignore'"),
        ("training.mix", "weights", "training.mix: Input should be 'sample' or 'weighted'"),
        ("deploy.backend", "kfserving", "deploy.backend: Input should be 'seldon' or 'kserve'"),
        ("data.window_anchor", "2024-01-01", "window_anchor '2024-01-01' must be an integer"),
    ],
)
def test_every_enumerated_value_is_checked_at_load(path: str, value: str, expected: str) -> None:
    assert expected in _problems(_with(path, value))


def test_the_unknown_key_hint_points_to_something_that_exists() -> None:
    text = _problems(_with("training.historical_shar", 0.5))
    assert "training.historical_shar: unknown key" in text
    assert "`retrain generate --out DIR` writes a working example config" in text
    assert "examples/" not in text


@pytest.mark.parametrize("metric", [None, "rmse", "mae"])
def test_an_absolute_history_budget_for_a_metric_in_target_units_fails_at_load(
    metric: str | None,
) -> None:
    # For rmse and mae the budget is a share of the champion's value: an old absolute 5.0
    # would silently mean "500% worse is fine".
    raw = _with("evaluation.max_history_loss", 5.0)
    raw["task"] = "regression"
    if metric is not None:
        raw["evaluation"]["metric"] = metric
    text = _problems(raw)
    assert "evaluation.max_history_loss 5 is read as a share of the champion's history" in text
    assert "must be at most 1" in text
    raw["evaluation"]["max_history_loss"] = 1.0
    assert config_from_dict(raw).evaluation.max_history_loss == 1.0
    # In metric units (r2, or any classification metric) a budget above 1 is left alone.
    raw["evaluation"].update(metric="r2", max_history_loss=5.0)
    assert config_from_dict(raw).evaluation.max_history_loss == 5.0


@pytest.mark.parametrize("path", ["drift.max_performance_drop", "triggers.performance_drop"])
def test_an_absolute_performance_drop_for_an_error_metric_fails_at_load(path: str) -> None:
    # For rmse and mae a drop is a share of the reference: an old absolute 5.0 would mean
    # "fire once the error is six times what it was".
    raw = _with(path, 5.0)
    raw["task"] = "regression"
    text = _problems(raw)
    assert f"{path} 5 is read as a share of the reference rmse" in text
    raw_ok = _with(path, 0.1)
    raw_ok["task"] = "regression"
    config_from_dict(raw_ok)
    # Classification metrics stay in metric units: nothing to refuse there.
    config_from_dict(_with(path, 5.0))
