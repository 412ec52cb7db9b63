"""Training set mixing and the model pipeline: sizes, shares, seeding, leakage, config errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score, roc_auc_score

from retrain.config import Config, config_from_dict
from retrain.data.split import evaluation_mask
from retrain.errors import ValidationError
from retrain.settings import training as training_settings
from retrain.training import model as model_module
from retrain.training.artifact import TRUSTED_TYPES
from retrain.training.mix import build_training_set, ids_sha256
from retrain.training.model import build_estimator, fit_model, predict_scores

COLUMNS = ["id", "ts", "x1", "x2", "colour", "label"]


def make_cfg(
    task: str = "classification",
    estimator: str = "sklearn.linear_model.LogisticRegression",
    params: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    seed: int = 7,
    evaluation: dict[str, Any] | None = None,
) -> Config:
    raw: dict[str, Any] = {
        "name": "demo",
        "task": task,
        "target": "label",
        "storage_root": "/tmp/unused",
        "seed": seed,
        "data": {
            "uri": "/tmp/unused",
            "id_column": "id",
            "time_column": "ts",
            "window_size": "7d",
            "features": {"x1": "numeric", "x2": "numeric", "colour": "categorical"},
        },
        "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "label"},
        "model": {"estimator": estimator, "params": params or {}},
        "training": training or {},
        "evaluation": evaluation or {},
        "deploy": {"deployment_name": "demo"},
    }
    return config_from_dict(raw)


def make_frame(n: int, seed: int, start: int = 0, task: str = "classification") -> pd.DataFrame:
    """Events with a known signal: x1 up, x2 down, colour shifts the log-odds."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    effect = pd.Series(colour).map({"red": 1.0, "green": 0.0, "blue": -1.0}).to_numpy()
    z = 1.5 * x1 - x2 + effect
    if task == "classification":
        label: Any = np.where(rng.random(n) < 1 / (1 + np.exp(-2 * z)), "yes", "no")
    else:
        label = z + rng.normal(scale=0.3, size=n)
    return pd.DataFrame(
        {
            "id": [f"e{start + i}" for i in range(n)],
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="min"),
            "x1": x1,
            "x2": x2,
            "colour": colour,
            "label": label,
        }
    )


# --- build_training_set ----------------------------------------------------------------------


def _role(frame: pd.DataFrame, share: float = 0.2) -> np.ndarray:
    """The evaluation role of each row, straight from the split module ("demo" is the salt)."""
    return evaluation_mask(frame["id"], share, "demo")


def _weeks_later(frame: pd.DataFrame, weeks: int) -> pd.DataFrame:
    out = frame.copy()
    out["ts"] = out["ts"] + pd.Timedelta(weeks=weeks)
    return out


NO_POOL = {"pool_windows": 0}


def test_mix_sizes_share_and_provenance() -> None:
    cfg = make_cfg(training={"history_holdout_rows": 200}, evaluation=NO_POOL)
    new, history = _weeks_later(make_frame(400, 1, start=10_000), 1), make_frame(3000, 2)
    ts = build_training_set(new, history, cfg, seed=3)

    new_eval, hist_eval = _role(new), _role(history)
    n_new_train = int((~new_eval).sum())
    wanted_history = round(n_new_train * 0.8 / 0.2)
    # The recent set is exactly the new window's evaluation rows; history's evaluation rows
    # are sampled down to the cap; training rows are training-role rows only.
    assert set(ts.recent_holdout["id"]) == set(new.loc[new_eval, "id"])
    assert ts.history_holdout is not None and len(ts.history_holdout) == 200
    assert set(ts.history_holdout["id"]) <= set(history.loc[hist_eval, "id"])
    assert len(ts.train) == n_new_train + wanted_history
    p = ts.provenance
    assert p["new_rows"] == n_new_train
    assert p["history_rows"] == wanted_history
    assert p["realised_share"] == pytest.approx(0.8, abs=0.002)
    assert p["requested_share"] == 0.8
    assert p["history"]["cap"] is None
    assert p["evaluation"]["new_window_rows"] == int(new_eval.sum())
    assert p["evaluation"]["pooled_windows"] == []
    assert p["evaluation"]["history_rows_available"] == int(hist_eval.sum())
    assert p["ids_sha256"]["recent_holdout"] == ids_sha256(ts.recent_holdout["id"])
    train_counts = ts.train["label"].value_counts()
    assert p["class_balance"]["train"] == {k: int(train_counts[k]) for k in ("no", "yes")}

    # No helper columns, fresh index, and no evaluation row of either frame is trained on.
    for frame in (ts.train, ts.recent_holdout, ts.history_holdout):
        assert list(frame.columns) == COLUMNS
        assert frame.index.equals(pd.RangeIndex(len(frame)))
    evaluation_ids = set(new.loc[new_eval, "id"]) | set(history.loc[hist_eval, "id"])
    assert not set(ts.train["id"]) & evaluation_ids


