"""labels.positive_class: the class the rare-event metrics and ranking checks judge.

scikit-learn sorts a classifier's classes, and the binary metrics read the second: of the
labels "fraud" and "ok" that is "ok", the common class. The positive class names the one meant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from retrain.config import config_from_dict
from retrain.errors import ValidationError
from retrain.evaluation.bootstrap import bootstrap_difference
from retrain.evaluation.metrics import compute_metrics
from retrain.rollout.providers import PredictorSample, paired_cells
from tests.unit.test_training import make_cfg


def _rare_events(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and 0/1 labels with about 3% positives and a real but imperfect signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + rng.normal(scale=1.2, size=n) > 2.3).astype(int)
    return x, y


def _fitted_scores(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    model = LogisticRegression().fit(x, labels)
    return model.predict_proba(x), list(model.classes_)


def test_average_precision_judges_the_named_positive_class() -> None:
    x, y = _rare_events()
    text = np.where(y == 1, "fraud", "ok")
    scores, classes = _fitted_scores(x, text)
    assert classes == ["fraud", "ok"]  # sorted: classes[1] is the common class
    # scikit-learn's own figure for the frauds, from the model's probability of fraud.
    frauds = average_precision_score(y, scores[:, 0])
    named = compute_metrics(
        "classification", text, scores, classes, ("average_precision",), positive="fraud"
    )
    assert named["average_precision"] == pytest.approx(frauds, abs=1e-9)
    assert frauds < 0.8  # a real rare-event figure, far from the common class's
    unnamed = compute_metrics("classification", text, scores, classes, ("average_precision",))
    assert unnamed["average_precision"] > 0.95  # the common class, as before
    # Metrics that do not depend on the positive class are unchanged.
    for name in ("roc_auc", "accuracy", "log_loss", "brier", "f1"):
        assert named[name] == pytest.approx(unnamed[name], abs=1e-12)


def test_the_positive_class_names_the_same_class_in_the_bootstrap() -> None:
    x, y = _rare_events(seed=1)
    text = np.where(y == 1, "fraud", "ok")
    good, classes = _fitted_scores(x, text)
    worse = good.copy()
    worse[:, 0] = 0.5 * good[:, 0] + 0.5 * np.random.default_rng(2).random(len(good))
    worse[:, 1] = 1.0 - worse[:, 0]
    on_numbers = bootstrap_difference(
        "classification", "average_precision", y, good[:, ::-1], worse[:, ::-1], [0, 1],
        n=200, confidence=0.95, seed=3, stratify=True,
    )  # fmt: skip
    on_text = bootstrap_difference(
        "classification", "average_precision", text, good, worse, classes,
        n=200, confidence=0.95, seed=3, stratify=True, positive="fraud",
    )  # fmt: skip
    assert on_text == pytest.approx(on_numbers, abs=1e-9)
    assert on_numbers[1] > 0  # the better ranking of frauds is shown


def test_a_positive_class_the_model_does_not_have_is_refused() -> None:
    x, y = _rare_events()
    scores, classes = _fitted_scores(x, np.where(y == 1, "fraud", "ok"))
    with pytest.raises(ValidationError, match="positive_class 'chargeback' is not one of"):
        compute_metrics(
            "classification", np.where(y == 1, "fraud", "ok"), scores, classes,
            ("average_precision",), positive="chargeback",
        )  # fmt: skip


def test_the_canary_ranking_cells_count_the_positive_class() -> None:
    labels = ["fraud", "ok", "ok", "fraud"]
    outputs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    sample = PredictorSample(
        labels=labels, outputs=[outputs], classes=np.array(["fraud", "ok"]), rows=[0, 1, 2, 3]
    )
    named = paired_cells(sample, sample, positive="fraud")
    unnamed = paired_cells(sample, sample)
    # Each cell key ends with the label bit; the frauds' high P(fraud) land in high bins.
    positives_named = sum(v for k, v in named.items() if k.endswith(".1"))
    positives_unnamed = sum(v for k, v in unnamed.items() if k.endswith(".1"))
    assert positives_named == positives_unnamed == 2
    assert named != unnamed  # scored by P(fraud), not P(ok)


def _labels_section(**labels: Any) -> dict[str, Any]:
    """A valid config's raw form with `labels` set on its label source."""
    raw: dict[str, Any] = make_cfg().model_dump(mode="json", exclude_none=True)
    raw["labels"].update(labels)
    return raw


def test_a_positive_class_outside_labels_classes_is_refused_at_load() -> None:
    ok = config_from_dict(_labels_section(classes=["ok", "fraud"], positive_class="fraud"))
    assert ok.labels.positive_class == "fraud"
    with pytest.raises(ValidationError, match="positive_class 'chargeback' is not one of"):
        config_from_dict(_labels_section(classes=["ok", "fraud"], positive_class="chargeback"))
