"""Metrics against scikit-learn, the paired bootstrap, the pure gates, and an end-to-end run."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import norm
from sklearn import metrics as skm

from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError
from retrain.evaluation.bootstrap import bootstrap_difference
from retrain.evaluation.gates import GateInputs, decide, evaluate_challenger
from retrain.evaluation.metrics import (
    GREATER_IS_BETTER,
    compute_metrics,
    confusion,
    metric_names,
    positive_count,
)
from retrain.training.mix import build_training_set
from retrain.training.model import fit_model

# --- compute_metrics --------------------------------------------------------------------------


def _sk_classification(y: np.ndarray, scores: np.ndarray, classes: list[Any]) -> dict[str, float]:
    pred = np.asarray(classes)[scores.argmax(axis=1)]
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "log_loss": skm.log_loss(y, scores, labels=classes),
        "f1": skm.f1_score(y, pred, average="macro"),
    }
    if len(classes) == 2:
        positive = y == classes[1]
        out["roc_auc"] = skm.roc_auc_score(positive, scores[:, 1])
        out["brier"] = skm.brier_score_loss(positive, scores[:, 1])
        out["average_precision"] = skm.average_precision_score(positive, scores[:, 1])
    else:
        out["roc_auc"] = skm.roc_auc_score(
            y, scores, multi_class="ovr", average="macro", labels=classes
        )
    return out


def _sk_regression(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
        "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred),
    }


def _binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1), 1)  # rounded: many ties
    return y, np.column_stack([1 - p, p])


def _multiclass(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    scores = rng.dirichlet([1, 1, 1], n)
    scores[np.arange(n), pd.Index(["a", "b", "c"]).get_indexer(y)] += 0.5
    return y, scores / scores.sum(axis=1, keepdims=True)


def _regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    return y, y + rng.normal(scale=0.5, size=n)


def test_metrics_agree_with_scikit_learn() -> None:
    y, s = _binary(300, 1)
    got = compute_metrics("classification", y, s, [0, 1])
    assert list(got) == ["roc_auc", "accuracy", "log_loss", "f1", "brier", "average_precision"]
    assert got == pytest.approx(_sk_classification(y, s, [0, 1]), rel=1e-12)
    # A 1-D positive-class probability means the same as the two columns.
    assert compute_metrics("classification", y, s[:, 1], [0, 1]) == pytest.approx(got)

    y, s = _multiclass(300, 2)
    got = compute_metrics("classification", y, s, ["a", "b", "c"])
    assert "brier" not in got
    assert got == pytest.approx(_sk_classification(y, s, ["a", "b", "c"]), rel=1e-12)

    y, p = _regression(300, 3)
    assert compute_metrics("regression", y, p) == pytest.approx(_sk_regression(y, p), rel=1e-12)


def test_metric_inputs_are_checked() -> None:
    y, s = _binary(20, 1)
    with pytest.raises(ValidationError, match=r"labels not among the model's classes \[0, 1\]: 7$"):
        compute_metrics("classification", np.r_[y[:-1], 7], s, [0, 1])
    with pytest.raises(ValidationError, match="shape"):
        compute_metrics("classification", y, s[:10], [0, 1])
    with pytest.raises(ValidationError, match="unknown metric"):
        bootstrap_difference("regression", "auc", y, y, y, None, 10, 0.9, 0)


@pytest.mark.parametrize("spell", [str, float, bool], ids=["text", "float", "bool"])
def test_labels_are_the_classes_they_are_by_value(spell: Any) -> None:
    # A model of the classes 0 and 1, labels written "0"/"1", 0.0/1.0 or False/True: the
    # same metrics, positive count and confusion matrix as the integers give. (Matching the
    # values as written found no text or boolean label among the classes; floats matched.)
    y, s = _binary(200, 4)
    written = [spell(v) for v in y.tolist()]
    assert compute_metrics("classification", written, s, [0, 1]) == pytest.approx(
        compute_metrics("classification", y, s, [0, 1])
    )
    assert positive_count(written, [0, 1]) == positive_count(y, [0, 1]) == min(np.bincount(y))
    pred = s.argmax(axis=1)
    assert confusion(written, pred, [0, 1]) == confusion(y, pred, [0, 1])
    assert confusion(y, pred, [0, 1]) == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()


def test_undefined_auc_is_nan() -> None:
    got = compute_metrics("classification", [1, 1, 1], [[0.2, 0.8]] * 3, [0, 1])
    assert math.isnan(got["roc_auc"])
    assert got["accuracy"] == 1.0


def test_greater_is_better_covers_every_metric() -> None:
    names = set(metric_names("classification", 2)) | set(metric_names("regression"))
    assert set(GREATER_IS_BETTER) == names
    assert not GREATER_IS_BETTER["rmse"] and GREATER_IS_BETTER["roc_auc"]


def test_confusion_matches_scikit_learn() -> None:
    y, s = _multiclass(200, 4)
    pred = np.array(["a", "b", "c"])[s.argmax(axis=1)]
    expected = skm.confusion_matrix(y, pred, labels=["a", "b", "c"]).tolist()
    assert confusion(y, pred, ["a", "b", "c"]) == expected
    assert confusion(["a", "b"], ["b", "b"], ["a", "b"]) == [[0, 1], [0, 1]]


# --- bootstrap_difference ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "metric"),
    [("classification", m) for m in metric_names("classification", 2)]
    + [("multiclass", m) for m in metric_names("classification", 3)]
    + [("regression", m) for m in metric_names("regression")],
)
def test_one_resample_equals_scikit_learn_on_the_resampled_rows(task: str, metric: str) -> None:
    """With n=1 the interval collapses onto one resample, which must score as scikit-learn does.

    This checks the weighted (vectorised) metrics against the reference on duplicated rows; it
    relies on the bootstrap drawing its first resample with `rng.integers(0, rows, (1, rows))`.
    """
    rows, seed = 150, 9
    if task == "regression":
        y, a = _regression(rows, 1)
        b = a + np.random.default_rng(2).normal(scale=0.3, size=rows)
        classes: list[Any] | None = None
    else:
        y, a = _binary(rows, 1) if task == "classification" else _multiclass(rows, 1)
        _, b = _binary(rows, 2) if task == "classification" else _multiclass(rows, 2)
        classes = [0, 1] if task == "classification" else ["a", "b", "c"]
    point, lower, upper = bootstrap_difference(
        "regression" if task == "regression" else "classification",
        metric, y, a, b, classes, n=1, confidence=0.9, seed=seed,
    )  # fmt: skip
    idx = np.random.default_rng(seed).integers(0, rows, size=(1, rows))[0]
    if task == "regression":
        ref_a, ref_b = _sk_regression(y[idx], a[idx]), _sk_regression(y[idx], b[idx])
        full_a, full_b = _sk_regression(y, a), _sk_regression(y, b)
    else:
        assert classes is not None
        ref_a = _sk_classification(y[idx], a[idx], classes)
        ref_b = _sk_classification(y[idx], b[idx], classes)
        full_a, full_b = _sk_classification(y, a, classes), _sk_classification(y, b, classes)
    sign = 1 if GREATER_IS_BETTER[metric] else -1
    assert lower == pytest.approx(sign * (ref_a[metric] - ref_b[metric]), rel=1e-9, abs=1e-12)
    assert upper == lower
    assert point == pytest.approx(sign * (full_a[metric] - full_b[metric]), rel=1e-9, abs=1e-12)


def test_bootstrap_interval_covers_the_true_auc_gain() -> None:
    # Binormal scores: AUC = Phi(d / sqrt(2)), so the true gain is known exactly.
    rng = np.random.default_rng(0)
    rows = 3000
    y = rng.integers(0, 2, rows)
    challenger = expit(1.5 * y + rng.normal(size=rows))
    champion = expit(1.0 * y + rng.normal(size=rows))
    true_gain = norm.cdf(1.5 / math.sqrt(2)) - norm.cdf(1.0 / math.sqrt(2))
    args = ("classification", "roc_auc", y, challenger, champion, [0, 1])
    point, lower, upper = bootstrap_difference(*args, n=200, confidence=0.95, seed=1)
    assert lower < true_gain < upper
    assert lower > 0 and upper - lower < 0.06
    assert point == pytest.approx(true_gain, abs=0.02)
    assert bootstrap_difference(*args, n=200, confidence=0.95, seed=1) == (point, lower, upper)
    assert bootstrap_difference(*args, n=200, confidence=0.95, seed=2) != (point, lower, upper)


def test_bootstrap_gain_is_positive_when_the_challenger_has_lower_error() -> None:
    # |N(0, s)| has mean s * sqrt(2 / pi): the true MAE gain is (2 - 1) * sqrt(2 / pi).
    rng = np.random.default_rng(3)
    y = rng.normal(size=2000)
    challenger, champion = y + rng.normal(size=2000), y + rng.normal(scale=2.0, size=2000)
    point, lower, upper = bootstrap_difference(
        "regression", "mae", y, challenger, champion, None, n=200, confidence=0.95, seed=4
    )
    assert point > 0
    assert lower < math.sqrt(2 / math.pi) < upper


# --- decide -----------------------------------------------------------------------------------


def _auc_decision(
    challenger: float,
    champion: float | None,
    ci: tuple[float, float] | None,
    hist: tuple[float, float] | None = (0.861, 0.866),
    floor: float | None = None,
    max_recent_regression: float = 0.0,
    min_improvement: float = 0.0,
) -> Any:
    return decide(
        GateInputs(
            "roc_auc",
            True,
            challenger,
            champion,
            ci,
            None if hist is None else hist[0],
            None if hist is None else hist[1],
            floor=floor,
            max_recent_regression=max_recent_regression,
            max_history_loss=0.02,
            min_improvement=min_improvement,
        )
    )


def _gate(result: Any, name: str) -> Any:
    (gate,) = [g for g in result.gates if g.name == name]
    return gate


def _failed(result: Any) -> list[str]:
    return [g.name for g in result.gates if not g.passed]


def test_better_challenger_is_blessed_with_a_reason_in_words() -> None:
    r = _auc_decision(0.871, 0.842, (0.018, 0.041))
    assert r.blessed
    assert r.reason == (
        "challenger roc_auc 0.871 vs champion 0.842 on recent data (gain +0.029, 95% CI "
        "[0.018, 0.041]); history 0.861 vs 0.866 (-0.005, within the 0.02 budget): blessed"
    )
    assert [(g.name, g.passed) for g in r.gates] == [
        ("floor", True),
        ("recent_non_regression", True),
        ("recent_improvement", True),
        ("history_bounded_loss", True),
    ]
    assert _gate(r, "recent_improvement").detail == (
        "lower bound of the gain's interval +0.018 exceeds the required +0.000"
    )
    assert r.comparison["recent_gain"] == pytest.approx(0.029)
    assert r.comparison["history_loss"] == pytest.approx(0.005)
    assert r.comparison["min_improvement"] == 0.0


def test_equal_challenger_passes_non_regression_but_is_rejected_as_no_improvement() -> None:
    r = _auc_decision(0.842, 0.842, (-0.01, 0.01))
    assert not r.blessed and r.comparison["recent_gain"] == 0.0
    # A zero regression budget still accepts an equal score; only the improvement gate fails.
    assert _gate(r, "recent_non_regression").passed
    assert _failed(r) == ["recent_improvement"]
    assert r.reason.endswith("rejected (failed: recent_improvement)")
    assert _gate(r, "recent_improvement").detail == (
        "lower bound of the gain's interval -0.010 does not exceed the required +0.000"
    )


def test_equal_challenger_is_rejected_even_with_a_degenerate_interval() -> None:
    # An identical model: every resample gives gain 0, so the interval collapses onto 0.
    r = _auc_decision(0.842, 0.842, (0.0, 0.0))
    assert not r.blessed
    assert _failed(r) == ["recent_improvement"]
    assert "recent_improvement" in r.reason
    # Without an interval the point gain decides, with the same outcome.
    point = _auc_decision(0.842, 0.842, None)
    assert not point.blessed
    assert _failed(point) == ["recent_improvement"]
    assert _gate(point, "recent_improvement").detail == (
        "gain +0.000 does not exceed the required +0.000"
    )


@pytest.mark.parametrize(
    ("lower", "blessed"),
    [(0.0099, False), (0.01, False), (0.0101, True)],
)
def test_the_interval_lower_bound_must_be_strictly_above_min_improvement(
    lower: float, blessed: bool
) -> None:
    # The point gain (+0.029) is well above 0.01 in every case: only the lower bound decides.
    r = _auc_decision(0.871, 0.842, (lower, 0.05), min_improvement=0.01)
    assert r.blessed is blessed
    assert _failed(r) == ([] if blessed else ["recent_improvement"])
    gate = _gate(r, "recent_improvement")
    assert gate.detail.startswith("lower bound of the gain's interval")
    assert ("does not exceed" not in gate.detail) is blessed
    assert r.comparison["min_improvement"] == 0.01


@pytest.mark.parametrize(
    ("min_improvement", "blessed"),
    # The gain 0.852 - 0.842 is 0.010000000000000009 in floats: exactly the bar, so rejected.
    [(0.005, True), (0.01, False), (0.02, False)],
)
def test_without_an_interval_the_point_gain_must_exceed_min_improvement(
    min_improvement: float, blessed: bool
) -> None:
    r = _auc_decision(0.852, 0.842, None, min_improvement=min_improvement)
    assert r.blessed is blessed
    assert _failed(r) == ([] if blessed else ["recent_improvement"])
    verb = "exceeds" if blessed else "does not exceed"
    assert _gate(r, "recent_improvement").detail == (
        f"gain +0.010 {verb} the required {min_improvement:+.3f}"
    )
    assert r.comparison["recent_ci"] is None


def test_worse_challenger_is_rejected() -> None:
    r = _auc_decision(0.80, 0.842, (-0.06, -0.02))
    assert not r.blessed
    assert r.reason.endswith("rejected (failed: recent_non_regression, recent_improvement)")
    gate = _gate(r, "recent_non_regression")
    assert not gate.passed and "point estimate is below" in gate.detail
    assert _gate(r, "history_bounded_loss").passed


def test_small_regression_within_the_budget_and_a_confident_one_beyond_it() -> None:
    within = _auc_decision(0.837, 0.842, (-0.02, 0.004), max_recent_regression=0.01)
    # Within the regression budget, so non-regression passes; not an improvement, so rejected.
    assert _gate(within, "recent_non_regression").passed
    assert _failed(within) == ["recent_improvement"]
    # Point estimate inside the budget, but the whole interval below it.
    beyond = _auc_decision(0.837, 0.842, (-0.03, -0.012), max_recent_regression=0.01)
    assert not beyond.blessed
    assert _failed(beyond) == ["recent_non_regression", "recent_improvement"]
    assert "interval lies entirely below" in _gate(beyond, "recent_non_regression").detail


def test_forgetting_history_is_rejected_even_when_recent_improves() -> None:
    r = _auc_decision(0.871, 0.842, (0.018, 0.041), hist=(0.80, 0.866))
    assert not r.blessed
    assert _failed(r) == ["history_bounded_loss"]
    assert "history 0.800 vs 0.866 (-0.066, beyond the 0.02 budget)" in r.reason


def _after_a_change(**changes: Any) -> Any:
    """Housing after its concept change (the standard backtest, window 2024-04-01): the champion,
    trained before the change, is 4x as wrong on the recent rows as on history; the challenger
    gains 18 to 25 on the recent rows and loses 7.8 to 11.6 on the old regime's history."""
    values: dict[str, Any] = {
        "metric": "rmse",
        "greater_is_better": False,
        "challenger_recent": 116.0,
        "champion_recent": 137.7,
        "recent_ci": (18.1, 25.3),
        "challenger_history": 43.78,
        "champion_history": 34.07,
        "history_ci": (-11.6, -7.84),
    }
    return decide(GateInputs(**{**values, **changes}))


