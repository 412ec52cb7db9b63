"""The backtest's prequential score counts the rows of a class the model never saw."""

from __future__ import annotations

import pandas as pd
import pytest

from retrain.backtest.scoring import score_model
from retrain.config import Config, config_from_dict
from retrain.training.model import fit_model


def _cfg() -> Config:
    return config_from_dict(
        {
            "name": "weather",
            "task": "classification",
            "target": "weather",
            "storage_root": "store",
            "data": {
                "uri": "events",
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"x": "numeric"},
            },
            "labels": {"uri": "labels", "id_column": "id", "label_column": "weather"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "evaluation": {"metric": "accuracy"},
            "deploy": {"deployment_name": "weather", "gitops_repo": "gitops"},
        }
    )


def test_rows_of_a_class_the_model_never_saw_count_as_wrong() -> None:
    cfg = _cfg()
    train = pd.DataFrame({"id": range(40), "week": 0, "x": [0.0] * 20 + [10.0] * 20}).assign(
        weather=["rain"] * 20 + ["sun"] * 20
    )
    model = fit_model(cfg, train)
    # A later window: 4 rows the model answers right, and 4 of a class it never saw (fog).
    events = pd.DataFrame(
        {"id": range(100, 108), "week": 1, "x": [0.0, 0.0, 10.0, 10.0, 5.0, 5.0, 5.0, 5.0]}
    )
    labels = pd.DataFrame(
        {"id": range(100, 108), "weather": ["rain", "rain", "sun", "sun"] + ["fog"] * 4}
    )
    value, rows = score_model(cfg, model, events, labels)
    assert rows == 8
    assert value == pytest.approx(0.5)


def test_labels_written_another_way_are_the_classes_the_model_knows() -> None:
    # The model learned the integers 0 and 1; a window's labels arrive as text "0" and "1",
    # or as booleans. By `label_key` they are its classes: scored as such, not as classes it
    # never saw (which would give them all a probability of 0).
    cfg = _cfg()
    train = pd.DataFrame({"id": range(40), "week": 0, "x": [0.0] * 20 + [10.0] * 20}).assign(
        weather=[0] * 20 + [1] * 20
    )
    model = fit_model(cfg, train)
    events = pd.DataFrame({"id": range(100, 106), "week": 1, "x": [0.0, 0.0, 10.0, 10.0, 0, 10]})
    right = [0, 0, 1, 1, 1, 0]  # the last two rows the model gets wrong
    for written in (right, [str(v) for v in right], [bool(v) for v in right]):
        labels = pd.DataFrame({"id": range(100, 106), "weather": written})
        value, rows = score_model(cfg, model, events, labels)
        assert (rows, value) == (6, pytest.approx(4 / 6)), written
