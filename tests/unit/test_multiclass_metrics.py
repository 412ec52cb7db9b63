"""A metric or rollout check defined for two classes only (average_precision, brier,
recall_at_precision_<P>, the ranking checks) is refused for a multiclass problem where the
classes are first known: at config load from `labels.classes`, else at the train step from
the training labels, before a model is fitted or written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from required import require
from retrain.config import config_from_dict, load_config
from retrain.errors import ValidationError
from retrain.registry import Registry
from retrain.storage import open_storage

#: The metrics that are defined for more than two classes, written out.
MULTICLASS_METRICS = {"roc_auc", "accuracy", "log_loss", "f1"}


def _assert_names_multiclass_metrics(text: str) -> None:
    """The message names exactly the multiclass metrics (in any order), and each one named
    loads for three classes: the fix it gives works."""
    found = re.search(r"for multiclass use evaluation\.metric ([a-z0-9_, ]+?) and rollout", text)
    assert found is not None, text
    named = {m.strip() for m in found.group(1).split(",")}
    assert named == MULTICLASS_METRICS
    for metric in named:
        config_from_dict(_raw(["billing", "tech", "sales"], metric, None))


def _raw(classes: list[str] | None, metric: str | None, checks: list[str] | None) -> dict:
    raw: dict[str, Any] = {
        "name": "tickets",
        "task": "classification",
        "target": "queue",
        "storage_root": "/tmp/unused",
        "data": {"uri": "u", "id_column": "id", "time_column": "ts", "features": {"x": "numeric"}},
        "labels": {"uri": "u", "id_column": "id", "label_column": "queue"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "tickets"},
    }
    if classes is not None:
        raw["labels"]["classes"] = classes
    if metric is not None:
        raw["evaluation"] = {"metric": metric}
    if checks is not None:
        raw["rollout"] = {"checks": [{"name": c, "max": 0.02} for c in checks]}
    return raw


@pytest.mark.parametrize(
    ("metric", "checks", "named"),
    [
        ("average_precision", None, "evaluation.metric 'average_precision'"),
        ("brier", None, "evaluation.metric 'brier'"),
        ("recall_at_precision_90", None, "evaluation.metric 'recall_at_precision_90'"),
        ("accuracy", ["average_precision_drop"], "rollout check(s) average_precision_drop"),
        ("log_loss", ["recall_at_precision_95_drop"], "recall_at_precision_95_drop"),
    ],
)
def test_a_binary_only_metric_or_check_is_refused_at_load_for_listed_classes(
    metric: str, checks: list[str] | None, named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        config_from_dict(_raw(["billing", "tech", "sales"], metric, checks))
    text = str(caught.value) + " ".join(getattr(caught.value, "hints", []) or [])
    assert "labels.classes lists 3 classes" in text
    assert named in text
    _assert_names_multiclass_metrics(text)
    assert "rollout checks error_rate, latency_p95, accuracy_drop, loss_increase" in text


def test_the_same_settings_load_for_two_classes_or_a_multiclass_metric() -> None:
    config_from_dict(_raw(["no", "yes"], "average_precision", ["average_precision_drop"]))
    config_from_dict(_raw(["billing", "tech", "sales"], "roc_auc", ["accuracy_drop"]))
    config_from_dict(_raw(["billing", "tech", "sales"], None, None))  # roc_auc by default
    config_from_dict(_raw(None, "average_precision", None))  # classes known only from data


@pytest.mark.integration  # one cycle on the demo data
def test_three_training_classes_stop_train_before_a_model_is_written(tmp_path: Path) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    path = generate_loans(tmp_path, windows=3, rows_per_window=300, drift_window=2)
    raw = yaml.safe_load(path.read_text())
    raw.setdefault("evaluation", {})["metric"] = "average_precision"
    raw["labels"].pop("classes", None)  # the classes are known only from the labels
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    week_0 = Path(cfg.labels.uri) / "week-000.parquet"  # the demo's labels of week 0
    labels = pd.read_parquet(week_0)
    labels.loc[labels.index[:40], cfg.labels.label_column] = 2  # a third class
    labels.to_parquet(week_0)

    # The steps as the direct engine runs them, with the train step's model directory kept.
    from retrain import steps

    text, out = cfg.to_yaml(), tmp_path / "run"
    steps.ingest(text, "0", "first", str(out / "dataset.parquet"))
    labelled = str(out / "labelled.parquet")
    steps.label(text, "0", "first", str(out / "dataset.parquet"), labelled,
                str(out / "queue.parquet"), None, "2")  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        steps.train(text, "0", "first", labelled, str(out / "model"), str(out / "holdout"))
    message = str(caught.value)
    assert "training labels (new window and history) hold 3 classes" in message
    assert "evaluation.metric 'average_precision'" in message
    _assert_names_multiclass_metrics(message)
    assert not (out / "model").exists() or not any((out / "model").iterdir())  # none fitted
    assert Registry(open_storage(cfg.storage_root), cfg.name).versions() == []