def test_after_a_change_of_regime_the_forgetting_guard_accepts_a_loss_worth_it() -> None:
    r = _after_a_change()
    assert r.blessed, r.reason
    gate = _gate(r, "history_bounded_loss")
    assert gate.passed and "the whole interval lies beyond" in gate.detail
    assert "accepted: the regime changed" in gate.detail
    assert "103.630 worse on recent rows than on history" in gate.detail
    # No interval of the decline given: its point estimate stands in, and the words say so.
    assert (
        "the decline (point estimate 103.630) exceeds the most the challenger can have lost"
        " (11.600), its recent gain is shown (lower bound +18.100) and exceeds its history loss"
        " (+21.700 against 9.710)"
    ) in gate.detail
    assert r.comparison["history_loss_accepted_on_change"] is True
    assert r.comparison["champion_decline"] == pytest.approx(137.7 - 34.07)
    assert r.comparison["champion_decline_ci"] is None
    # Turned off, the same numbers are a rejection for forgetting.
    off = _after_a_change(accept_forgetting_on_change=False)
    assert _failed(off) == ["history_bounded_loss"]
    assert off.comparison["history_loss_accepted_on_change"] is False


def test_a_champion_a_flip_left_worse_than_chance_gives_way_on_a_small_window() -> None:
    # A concept flip on a window of about 70 evaluation rows: the champion ranks worse than
    # chance now (0.30, from 0.85 on history). The challenger is clearly better now (+0.40,
    # interval [+0.22, +0.58]) and loses 0.30 on the old regime: its gain's lower bound does
    # not clear the loss's upper bound (0.33), which kept the broken champion in service.
    flip = {
        "metric": "roc_auc",
        "greater_is_better": True,
        "champion_recent": 0.30,
        "challenger_recent": 0.70,
        "recent_ci": (0.22, 0.58),
        "recent_rows": 70,
        "champion_history": 0.85,
        "challenger_history": 0.55,
        "history_ci": (-0.33, -0.27),
        "decline_ci": (0.40, 0.70),
    }
    r = decide(GateInputs(**flip))
    assert r.blessed, r.reason
    assert r.comparison["history_loss_accepted_on_change"] is True
    # Without a shown decline beyond the loss, the same challenger is still refused.
    kept = decide(GateInputs(**{**flip, "decline_ci": (0.20, 0.70)}))
    assert _failed(kept) == ["history_bounded_loss"], kept.reason


