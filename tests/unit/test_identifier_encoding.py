"""Identifier features: target or hashing encoding in the saved pipeline, safe loading,
high-cardinality categoricals, continuous learning, nulls and single-valued ids."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder, TargetEncoder

from retrain.config import Config, config_from_dict
from retrain.continuous import plan_update, train_or_update
from retrain.errors import ValidationError
from retrain.training.artifact import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    ModelCard,
    card_from_config,
    load_model,
    model_files,
)
from retrain.training.model import fit_model, predict_scores

SGD = "sklearn.linear_model.SGDClassifier"
SGD_PARAMS = {"loss": "log_loss", "learning_rate": "constant", "eta0": 0.05}


def make_cfg(
    features: dict[str, str] | None = None,
    training: dict[str, Any] | None = None,
    estimator: str = "sklearn.linear_model.LogisticRegression",
    params: dict[str, Any] | None = None,
    continuous: bool = False,
) -> Config:
    return config_from_dict(
        {
            "name": "ids",
            "task": "classification",
            "target": "bought",
            "storage_root": "/tmp/unused",
            "seed": 5,
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": features
                or {"user": "identifier", "price": "numeric", "category": "categorical"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "bought"},
            "model": {"estimator": estimator, "params": params or {}},
            "training": {"history_holdout_rows": 50, **(training or {})},
            "continuous": {"enabled": continuous},
            "deploy": {"deployment_name": "ids"},
        }
    )


def purchases(n: int, seed: int, users: int = 300, first_user: int = 0) -> pd.DataFrame:
    """Each user has a fixed taste: the id alone predicts the label well."""
    rng = np.random.default_rng(seed)
    user = rng.integers(first_user, first_user + users, n)
    taste = (user * 2654435761 % 1000) / 1000.0  # a fixed per-user propensity
    price = rng.lognormal(3.0, 0.5, n)
    bought = (rng.random(n) < 0.1 + 0.8 * (taste > 0.5)).astype(int)
    return pd.DataFrame(
        {
            "id": [f"e{seed}-{i}" for i in range(n)],
            "week": 0,
            "user": [f"u{u}" for u in user],
            "price": price,
            "category": rng.choice(["books", "toys", "garden"], n),
            "bought": bought,
        }
    )


def transformers(model: Any) -> dict[str, Any]:
    return {name: t for name, t, _ in model.named_steps["preprocess"].transformers_}


def test_target_encoding_is_cross_fitted_and_unseen_ids_get_the_overall_mean() -> None:
    cfg = make_cfg()
    train = purchases(2000, 1)
    model = fit_model(cfg, train)
    encoder = transformers(model)["identifier_target"].named_steps["encode"]
    assert isinstance(encoder, TargetEncoder)
    pre = model.named_steps["preprocess"]
    seen = pre.transform(train[["user", "price", "category"]])
    user_col = pre.get_feature_names_out().tolist().index("identifier_target__user")
    in_sample = dict(zip(train["user"], seen[:, user_col], strict=True))
    # An id never seen is encoded as the training target's mean, computed here by hand.
    new = train.head(1).assign(user="u-never-seen")
    unseen_code = pre.transform(new[["user", "price", "category"]])[0, user_col]
    assert unseen_code == pytest.approx(train["bought"].mean())
    # The per-id encoding follows each user's own purchase rate (shrunk towards the mean).
    rates = train.groupby("user")["bought"].mean()
    codes = pd.Series(in_sample).reindex(rates.index)
    assert np.corrcoef(rates, codes)[0, 1] > 0.9
    # And the id carries the signal: better than chance on fresh rows of the same users.
    test = purchases(1000, 2)
    scores = predict_scores(model, test, cfg)[:, 1]
    assert roc_auc_score(test["bought"], scores) > 0.8


def test_cross_fitting_keeps_ids_that_carry_only_noise_from_lifting_in_sample_auc() -> None:
    # 1,000 users with two rows each and labels independent of the user: an in-sample target
    # mean hands every row half of its own label, so a model trained on it "learns" the id.
    cfg = make_cfg({"user": "identifier"})
    rng = np.random.default_rng(11)
    train = pd.DataFrame(
        {
            "id": [f"e{i}" for i in range(2000)],
            "week": 0,
            "user": [f"u{i % 1000}" for i in range(2000)],
            "bought": (rng.random(2000) < 0.3).astype(int),
        }
    )
    y = train["bought"].to_numpy()
    # Naive: the encoding fitted and applied on the same rows, then the same estimator.
    naive_codes = TargetEncoder(cv=2).fit(train[["user"]], y).transform(train[["user"]])
    naive = LogisticRegression().fit(naive_codes, y)
    naive_auc = roc_auc_score(y, naive.predict_proba(naive_codes)[:, 1])
    # Cross-fitted (the pipeline): each row's code leaves its own label out, so the estimator
    # finds no signal in the id and the in-sample scores stay near chance.
    model = fit_model(cfg, train)
    crossed_auc = roc_auc_score(y, predict_scores(model, train, cfg)[:, 1])
    assert naive_auc > 0.8
    assert crossed_auc < 0.6


def test_numeric_ids_are_encoded_as_their_text() -> None:
    # Ids read from a source outside ingest may be numbers (and floats once a null appears):
    # they are encoded as the text ingest and serving give them ('7', not 7.0).
    for encoding in ("target", "hashing"):
        cfg = make_cfg(training={"identifier_encoding": encoding})
        text = purchases(400, 4).assign(user=lambda d: d["user"].str[1:])  # '17', '203'
        as_int = text.assign(user=text["user"].astype("int64"))
        as_float = as_int.assign(user=as_int["user"].astype(float))
        as_float.loc[0, "user"] = np.nan
        expected = predict_scores(fit_model(cfg, text), text, cfg)
        for numeric in (as_int, as_float):
            model = fit_model(cfg, numeric)
            scores = predict_scores(model, numeric, cfg)
            if numeric is as_int:
                np.testing.assert_allclose(scores, expected)
            # Text ids score the same as the numbers they print as.
            np.testing.assert_allclose(predict_scores(model, text.iloc[1:], cfg), scores[1:])


def test_hashing_gives_each_id_column_its_own_fixed_width() -> None:
    cfg = make_cfg(
        {"user": "identifier", "item": "identifier", "price": "numeric"},
        {"identifier_encoding": "hashing", "identifier_hash_features": 16},
    )
    train = purchases(500, 3).assign(item=lambda d: d["user"])  # same values in both columns
    model = fit_model(cfg, train)
    parts = transformers(model)
    assert isinstance(parts["identifier_hash_user"].named_steps["hash"], FeatureHasher)
    out = model.named_steps["preprocess"].transform(train[["user", "item", "price"]])
    assert out.shape == (500, 1 + 16 + 16)
    # Hashing is stateless: ids never seen still land in the same 16 inputs, one set per row.
    fresh = model.named_steps["preprocess"].transform(
        train.head(3).assign(user=["x1", "x2", "x3"])[["user", "item", "price"]]
    )
    assert (np.abs(fresh[:, 1:17]).sum(axis=1) == 1).all()


def test_a_categorical_above_max_onehot_categories_is_encoded_as_an_identifier() -> None:
    cfg = make_cfg(
        {"user": "categorical", "category": "categorical"}, {"max_onehot_categories": 20}
    )
    train = purchases(800, 4, users=30)
    model = fit_model(cfg, train)
    parts = transformers(model)
    assert isinstance(parts["categorical"].named_steps["onehot"], OneHotEncoder)
    pre = model.named_steps["preprocess"]
    one_hot_cols = [c for n, _, c in pre.transformers_ if n == "categorical"]
    assert one_hot_cols == [["category"]]
    assert "identifier_target" in parts
    result = train_or_update(cfg, train, None, 5)
    [warning] = result.provenance["encoding_warnings"]
    assert "'user' has 30 distinct values" in warning and "max_onehot_categories (20)" in warning
    # Under the limit: one-hot as before, no warning.
    both = {"user": "categorical", "category": "categorical"}
    wide = make_cfg(both, {"max_onehot_categories": 30})
    assert "identifier_target" not in transformers(fit_model(wide, train))
    assert "encoding_warnings" not in train_or_update(wide, train, None, 5).provenance


@pytest.mark.parametrize("encoding", ["target", "hashing"])
def test_the_saved_model_loads_with_the_safe_loader_and_predicts_the_same(encoding: str) -> None:
    cfg = make_cfg(training={"identifier_encoding": encoding})
    train = purchases(600, 5)
    model = fit_model(cfg, train)
    card = card_from_config(cfg, version="v1", parent=None, created_at=datetime.now(timezone.utc))
    files = model_files(model, card)
    loaded = load_model(files[MODEL_FILE], ModelCard.from_json(files[MODEL_CARD_FILE]))
    rows = purchases(50, 6).assign(user=lambda d: d["user"].where(d.index % 7 != 0, "brand-new"))
    assert np.array_equal(predict_scores(loaded, rows, cfg), predict_scores(model, rows, cfg))


def test_null_and_single_valued_ids_train_and_predict() -> None:
    cfg = make_cfg()
    train = purchases(400, 7)
    train.loc[train.index % 5 == 0, "user"] = None
    model = fit_model(cfg, train)
    assert np.isfinite(predict_scores(model, train.head(20), cfg)).all()
    single = purchases(400, 8).assign(user="u1")  # one value carries no information: still fits
    model = fit_model(cfg, single)
    assert np.isfinite(predict_scores(model, single.head(5), cfg)).all()


def _champion(cfg: Config, train: pd.DataFrame) -> tuple[Any, Any]:
    model = fit_model(cfg, train)
    card = card_from_config(
        cfg, version="w0-abc", parent=None, created_at=datetime.now(timezone.utc)
    )
    return model, card


def test_continuous_learning_refits_a_target_encoder_and_updates_a_hashed_model() -> None:
    target = make_cfg(estimator=SGD, params=SGD_PARAMS, continuous=True)
    train = purchases(600, 9)
    champion, card = _champion(target, train)
    plan = plan_update(target, champion, card, purchases(300, 10))
    assert plan.mode == "full"
    assert any("target encoding of identifier column(s) 'user'" in r for r in plan.reasons)

    hashed = make_cfg(
        estimator=SGD,
        params=SGD_PARAMS,
        continuous=True,
        training={"identifier_encoding": "hashing", "identifier_hash_features": 64},
    )
    champion, card = _champion(hashed, train)
    new_users = purchases(300, 11, users=100, first_user=5000)
    plan = plan_update(hashed, champion, card, new_users)
    assert plan.mode == "continuous", plan.reasons
    result = train_or_update(hashed, new_users, train, 5, champion=champion, champion_card=card)
    assert result.plan.mode == "continuous"
    # The update learned the new users: their scores moved from the champion's.
    before = predict_scores(champion, new_users, hashed)[:, 1]
    after = predict_scores(result.model, new_users, hashed)[:, 1]
    assert not np.allclose(before, after)


def test_hash_width_is_capped_at_a_dense_size() -> None:
    # The hashed inputs are dense (no sparse input for e.g. HistGradientBoosting): a width of
    # 1 << 20 would be 8 MB a row, so the config refuses widths past 1,024.
    assert make_cfg(training={"identifier_hash_features": 1024}).training
    with pytest.raises(ValidationError, match=r"identifier_hash_features[\s\S]*1024"):
        make_cfg(training={"identifier_hash_features": 1 << 20})
