"""Continuous learning with text: hashed words + SGDClassifier.partial_fit learn new words."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from retrain.continuous.update import plan_update, update_model
from retrain.errors import ValidationError
from retrain.training.artifact import card_from_config
from retrain.training.model import fit_model, predict_scores
from tests.unit.test_text_features import text_cfg

OLD = (["great", "love", "excellent"], ["awful", "broken", "refund"])
NEW = (["bussin", "goated", "slaps"], ["mid", "cringe", "flop"])
NEUTRAL = ["the", "item", "box", "arrived", "price", "my"]


def stream(n: int, seed: int, words: tuple[list[str], list[str]], first_id: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    texts = [
        " ".join([*rng.choice(NEUTRAL, 4), str(rng.choice(words[0] if y else words[1]))])
        for y in label
    ]
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n),
            "review": texts,
            "stars_shown": rng.normal(size=n),
            "label": label,
        }
    )


def test_partial_fit_on_hashed_text_learns_words_first_seen_after_the_fit() -> None:
    cfg = text_cfg(
        estimator="sklearn.linear_model.SGDClassifier",
        params={"loss": "log_loss", "alpha": 1e-4},
        continuous={"enabled": True, "passes": 3},
    )
    champion = fit_model(cfg, stream(600, 1, OLD, 0))
    card = card_from_config(
        cfg, version="v1", parent=None, created_at=datetime(2024, 1, 1, tzinfo=timezone.utc)
    )
    test = stream(400, 3, NEW, 10_000)

    def auc(model: Pipeline) -> float:
        return float(roc_auc_score(test["label"], predict_scores(model, test, cfg)[:, 1]))

    before = auc(champion)
    plan = plan_update(cfg, champion, card, stream(300, 2, NEW, 5_000))
    assert plan.mode == "continuous", plan.reasons
    assert plan.strategy is not None and plan.strategy.method == "partial_fit"
    updated, notes = update_model(cfg, champion, stream(300, 2, NEW, 5_000), seed=cfg.seed)
    assert notes["method"] == "partial_fit"
    # The old model knows none of the new words (chance); the update learns them.
    assert before < 0.6
    assert auc(updated) > 0.95


def test_tfidf_champion_is_refitted_in_full_and_says_why() -> None:
    cfg = text_cfg(
        {"vectorizer": "tfidf", "min_df": 1},
        estimator="sklearn.linear_model.SGDClassifier",
        params={"loss": "log_loss", "alpha": 1e-4},
        continuous={"enabled": True, "passes": 3},
    )
    champion = fit_model(cfg, stream(600, 1, OLD, 0))
    card = card_from_config(
        cfg, version="v1", parent=None, created_at=datetime(2024, 1, 1, tzinfo=timezone.utc)
    )
    plan = plan_update(cfg, champion, card, stream(300, 2, NEW, 5_000))
    # A partial_fit would keep the vocabulary of the first fit: none of the new words.
    assert plan.mode == "full"
    assert any("tfidf vocabulary of text column(s) 'review'" in r for r in plan.reasons)


@pytest.mark.parametrize("empty", ["", None, " !? "])
def test_all_empty_texts_under_tfidf_name_the_column_not_the_estimator(empty: str | None) -> None:
    cfg = text_cfg({"vectorizer": "tfidf", "min_df": 1})
    train = stream(100, 4, OLD, 0).assign(review=empty)
    with pytest.raises(ValidationError) as err:
        fit_model(cfg, train)
    assert err.value.exit_code == 2
    assert "text feature 'review' has no words in any of its 100 training row(s)" in str(err.value)
    assert "fitting" not in str(err.value)
    # Hashing needs no vocabulary: the same rows train (the words carry no signal).
    fit_model(text_cfg({"vectorizer": "hashing"}), train)
