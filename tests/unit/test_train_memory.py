"""The train step's memory cuts change nothing it produces: the same model, the same hashes."""

from __future__ import annotations

import pickle
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from retrain import steps
from retrain.config import Config
from retrain.continuous import update as update_module
from retrain.data.history import history_row_budget, read_history
from retrain.data.io import content_sha256, to_parquet_bytes
from retrain.steps import _train as train_module
from retrain.training._memory import one_hot_columns, text_as_categories
from retrain.training.artifact import load_model_dir
from retrain.training.mix import build_training_set
from retrain.training.model import build_estimator, feature_frame, fit_model, predict_scores
from tests.unit.test_history_sample import labelled, store_with_history
from tests.unit.test_ingest import config


def _fitted_state(model: Pipeline) -> dict[str, bytes]:
    """Every fitted attribute of every estimator in `model`, pickled one by one."""
    state: dict[str, bytes] = {}

    def walk(prefix: str, est: Any) -> None:
        for key, value in vars(est).items():
            if key in ("steps", "transformers_", "named_transformers_"):
                continue
            state[f"{prefix}.{key}"] = pickle.dumps(value)
        for name, child in getattr(est, "steps", []):
            walk(f"{prefix}/{name}", child)
        for name, child, _ in getattr(est, "transformers_", []):
            if not isinstance(child, str):
                walk(f"{prefix}/{name}", child)

    walk("", model)
    return state


def _frame_with_text(n: int, seed: int) -> pd.DataFrame:
    """Rows with an Arrow-backed text category, some of it missing."""
    rng = np.random.default_rng(seed)
    plan = pd.Series(rng.choice(["basic", "pro", "team"], size=n), dtype="str")
    plan[rng.random(n) < 0.1] = None
    amount = rng.uniform(0, 100, n)
    amount[rng.random(n) < 0.05] = np.nan
    visits = rng.integers(1, 11, n).astype(float)
    logit = 0.03 * np.nan_to_num(amount) - 0.2 * visits + plan.map({"pro": 1.0}).fillna(0.0)
    return pd.DataFrame(
        {
            "id": [f"u{i:05d}" for i in range(n)],
            "week": np.zeros(n, dtype=np.int64),
            "amount": amount,
            "visits": visits,
            "plan": plan,
            "churned": (logit + rng.logistic(size=n) > 0).astype(np.int64),
        }
    )


@pytest.mark.parametrize(
    "estimator",
    ["sklearn.linear_model.LogisticRegression", "sklearn.ensemble.HistGradientBoostingClassifier"],
)
def test_fitting_on_categories_gives_the_model_a_plain_fit_gives(estimator: str) -> None:
    cfg = config()
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"estimator": estimator})})
    train = _frame_with_text(600, seed=1)
    assert isinstance(train["plan"].dtype, pd.StringDtype)  # the case the cut is for
    X = feature_frame(train, cfg)
    plain = build_estimator(cfg, train).fit(X, train["churned"])  # the fit as it was
    assert one_hot_columns(plain) == ["plan"]
    assert isinstance(text_as_categories(X, ["plan"])["plan"].dtype, pd.CategoricalDtype)

    model = fit_model(cfg, train)

    assert _fitted_state(model) == _fitted_state(plain)
    unseen = _frame_with_text(200, seed=2)
    unseen.loc[:9, "plan"] = "enterprise"  # a category the fit never saw
    np.testing.assert_array_equal(
        predict_scores(model, unseen, cfg), predict_scores(plain, unseen, cfg)
    )
    assert isinstance(train["plan"].dtype, pd.StringDtype)  # the caller's frame is untouched


def test_text_as_categories_keeps_columns_it_cannot_lighten() -> None:
    frame = pd.DataFrame(
        {
            "arrow": pd.Series(["a", "b", None], dtype="str"),
            "objects": pd.Series(["a", "b", None], dtype=object),
            "numbers": [1, 2, 3],
        }
    )
    out = text_as_categories(frame, ["arrow", "objects", "numbers", "absent"])
    assert isinstance(out["arrow"].dtype, pd.CategoricalDtype)
    assert out["objects"].dtype == object and out["numbers"].dtype == np.int64
    assert out["arrow"].isna().tolist() == [False, False, True]
    assert text_as_categories(frame, ["objects"]) is frame


def test_train_step_frees_history_before_the_fit_and_hashes_it_as_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = store_with_history(tmp_path)
    cfg: Config = config()
    cfg = cfg.model_copy(update={"storage_root": str(store.root)})
    new = labelled(13, seed=9)
    new = new[new["week"] == 12].reset_index(drop=True)
    new_path = tmp_path / "labelled.parquet"
    new_path.write_bytes(to_parquet_bytes(new, {"sha256": content_sha256(new)}))
    expected = read_history(store, cfg, "12", max_rows=history_row_budget(cfg, len(new)))
    assert expected.frame is not None
    expected_train = build_training_set(new, expected.frame, cfg, cfg.seed).train

    history_refs: list[weakref.ref[pd.DataFrame]] = []
    alive_at_fit: list[bool] = []

    def reading(*args: Any, **kwargs: Any) -> Any:
        loaded = read_history(*args, **kwargs)
        history_refs.append(weakref.ref(loaded.frame))
        return loaded

    def fitting(*args: Any, **kwargs: Any) -> Pipeline:
        alive_at_fit.append(history_refs[0]() is not None)
        return fit_model(*args, **kwargs)

    monkeypatch.setattr(train_module, "read_history", reading)
    monkeypatch.setattr(update_module, "fit_model", fitting)
    out = steps.train(
        cfg.to_yaml(), "12", "r1", str(new_path), str(tmp_path / "model"), str(tmp_path / "hold")
    )

    assert alive_at_fit == [False]
    hashes = out.details["data_hashes"]
    assert hashes["history"] == content_sha256(expected.frame)
    assert hashes["train"] == content_sha256(expected_train)
    assert out.details["provenance"]["history_rows"] > 0
    model, _ = load_model_dir(tmp_path / "model")
    plain = build_estimator(cfg, expected_train).fit(
        feature_frame(expected_train, cfg), expected_train[cfg.target]
    )
    np.testing.assert_array_equal(predict_scores(model, new, cfg), predict_scores(plain, new, cfg))


def test_the_model_card_records_how_the_history_was_sampled(tmp_path: Path) -> None:
    store, stored = store_with_history(tmp_path)
    cfg: Config = config()
    # A budget below the ~700 stored rows: the history holdout's need would be above it.
    training = cfg.training.model_copy(update={"max_history_rows": 200, "history_holdout_rows": 20})
    cfg = cfg.model_copy(update={"storage_root": str(store.root), "training": training})
    new = labelled(13, seed=9)
    new = new[new["week"] == 12].reset_index(drop=True)
    new_path = tmp_path / "labelled.parquet"
    new_path.write_bytes(to_parquet_bytes(new, {"sha256": content_sha256(new)}))
    out = steps.train(
        cfg.to_yaml(), "12", "r1", str(new_path), str(tmp_path / "model"), str(tmp_path / "hold")
    )
    # What the store holds before window 12, counted from the windows committed above.
    held = sum(min(len(part), 60 - int(week)) for week, part in stored.groupby("week"))
    _, card = load_model_dir(tmp_path / "model")
    for provenance in (card.provenance, out.details["provenance"]):
        load = provenance["history_load"]
        assert (load["windows"], load["stored_rows"], load["sampled"]) == (12, held, True)
        budget = history_row_budget(cfg, len(new))
        assert budget is not None and budget < held
        assert load["row_budget"] == budget and 0 < load["loaded_rows"] <= budget
