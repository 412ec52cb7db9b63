"""The blended improvement evidence (`evaluation.improvement_evidence: blend`): the rule, its
bootstrap and its wiring into `evaluate_challenger`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from retrain.evaluation.bootstrap import bootstrap_gain_blend, bootstrap_gain_shift
from retrain.evaluation.gates import GateInputs, decide

#: A challenger +0.01 on recent rows (interval across 0) and +0.01 on history (shown).
_INPUTS = GateInputs(
    "roc_auc",
    True,
    challenger_recent=0.81,
    champion_recent=0.80,
    recent_ci=(-0.01, 0.03),
    challenger_history=0.86,
    champion_history=0.85,
    history_ci=(0.001, 0.02),
    recent_rows=1000,
    min_rows=500,
    improvement_evidence="blend",
)
#: Intervals that show the blended gain, and a shift (recent minus history gain) that does not
#: show the two sets apart.
_SHOWN = {"blend_ci": (0.002, 0.02), "shift_ci": (-0.02, 0.02)}


def _decide(**changes: Any) -> Any:
    return decide(dataclasses.replace(_INPUTS, **changes))


def test_the_blend_is_off_by_default() -> None:
    r = _decide(improvement_evidence="recent", **_SHOWN)
    assert not r.blessed and not r.undecided
    assert "blend_needs_interval" not in r.comparison
    assert r.comparison["improvement_evidence"] == "recent"


def test_a_gain_shown_on_both_sets_together_blesses() -> None:
    waiting = _decide()
    assert not waiting.blessed and waiting.comparison["blend_needs_interval"]
    assert not _decide(blend_ci=(0.002, 0.02)).blessed  # the shift is bootstrapped too
    r = _decide(**_SHOWN)
    assert r.blessed, r.reason
    assert r.comparison["blended_gain_ci"] == [0.002, 0.02]
    assert "recent and history rows together" in r.reason
    assert "improvement_evidence blend" in r.reason


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (  # a regression allowance lets the point estimate below 0 through the other gates
            {"challenger_recent": 0.799, "max_recent_regression": 0.01},
            "below 0",
        ),
        (
            {"challenger_history": None, "champion_history": None, "history_ci": None},
            "no history evaluation rows",
        ),
        ({"blend_ci": (-0.001, 0.02)}, "does not exceed +0.000"),
        ({"blend_ci": (0.004, 0.02), "min_improvement": 0.005}, "does not exceed +0.005"),
        ({"shift_ci": (-0.09, -0.01)}, "the two sets disagree"),
        ({"recent_rows": 400}, "fewer recent evaluation rows than evaluation.min_rows"),
        ({"max_detectable_gain": 0.01}, "cannot judge"),
        (
            {"recent_ci": (0.0, 0.0), "challenger_recent": 0.80},
            "cannot judge",
        ),
        (
            {
                "metric": "rmse",
                "greater_is_better": False,
                "challenger_recent": 9.9,
                "champion_recent": 10.0,
                "challenger_history": 19.0,
                "champion_history": 20.0,
            },
            "target's units",
        ),
    ],
    ids=[
        "recent point below 0",
        "no history",
        "not shown",
        "below min_improvement",
        "recent shown below history (a change of regime)",
        "below min_rows",
        "too wide for max_detectable_gain",
        "zero-width recent interval",
        "a metric in the target's units",
    ],
)
def test_the_blend_does_not_bless(changes: dict[str, Any], why: str) -> None:
    r = _decide(**{**_SHOWN, **changes})
    assert not r.blessed, r.reason
    assert why in r.comparison["blend_not_applied"]


def test_other_gates_still_stop_a_blend() -> None:
    # Forgetting shown beyond the budget (and no change of regime), or a floor not met: the
    # blend does not even ask for its intervals.
    forgot = _decide(challenger_history=0.80, history_ci=(-0.08, -0.03))
    assert not forgot.blessed and "blend_needs_interval" not in forgot.comparison
    floored = _decide(floor=0.9)
    assert not floored.blessed and "blend_needs_interval" not in floored.comparison
    assert "blend_needs_interval" in _decide().comparison  # the same inputs, gates passing


def _sets(seed: int, recent_extra: float, history_extra: float) -> list[Any]:
    """Two sets of rows; the challenger puts `extra` weight on the second feature the label
    uses (better when positive), the champion none."""
    rng = np.random.default_rng(seed)
    out = []
    for n, extra in ((800, recent_extra), (2000, history_extra)):
        x = rng.normal(size=(n, 2))
        y = (rng.random(n) < expit(2 * x[:, 0] + 0.8 * x[:, 1])).astype(int)
        out.append((y, expit(2 * x[:, 0] + extra * x[:, 1]), expit(2 * x[:, 0])))
    return out


def _mean_gain(recent: Any, history: Any, seed: int) -> tuple[float, float, float]:
    return bootstrap_gain_blend(
        "classification",
        "roc_auc",
        recent,
        history,
        [0, 1],
        weights=(0.5, 0.5),
        n=300,
        confidence=0.95,
        seed=seed,
        stratify=False,
    )


def test_the_blend_bootstrap_is_the_mean_of_the_paired_gains() -> None:
    recent, history = _sets(1, 0.8, 0.8)
    point, lower, upper = _mean_gain(recent, history, seed=3)
    gains = [roc_auc_score(y, a) - roc_auc_score(y, b) for y, a, b in (recent, history)]
    assert point == pytest.approx(0.5 * gains[0] + 0.5 * gains[1], abs=1e-12)
    assert lower < point < upper
    assert lower > 0  # the second feature helps on both sets


def test_the_shift_is_the_blend_with_weights_one_and_minus_one() -> None:
    recent, history = _sets(2, 0.8, 0.3)
    kwargs: dict[str, Any] = {"n": 200, "confidence": 0.95, "seed": 4, "stratify": False}
    shift = bootstrap_gain_shift("classification", "roc_auc", recent, history, [0, 1], **kwargs)
    blend = bootstrap_gain_blend(
        "classification", "roc_auc", recent, history, [0, 1], weights=(1.0, -1.0), **kwargs
    )
    assert shift == blend


def test_the_blend_interval_is_narrower_than_the_recent_one_alone() -> None:
    from retrain.evaluation.bootstrap import bootstrap_difference

    recent, history = _sets(5, 0.4, 0.4)
    _, lo_r, hi_r = bootstrap_difference(
        "classification", "roc_auc", *recent, [0, 1], n=300, confidence=0.95, seed=1
    )
    _, lo_b, hi_b = _mean_gain(recent, history, seed=1)
    assert hi_b - lo_b < 0.75 * (hi_r - lo_r)


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < expit(2.5 * x + 0.6 * w)).astype(int)
    return pd.DataFrame({"id": np.arange(n), "t": 0, "x": x, "w": w, "y": y})


@pytest.mark.parametrize(
    ("evidence", "seed", "blessed"),
    [("recent", 9, False), ("blend", 9, True), ("blend", 3, False)],
    ids=["recent alone", "blend", "blend, the recent rows disagree"],
)
def test_evaluate_challenger_bootstraps_the_blend_it_needs(
    evidence: str, seed: int, blessed: bool
) -> None:
    """The champion ignores w, the challenger uses it: better everywhere (about +0.012 AUC), by
    a margin 600 recent rows do not show alone. On one draw the two sets together show it; on
    another the recent rows happen to score the two models alike (+0.000) while history shows
    +0.013: the shift's interval says the sets disagree, and they are not pooled."""
    from sklearn.linear_model import LogisticRegression

    from retrain.config import config_from_dict
    from retrain.evaluation.gates import evaluate_challenger

    cfg = config_from_dict(
        {
            "name": "m",
            "task": "classification",
            "target": "y",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "/tmp/unused",
                "id_column": "id",
                "time_column": "t",
                "time_kind": "period",
                "features": {"x": "numeric", "w": "numeric"},
            },
            "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "m"},
            "evaluation": {
                "improvement_evidence": evidence,
                "bootstrap_samples": 300,
                "min_rows": 200,
            },
        }
    )
    train = _rows(3000, 1)
    champion = LogisticRegression().fit(train[["x"]].assign(w=0.0), train["y"])
    challenger = LogisticRegression().fit(train[["x", "w"]], train["y"])
    recent, history = _rows(600, seed), _rows(4000, 100 + seed)
    r = evaluate_challenger(cfg, challenger, champion, recent, history, seed=5)
    lower, _ = r.comparison["recent_ci"]
    assert lower <= 0, "the recent rows alone must not show the gain for this test to mean much"
    assert r.blessed is blessed, r.reason
    assert ("blended_gain_ci" in r.comparison) is (evidence == "blend")
    if evidence == "blend":
        shift_upper = r.comparison["gain_shift_ci"][1]  # bootstrapped beside the blend
        assert (shift_upper >= 0) is blessed
        if not blessed:
            assert "disagree" in r.comparison["blend_not_applied"]