def test_after_a_change_of_regime_the_champions_decline_is_judged_on_its_lower_bound() -> None:
    # The point decline (103.6) is far beyond the most the challenger may have lost (11.6),
    # but the decline's interval reaches down to 5: the change of regime is not shown.
    noisy = _after_a_change(decline_ci=(5.0, 202.0))
    assert _failed(noisy) == ["history_bounded_loss"], noisy.reason
    assert noisy.comparison["history_loss_accepted_on_change"] is False
    assert noisy.comparison["champion_decline"] == pytest.approx(103.63)
    assert noisy.comparison["champion_decline_ci"] == [5.0, 202.0]
    # A decline its interval shows is accepted, and the words carry the interval.
    shown = _after_a_change(decline_ci=(95.0, 112.0))
    assert shown.blessed, shown.reason
    detail = _gate(shown, "history_bounded_loss").detail
    assert "103.630 worse on recent rows than on history, 95% CI [95.000, 112.000]" in detail
    assert "the decline (lower bound 95.000) exceeds the most the challenger can have lost" in (
        detail
    )
    assert shown.comparison["champion_decline_ci"] == [95.0, 112.0]


@pytest.mark.parametrize(
    "changes",
    [
        # The recent gain is not shown: its interval reaches below 0.
        {"recent_ci": (-1.0, 44.0)},
        # The recent gain is shown, but smaller (8.0) than the history loss (9.7): the
        # challenger loses more on the past than it gains on the present.
        {"challenger_recent": 129.7, "recent_ci": (2.0, 14.0)},
        # The champion is as good on recent rows as on history: no change of regime.
        {"champion_recent": 36.0, "challenger_recent": 14.0},
        # Without an interval the point loss (9.7) is the bound, and the champion's decline
        # (5.0) is smaller.
        {
            "champion_recent": 39.07,
            "challenger_recent": 20.0,
            "history_ci": None,
            "recent_ci": None,
        },
    ],
)
def test_forgetting_without_a_change_worth_it_is_still_rejected(changes: dict[str, Any]) -> None:
    r = _after_a_change(**changes)
    assert "history_bounded_loss" in _failed(r), r.reason
    assert "accepted" not in _gate(r, "history_bounded_loss").detail


