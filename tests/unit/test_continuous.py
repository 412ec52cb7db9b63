"""Continuous learning: config, replay mix, incremental updates, frozen preprocessing, plans."""

from __future__ import annotations

import dataclasses
import re
import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from retrain.config import Config, config_from_dict
from retrain.continuous import (
    UPDATE_STRATEGIES,
    continuous_update,
    plan_update,
    preprocessing_drift,
    replay_config,
    train_or_update,
    update_model,
    update_strategy,
    updates_since_full_fit,
)
from retrain.errors import ValidationError
from retrain.training.artifact import (
    TRUSTED_TYPES,
    ModelCard,
    card_from_config,
    load_model,
    model_files,
)
from retrain.training.model import build_estimator, fit_model, predict_scores

MLP = "sklearn.neural_network.MLPClassifier"
MLP_PARAMS = {"hidden_layer_sizes": [4], "learning_rate_init": 0.02, "max_iter": 100}
NB = "sklearn.naive_bayes.GaussianNB"
FOREST = "sklearn.ensemble.RandomForestClassifier"
HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


@pytest.fixture(autouse=True)
def _quiet_convergence() -> Any:
    # Small max_iter keeps the tests fast; convergence is not what they check.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def make_cfg(
    estimator: str = MLP,
    params: dict[str, Any] | None = None,
    continuous: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    task: str = "classification",
    evaluation: dict[str, Any] | None = None,
) -> Config:
    return config_from_dict(
        {
            "name": "cl",
            "task": task,
            "target": "label",
            "storage_root": "/tmp/unused",
            "seed": 3,
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "window",
                "time_kind": "period",
                "features": {"x1": "numeric", "x2": "numeric", "colour": "categorical"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
            "model": {
                "estimator": estimator,
                "params": MLP_PARAMS if params is None and estimator == MLP else params or {},
            },
            "training": training or {"history_holdout_rows": 100},
            "continuous": {"enabled": True, **(continuous or {})},
            "evaluation": evaluation or {},
            "deploy": {"deployment_name": "cl"},
        }
    )


def make_frame(
    n: int, seed: int, first_id: int = 0, shift: float = 0.0, task: str = "classification"
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(loc=shift, size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    z = 1.5 * (x1 - shift) - x2 + pd.Series(colour).map({"red": 1.0, "green": 0.0, "blue": -1.0})
    label: Any = np.where(z.to_numpy() + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    if task == "regression":
        label = z.to_numpy() + rng.normal(scale=0.3, size=n)
    return pd.DataFrame(
        {
            "id": [f"e{first_id + i}" for i in range(n)],
            "window": 0,
            "x1": x1,
            "x2": x2,
            "colour": colour,
            "label": label,
        }
    )


def fitted(cfg: Config, n: int = 400, seed: int = 1) -> Pipeline:
    return fit_model(cfg, make_frame(n, seed, task=cfg.task))


def card_for(
    cfg: Config, version: str = "w0-abc", provenance: dict[str, Any] | None = None
) -> ModelCard:
    return card_from_config(
        cfg,
        version=version,
        parent=None,
        created_at=datetime.now(timezone.utc),
        provenance=provenance,
    )


def estimator_state(model: Pipeline) -> list[np.ndarray]:
    est = model.named_steps["estimator"]
    if hasattr(est, "coefs_"):
        return [a.copy() for a in est.coefs_ + est.intercepts_]
    return [est.theta_.copy(), est.var_.copy()]


# --- config ------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    c = make_cfg(continuous={"enabled": False}).continuous
    assert (c.enabled, c.method, c.replay_share, c.replay_max_rows, c.passes) == (
        False,
        "auto",
        None,
        None,
        1,
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"replay_shar": 0.5}, "continuous.replay_shar"),
        ({"replay_share": 1.0}, "continuous.replay_share"),
        ({"passes": 0}, "continuous.passes"),
        ({"method": "retrain"}, "continuous.method"),
        ({"method": "warm_start"}, "continuous.method"),  # renamed add_trees; never for boosting
        ({"max_updates": None}, "continuous.max_updates"),  # unbounded growth is not offered
    ],
)
def test_config_errors_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError, match=key.replace(".", r"\.")):
        make_cfg(continuous=section)