def test_evaluation_rows_keep_their_role_in_every_later_window() -> None:
    # A row that judged one window's challenger is never trained on when it becomes history.
    cfg = make_cfg(evaluation=NO_POOL)
    w0, w1 = make_frame(600, 1, start=0), _weeks_later(make_frame(600, 2, start=600), 1)
    w2 = _weeks_later(make_frame(600, 3, start=1200), 2)
    first = build_training_set(w1, w0, cfg, seed=1)
    later = build_training_set(w2, pd.concat([w0, w1], ignore_index=True), cfg, seed=9)
    judged = set(first.recent_holdout["id"]) | set(first.history_holdout["id"])  # type: ignore[index]
    assert judged and not judged & set(later.train["id"])
    assert not judged & set(first.train["id"])


def test_recent_set_pools_earlier_windows_when_too_small() -> None:
    # Four weekly windows of 300 rows: about 60 evaluation rows each.
    weeks = [_weeks_later(make_frame(300, k, start=300 * k), k) for k in range(4)]
    history = pd.concat(weeks[:3], ignore_index=True)
    new = weeks[3]
    cfg = make_cfg(evaluation={"min_rows": 150, "pool_windows": 3})
    ts = build_training_set(new, history, cfg, seed=0)
    n = [int(_role(w).sum()) for w in weeks]
    # Week 3 alone is short of 150; week 2 tops it up past 150 (both about 60): pooling then
    # stops at the second-latest week when that suffices, else takes week 1 too.
    expected = [2] if n[3] + n[2] >= 150 else [2, 1]
    p = ts.provenance["evaluation"]
    starts = ["2024-01-15", "2024-01-08"][: len(expected)]
    assert p["pooled_windows"] == starts
    pooled_ids = set().union(*(set(weeks[k].loc[_role(weeks[k]), "id"]) for k in [3, *expected]))
    assert set(ts.recent_holdout["id"]) == pooled_ids
    assert p["pooled_rows"] == len(pooled_ids) - n[3]
    # The history set comes only from the windows that were not pooled.
    assert ts.history_holdout is not None
    older = set().union(*(set(weeks[k]["id"]) for k in range(3) if k not in expected))
    assert set(ts.history_holdout["id"]) <= older

    never = build_training_set(new, history, make_cfg(evaluation={"min_rows": 150, **NO_POOL}), 0)
    assert len(never.recent_holdout) == n[3]
    assert never.provenance["evaluation"]["pooled_windows"] == []


def _rare(frame: pd.DataFrame, positives: int) -> pd.DataFrame:
    """`frame` with exactly `positives` of its evaluation rows labelled "yes", the rest "no"."""
    out = frame.copy()
    out["label"] = "no"
    out.loc[out.index[_role(out)][:positives], "label"] = "yes"
    return out


def test_recent_set_pools_earlier_windows_when_positives_are_too_few() -> None:
    # Enough rows in the new window (about 60 against min_rows 50) but 8 positives against
    # min_positives 20: the gates could not decide on it alone, so earlier weeks lend theirs.
    weeks = [_rare(_weeks_later(make_frame(300, k, start=300 * k), k), 8) for k in range(4)]
    history, new = pd.concat(weeks[:3], ignore_index=True), weeks[3]
    cfg = make_cfg(evaluation={"min_rows": 50, "min_positives": 20, "pool_windows": 3})
    assert len(new.loc[_role(new)]) >= 50
    ts = build_training_set(new, history, cfg, seed=0)
    p = ts.provenance["evaluation"]
    # 8 + 8 is short of 20, 8 + 8 + 8 is not: weeks 2 and 1 are pooled, week 0 never is.
    assert p["pooled_windows"] == ["2024-01-15", "2024-01-08"]
    assert (ts.recent_holdout["label"] == "yes").sum() == 24
    assert p["min_positives"] == 20

    # Without min_positives, rows alone decide: the new window is enough.
    rows_only = make_cfg(evaluation={"min_rows": 50, "pool_windows": 3})
    assert (
        build_training_set(new, history, rows_only, 0).provenance["evaluation"]["pooled_windows"]
        == []
    )


