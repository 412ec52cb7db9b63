"""labels.positive_class: the class the rare-event metrics and ranking checks judge.

scikit-learn sorts a classifier's classes, and the binary metrics read the second: of the
labels "fraud" and "ok" that is "ok", the common class. The positive class names the one meant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from retrain.config import Config, config_from_dict
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


def test_the_positive_class_leaves_tied_predictions_as_the_model_makes_them() -> None:
    # Probabilities tied at 0.5: accuracy and F1 take the model's own argmax (as `predict`),
    # whichever class the rare-event metrics judge.
    labels = np.array(["fraud", "fraud", "ok", "fraud", "ok", "ok"])
    p_ok = np.array([0.5, 0.5, 0.9, 0.2, 0.5, 0.7])
    scores = np.column_stack([1 - p_ok, p_ok])
    unnamed = compute_metrics("classification", labels, scores, ["fraud", "ok"])
    named = compute_metrics("classification", labels, scores, ["fraud", "ok"], positive="fraud")
    for name in ("accuracy", "f1", "roc_auc", "log_loss", "brier"):
        assert named[name] == pytest.approx(unnamed[name], abs=1e-12), name


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
    # The same gain; the intervals differ only by the resamples (the strata are drawn in
    # the classes' own order).
    assert on_text[0] == pytest.approx(on_numbers[0], abs=1e-9)
    assert on_text[1:] == pytest.approx(on_numbers[1:], abs=0.03)
    assert on_numbers[1] > 0 and on_text[1] > 0  # the better ranking of frauds is shown


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


def test_positive_class_is_matched_to_labels_classes_as_the_labels_are() -> None:
    # The same number written two ways is the same class; a YAML boolean (unquoted yes) is
    # not the text class "yes".
    same = config_from_dict(_labels_section(classes=["0.0", "1.0"], positive_class=1))
    assert same.labels.positive_class == 1
    with pytest.raises(ValidationError, match="quote a text class"):
        config_from_dict(_labels_section(classes=["no", "yes"], positive_class=True))


def test_the_canary_step_refuses_a_positive_class_the_model_does_not_have() -> None:
    from retrain.rollout.population import _positive_class

    raw = _labels_section(positive_class="chargeback")
    raw["rollout"] = {"checks": [{"name": "average_precision_drop", "max": 0.02}]}
    cfg = config_from_dict(raw)
    with pytest.raises(ValidationError, match="positive_class 'chargeback' is not one of"):
        _positive_class(cfg, ["fraud", "ok"])
    fraud = config_from_dict({**raw, "labels": {**raw["labels"], "positive_class": "fraud"}})
    assert _positive_class(fraud, ["fraud", "ok"]) == "fraud"


def test_the_labelled_signal_is_not_judged_against_another_class_s_reference() -> None:
    from dataclasses import replace

    from retrain.drift import ReferenceProfile, performance_against_profile
    from retrain.settings.drift import DriftConfig

    x, y = _rare_events(seed=4)
    scores, _ = _fitted_scores(x, y)
    ap = compute_metrics("classification", y, scores, [0, 1], ("average_precision",))
    profile = ReferenceProfile(
        task="classification", rows=len(y), features={}, bins=0, sample_size=0,
        classes=[0, 1], metric="average_precision", metrics=ap,
    )  # fmt: skip
    dc = DriftConfig()
    same = performance_against_profile(
        profile, y, scores, primary="average_precision", dc=dc, seed=0, positive=1
    )
    assert same is not None and same.drop == pytest.approx(0.0, abs=1e-12)
    # labels.positive_class set to the other class after this model was profiled: its
    # reference is of class 1, so the class 0 figure is not compared with it.
    other = performance_against_profile(
        profile, y, scores, primary="average_precision", dc=dc, seed=0, positive=0
    )
    assert other is None
    # A profile that recorded the class it judged is compared on that class.
    of_zero = replace(
        profile,
        positive_class=0,
        metrics=compute_metrics(
            "classification", y, scores, [0, 1], ("average_precision",), positive=0
        ),
    )
    again = performance_against_profile(
        of_zero, y, scores, primary="average_precision", dc=dc, seed=0, positive=0
    )
    assert again is not None and again.drop == pytest.approx(0.0, abs=1e-12)


def test_a_positive_class_where_there_is_no_binary_task_is_refused_at_load() -> None:
    raw = _labels_section(positive_class="fraud")
    with pytest.raises(ValidationError, match="task is regression: remove it"):
        config_from_dict({**raw, "task": "regression", "evaluation": {}})
    three = _labels_section(classes=["a", "b", "c"], positive_class="a")
    with pytest.raises(ValidationError, match=r"labels\.classes lists 3"):
        config_from_dict(three)


def test_labels_classes_may_be_written_as_numbers() -> None:
    # YAML's `classes: [0, 1]`: the classes 0 and 1, matched to labels by value.
    from retrain.labels.classes import check_label_classes

    cfg = config_from_dict(_labels_section(classes=[0, 1], positive_class=1))
    assert cfg.labels.classes == ["0", "1"]
    known = {"where": "window 3", "known_from": "labels.classes"}
    check_label_classes(pd.Series([0, 1, 1.0, True]), cfg.labels.classes, **known)
    with pytest.raises(ValidationError, match="known classes"):
        check_label_classes(pd.Series([0, 2]), cfg.labels.classes, **known)


def _ticket_case(tmp_path: Path, queues: list[str]) -> Config:
    """One week of 300 tickets labelled with `queues` (by x), labels.positive_class 'tech' and
    no labels.classes: the classes are known only from the labels."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    ids = [f"t{i}" for i in range(300)]
    at = np.digitize(x, np.quantile(x, np.linspace(0, 1, len(queues) + 1)[1:-1]))
    (tmp_path / "events").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    pd.DataFrame({"id": ids, "week": 0, "x": x}).to_parquet(tmp_path / "events" / "w0.parquet")
    pd.DataFrame({"id": ids, "queue": np.asarray(queues)[at]}).to_parquet(
        tmp_path / "labels" / "w0.parquet"
    )
    raw: dict[str, Any] = {
        "name": "tickets",
        "task": "classification",
        "target": "queue",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": str(tmp_path / "events"),
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "features": {"x": "numeric"},
        },
        "labels": {"uri": str(tmp_path / "labels"), "positive_class": "tech"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"metric": "accuracy"},
        "deploy": {"deployment_name": "tickets"},
    }
    return config_from_dict(raw)