def test_replay_defaults_to_the_training_mix() -> None:
    training = {"historical_share": 0.7, "max_history_rows": 50, "history_holdout_rows": 100}
    default = replay_config(make_cfg(training=training)).training
    assert (default.historical_share, default.max_history_rows) == (0.7, 50)
    override = replay_config(
        make_cfg(training=training, continuous={"replay_share": 0.0, "replay_max_rows": 9})
    ).training
    assert (override.historical_share, override.max_history_rows) == (0.0, 9)


# --- update_strategy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "params", "method", "expected"),
    [
        (MLP, None, "auto", "partial_fit"),
        (NB, {}, "auto", "partial_fit"),
        ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"}, "auto", "partial_fit"),
        (FOREST, {"n_estimators": 3}, "auto", "add_trees"),
        (FOREST, {"n_estimators": 3}, "add_trees", "add_trees"),
        (HGB, {"max_iter": 3}, "auto", "refit"),
        ("sklearn.ensemble.GradientBoostingClassifier", {}, "auto", "refit"),
        ("sklearn.linear_model.LogisticRegression", {}, "auto", "refit"),  # warm_start: a seed
        (MLP, {"solver": "lbfgs"}, "auto", "refit"),  # lbfgs has no partial_fit
        (MLP, None, "refit", "refit"),
    ],
)
def test_update_strategy(
    estimator: str, params: dict[str, Any] | None, method: str, expected: str
) -> None:
    cfg = make_cfg(estimator, params, continuous={"method": method})
    strategy = update_strategy(cfg, build_estimator(cfg).named_steps["estimator"])
    assert strategy.method == expected
    if expected == "refit":
        assert strategy.reason.startswith("full refit on the replay mix")


@pytest.mark.parametrize(
    ("estimator", "params", "method"),
    [
        (FOREST, {}, "partial_fit"),
        (MLP, None, "add_trees"),
        (HGB, {}, "add_trees"),  # boosting is never warm-started on new data
        (HGB, {}, "partial_fit"),
        ("sklearn.linear_model.LogisticRegression", {}, "partial_fit"),
    ],
)
def test_update_strategy_refuses(
    estimator: str, params: dict[str, Any] | None, method: str
) -> None:
    cfg = make_cfg(estimator, params, continuous={"method": method})
    with pytest.raises(ValidationError, match=r"continuous\.method"):
        update_strategy(cfg, build_estimator(cfg).named_steps["estimator"])


def test_every_estimator_the_project_can_build_has_an_explicit_strategy() -> None:
    """A newly trusted estimator must get a reviewed entry, not a silent fallback."""
    import importlib

    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    missing = []
    for qualified in TRUSTED_TYPES:
        module, _, name = qualified.rpartition(".")
        if not module.startswith("sklearn."):
            continue
        cls = getattr(importlib.import_module(module), name, None)
        if not isinstance(cls, type) or not issubclass(cls, BaseEstimator):
            continue
        if cls in UPDATE_STRATEGIES:
            continue
        try:
            instance = cls()
        except TypeError:
            continue
        if is_classifier(instance) or is_regressor(instance):
            missing.append(qualified)
    assert missing == []


# --- update_model: partial_fit -----------------------------------------------------------------


@pytest.mark.parametrize("estimator", [MLP, NB])
def test_partial_fit_updates_a_copy_and_keeps_the_preprocessing(estimator: str) -> None:
    cfg = make_cfg(estimator, continuous={"passes": 2})
    model = fitted(cfg)
    before = estimator_state(model)
    update = make_frame(300, 2, first_id=1000, shift=0.5)

    updated, notes = update_model(cfg, model, update, seed=5)

    for a, b in zip(before, estimator_state(model), strict=True):
        np.testing.assert_array_equal(a, b)  # the champion is untouched
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, estimator_state(updated), strict=True)
    )
    pre, new_pre = model.named_steps["preprocess"], updated.named_steps["preprocess"]
    scaler = ("numeric", "scale")
    np.testing.assert_array_equal(
        pre.named_transformers_[scaler[0]].named_steps[scaler[1]].mean_,
        new_pre.named_transformers_[scaler[0]].named_steps[scaler[1]].mean_,
    )
    assert notes.pop("reason").startswith("partial_fit for ")
    assert notes == {"method": "partial_fit", "update_rows": 300, "passes": 2}
    again, _ = update_model(cfg, model, update, seed=5)
    for a, b in zip(estimator_state(updated), estimator_state(again), strict=True):
        np.testing.assert_array_equal(a, b)  # seeded: the same update twice is identical