def test_max_train_rows_samples_both_sides_down_keeping_the_share() -> None:
    new, history = _weeks_later(make_frame(2000, 1, start=10_000), 1), make_frame(6000, 2)
    n_new_train = int((~_role(new)).sum())
    cfg = make_cfg(training={"max_train_rows": 1000}, evaluation=NO_POOL)
    ts = build_training_set(new, history, cfg, seed=3)
    p = ts.provenance
    # 800 of history and 200 new rows: history keeps its 80% of the capped rows.
    assert (p["history_rows"], p["new_rows"], len(ts.train)) == (800, 200, 1000)
    assert p["history"]["cap"] == "max_train_rows" and p["history"]["max_train_rows"] == 1000
    assert p["evaluation"]["new_window_training_rows_available"] == n_new_train > 200
    # The kept new rows are new-window training rows, stratified by label; evaluation rows
    # are untouched by the cap.
    new_train_ids = set(new.loc[~_role(new), "id"])
    kept_new = ts.train.loc[ts.train["id"].isin(set(new["id"]))]
    assert len(kept_new) == 200 and set(kept_new["id"]) <= new_train_ids
    share_yes = (new.loc[~_role(new), "label"] == "yes").mean()
    assert (kept_new["label"] == "yes").mean() == pytest.approx(share_yes, abs=0.01)
    assert set(ts.recent_holdout["id"]) == set(new.loc[_role(new), "id"])
    # Seeded: the same inputs give the same rows.
    again = build_training_set(new, history, cfg, seed=3)
    assert again.train["id"].tolist() == ts.train["id"].tolist()


def test_max_train_rows_lets_either_side_fill_what_the_other_lacks() -> None:
    new = _weeks_later(make_frame(2000, 1, start=10_000), 1)
    n_new_train = int((~_role(new)).sum())
    # Little history (about 80 training rows): all of it, and the new rows fill the rest.
    short = make_frame(100, 2)
    n_hist = int((~_role(short)).sum())
    ts = build_training_set(new, short, make_cfg(training={"max_train_rows": 1000}), seed=3)
    assert (ts.provenance["history_rows"], ts.provenance["new_rows"]) == (n_hist, 1000 - n_hist)
    # No history at all: the new rows alone, down to the cap.
    alone = build_training_set(new, None, make_cfg(training={"max_train_rows": 500}), seed=3)
    assert len(alone.train) == 500
    # Under the cap nothing is sampled: the same mix as without one.
    wide = build_training_set(new, short, make_cfg(training={"max_train_rows": 10**6}), seed=3)
    off = build_training_set(new, short, make_cfg(training={"max_train_rows": None}), seed=3)
    assert wide.provenance["new_rows"] == n_new_train
    assert wide.train["id"].tolist() == off.train["id"].tolist()


def test_max_train_rows_below_min_train_rows_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"max_train_rows \(100\) is below"):
        make_cfg(training={"max_train_rows": 100, "min_train_rows": 200})


def test_mix_is_stratified() -> None:
    cfg = make_cfg(training={"history_holdout_rows": 300}, evaluation=NO_POOL)
    new, history = _weeks_later(make_frame(400, 1, start=10_000), 1), make_frame(3000, 2)
    ts = build_training_set(new, history, cfg, seed=3)
    hist_eval = history.loc[_role(history)]
    hist_yes = (hist_eval["label"] == "yes").mean()
    # Largest-remainder quotas: within one row of the exact proportional count.
    assert ts.history_holdout is not None
    assert abs((ts.history_holdout["label"] == "yes").sum() - 300 * hist_yes) <= 1


def test_mix_is_seeded() -> None:
    cfg = make_cfg(training={"history_holdout_rows": 100})
    new, history = _weeks_later(make_frame(200, 1, start=10_000), 1), make_frame(1000, 2)
    a = build_training_set(new, history, cfg, seed=5)
    b = build_training_set(new, history, cfg, seed=5)
    c = build_training_set(new, history, cfg, seed=6)
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.recent_holdout, b.recent_holdout)
    assert a.provenance == b.provenance
    assert a.provenance["ids_sha256"] != c.provenance["ids_sha256"]