def test_without_history_holdout_the_forgetting_gate_is_skipped() -> None:
    r = _auc_decision(0.871, 0.842, (0.018, 0.041), hist=None)
    assert r.blessed
    assert _gate(r, "history_bounded_loss").detail == "no history holdout: not checked"
    assert "forgetting not checked" in r.reason


@pytest.mark.parametrize(("value", "blessed"), [(0.75, True), (0.70, True), (0.65, False)])
def test_first_model_is_judged_by_the_floor_alone(value: float, blessed: bool) -> None:
    r = _auc_decision(value, None, None, hist=(0.5, 0.9), floor=0.7)
    assert r.blessed is blessed
    assert [g.name for g in r.gates] == ["floor"]
    assert r.reason.startswith("first model (no champion): challenger roc_auc")
    assert r.comparison["first_model"] is True


def test_first_model_without_a_floor_is_blessed() -> None:
    r = _auc_decision(0.51, None, None, floor=None)
    assert r.blessed and r.gates[0].detail == "no floor configured"


@pytest.mark.parametrize(("floor", "blessed"), [(None, True), (0.7, True), (0.8, False)])
def test_first_model_is_not_held_to_min_improvement(floor: float | None, blessed: bool) -> None:
    # No champion to improve on: a demanding min_improvement must not block the first model.
    r = _auc_decision(0.75, None, None, floor=floor, min_improvement=0.5)
    assert r.blessed is blessed
    assert [g.name for g in r.gates] == ["floor"]
    assert r.comparison["min_improvement"] == 0.5 and r.comparison["recent_gain"] is None