def test_partial_fit_regression() -> None:
    cfg = make_cfg("sklearn.neural_network.MLPRegressor", MLP_PARAMS, task="regression")
    model = fitted(cfg)
    update = make_frame(300, 2, first_id=1000, task="regression")
    updated, notes = update_model(cfg, model, update, seed=0)
    assert notes["method"] == "partial_fit"
    assert not np.allclose(predict_scores(model, update, cfg), predict_scores(updated, update, cfg))


def test_update_refuses_bad_input() -> None:
    cfg = make_cfg()
    model = fitted(cfg)
    update = make_frame(50, 2, first_id=1000)
    with pytest.raises(ValidationError, match=r"class\(es\) \['maybe'\] unknown to the model"):
        update_model(cfg, model, update.assign(label="maybe"), seed=0)
    with pytest.raises(ValidationError, match="missing column 'x2'"):
        update_model(cfg, model, update.drop(columns=["x2"]), seed=0)
    with pytest.raises(ValidationError, match="2 missing value"):
        update_model(cfg, model, update.assign(label=[None, None, *update["label"][2:]]), seed=0)
    with pytest.raises(ValidationError, match=r"model\.estimator: the model to update holds a"):
        update_model(make_cfg(NB), model, update, seed=0)
    with pytest.raises(ValidationError, match="not a retrain pipeline"):
        update_model(cfg, model.named_steps["estimator"], update, seed=0)


# --- update_model: warm_start ------------------------------------------------------------------


def test_warm_start_grows_the_forest_and_keeps_its_trees() -> None:
    cfg = make_cfg(FOREST, {"n_estimators": 4}, continuous={"grow_by": 3})
    model = fitted(cfg)
    updated, notes = update_model(cfg, model, make_frame(300, 2, first_id=1000), seed=0)
    old, new = model.named_steps["estimator"], updated.named_steps["estimator"]
    assert (len(old.estimators_), len(new.estimators_)) == (4, 7)
    for a, b in zip(old.estimators_, new.estimators_[:4], strict=True):
        np.testing.assert_array_equal(a.tree_.threshold, b.tree_.threshold)
    assert notes["size"] == {"unit": "trees", "before": 4, "after": 7}


def test_warm_start_needs_every_class() -> None:
    cfg = make_cfg(FOREST, {"n_estimators": 2})
    model = fitted(cfg)
    only_yes = make_frame(200, 2, first_id=1000).assign(label="yes")
    with pytest.raises(ValidationError, match=r"\['no'\] absent from the update set"):
        update_model(cfg, model, only_yes, seed=0)


def test_update_model_never_warm_starts_boosting() -> None:
    cfg = make_cfg(HGB, {"max_iter": 5})
    model = fitted(cfg)
    with pytest.raises(ValidationError, match="no valid incremental path for HistGradient"):
        update_model(cfg, model, make_frame(300, 2, first_id=1000, shift=0.5), seed=0)


# --- persistence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        (MLP, None),
        (NB, {}),
        (FOREST, {"n_estimators": 3}),
        ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"}),
    ],
)
def test_a_loaded_champion_updates_and_saves_with_trusted_types(
    estimator: str, params: dict[str, Any] | None
) -> None:
    """The real path: champion from skops bytes, update, skops bytes again, load again."""
    cfg = make_cfg(estimator, params)
    files = model_files(fitted(cfg), card_for(cfg))
    champion = load_model(files["model.skops"], ModelCard.from_json(files["model.json"]))
    update = make_frame(300, 2, first_id=1000)
    updated, _ = update_model(cfg, champion, update, seed=0)
    files2 = model_files(updated, card_for(cfg, "w1-def"))
    reloaded = load_model(files2["model.skops"], ModelCard.from_json(files2["model.json"]))
    np.testing.assert_array_equal(
        predict_scores(updated, update, cfg), predict_scores(reloaded, update, cfg)
    )
    again, _ = update_model(cfg, reloaded, update, seed=1)  # and it keeps learning after reload
    assert not np.allclose(
        predict_scores(again, update, cfg), predict_scores(reloaded, update, cfg)
    )


