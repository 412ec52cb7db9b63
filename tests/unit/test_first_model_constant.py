"""A first model's constant prediction is taken from the target it was trained on.

Fitted on the recent evaluation rows it is scored on, the constant was flattered: on rows of
one class it predicted that class with share 1, and no model could beat it on log loss or
accuracy. Taken from the training rows (recorded in the model card by the train step), it is
scored on the evaluation rows as the model is: a model that beats it on every resample is
blessed, one no better than it is still rejected, and a card from before the constant was
recorded still evaluates, against a constant fitted on the recent rows, and says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain import steps
from retrain.evaluation.gates import evaluate_challenger
from retrain.training.artifact import MODEL_CARD_FILE
from retrain.training.model import fit_model
from tests.unit.test_provisional_labels import config, run_label, run_train, write_stream
from tests.unit.test_small_gates import _cfg, _rows

FITTED_WORDS = "constant fitted on the recent evaluation rows"


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    train = _rows(2000, 1)
    noise = train.assign(x1=train["x2"], x2=train["x1"])
    shares = train["label"].value_counts(normalize=True)
    return {
        "good": fit_model(_cfg(), train),
        "noise": fit_model(_cfg(), noise),
        # What the train step records in the card (provenance.training_target).
        "target": {"rows": len(train), "classes": list(shares.index), "shares": list(shares)},
        "shares": shares,
    }


@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
def test_a_good_first_model_on_recent_rows_of_one_class_is_not_rejected(
    trained: dict[str, Any], metric: str
) -> None:
    # Every recent row is of the class the training rows held less of: the constant from the
    # training shares predicts it with share < 0.5 (log loss > ln 2, accuracy 0), while a
    # constant fitted on these rows predicts it with share 1 (log loss 0, accuracy 1).
    minority = trained["shares"].idxmin()
    assert trained["shares"][minority] < 0.5
    pool = _rows(4000, 31)
    recent = pool[pool["label"] == minority].head(600).reset_index(drop=True)
    assert len(recent) == 600
    cfg = _cfg(metric=metric, deploy_undecided_first_model=False)
    r = evaluate_challenger(
        cfg, trained["good"], None, recent, None, 0, training_target=trained["target"]
    )
    assert r.outcome == "blessed" and r.comparison["evaluated"] is True, r.reason
    assert r.comparison["baseline_fitted_on"] == "training rows"
    assert r.comparison["baseline_ci"][0] > 0
    # Against a constant fitted on the very rows (a card that records none), the same model
    # is rejected: what the training target fixes.
    old = evaluate_challenger(cfg, trained["good"], None, recent, None, 0)
    assert old.outcome == "rejected", old.reason
    assert FITTED_WORDS in old.reason


def test_a_perfectly_separating_first_model_is_blessed_not_undecided(
    trained: dict[str, Any],
) -> None:
    # The model ranks every recent row right (AUC 1 on every resample, the constant 0.5): a
    # zero-width interval above 0 is a gain on every resample, not "no evidence".
    x1 = np.tile([-3.0, -2.5, -2.0, 2.0, 2.5, 3.0], 100)
    rows = pd.DataFrame(
        {
            "id": range(len(x1)),
            "ts": pd.Timestamp("2024-01-01"),
            "x1": x1,
            "x2": 0.0,
            "label": np.where(x1 > 0, "yes", "no"),
        }
    )
    cfg = _cfg(deploy_undecided_first_model=False)
    r = evaluate_challenger(
        cfg, trained["good"], None, rows, None, 0, training_target=trained["target"]
    )
    assert r.comparison["baseline_ci"] == pytest.approx([0.5, 0.5])
    assert r.outcome == "blessed" and r.comparison["evaluated"] is True, r.reason
    assert "undecided" not in r.reason
    # By default too: blessed on the evidence, not deployed as "not evaluated".
    default = evaluate_challenger(
        _cfg(), trained["good"], None, rows, None, 0, training_target=trained["target"]
    )
    assert default.blessed and default.comparison["evaluated"] is True, default.reason
    assert "not evaluated" not in default.reason


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "accuracy"])
def test_a_first_model_no_better_than_the_training_constant_is_still_rejected(
    trained: dict[str, Any], metric: str
) -> None:
    # 800 recent rows (min_rows 500) that the noise model ranks no better than a constant.
    r = evaluate_challenger(
        _cfg(metric=metric),
        trained["noise"],
        None,
        _rows(800, 2),
        None,
        0,
        training_target=trained["target"],
    )
    assert r.outcome == "rejected", r.reason
    assert [g.name for g in r.gates if not g.passed] == ["baseline_improvement"]
    assert r.comparison["baseline_fitted_on"] == "training rows"


def test_a_class_the_training_rows_never_held_gets_a_finite_log_loss(
    trained: dict[str, Any],
) -> None:
    # A label seen only in the recent rows: its share is smoothed away from 0, so the
    # constant's log loss is finite (the model, which never saw the class, is not).
    recent = _rows(600, 9)
    recent.loc[:4, "label"] = "maybe"
    r = evaluate_challenger(
        _cfg(metric="log_loss"),
        trained["good"],
        None,
        recent,
        None,
        0,
        training_target=trained["target"],
    )
    assert np.isfinite(r.comparison["baseline"]), r.reason
    assert r.comparison["classes"][-1] == "maybe"


def test_the_train_step_records_the_constant_and_a_card_without_it_still_evaluates(
    tmp_path: Path,
) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path)
    run_label(tmp_path, cfg, "0", "r1", "3")
    details, holdout = run_train(tmp_path, cfg, "0", "r1")
    recorded = details["provenance"]["training_target"]
    assert sorted(recorded["classes"]) == [0, 1]
    assert sum(recorded["shares"]) == pytest.approx(1.0)
    model_dir = tmp_path / "r1-model"
    judged = steps.evaluate(cfg.to_yaml(), "r1", str(model_dir), str(holdout))
    assert judged.details["comparison"]["baseline_fitted_on"] == "training rows"
    assert FITTED_WORDS not in judged.reason
    # The same model with a card written before the constant was recorded.
    card = json.loads((model_dir / MODEL_CARD_FILE).read_text())
    del card["provenance"]["training_target"]
    (model_dir / MODEL_CARD_FILE).write_text(json.dumps(card))
    older = steps.evaluate(cfg.to_yaml(), "r2", str(model_dir), str(holdout))
    assert older.details["outcome"] in {"blessed", "rejected", "undecided"}
    assert older.details["comparison"]["baseline_fitted_on"] == "recent evaluation rows"
    assert FITTED_WORDS in older.reason, older.reason


def test_the_recorded_constant_follows_the_training_weights() -> None:
    from retrain.evaluation import target_constant

    # Shares, mean and median of the training target, each row counted by its mix weight.
    labels = target_constant("classification", np.array(["a", "b", "b", "b"]), [3.0, 1, 1, 1])
    assert dict(zip(labels["classes"], labels["shares"], strict=True)) == {"a": 0.5, "b": 0.5}
    assert labels["rows"] == 4
    values = target_constant("regression", np.array([1.0, 2.0, 10.0]), [1.0, 1.0, 4.0])
    assert values["mean"] == pytest.approx((1 + 2 + 40) / 6)
    assert values["median"] == 10.0  # four of the six weights are on 10
    plain = target_constant("regression", np.array([1.0, 2.0, 10.0, 11.0]))
    assert plain == {"rows": 4, "mean": 6.0, "median": 6.0}


def test_recorded_classes_match_the_models_whatever_their_spelling() -> None:
    # A card records its classes through JSON; the model's are numpy values, and a label
    # source may have written them as text. Matched by exact value, text "0"/"1" against the
    # integers 0/1 matched nothing and the constant became uniform shares (0.5 / 0.5).
    from retrain.evaluation._baseline import baseline_scores, usable_record

    y = pd.Series([0, 1, 1, 0])
    text = {"rows": 100, "classes": ["0", "1"], "shares": [0.9, 0.1]}
    scores = baseline_scores("log_loss", y, [0, 1], text)
    assert scores[0] == pytest.approx([90.5 / 101, 10.5 / 101])
    booleans = {"rows": 100, "classes": [False, True], "shares": [0.9, 0.1]}
    assert baseline_scores("log_loss", y, [0, 1], booleans)[0] == pytest.approx(scores[0])
    # A record naming none of the model's classes cannot stand for the constant: the gate
    # fits it on the recent rows instead (and says so), as for a card without a record.
    other = {"rows": 100, "classes": ["no", "yes"], "shares": [0.9, 0.1]}
    assert usable_record([0, 1], other) is None
    assert usable_record([0, 1], text) is text
    assert usable_record(None, {"rows": 3, "mean": 1.0, "median": 1.0}) is not None