def test_lower_is_better_metrics_are_oriented() -> None:
    def rmse_inputs(*values: Any, **thresholds: Any) -> GateInputs:
        return GateInputs("rmse", False, *values, max_history_loss=0.1, **thresholds)

    def rmse(challenger: float, floor: float | None = None) -> Any:
        return decide(rmse_inputs(challenger, 1.2, (0.1, 0.3), 2.0, 2.0, floor=floor))

    better = rmse(1.0)
    assert better.blessed and better.comparison["recent_gain"] == pytest.approx(0.2)
    assert not rmse(1.3).blessed
    assert rmse(1.0, floor=1.1).gates[0].passed
    failed = rmse(1.0, floor=0.9).gates[0]
    assert not failed.passed and "above the floor 0.900" in failed.detail
    # rmse's history budget is a share of the champion's: 0.1 x 2.0 = 0.2.
    worse_history = decide(rmse_inputs(1.0, 1.2, (0.1, 0.3), 2.3, 2.0))
    assert not worse_history.blessed and worse_history.comparison["history_loss"] == (
        pytest.approx(0.3)
    )
    assert worse_history.comparison["history_loss_budget"] == pytest.approx(0.2)
    # The improvement gate sees the oriented gain: 1.2 - 1.0 = +0.2 on the point path.
    point = decide(rmse_inputs(1.0, 1.2, None, None, None, min_improvement=0.15))
    assert point.blessed
    assert _gate(point, "recent_improvement").detail.startswith("gain +0.200 exceeds")
    strict = decide(rmse_inputs(1.0, 1.2, None, None, None, min_improvement=0.25))
    assert _failed(strict) == ["recent_improvement"]


