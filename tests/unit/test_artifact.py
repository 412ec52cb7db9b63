"""Model files: skops round trip, the card, and refusal of tampered, untrusted or broken files."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError
from retrain.training.artifact import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    ModelCard,
    card_from_config,
    load_model,
    model_files,
    schema_types,
    serialize_model,
)
from retrain.training.model import fit_model, predict_scores

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def make_cfg(estimator: str, params: dict[str, Any] | None = None) -> Config:
    return config_from_dict(
        {
            "name": "demo",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": {"x1": "numeric", "colour": "categorical"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {"estimator": estimator, "params": params or {}},
            "deploy": {"deployment_name": "demo"},
        }
    )


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "blue"], size=n)
    z = 2 * x1 + np.where(colour == "red", 1.0, -1.0)
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-z)), "yes", "no")
    return pd.DataFrame({"id": np.arange(n), "ts": 0, "x1": x1, "colour": colour, "label": label})


@pytest.fixture(scope="module", params=["LogisticRegression", "HistGradientBoostingClassifier"])
def trained(request: pytest.FixtureRequest) -> tuple[Config, Pipeline]:
    module = "linear_model" if request.param == "LogisticRegression" else "ensemble"
    params = {"max_iter": 20} if request.param != "LogisticRegression" else {}
    cfg = make_cfg(f"sklearn.{module}.{request.param}", params)
    return cfg, fit_model(cfg, make_frame(300, 1))


def _card(cfg: Config, **changes: Any) -> ModelCard:
    card = card_from_config(
        cfg,
        version="v0002",
        parent="v0001",
        created_at=WHEN,
        data_hashes={"new": "ab" * 32},
        window="2024-W18",
        run_id="run-1",
        provenance={"rows": {"train": 300}},
        metrics={"roc_auc": np.float64(0.9)},
    )
    return dataclasses.replace(card, **changes)


def _signed(data: bytes, cfg: Config) -> ModelCard:
    """A card that matches `data`, so that only the content checks can refuse it."""
    return _card(cfg, model_sha256=hashlib.sha256(data).hexdigest())


def test_round_trip_gives_identical_predictions(trained: tuple[Config, Pipeline]) -> None:
    cfg, model = trained
    files = model_files(model, _card(cfg))
    assert set(files) == {MODEL_FILE, MODEL_CARD_FILE}
    card = ModelCard.from_json(files[MODEL_CARD_FILE])
    assert card.model_sha256 == hashlib.sha256(files[MODEL_FILE]).hexdigest()
    loaded = load_model(files[MODEL_FILE], card)
    test = make_frame(100, 2)
    assert np.array_equal(predict_scores(loaded, test, cfg), predict_scores(model, test, cfg))


def test_card_records_the_config_and_round_trips_through_json() -> None:
    cfg = make_cfg("sklearn.linear_model.LogisticRegression", {"C": 0.3})
    card = _card(cfg, model_sha256="00" * 32)
    assert card.created_at == "2024-05-01T12:00:00+00:00"
    assert card.features == {"x1": "numeric", "colour": "categorical"}
    assert (card.estimator, card.params, card.seed) == (cfg.model.estimator, {"C": 0.3}, 42)
    libraries = {"python", "sklearn", "numpy", "pandas", "skops", "retrain"}
    assert set(card.library_versions) == libraries
    text = card.to_json()
    assert json.loads(text)["metrics"] == {"roc_auc": 0.9}  # numpy scalar written as a number
    assert ModelCard.from_json(text) == dataclasses.replace(card, metrics={"roc_auc": 0.9})


def test_card_from_json_lists_every_problem() -> None:
    raw = json.loads(_card(make_cfg("sklearn.linear_model.LogisticRegression")).to_json())
    del raw["version"]
    raw["colour"] = "red"
    raw["seed"] = "42"
    with pytest.raises(ValidationError) as err:
        ModelCard.from_json(json.dumps(raw))
    assert err.value.problems == [
        "unknown key 'colour'",
        "required key 'version' is missing",
        "'seed' must be int, got '42'",
    ]
    with pytest.raises(ValidationError, match="not valid JSON"):
        ModelCard.from_json("{")


def test_a_reader_may_drop_keys_a_newer_writer_added() -> None:
    # Serving reads cards with ignore_unknown: a card from a newer release still loads, and
    # only the unknown key is forgiven.
    card = _card(make_cfg("sklearn.linear_model.LogisticRegression"))
    raw = {**json.loads(card.to_json()), "colour": "red"}
    assert ModelCard.from_json(json.dumps(raw), ignore_unknown=True) == card
    raw["seed"] = "42"
    with pytest.raises(ValidationError, match="card at /x is invalid") as err:
        ModelCard.from_json(json.dumps(raw), "at /x", ignore_unknown=True)
    assert err.value.problems == ["'seed' must be int, got '42'"]


def test_card_needs_an_aware_timestamp() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        card_from_config(
            make_cfg("sklearn.linear_model.LogisticRegression"),
            version="v1",
            parent=None,
            created_at=datetime(2024, 5, 1),
        )


def test_tampered_bytes_are_refused_before_loading(trained: tuple[Config, Pipeline]) -> None:
    cfg, model = trained
    files = model_files(model, _card(cfg))
    card = ModelCard.from_json(files[MODEL_CARD_FILE])
    data = bytearray(files[MODEL_FILE])
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ValidationError, match=r"does not match its card.*refusing to load"):
        load_model(bytes(data), card)
    with pytest.raises(ValidationError, match="does not match its card"):
        load_model(files[MODEL_FILE], dataclasses.replace(card, model_sha256=""))


def test_a_function_reference_is_refused() -> None:
    cfg = make_cfg("sklearn.linear_model.LogisticRegression")
    evil = Pipeline([("run", FunctionTransformer(func=os.system))])
    data = sio.dumps(evil)
    with pytest.raises(ValidationError) as err:
        load_model(data, _signed(data, cfg))
    system = f"{os.system.__module__}.system"
    assert f"untrusted type {system}" in err.value.problems
    assert "untrusted type sklearn.preprocessing._function_transformer.FunctionTransformer" in (
        err.value.problems
    )
    with pytest.raises(ValidationError, match="could not be loaded back safely"):
        serialize_model(evil)


def test_a_scikit_learn_type_outside_the_list_is_refused() -> None:
    # skops itself trusts every scikit-learn estimator; our list is narrower on purpose.
    cfg = make_cfg("sklearn.linear_model.LogisticRegression")
    frame = make_frame(60, 3)
    svc = Pipeline([("scale", StandardScaler()), ("svc", SVC())]).fit(frame[["x1"]], frame["label"])
    data = sio.dumps(svc)
    with pytest.raises(ValidationError) as err:
        load_model(data, _signed(data, cfg))
    assert err.value.problems == ["untrusted type sklearn.svm._classes.SVC"]


def test_a_non_pipeline_object_is_refused() -> None:
    cfg = make_cfg("sklearn.linear_model.LogisticRegression")
    data = sio.dumps(StandardScaler().fit(np.arange(6.0).reshape(-1, 1)))
    with pytest.raises(ValidationError, match="holds a StandardScaler, not a Pipeline"):
        load_model(data, _signed(data, cfg))


def _rezip(data: bytes, change: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, change.get(name, src.read(name)))
    return out.getvalue()


@pytest.mark.parametrize("case", ["not a zip", "truncated", "bad schema", "bad array"])
def test_corrupted_files_are_refused(trained: tuple[Config, Pipeline], case: str) -> None:
    cfg, model = trained
    good = serialize_model(model)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        array_file = next(n for n in zf.namelist() if n.endswith(".npy"))
    data = {
        "not a zip": b"definitely not a model",
        "truncated": good[: len(good) // 2],
        "bad schema": _rezip(good, {"schema.json": b"{not json"}),
        "bad array": _rezip(good, {array_file: b"\x93NUMPY garbage"}),
    }[case]
    with pytest.raises(ValidationError, match=r"corrupted|could not be loaded"):
        load_model(data, _signed(data, cfg))


def test_schema_types_lists_what_a_file_names(trained: tuple[Config, Pipeline]) -> None:
    _, model = trained
    types, nodes = schema_types(serialize_model(model))
    assert "sklearn.pipeline.Pipeline" in types
    assert "sklearn.compose._column_transformer.ColumnTransformer" in types
    assert {"ObjectNode", "NdArrayNode"} <= nodes
