"""Text features: the vectoriser inside the saved pipeline, nulls as empty text, safe loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer

from retrain._safety import load_verified, sha256_hex
from retrain.cli import main
from retrain.config import Config, config_from_dict
from retrain.data.schema import check_window
from retrain.errors import ValidationError
from retrain.settings.limits import InputLimits
from retrain.training.artifact import serialize_model
from retrain.training.model import build_estimator, feature_frame, fit_model, predict_scores

POSITIVE = ["great", "love", "excellent", "perfect"]
NEGATIVE = ["awful", "broken", "refund", "terrible"]
FILLER = ["the", "item", "arrived", "it", "is", "this"]


def text_cfg(
    text: dict[str, Any] | None = None,
    estimator: str = "sklearn.linear_model.LogisticRegression",
    params: dict[str, Any] | None = None,
    **sections: Any,
) -> Config:
    return config_from_dict(
        {
            **sections,
            "name": "reviews",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "features": {"review": "text", "stars_shown": "numeric"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": estimator, "params": params or {}},
            "training": {"text": text or {}},
            "deploy": {"deployment_name": "reviews"},
        }
    )


def reviews(n: int, seed: int) -> pd.DataFrame:
    """Reviews whose label is carried by the words only; every tenth text missing."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    texts: list[str | None] = []
    for i, y in enumerate(label):
        words = [*rng.choice(FILLER, 4), str(rng.choice(POSITIVE if y else NEGATIVE))]
        texts.append(None if i % 10 == 0 else " ".join(rng.permutation(words)))
    return pd.DataFrame({"review": texts, "stars_shown": rng.normal(size=n), "label": label})


@pytest.mark.parametrize("vectorizer", ["hashing", "tfidf"])
def test_text_model_learns_from_words_and_loads_safely(vectorizer: str) -> None:
    cfg = text_cfg({"vectorizer": vectorizer, "min_df": 1})
    train, test = reviews(400, 1), reviews(200, 2)
    model = fit_model(cfg, train)
    scores = predict_scores(model, test, cfg)[:, 1]
    has_text = test["review"].notna().to_numpy()
    # The words decide the label: every review with text is ranked on the right side.
    y = test["label"].to_numpy()
    assert scores[has_text & (y == 1)].min() > scores[has_text & (y == 0)].max()
    # A missing text is an empty one: scored like "", not an error.
    empty = test.assign(review="")
    np.testing.assert_allclose(scores[~has_text], predict_scores(model, empty, cfg)[~has_text, 1])
    data = serialize_model(model)
    loaded = load_verified(data, sha256_hex(data))
    np.testing.assert_allclose(predict_scores(loaded, test, cfg)[:, 1], scores)


def test_vectoriser_follows_training_text() -> None:
    pre = build_estimator(
        text_cfg({"vectorizer": "hashing", "n_features": 1024, "ngram_range": [1, 1]})
    ).named_steps["preprocess"]
    name, vec, column = pre.transformers[-1]
    assert (name, column) == ("text:review", "review")
    assert isinstance(vec, HashingVectorizer)
    assert (vec.n_features, vec.ngram_range, vec.alternate_sign) == (1024, (1, 1), False)
    tfidf = (
        build_estimator(
            text_cfg({"vectorizer": "tfidf", "max_features": 50, "min_df": 3, "lowercase": False})
        )
        .named_steps["preprocess"]
        .transformers[-1][1]
    )
    assert isinstance(tfidf, TfidfVectorizer)
    assert (tfidf.max_features, tfidf.min_df, tfidf.lowercase) == (50, 3, False)


def test_hashing_default_keys_new_words_without_a_refit() -> None:
    # The point of hashing: a word first seen after the fit still reaches the model.
    model = fit_model(text_cfg(), reviews(200, 3))
    vec = model.named_steps["preprocess"].named_transformers_["text:review"]
    assert vec.transform(["bussin"]).nnz == 1


def test_missing_text_becomes_empty_without_touching_the_input() -> None:
    cfg = text_cfg()
    frame = pd.DataFrame({"review": ["ok", None, np.nan], "stars_shown": [1.0, None, 2.0]})
    out = feature_frame(frame, cfg)
    assert out["review"].tolist() == ["ok", "", ""]
    assert out["stars_shown"].isna().tolist() == [False, True, False]
    assert frame["review"].isna().sum() == 2


def test_estimator_without_sparse_input_is_refused_when_the_config_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hist = "sklearn.ensemble.HistGradientBoostingClassifier"
    with pytest.raises(ValidationError) as err:
        text_cfg(estimator=hist)
    assert f"model.estimator: {hist} does not accept sparse input" in str(err.value)
    # The same estimator without a text feature is fine.
    cfg = text_cfg()
    raw = yaml.safe_load(cfg.to_yaml())
    raw["data"]["features"] = {"stars_shown": "numeric"}
    raw["model"]["estimator"] = hist
    assert config_from_dict(raw).model.estimator == hist
    # On the command line: exit 2 before any step runs, with the same message.
    raw["data"]["features"] = {"review": "text", "stars_shown": "numeric"}
    path = tmp_path / "retrain.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["status", "--config", str(path)]) == 2
    assert "does not accept sparse input" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "key"),
    [({"vectorizer": "bag"}, "vectorizer"), ({"ngram_range": [2, 1]}, "ngram_range")],
)
def test_bad_text_settings_name_the_key(text: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        text_cfg(text)


def test_a_text_past_max_value_bytes_is_refused_naming_the_limit() -> None:
    cfg = text_cfg()
    cfg = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"limits": InputLimits(max_value_bytes=64)})}
    )
    frame = reviews(120, 4).assign(id=range(120), ts=pd.Timestamp("2024-01-01", tz="UTC"))
    assert not [p for p in check_window(frame, None, cfg) if "max_value_bytes" in p]
    frame.loc[5, "review"] = "é" * 40  # 40 characters, 80 bytes
    problems = check_window(frame, None, cfg)
    assert any(
        "'review' holds a value of 80 bytes" in p and "max_value_bytes" in p for p in problems
    )