@pytest.mark.parametrize("units", [1.0, 1000.0])
def test_history_budget_of_a_metric_in_target_units_is_relative(units: float) -> None:
    # House prices: the champion's history rmse is 30 (or 30,000 in other units). A challenger
    # 1% worse on history, shown by its interval, stays within the default budget (2%); one 5%
    # worse does not. An absolute 0.02 would fail both, whatever the units.
    def forgetting(challenger_history: float, ci: tuple[float, float]) -> Any:
        inputs = GateInputs(
            "rmse",
            False,
            25.0 * units,
            30.0 * units,
            (3.0 * units, 7.0 * units),
            challenger_history * units,
            30.0 * units,
            history_ci=(ci[0] * units, ci[1] * units),
        )
        return decide(inputs)

    slight = forgetting(30.3, (-0.5, -0.1))
    assert slight.blessed, slight.reason
    assert slight.comparison["history_loss_budget"] == pytest.approx(0.6 * units)
    assert _failed(forgetting(31.5, (-2.0, -1.0))) == ["history_bounded_loss"]
    # A metric on a fixed scale keeps the budget in its own units.
    auc = decide(GateInputs("roc_auc", True, 0.9, 0.8, (0.05, 0.15), 0.7, 0.8, (-0.12, -0.08)))
    assert auc.comparison["history_loss_budget"] == 0.02 and not auc.blessed


def test_an_undefined_metric_fails_its_gate() -> None:
    r = _auc_decision(float("nan"), 0.842, (float("nan"), float("nan")), floor=0.5)
    assert not r.blessed
    assert _failed(r) == ["floor", "recent_non_regression", "recent_improvement"]
    assert json.loads(r.to_json())["metrics"]["challenger"]["recent"]["roc_auc"] is None


def test_markdown_report_has_the_verdict_gates_and_metrics() -> None:
    md = _auc_decision(0.871, 0.842, (0.018, 0.041)).markdown()
    assert md.startswith("## Evaluation: blessed\n")
    assert "| recent_non_regression | pass |" in md
    assert "| recent_improvement | pass |" in md
    assert "| roc_auc | 0.871 | 0.861 | 0.842 | 0.866 |" in md


# --- evaluate_challenger end to end -----------------------------------------------------------


def _cfg(**evaluation: Any) -> Config:
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
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "training": {"history_holdout_rows": 200},
            # Small sets decide here; the row minimum and pooling have tests of their own.
            "evaluation": {"bootstrap_samples": 100, "min_rows": 50, "pool_windows": 0}
            | evaluation,
            "deploy": {"deployment_name": "demo"},
        }
    )


def _frame(n: int, seed: int, start: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "blue"], size=n)
    z = 2 * x1 + np.where(colour == "red", 1.0, -1.0)
    label = np.where(rng.random(n) < expit(z), "yes", "no")
    return pd.DataFrame(
        {
            "id": np.arange(start, start + n),
            "ts": pd.Timestamp("2024-01-01"),
            "x1": x1,
            "colour": colour,
            "label": label,
        }
    )


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    cfg = _cfg()
    ts = build_training_set(_frame(400, 1, 10_000), _frame(1000, 2, 0), cfg, seed=0)
    shuffled = ts.train.assign(
        label=np.random.default_rng(5).permutation(ts.train["label"].to_numpy())
    )
    return {
        "sets": ts,
        "good": fit_model(cfg, ts.train),
        "noise": fit_model(cfg, shuffled),  # learned nothing: AUC near 0.5
    }