# --- continuous_update -------------------------------------------------------------------------


def test_continuous_update_mixes_replay_and_holds_out_like_training() -> None:
    cfg = make_cfg()
    model = fitted(cfg)
    history = make_frame(2000, 4)
    new = make_frame(400, 5, first_id=10_000)
    parent = card_for(cfg, "w3-abc", {"continuous": {"updates_since_full_fit": 2}})

    up = continuous_update(cfg, model, new, history, seed=0, parent=parent)

    p = up.provenance
    assert p["mode"] == "continuous"
    assert p["requested_share"] == 0.8
    assert p["realised_share"] == pytest.approx(0.8, abs=0.01)
    assert p["continuous"]["parent"] == "w3-abc"
    assert p["continuous"]["updates_since_full_fit"] == 3
    assert p["continuous"]["replay_share"] == 0.8
    ts = up.training_set
    train_ids = set(ts.train["id"])
    assert train_ids.isdisjoint(ts.recent_holdout["id"])
    assert ts.history_holdout is not None
    assert train_ids.isdisjoint(ts.history_holdout["id"])
    assert updates_since_full_fit(card_for(cfg, "w4-x", p)) == 3


def test_without_replay_the_history_holdout_still_guards() -> None:
    cfg = make_cfg(continuous={"replay_share": 0.0})
    up = continuous_update(cfg, fitted(cfg), make_frame(400, 5, 10_000), make_frame(600, 4), 0)
    assert up.provenance["history_rows"] == 0
    assert up.training_set.history_holdout is not None  # the gate can still see forgetting
    assert up.provenance["continuous"]["updates_since_full_fit"] == 1


# --- frozen preprocessing and the plan ---------------------------------------------------------


def test_preprocessing_drift_in_the_frozen_space() -> None:
    cfg = make_cfg()
    model = fitted(cfg, n=2000)
    new = make_frame(2000, 9, shift=2.0)
    new.loc[: len(new) * 3 // 10 - 1, "colour"] = "purple"
    drift = preprocessing_drift(cfg, model, new)
    assert drift["numeric_shift"]["x1"] == pytest.approx(2.0, abs=0.15)
    assert drift["numeric_shift"]["x2"] == pytest.approx(0.0, abs=0.15)
    assert drift["unseen_category_share"] == {"colour": pytest.approx(0.3)}


def test_plan_continuous_when_nothing_stands_in_the_way() -> None:
    cfg = make_cfg(evaluation={"floor": 0.6})
    model = fitted(cfg)
    plan = plan_update(cfg, model, card_for(cfg), make_frame(300, 2, 1000))
    assert plan.mode == "continuous", plan.reasons
    assert plan.parent == "w0-abc"
    assert plan.champion_score is not None and plan.champion_score > 0.8
    assert plan.summary() == (
        "continuous update of w0-abc by partial_fit (#1 since the last full fit)"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"continuous": {"enabled": False}}, "continuous.enabled is false"),
        ({"no_champion": True}, "no champion"),
        ({"params": {"hidden_layer_sizes": [5], "max_iter": 50}}, "model.params changed"),
        ({"count": 4, "continuous": {"max_updates": 4}}, "4 incremental updates"),
        ({"frame": {"label": "maybe"}}, r"new class\(es\) \['maybe'\]"),
        ({"shift": 3.0}, "'x1' moved"),
        ({"frame": {"colour": "purple"}}, "100.0% of 'colour'"),
    ],
)
def test_plan_full_fit_and_why(change: dict[str, Any], reason: str) -> None:
    trained = make_cfg()
    model = fitted(trained)
    card = card_for(
        trained, provenance={"continuous": {"updates_since_full_fit": change.get("count", 0)}}
    )
    cfg = make_cfg(params=change.get("params"), continuous=change.get("continuous"))
    new = make_frame(300, 2, 1000, shift=change.get("shift", 0.0)).assign(**change.get("frame", {}))
    champion = None if change.get("no_champion") else model
    plan = plan_update(cfg, champion, card, new)
    assert plan.mode == "full"
    assert any(re.search(reason, r) for r in plan.reasons), plan.reasons
    assert plan.summary().startswith("full fit: ")


