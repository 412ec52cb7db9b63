"""The backtest's prequential score counts the rows of a class the model never saw."""

from __future__ import annotations

import pandas as pd
import pytest

from retrain.backtest.scoring import score_model
from retrain.config import config_from_dict
from retrain.training.model import fit_model


def test_rows_of_a_class_the_model_never_saw_count_as_wrong() -> None:
    cfg = config_from_dict(
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