def test_evaluate_blesses_a_better_challenger(models: dict[str, Any]) -> None:
    ts = models["sets"]
    r = evaluate_challenger(
        _cfg(), models["good"], models["noise"], ts.recent_holdout, ts.history_holdout, seed=1
    )
    assert r.blessed, r.reason
    recent = r.metrics["challenger"]["recent"]
    assert set(recent) == {"roc_auc", "accuracy", "log_loss", "f1", "brier", "average_precision"}
    assert recent["roc_auc"] > 0.8 and r.metrics["champion"]["recent"]["roc_auc"] < 0.65
    lower, upper = r.comparison["recent_ci"]
    assert 0 < lower <= r.comparison["recent_gain"] <= upper
    n_recent = len(ts.recent_holdout)
    assert r.comparison["rows"] == {"recent": n_recent, "history": len(ts.history_holdout)}
    assert r.comparison["outcome"] == "blessed" and r.outcome == "blessed"
    assert r.comparison["recent_min_detectable_gain"] == pytest.approx((upper - lower) / 2)
    assert r.comparison["classes"] == ["no", "yes"]
    assert r.confusion is not None and r.confusion["categories"] == ["no", "yes"]
    matrix = r.confusion["matrix"]
    truth = ts.recent_holdout["label"]
    assert [sum(row) for row in matrix] == [int((truth == "no").sum()), int((truth == "yes").sum())]
    accuracy = (matrix[0][0] + matrix[1][1]) / n_recent
    assert accuracy == pytest.approx(recent["accuracy"])
    json.loads(r.to_json())  # strict JSON


def test_evaluate_rejects_a_worse_challenger_and_is_seeded(models: dict[str, Any]) -> None:
    ts = models["sets"]
    args = (_cfg(), models["noise"], models["good"], ts.recent_holdout, ts.history_holdout)
    r = evaluate_challenger(*args, seed=1)
    assert not r.blessed
    assert {g.name for g in r.gates if not g.passed} == {
        "recent_non_regression",
        "recent_improvement",
        "history_bounded_loss",
    }
    assert evaluate_challenger(*args, seed=1) == r


def test_evaluate_rejects_a_copy_of_the_champion(models: dict[str, Any]) -> None:
    ts = models["sets"]
    good = models["good"]
    r = evaluate_challenger(_cfg(), good, good, ts.recent_holdout, ts.history_holdout, seed=1)
    assert not r.blessed
    assert r.comparison["recent_gain"] == 0.0 and r.comparison["recent_ci"] == [0.0, 0.0]
    assert r.comparison["history_loss"] == 0.0
    assert _failed(r) == ["recent_improvement"]


def test_evaluate_passes_min_improvement_from_the_config(models: dict[str, Any]) -> None:
    ts = models["sets"]
    args = (models["good"], models["noise"], ts.recent_holdout, ts.history_holdout)
    lower = evaluate_challenger(_cfg(), *args, seed=1).comparison["recent_ci"][0]
    assert lower > 0.1
    below = evaluate_challenger(_cfg(min_improvement=lower - 0.01), *args, seed=1)
    assert below.blessed, below.reason
    above = evaluate_challenger(_cfg(min_improvement=lower + 0.01), *args, seed=1)
    assert not above.blessed
    assert _failed(above) == ["recent_improvement"]
    assert above.comparison["min_improvement"] == pytest.approx(lower + 0.01)


def test_evaluate_first_model_against_the_floor(models: dict[str, Any]) -> None:
    ts = models["sets"]
    good = evaluate_challenger(_cfg(floor=0.7), models["good"], None, ts.recent_holdout, None, 1)
    assert good.blessed and "champion" not in good.metrics
    # A first model is bootstrapped against a constant prediction on the same rows.
    assert good.comparison["bootstrap_samples"] == 100 and good.comparison["baseline_ci"][0] > 0
    noise = evaluate_challenger(_cfg(floor=0.7), models["noise"], None, ts.recent_holdout, None, 1)
    assert not noise.blessed


def test_evaluate_checks_the_metric_and_the_holdout(models: dict[str, Any]) -> None:
    ts = models["sets"]
    # A metric of the other task no longer gets this far: the config refuses it at load.
    with pytest.raises(ValidationError, match=r"evaluation\.metric 'rmse' is not a classification"):
        _cfg(metric="rmse")
    unlabelled = ts.recent_holdout.copy()
    unlabelled.loc[0, "label"] = None
    with pytest.raises(ValidationError, match="recent holdout cannot be evaluated"):
        evaluate_challenger(_cfg(), models["good"], None, unlabelled, None, 1)