def test_mix_caps_history_at_max_rows_and_at_availability() -> None:
    new, history = _weeks_later(make_frame(400, 1, start=10_000), 1), make_frame(3000, 2)
    capped = build_training_set(
        new, history, make_cfg(training={"max_history_rows": 500, "history_holdout_rows": 200}), 0
    )
    n_new_train = int((~_role(new)).sum())
    assert capped.provenance["history_rows"] == 500
    assert capped.provenance["history"]["cap"] == "max_history_rows"
    assert capped.provenance["realised_share"] == pytest.approx(500 / (500 + n_new_train))

    small_history = make_frame(100, 2)
    small = build_training_set(new, small_history, make_cfg(evaluation=NO_POOL), 0)
    # Every history evaluation row is held out, every history training row is used.
    assert small.history_holdout is not None
    assert len(small.history_holdout) == int(_role(small_history).sum())
    assert small.provenance["history_rows"] == int((~_role(small_history)).sum())
    assert small.provenance["history"]["cap"] == "available"
    assert small.provenance["history"]["requested_rows"] == round(n_new_train * 4)


def test_mix_without_history_uses_new_rows_only() -> None:
    new = make_frame(400, 1)
    ts = build_training_set(new, None, make_cfg(), seed=0)
    assert ts.history_holdout is None
    assert set(ts.recent_holdout["id"]) == set(new.loc[_role(new), "id"])
    assert set(ts.train["id"]) == set(new.loc[~_role(new), "id"])
    assert ts.provenance["realised_share"] == 0.0
    assert ts.provenance["history_used"] is False
    assert "no history" in ts.provenance["note"]


def test_evaluation_share_is_configurable() -> None:
    new = make_frame(1000, 1)
    ts = build_training_set(new, None, make_cfg(training={"evaluation_share": 0.5}), seed=0)
    assert set(ts.recent_holdout["id"]) == set(new.loc[_role(new, 0.5), "id"])
    assert 400 < len(ts.recent_holdout) < 600


def test_replaced_recent_holdout_key_says_what_to_use() -> None:
    with pytest.raises(ValidationError) as err:
        make_cfg(training={"recent_holdout": 0.25})
    assert any("evaluation_share" in p for p in err.value.problems)


def test_mix_drops_history_rows_that_reappear_in_new_and_unlabelled_rows() -> None:
    new = make_frame(200, 1, start=0)
    new.loc[[0, 1, 2], "label"] = None
    history = make_frame(1000, 2, start=150)  # ids e150..e199 overlap the new window
    ts = build_training_set(new, history, make_cfg(training={"history_holdout_rows": 50}), 0)
    assert ts.provenance["history"]["overlapping_new_dropped"] == 50
    assert ts.provenance["new_unlabelled_dropped"] == 3
    assert ts.provenance["new_available_rows"] == 197
    train_ids = set(ts.train["id"])
    assert not train_ids & set(ts.recent_holdout["id"])
    assert not {"e0", "e1", "e2"} & (train_ids | set(ts.recent_holdout["id"]))
    assert ts.train["label"].notna().all()


def test_mix_regression_has_no_class_balance() -> None:
    cfg = make_cfg(task="regression", estimator="sklearn.linear_model.Ridge", evaluation=NO_POOL)
    new = _weeks_later(make_frame(100, 1, 5000, "regression"), 1)
    ts = build_training_set(new, make_frame(500, 2, 0, "regression"), cfg, 0)
    assert "class_balance" not in ts.provenance
    assert len(ts.recent_holdout) == int(_role(new).sum())


def test_mix_reports_every_missing_column() -> None:
    new = make_frame(50, 1).drop(columns=["x2", "label"])
    with pytest.raises(ValidationError) as err:
        build_training_set(new, None, make_cfg(), 0)
    assert err.value.problems == ["missing column 'x2'", "missing column 'label'"]


def test_ids_sha256_ignores_order() -> None:
    ids = pd.Series(["b", "a", "c"])
    assert ids_sha256(ids) == ids_sha256(ids.iloc[::-1])
    assert ids_sha256(ids) != ids_sha256(pd.Series(["a", "b"]))


# --- build_estimator / fit_model / predict_scores ---------------------------------------------


