"""A model with identifier features (target-encoded and hashed ids) served by the real model
server in its own Python 3.12 environment: it loads through the trusted-type list and answers
as the training environment does, unseen and missing ids included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_serving import WHEN, Server, Trained, _serve, serving_venv

from retrain.config import Config, config_from_dict
from retrain.data.schema import as_category_strings
from retrain.training.artifact import card_from_config, model_files, sha256_hex
from retrain.training.model import fit_model, predict_scores

pytestmark = pytest.mark.integration

__all__ = ["serving_venv"]  # the session fixture, shared with test_serving

FEATURES = {"user_id": "identifier", "item_id": "identifier", "price": "numeric"}


def make_cfg(encoding: str) -> Config:
    return config_from_dict(
        {
            "name": "serving-ids",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": FEATURES,
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "training": {"identifier_encoding": encoding, "identifier_hash_features": 32},
            "deploy": {"deployment_name": "serving-ids"},
        }
    )


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 400, n)
    item = rng.integers(0, 150, n)
    label = np.where((user % 3 == 0) ^ (rng.random(n) < 0.15), "yes", "no")
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "ts": 0,
            # Text as ingest writes it (a missing id is NaN, as the server reads a null).
            "user_id": as_category_strings(pd.Series([f"u{u}" for u in user])),
            "item_id": as_category_strings(pd.Series([f"i{i}" for i in item])),
            "price": rng.lognormal(3.0, 0.5, n),
            "label": label,
        }
    )


def train(encoding: str, directory: Path) -> Trained:
    cfg = make_cfg(encoding)
    model = fit_model(cfg, make_frame(1500, 1))
    version = f"ids-{encoding}-{sha256_hex(encoding.encode())[:8]}"
    card = card_from_config(cfg, version=version, parent=None, created_at=WHEN)
    directory.mkdir(parents=True)
    for name, data in model_files(model, card).items():
        (directory / name).write_bytes(data)
    return Trained(cfg, model, version, directory)


@pytest.fixture(scope="module", params=["target", "hashing"])
def served(
    request: pytest.FixtureRequest, serving_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Trained, Server]]:
    trained = train(request.param, tmp_path_factory.mktemp(request.param) / "v")
    log = tmp_path_factory.mktemp("srv") / "server.log"
    for server in _serve(serving_venv, trained, log):
        yield trained, server


def test_identifier_models_serve_what_the_training_environment_predicts(
    served: tuple[Trained, Server],
) -> None:
    trained, server = served
    test = make_frame(30, 2)
    test.loc[0, "user_id"] = "u-never-seen"
    test["item_id"] = as_category_strings(test["item_id"].where(test.index != 1))
    expected = predict_scores(trained.model, test, trained.cfg)
    names = ["price", "item_id", "user_id"]
    rows: list[list[Any]] = [
        [None if isinstance(v, float) and np.isnan(v) else v for v in (r[n] for n in names)]
        for r in test[names].to_dict("records")
    ]
    assert rows[1][1] is None  # a null id in the request
    status, body = server.predict({"data": {"names": names, "ndarray": rows}})
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["data"]["ndarray"]), expected, rtol=0, atol=1e-12)