def test_evaluate_regression_orients_the_error_metric() -> None:
    raw = _cfg().model_dump(mode="json")
    raw.update(task="regression", model={"estimator": "sklearn.linear_model.Ridge", "params": {}})
    cfg = config_from_dict(raw)
    rng = np.random.default_rng(4)
    frame = _frame(600, 3, 0).assign(label=lambda d: 3 * d["x1"] + rng.normal(size=len(d)))
    recent, train = frame.iloc[:150], frame.iloc[150:]
    good = fit_model(cfg, train)
    weak = fit_model(cfg, train.assign(x1=0.0))  # cannot see the only informative feature
    r = evaluate_challenger(cfg, good, weak, recent, None, seed=2)
    assert r.blessed, r.reason
    assert r.comparison["metric"] == "rmse" and r.comparison["greater_is_better"] is False
    gain = r.metrics["champion"]["recent"]["rmse"] - r.metrics["challenger"]["recent"]["rmse"]
    assert r.comparison["recent_gain"] == pytest.approx(gain) and gain > 1.0
    assert set(r.metrics["challenger"]["recent"]) == {"rmse", "mae", "r2"}
    assert not evaluate_challenger(cfg, weak, good, recent, None, seed=2).blessed


def test_evaluate_aligns_classes_a_champion_never_saw() -> None:
    cfg = _cfg(metric="accuracy")
    frame = _frame(600, 6, 0)
    frame["label"] = np.select([frame["x1"] < -0.5, frame["x1"] > 0.5], ["a", "c"], "b")
    recent, train = frame.iloc[:150], frame.iloc[150:]
    challenger = fit_model(cfg, train)
    champion = fit_model(cfg, train[train["label"] != "c"])  # knows only "a" and "b"
    r = evaluate_challenger(cfg, challenger, champion, recent, None, seed=3)
    assert r.comparison["classes"] == ["a", "b", "c"]
    assert "brier" not in r.metrics["challenger"]["recent"]
    share_c = (recent["label"] == "c").mean()
    # The champion can never predict "c", so it misses at least every "c" row.
    assert r.metrics["champion"]["recent"]["accuracy"] <= 1 - share_c
    assert r.blessed, r.reason


def test_history_budget_against_a_perfect_champion_is_a_share_of_a_constant_prediction() -> None:
    # The champion's history rmse is 0: a share of it would allow no loss at all. The budget
    # falls back to the share of a constant prediction's rmse (here 10), and says so.
    def forgetting(ci: tuple[float, float], constant: float | None) -> Any:
        return decide(
            GateInputs(
                "rmse",
                False,
                1.0,
                2.0,
                (0.5, 1.5),
                0.1,
                0.0,
                history_ci=ci,
                constant_history=constant,
                # The champion is 2.0 worse on recent rows than on history: a change of regime
                # would accept the loss; this test is about the budget alone.
                accept_forgetting_on_change=False,
            )
        )

    slight = forgetting((-0.15, -0.05), 10.0)  # loss 0.05 to 0.15, within 2% of 10
    assert slight.blessed, slight.reason
    assert slight.comparison["history_loss_budget"] == pytest.approx(0.2)
    assert "constant prediction" in slight.comparison["history_loss_budget_basis"]
    beyond = forgetting((-0.4, -0.3), 10.0)
    assert _failed(beyond) == ["history_bounded_loss"]
    # Nothing to take a share of: the configured number in metric units, recorded as such.
    unknown = forgetting((-0.15, -0.05), None)
    assert unknown.comparison["history_loss_budget"] == pytest.approx(0.02)
    assert unknown.comparison["history_loss_budget_basis"].startswith("metric units")
    assert _failed(unknown) == ["history_bounded_loss"]


def test_a_metric_undefined_on_too_few_recent_rows_is_undecided_not_rejected() -> None:
    # One recent evaluation row (a 30-row monthly window): ROC AUC is undefined for both models.
    # Nothing was shown either way, so the verdict is undecided, not a regression.
    nan = float("nan")
    r = decide(
        GateInputs(
            "roc_auc",
            True,
            nan,
            nan,
            (nan, nan),
            0.862,
            0.772,
            (-0.073, 0.221),
            recent_rows=1,
            min_rows=500,
        )
    )
    assert not r.blessed
    assert r.comparison["outcome"] == "undecided", r.reason
    assert [g.name for g in r.gates if not g.passed and g.decided] == []
    assert "1 recent evaluation rows, fewer than evaluation.min_rows 500" in r.reason