@pytest.mark.parametrize(("metric", "floor"), [("roc_auc", 0.6), ("log_loss", 0.7)])
def test_plan_full_fit_when_the_champion_is_past_the_floor(metric: str, floor: float) -> None:
    """After an abrupt concept change (here: labels swapped) an update cannot catch up."""
    cfg = make_cfg(evaluation={"metric": metric, "floor": floor})
    model = fitted(cfg)
    new = make_frame(300, 2, 1000)
    swapped = new.assign(label=new["label"].map({"yes": "no", "no": "yes"}))
    plan = plan_update(cfg, model, card_for(cfg), swapped)
    assert plan.mode == "full"
    assert plan.reasons[0].startswith(f"the champion's {metric} on the new window is")
    off = make_cfg(
        evaluation={"metric": metric, "floor": floor}, continuous={"full_fit_below_floor": False}
    )
    assert plan_update(off, model, card_for(off), swapped).mode == "continuous"


def test_plan_refuses_an_estimator_that_cannot_update_even_before_a_champion() -> None:
    cfg = make_cfg("sklearn.linear_model.LogisticRegression", {}, {"method": "partial_fit"})
    with pytest.raises(ValidationError, match=r"continuous\.method"):
        plan_update(cfg, None, None, make_frame(100, 2))


def test_update_count_ignores_malformed_cards() -> None:
    cfg = make_cfg()
    assert updates_since_full_fit(None) == 0
    assert updates_since_full_fit(card_for(cfg)) == 0
    bad = dataclasses.replace(
        card_for(cfg), provenance={"continuous": {"updates_since_full_fit": True}}
    )
    assert updates_since_full_fit(bad) == 0


# --- train_or_update: the switch the train step calls ------------------------------------------


def test_disabled_is_exactly_the_full_fit() -> None:
    from retrain.training.mix import build_training_set

    cfg = make_cfg(continuous={"enabled": False})
    new, history = make_frame(400, 5, first_id=10_000), make_frame(800, 4)
    got = train_or_update(cfg, new, history, 0, champion=fitted(cfg), champion_card=card_for(cfg))
    ts = build_training_set(new, history, cfg, 0)
    assert got.plan.mode == "full"
    assert got.provenance == ts.provenance
    np.testing.assert_array_equal(
        predict_scores(got.model, new, cfg), predict_scores(fit_model(cfg, ts.train), new, cfg)
    )


def test_enabled_updates_the_champion_or_falls_back_with_a_reason() -> None:
    cfg = make_cfg()
    new, history = make_frame(400, 5, first_id=10_000), make_frame(800, 4)
    first = train_or_update(cfg, new, history, 0)
    assert first.provenance["mode"] == "full"
    assert first.provenance["plan"]["reasons"] == ["no champion to update yet"]

    champion = fitted(cfg)
    up = train_or_update(cfg, new, history, 0, champion=champion, champion_card=card_for(cfg))
    assert up.plan.mode == "continuous"
    assert up.provenance["mode"] == "continuous"
    assert up.provenance["continuous"]["parent"] == "w0-abc"
    assert up.model.named_steps["preprocess"] is not champion.named_steps["preprocess"]


# --- validity per estimator (issue #10, point 3) -----------------------------------------------


