"""The refresh: a challenger trained on newer data replaces a champion it is not worse than.

Decisions are stepped through `decide` (pure), the age through `windows_between`, and the
whole path through the evaluate step's model cards in `test_the_evaluate_step_*`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from retrain.config import config_from_dict
from retrain.data.windows import windows_between
from retrain.evaluation.gates import GateInputs, decide

# A challenger the rows cannot tell from the champion: gain +0.004, interval across 0.
_EQUAL: dict[str, Any] = {"recent_ci": (-0.02, 0.028), "recent_rows": 800, "min_rows": 500}


def _decide(challenger: float, age: float | None, after: int, **extra: Any) -> Any:
    inputs = {**_EQUAL, **extra}
    return decide(
        GateInputs(
            "roc_auc", True, challenger, 0.80, champion_age=age, refresh_after=after, **inputs
        )
    )


def test_an_equal_challenger_on_newer_data_is_blessed_as_a_refresh() -> None:
    r = _decide(0.804, age=1.0, after=1)
    assert r.blessed and r.outcome == "blessed", r.reason
    assert r.comparison["refresh"] is True and r.comparison["champion_age_windows"] == 1.0
    assert "a refresh" in r.reason and "1 window(s) newer" in r.reason
    gate = next(g for g in r.gates if g.name == "recent_improvement")
    assert gate.passed and "not required for a refresh" in gate.detail


def test_without_the_refresh_an_equal_challenger_is_rejected() -> None:
    for age, after in ((1.0, 0), (None, 1), (0.0, 1), (2.0, 3)):
        r = _decide(0.804, age=age, after=after)
        assert r.outcome == "rejected" and not r.comparison["refresh"], (age, after, r.reason)
        assert "recent_improvement" in r.reason


def test_a_challenger_worse_on_the_point_estimate_is_never_refreshed() -> None:
    r = _decide(0.797, age=5.0, after=1)
    assert r.outcome == "rejected" and not r.comparison["refresh"], r.reason
    assert "recent_non_regression" in r.reason


def test_too_few_rows_to_show_a_gain_still_refresh_but_a_degenerate_interval_does_not() -> None:
    # 120 rows cannot show a gain (undecided without the refresh), but they do show the
    # challenger no worse on its point estimate: that is all a refresh asks of them.
    few = _decide(0.804, age=3.0, after=1, recent_rows=120)
    assert few.blessed and few.comparison["refresh"], few.reason
    assert _decide(0.804, age=3.0, after=0, recent_rows=120).undecided
    # A worse point estimate on few rows is held back, as before (undecided, not refreshed).
    worse = _decide(0.79, age=3.0, after=1, recent_rows=120)
    assert worse.undecided and not worse.comparison["refresh"], worse.reason
    # A zero-width interval away from 0 (every resample the same) is no evidence at all.
    flat = _decide(0.804, age=3.0, after=1, recent_rows=4, recent_ci=(0.004, 0.004))
    assert flat.undecided and not flat.comparison["refresh"], flat.reason


def test_forgetting_shown_beyond_the_budget_still_rejects() -> None:
    # History: the challenger loses 0.08 (interval of the gain -0.1..-0.06, beyond 0.02); the
    # champion is as good on recent rows as on history, so no change of regime excuses it.
    r = _decide(
        0.804,
        age=2.0,
        after=1,
        challenger_history=0.72,
        champion_history=0.80,
        history_ci=(-0.10, -0.06),
    )
    assert r.outcome == "rejected" and not r.comparison["refresh"], r.reason
    assert "history_bounded_loss" in r.reason


def test_a_shown_gain_is_a_plain_blessing_not_a_refresh() -> None:
    r = _decide(0.85, age=1.0, after=1, recent_ci=(0.02, 0.08))
    assert r.blessed and not r.comparison["refresh"], r.reason
    assert "a refresh" not in r.reason


def _data(time_kind: str, window_size: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "ages",
        "task": "classification",
        "target": "y",
        "storage_root": "/tmp/unused",
        "data": {
            "uri": "/tmp/unused",
            "id_column": "id",
            "time_column": "t",
            "time_kind": time_kind,
            "window_size": window_size,
            "features": {"x": "numeric"},
        },
        "labels": {"uri": "/tmp/unused", "id_column": "id", "label_column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "ages"},
    }
    return config_from_dict(raw).data


@pytest.mark.parametrize(
    ("kind", "size", "earlier", "later", "expected"),
    [
        ("timestamp", "7d", "2024-01-01", "2024-01-22", 3.0),
        ("date", "1d", "2024-03-05", "2024-03-04", -1.0),
        ("period", 4, "8", "20", 3.0),
        ("timestamp", "7d", None, "2024-01-22", None),
        ("period", 4, "2024-01-01", "20", None),  # a card written under another time kind
    ],
)
def test_windows_between_counts_window_sizes(
    kind: str, size: Any, earlier: str | None, later: str, expected: float | None
) -> None:
    assert windows_between(_data(kind, size), earlier, later) == expected


def test_the_evaluate_step_measures_the_age_from_the_model_cards(tmp_path: Path) -> None:
    from retrain import steps
    from retrain.registry import Registry
    from retrain.storage import open_storage
    from tests.unit.test_provisional_labels import config, run_label, run_train, write_stream

    write_stream(tmp_path)
    cfg = config(tmp_path)
    for window, run in (("1", "r1"), ("3", "r3")):
        run_label(tmp_path, cfg, window, run, as_of="9")
        run_train(tmp_path, cfg, window, run)
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    model_dir = tmp_path / "r1-model"
    reg.register("v1", {p.name: p.read_bytes() for p in model_dir.iterdir()})
    reg.set_alias("champion", "v1", reg.get_alias("champion").generation)

    newer = steps.evaluate(
        cfg.to_yaml(), "r3", str(tmp_path / "r3-model"), str(tmp_path / "r3-holdout")
    )
    assert newer.details["comparison"]["champion_age_windows"] == 2.0
    assert newer.details["comparison"]["refresh_after"] == 1
    # The champion judged against itself: the same window, no newer data, so no refresh.
    same = steps.evaluate(cfg.to_yaml(), "r1", str(model_dir), str(tmp_path / "r1-holdout"))
    assert same.details["comparison"]["champion_age_windows"] == 0.0
    assert same.details["outcome"] == "rejected" and not same.details["comparison"]["refresh"]