def test_build_estimator_derives_preprocessing_and_seeds() -> None:
    pipe = build_estimator(make_cfg(params={"C": 0.5}, seed=11))
    pre = pipe.named_steps["preprocess"]
    assert isinstance(pre, ColumnTransformer)
    assert [(n, cols) for n, _, cols in pre.transformers] == [
        ("numeric", ["x1", "x2"]),
        ("categorical", ["colour"]),
    ]
    est = pipe.named_steps["estimator"]
    assert isinstance(est, LogisticRegression)
    assert est.C == 0.5 and est.random_state == 11


@pytest.mark.parametrize(
    ("task", "estimator", "params", "expected"),
    [
        ("classification", "sklearn.linear_model.NoSuchModel", {}, "model.estimator"),
        ("classification", "sklearn.nope.Model", {}, "there is no module 'sklearn.nope'"),
        (
            "classification",
            "sklearn.metrics.roc_auc_score",
            {},
            "'sklearn.metrics.roc_auc_score' is not a supported estimator",
        ),
        ("classification", "sklearn.svm.SVC", {}, "'sklearn.svm.SVC' is not a supported"),
        ("classification", "sklearn.linear_model.Ridge", {}, "is not a classifier"),
        ("regression", "sklearn.linear_model.LogisticRegression", {}, "is not a regressor"),
        ("classification", "sklearn.linear_model.LogisticRegression", {"Cee": 1}, "model.params"),
        ("classification", "sklearn.linear_model.LogisticRegression", {"C": -1}, "model.params"),
        (
            "classification",
            "sklearn.linear_model.LogisticRegression",
            {"random_state": 1},
            "model.params.random_state",
        ),
    ],
)
def test_build_estimator_names_the_bad_key(
    task: str, estimator: str, params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        build_estimator(make_cfg(task=task, estimator=estimator, params=params))


def test_classifier_without_probabilities_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    trusted = TRUSTED_TYPES | {"sklearn.linear_model._ridge.RidgeClassifier"}
    monkeypatch.setattr(model_module, "TRUSTED_TYPES", trusted)
    monkeypatch.setattr(training_settings, "TRUSTED_TYPES", trusted)
    with pytest.raises(ValidationError, match="no predict_proba"):
        build_estimator(make_cfg(estimator="sklearn.linear_model.RidgeClassifier"))


def test_fit_and_score_classification_handles_nulls_and_unseen_categories() -> None:
    cfg = make_cfg()
    train, test = make_frame(600, 1), make_frame(300, 2)
    train.loc[::17, "x1"] = np.nan
    train.loc[::13, "colour"] = None
    test.loc[:9, "colour"] = "purple"  # never seen in training
    test.loc[10:19, "x2"] = np.nan
    model = fit_model(cfg, train)
    scores = predict_scores(model, test, cfg)
    assert scores.shape == (300, 2)
    assert np.allclose(scores.sum(axis=1), 1.0)
    assert list(model.classes_) == ["no", "yes"]
    assert roc_auc_score(test["label"] == "yes", scores[:, 1]) > 0.8


def test_fit_is_reproducible_with_the_seed() -> None:
    forest, params = "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5}
    cfg, other_seed = (
        make_cfg(estimator=forest, params=params, seed=7),
        make_cfg(estimator=forest, params=params, seed=8),
    )
    train, test = make_frame(300, 1), make_frame(100, 2)
    a = predict_scores(fit_model(cfg, train), test, cfg)
    b = predict_scores(fit_model(cfg, train), test, cfg)
    c = predict_scores(fit_model(other_seed, train), test, cfg)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_and_score_regression() -> None:
    cfg = make_cfg(task="regression", estimator="sklearn.linear_model.Ridge")
    model = fit_model(cfg, make_frame(400, 1, task="regression"))
    test = make_frame(200, 2, task="regression")
    values = predict_scores(model, test, cfg)
    assert values.shape == (200,)
    assert r2_score(test["label"], values) > 0.9


def test_fit_refuses_unusable_training_data() -> None:
    cfg = make_cfg()
    one_class = make_frame(50, 1).assign(label="yes")
    with pytest.raises(ValidationError, match="fewer than 2 classes"):
        fit_model(cfg, one_class)
    with pytest.raises(ValidationError, match="missing column 'colour'"):
        fit_model(cfg, make_frame(50, 1).drop(columns=["colour"]))
    unlabelled = make_frame(50, 1)
    unlabelled.loc[0, "label"] = None
    with pytest.raises(ValidationError, match="1 missing value"):
        fit_model(cfg, unlabelled)