def test_boosting_is_refitted_on_the_replay_mix_never_warm_started() -> None:
    """Histogram boosting's warm_start is valid on the same data only: each window refits it."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    params = {"max_iter": 5, "early_stopping": False}
    cfg = make_cfg(HGB, params, continuous={"replay_share": 0.5})
    champion = fitted(cfg)
    champion_bins = champion.named_steps["estimator"]._bin_mapper.bin_thresholds_[0].copy()
    new, history = make_frame(400, 5, first_id=10_000, shift=0.8), make_frame(800, 4)

    got = train_or_update(cfg, new, history, 0, champion=champion, champion_card=card_for(cfg))

    assert got.plan.mode == "full"
    assert got.plan.summary().startswith(
        "full refit on the replay mix (no valid incremental path for HistGradientBoosting"
    )
    assert got.provenance["plan"]["method"] == "refit"
    assert got.provenance["realised_share"] == pytest.approx(0.5, abs=0.01)  # the replay mix
    est = got.model.named_steps["estimator"]
    assert est.n_iter_ == 5  # a fresh fit, not the champion's 5 plus added iterations
    assert champion.named_steps["estimator"].n_iter_ == 5  # the champion is untouched
    train = got.training_set.train
    scaler = got.model.named_steps["preprocess"].named_transformers_["numeric"]["scale"]
    assert scaler.mean_[0] == pytest.approx(train["x1"].mean())  # preprocessing refitted too
    # The bin thresholds come from the mix, exactly as a fresh fit on it draws them.
    Xt = got.model.named_steps["preprocess"].transform(train[["x1", "x2", "colour"]])
    fresh = HistGradientBoostingClassifier(**params, random_state=cfg.seed).fit(Xt, train["label"])
    np.testing.assert_array_equal(
        est._bin_mapper.bin_thresholds_[0], fresh._bin_mapper.bin_thresholds_[0]
    )
    assert not np.array_equal(est._bin_mapper.bin_thresholds_[0], champion_bins)


@pytest.mark.parametrize(
    ("estimator", "params", "unit", "limit", "attribute"),
    [
        (
            HGB,
            {"max_iter": 200, "early_stopping": True, "n_iter_no_change": 2},
            "iterations",
            200,
            "n_iter_",
        ),
        (
            "sklearn.ensemble.GradientBoostingClassifier",
            {"n_estimators": 200, "n_iter_no_change": 2, "max_depth": 2},
            "stages",
            200,
            "n_estimators_",
        ),
    ],
)
def test_recorded_size_is_read_from_the_fitted_model_under_early_stopping(
    estimator: str, params: dict[str, Any], unit: str, limit: int, attribute: str
) -> None:
    cfg = make_cfg(estimator, params)
    champion = fitted(cfg, n=600)
    new, history = make_frame(600, 5, first_id=10_000), make_frame(1200, 4)
    got = train_or_update(cfg, new, history, 0, champion=champion, champion_card=card_for(cfg))
    kept = getattr(got.model.named_steps["estimator"], attribute)
    assert kept < limit  # early stopping did stop: a count taken from the params would be wrong
    before = getattr(champion.named_steps["estimator"], attribute)
    assert got.provenance["size"] == {"unit": unit, "before": before, "after": kept}


def test_forest_growth_recorded_is_the_real_change_in_trees() -> None:
    cfg = make_cfg(FOREST, {"n_estimators": 4}, continuous={"grow_by": 3})
    champion = fitted(cfg)
    new, history = make_frame(400, 5, first_id=10_000), make_frame(800, 4)
    got = train_or_update(cfg, new, history, 0, champion=champion, champion_card=card_for(cfg))
    assert got.plan.mode == "continuous", got.plan.reasons
    assert "by add_trees" in got.plan.summary()
    assert got.provenance["continuous"]["method"] == "add_trees"
    old, new_est = champion.named_steps["estimator"], got.model.named_steps["estimator"]
    assert got.provenance["size"] == {
        "unit": "trees",
        "before": len(old.estimators_),
        "after": len(new_est.estimators_),
    }
    assert len(new_est.estimators_) - len(old.estimators_) == 3
    assert new_est.warm_start is False  # a later fit of the saved model starts afresh


def test_default_max_updates_is_finite_and_bounds_a_forest_over_20_updates() -> None:
    cfg = make_cfg(FOREST, {"n_estimators": 5})
    c = cfg.continuous
    assert isinstance(c.max_updates, int)
    bound = 5 + c.max_updates * c.grow_by
    windows = [make_frame(150, 100 + w, first_id=1000 * w) for w in range(21)]
    first = train_or_update(cfg, windows[0], None, 0)
    model, card = first.model, card_for(cfg, "w0", first.provenance)
    modes, sizes = [first.plan.mode], [len(model.named_steps["estimator"].estimators_)]
    for w in range(1, 21):
        history = pd.concat(windows[:w], ignore_index=True)
        got = train_or_update(cfg, windows[w], history, w, champion=model, champion_card=card)
        model, card = got.model, card_for(cfg, f"w{w}", got.provenance)
        modes.append(got.plan.mode)
        sizes.append(len(model.named_steps["estimator"].estimators_))
        assert got.provenance["size"]["after"] == sizes[-1]
        if got.plan.mode == "full":
            assert any("incremental updates since the last full fit" in r for r in got.plan.reasons)
    assert max(sizes) <= bound, sizes
    assert modes.count("full") >= 2, modes  # the first fit and at least one reset


def test_sgd_partial_fit_path_still_works() -> None:
    params = {"loss": "log_loss", "learning_rate": "constant", "eta0": 0.01}
    cfg = make_cfg("sklearn.linear_model.SGDClassifier", params)
    champion = fitted(cfg)
    coef = champion.named_steps["estimator"].coef_.copy()
    new, history = make_frame(400, 5, first_id=10_000, shift=0.5), make_frame(800, 4)
    got = train_or_update(cfg, new, history, 0, champion=champion, champion_card=card_for(cfg))
    assert got.plan.mode == "continuous", got.plan.reasons
    assert got.provenance["continuous"]["method"] == "partial_fit"
    assert "size" not in got.provenance  # a linear model does not grow
    np.testing.assert_array_equal(champion.named_steps["estimator"].coef_, coef)
    assert not np.allclose(got.model.named_steps["estimator"].coef_, coef)
    frozen = [
        m.named_steps["preprocess"].named_transformers_["numeric"]["scale"].mean_
        for m in (champion, got.model)
    ]
    np.testing.assert_array_equal(*frozen)


def test_the_train_report_says_which_method_ran_and_the_real_size() -> None:
    from retrain.steps._train import _continuous_markdown

    cfg = make_cfg(FOREST, {"n_estimators": 4}, continuous={"grow_by": 3})
    new, history = make_frame(400, 5, first_id=10_000), make_frame(800, 4)
    got = train_or_update(cfg, new, history, 0, champion=fitted(cfg), champion_card=card_for(cfg))
    text = _continuous_markdown(got.provenance)
    assert "continuous update of w0-abc by add_trees" in text
    assert "Method: add_trees for RandomForestClassifier" in text
    assert "Size (trees, read from the fitted model): 4 → 7." in text

    hgb = make_cfg(HGB, {"max_iter": 5})
    refit = train_or_update(hgb, new, history, 0, champion=fitted(hgb), champion_card=card_for(hgb))
    text = _continuous_markdown(refit.provenance)
    assert "full refit on the replay mix (no valid incremental path for HistGradient" in text
    assert "Size (iterations, read from the fitted model): 5 → 5." in text
    off = make_cfg(continuous={"enabled": False})
    assert _continuous_markdown(train_or_update(off, new, history, 0).provenance) == ""


def test_labels_written_another_way_update_the_classes_the_model_knows() -> None:
    # A champion of the integer classes 0 and 1; the new window's labels come as the text
    # "0"/"1". By `label_key` they are its classes: the plan updates it (no "new class"), and
    # the update learns exactly what the integers would have taught it.
    cfg = make_cfg(evaluation={"floor": 0.6})
    as_ints = make_frame(400, 1).assign(label=lambda f: (f["label"] == "yes").astype(int))
    model = fit_model(cfg, as_ints)
    new = make_frame(300, 2, 1000).assign(label=lambda f: (f["label"] == "yes").astype(int))
    text = new.assign(label=new["label"].astype(str))
    plan = plan_update(cfg, model, card_for(cfg), text)
    assert plan.mode == "continuous", plan.reasons
    assert plan.champion_score == pytest.approx(
        plan_update(cfg, model, card_for(cfg), new).champion_score
    )
    from_text, _ = update_model(cfg, model, text, seed=5)
    from_ints, _ = update_model(cfg, model, new, seed=5)
    assert list(from_text.named_steps["estimator"].classes_) == [0, 1]
    for a, b in zip(estimator_state(from_text), estimator_state(from_ints), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValidationError, match=r"class\(es\) \['2'\] unknown to the model"):
        update_model(cfg, model, text.assign(label="2"), seed=5)