def _train(cfg: Config, work: Path) -> None:
    """The ingest, label and train steps of window 0, as the direct engine runs them."""
    from retrain import steps

    text = cfg.to_yaml()
    steps.ingest(text, "0", "r0", str(work / "d.parquet"))
    steps.label(text, "0", "r0", str(work / "d.parquet"), str(work / "l.parquet"))
    steps.train(text, "0", "r0", str(work / "l.parquet"), str(work / "model"), str(work / "h"))


def test_a_positive_class_is_refused_at_train_when_the_labels_hold_more_than_two(
    tmp_path: Path,
) -> None:
    # With labels.classes unset the config cannot know; the training labels are the first to
    # tell, and a multiclass model's metrics never read positive_class: refused, as at load.
    cfg = _ticket_case(tmp_path / "three", ["billing", "sales", "tech"])
    with pytest.raises(ValidationError) as caught:
        _train(cfg, tmp_path / "three" / "run")
    message = str(caught.value)
    assert "labels.positive_class is for two classes" in message
    assert "the training labels (new window and history) hold 3 classes" in message
    assert "remove it (multiclass metrics judge every class)" in message
    model_dir = tmp_path / "three" / "run" / "model"
    assert not model_dir.exists() or not any(model_dir.iterdir())  # refused before the fit
    # Two classes: the same setting names the positive one and trains.
    binary = _ticket_case(tmp_path / "two", ["billing", "tech"])
    _train(binary, tmp_path / "two" / "run")
    assert (tmp_path / "two" / "run" / "model" / "model.json").is_file()
