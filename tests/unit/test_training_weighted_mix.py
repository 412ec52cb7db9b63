"""The weighted mix: all of history, weights that keep the promised share; a minimum training
size for the sampled mix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from retrain.errors import ValidationError
from retrain.training.mix import build_training_set
from retrain.training.model import fit_model, predict_scores
from tests.unit.test_training import NO_POOL, _role, _weeks_later, make_cfg, make_frame


def test_weighted_mix_trains_on_all_history_at_the_promised_share() -> None:
    cfg = make_cfg(training={"mix": "weighted", "historical_share": 0.8}, evaluation=NO_POOL)
    new, history = _weeks_later(make_frame(300, 1, start=10_000), 1), make_frame(5000, 2)
    ts = build_training_set(new, history, cfg, seed=3)
    n_new = int((~_role(new)).sum())
    n_hist = int((~_role(history)).sum())
    assert len(ts.train) == n_new + n_hist  # every training-role row of history is used
    w = ts.sample_weight
    assert w is not None and len(w) == len(ts.train)
    assert w.mean() == pytest.approx(1.0)
    is_history = ts.train["id"].isin(history["id"]).to_numpy()
    assert w[is_history].sum() / w.sum() == pytest.approx(0.8)
    assert ts.provenance["mix"] == "weighted"
    assert ts.provenance["realised_share"] == pytest.approx(0.8)
    assert ts.provenance["history_row_share"] == pytest.approx(n_hist / (n_hist + n_new))
    # The sampled mix at the same share uses far fewer rows.
    sampled = build_training_set(new, history, make_cfg(evaluation=NO_POOL), seed=3)
    assert sampled.sample_weight is None
    assert len(sampled.train) == n_new + round(n_new * 0.8 / 0.2) < len(ts.train) // 3


def test_weighted_mix_respects_max_history_rows_and_needs_both_sides() -> None:
    cfg = make_cfg(training={"mix": "weighted", "max_history_rows": 500}, evaluation=NO_POOL)
    new, history = _weeks_later(make_frame(300, 1, start=10_000), 1), make_frame(5000, 2)
    ts = build_training_set(new, history, cfg, seed=3)
    assert ts.provenance["history_rows"] == 500
    assert ts.provenance["history"]["cap"] == "max_history_rows"
    alone = build_training_set(new, None, cfg, seed=3)
    assert alone.sample_weight is None  # nothing to balance against


def test_sampled_mix_draws_more_history_for_a_minimum_training_size() -> None:
    cfg = make_cfg(training={"min_train_rows": 3000}, evaluation=NO_POOL)
    new, history = _weeks_later(make_frame(300, 1, start=10_000), 1), make_frame(5000, 2)
    ts = build_training_set(new, history, cfg, seed=3)
    assert len(ts.train) == 3000
    n_new = int((~_role(new)).sum())
    assert ts.provenance["realised_share"] == pytest.approx((3000 - n_new) / 3000)
    short = make_frame(800, 2)  # less history than asked for: all of it, capped by availability
    capped = build_training_set(new, short, cfg, seed=3)
    assert capped.provenance["history"]["cap"] == "available"
    assert len(capped.train) == n_new + int((~_role(short)).sum())


def test_fit_uses_the_weights_and_refuses_estimators_without_them() -> None:
    cfg = make_cfg(training={"mix": "weighted"}, evaluation=NO_POOL)
    new, history = _weeks_later(make_frame(300, 1, start=10_000), 1), make_frame(3000, 2)
    # History's labels are flipped: weighting it less must move the model towards the new rows.
    history["label"] = history["label"].map({"yes": "no", "no": "yes"})
    low = make_cfg(training={"mix": "weighted", "historical_share": 0.05}, evaluation=NO_POOL)
    ts_low = build_training_set(new, history, low, seed=3)
    ts_high = build_training_set(new, history, cfg, seed=3)
    test = make_frame(2000, 9, start=50_000)
    y = (test["label"] == "yes").to_numpy()

    def auc(model: object) -> float:
        return float(roc_auc_score(y, predict_scores(model, test, cfg)[:, 1]))  # type: ignore[arg-type]

    assert auc(fit_model(low, ts_low.train, ts_low.sample_weight)) > 0.7
    assert auc(fit_model(cfg, ts_high.train, ts_high.sample_weight)) < 0.3
    knn = make_cfg(estimator="sklearn.neighbors.KNeighborsClassifier")
    with pytest.raises(ValidationError, match=r"takes no sample_weight; use training\.mix: sample"):
        fit_model(knn, ts_low.train, ts_low.sample_weight)
    assert np.isfinite(predict_scores(fit_model(knn, ts_low.train), test, knn)).all()
