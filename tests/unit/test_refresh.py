"""The refresh: a challenger trained on newer data replaces a champion it is not worse than.

Decisions are stepped through `decide` (pure), the age through `windows_between`, and the
whole path through the evaluate step's model cards in `test_the_evaluate_step_*`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrain.config import config_from_dict
from retrain.data.windows import windows_between
from retrain.evaluation.gates import GateInputs, decide

# A challenger the rows cannot tell from the champion: gain +0.004, interval across 0.
_EQUAL: dict[str, Any] = {"recent_ci": (-0.02, 0.028), "recent_rows": 800, "min_rows": 500}


def _decide(challenger: float, age: float | None, after: int, **extra: Any) -> Any:
    """The age alone (`refresh_evidence` "age") unless `extra` says otherwise."""
    inputs = {**_EQUAL, "refresh_evidence": "age", **extra}
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


def test_a_zero_width_interval_or_one_too_wide_to_judge_is_not_refreshed() -> None:
    # Scores alike on every resample (an interval of exactly [0, 0]): nothing tells them apart.
    same = _decide(0.80, age=2.0, after=1, recent_ci=(0.0, 0.0))
    assert same.outcome == "rejected" and not same.comparison["refresh"], same.reason
    # max_detectable_gain set, and the interval wider than it: undecided, as without a refresh.
    wide = _decide(0.804, age=2.0, after=1, max_detectable_gain=0.01)
    assert wide.undecided and not wide.comparison["refresh"], wide.reason


def test_max_recent_regression_is_the_refresh_allowance() -> None:
    # A challenger 0.005 worse on its point estimate: within a 0.01 allowance it is refreshed,
    # with none it is not.
    allowed = _decide(0.795, age=1.0, after=1, max_recent_regression=0.01)
    assert allowed.blessed and allowed.comparison["refresh"], allowed.reason
    assert not _decide(0.795, age=1.0, after=1).blessed


def test_the_refresh_is_off_by_default_and_needs_a_shift_when_on() -> None:
    from retrain.settings.evaluation import EvaluationConfig

    assert EvaluationConfig().refresh_after == 0
    assert GateInputs("roc_auc", True, 0.8, 0.8).refresh_after == 0
    assert EvaluationConfig().refresh_evidence == "shift"
    assert GateInputs("roc_auc", True, 0.8, 0.8).refresh_evidence == "shift"


# History rows: the challenger gives 0.004 back there (within the budget, not shown).
_HISTORY: dict[str, Any] = {
    "refresh_evidence": "shift",
    "challenger_history": 0.856,
    "champion_history": 0.86,
    "history_ci": (-0.012, 0.004),
}


def test_on_shift_a_refresh_needs_history_rows_and_a_shown_shift() -> None:
    no_history = _decide(0.804, age=1.0, after=1, refresh_evidence="shift")
    assert not no_history.blessed and not no_history.comparison["refresh"]
    assert "no history rows" in no_history.comparison["refresh_not_applied"]
    # Before its interval is bootstrapped the shift is only asked for (evaluate_challenger
    # then decides again with it).
    asked = _decide(0.804, age=1.0, after=1, **_HISTORY)
    assert not asked.blessed and asked.comparison["refresh_needs_shift"]
    # Recent gain +0.004 and history gain -0.004: a shift of +0.008, shown by its interval.
    shown = _decide(0.804, age=1.0, after=1, **_HISTORY, shift_ci=(0.002, 0.014))
    assert shown.blessed and shown.comparison["refresh"], shown.reason
    assert "its recent gain shown above its history gain (by at least 0.002)" in shown.reason
    assert shown.comparison["gain_shift_ci"] == [0.002, 0.014]
    unshown = _decide(0.804, age=1.0, after=1, **_HISTORY, shift_ci=(-0.004, 0.02))
    assert not unshown.blessed and not unshown.comparison["refresh"], unshown.reason
    assert "not shown above its history gain" in unshown.comparison["refresh_not_applied"]
    # Orientation for an error metric: gains are champion minus challenger, as for the gate.
    rmse = decide(
        GateInputs(
            "rmse",
            False,
            11.9,
            12.0,
            (-0.5, 0.6),
            10.1,
            10.0,
            history_ci=(-0.3, 0.1),
            recent_rows=800,
            min_rows=500,
            champion_age=2.0,
            refresh_after=1,
            shift_ci=(0.05, 0.6),
        )
    )
    assert rmse.blessed and rmse.comparison["refresh"], rmse.reason


def test_the_shift_bootstrap_cancels_what_both_models_share() -> None:
    """A recent window on which both models score 0.05 worse (noisier labels) shifts neither
    gain: the interval of the shift covers 0 as often as chance allows."""
    import numpy as np
    from scipy.special import expit

    from retrain.evaluation.bootstrap import bootstrap_gain_shift

    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        sets = []
        for n, noise in ((600, 0.3), (2000, 0.0)):
            x = rng.normal(size=(n, 2))
            y = (rng.random(n) < expit(2 * x[:, 0] + 0.6 * x[:, 1])).astype(int)
            flip = rng.random(n) < noise
            y[flip] = rng.integers(0, 2, int(flip.sum()))
            a = 2 * x[:, 0] + 0.5 * x[:, 1]  # two equally good scorers
            b = 2 * x[:, 0] + 0.7 * x[:, 1]
            sets.append((y, expit(a), expit(b)))
        _, lower, upper = bootstrap_gain_shift(
            "classification",
            "roc_auc",
            sets[0],
            sets[1],
            [0, 1],
            n=300,
            confidence=0.95,
            seed=seed,
            stratify=False,
        )
        covered += lower <= 0 <= upper
    assert covered >= 36  # 95% nominal: 38 of 40 expected, 36 allows for chance


def _rows(n: int, seed: int, noise: float = 0.0, w_weight: float = 0.8) -> Any:
    """Rows whose label follows x and w (with `w_weight`), a share `noise` of them replaced by
    coin flips (the same best ranking, a lower AUC for every model)."""
    import numpy as np
    import pandas as pd
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < expit(2.5 * x + w_weight * w)).astype(int)
    flipped = rng.random(n) < noise
    y[flipped] = rng.integers(0, 2, int(flipped.sum()))
    return pd.DataFrame({"id": np.arange(n), "t": 0, "x": x, "w": w, "y": y})


@pytest.mark.parametrize(
    ("noise", "w_weight", "refreshed"),
    [(0.0, 0.8, False), (0.4, 0.8, False), (0.0, 1.25, True)],
    ids=["not moved", "a harder window", "moved"],
)
def test_evaluate_challenger_bootstraps_the_shift_a_refresh_needs(
    noise: float, w_weight: float, refreshed: bool
) -> None:
    """Two models, the challenger fitted on other rows a window newer. Not moved: the recent
    rows follow the champion's world. A harder window: 40% of their labels are coin flips,
    both models score about 0.1 lower, and that is no reason to refresh. Moved: w weighs more
    in the recent rows and the challenger learnt it; its recent gain alone is not shown, its
    gain relative to history is."""
    from sklearn.linear_model import LogisticRegression

    from retrain.evaluation.gates import evaluate_challenger

    base = _config("period", 1)
    data = base.data.model_copy(update={"features": {"x": "numeric", "w": "numeric"}})
    evaluation = {"refresh_after": 1, "bootstrap_samples": 300, "min_rows": 200}
    cfg = base.model_copy(
        update={"data": data, "evaluation": base.evaluation.model_copy(update=evaluation)}
    )
    old, newer = _rows(1000, 1), _rows(1000, 2, noise, w_weight)
    champion = LogisticRegression().fit(old[["x", "w"]], old["y"])
    challenger = LogisticRegression().fit(newer[["x", "w"]], newer["y"])
    recent, history = _rows(1500, 3, noise, w_weight), _rows(1500, 4)
    r = evaluate_challenger(cfg, challenger, champion, recent, history, seed=5, champion_age=1.0)
    assert r.comparison["gain_shift_ci"] is not None  # bootstrapped for the refresh
    assert r.comparison["refresh"] is refreshed, r.reason
    assert r.blessed is refreshed
    lower, _ = r.comparison["recent_ci"]
    assert lower <= 0  # never a gain shown: only the refresh can bless
    if not refreshed:
        assert "not shown above" in r.comparison["refresh_not_applied"]


def test_a_shown_gain_is_a_plain_blessing_not_a_refresh() -> None:
    r = _decide(0.85, age=1.0, after=1, recent_ci=(0.02, 0.08))
    assert r.blessed and not r.comparison["refresh"], r.reason
    assert "a refresh" not in r.reason


def _data(time_kind: str, window_size: Any) -> Any:
    return _config(time_kind, window_size).data


def _config(time_kind: str, window_size: Any) -> Any:
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
    return config_from_dict(raw)


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
    base = config(tmp_path)
    for window, run in (("1", "r1"), ("3", "r3")):
        run_label(tmp_path, base, window, run, as_of="9")
        run_train(tmp_path, base, window, run)
    reg = Registry(open_storage(base.storage_root), base.name)
    model_dir = tmp_path / "r1-model"
    reg.register("v1", {p.name: p.read_bytes() for p in model_dir.iterdir()})
    reg.set_alias("champion", "v1", reg.get_alias("champion").generation)

    def judged(cfg: Any, run: str) -> dict[str, Any]:
        model, holdout = tmp_path / "r3-model", tmp_path / "r3-holdout"
        return dict(steps.evaluate(cfg.to_yaml(), run, str(model), str(holdout)).details)

    off = judged(base, "r3")  # the default: no refresh, whatever the age
    assert off["comparison"]["champion_age_windows"] == 2.0
    assert off["comparison"]["refresh_after"] == 0 and not off["comparison"]["refresh"]
    evaluation = base.evaluation.model_copy(update={"refresh_after": 1})
    on = judged(base.model_copy(update={"evaluation": evaluation}), "r3-on")
    comp = on["comparison"]
    assert comp["champion_age_windows"] == 2.0 and comp["refresh_after"] == 1
    # One feature and a monotone label: both models rank every row alike, so the interval is
    # exactly [0, 0] and nothing tells them apart; the refresh, on, still does not apply.
    assert comp["recent_gain"] == 0.0 and comp["recent_ci"] == [0.0, 0.0]
    assert not comp["refresh"] and on["outcome"] == off["outcome"] == "rejected"


def test_the_markdown_report_says_the_improvement_gate_was_waived_by_a_refresh() -> None:
    md = _decide(0.804, age=1.0, after=1).markdown()
    assert md.startswith("## Evaluation: blessed (refresh)\n")
    assert "| recent_improvement | waived (refresh) |" in md
    assert "| recent_non_regression | pass |" in md
    plain = _decide(0.85, age=1.0, after=1, recent_ci=(0.02, 0.08)).markdown()
    assert plain.startswith("## Evaluation: blessed\n")
    assert "| recent_improvement | pass |" in plain


def _registry_with_champion(tmp_path: Path, window: str, provenance: dict[str, Any]) -> Any:
    from retrain._card import ModelCard
    from retrain.registry import MODEL_CARD_FILE, Registry
    from retrain.storage import open_storage

    card = ModelCard(
        version="v1",
        parent=None,
        created_at="2024-03-11T00:00:00+00:00",
        task="classification",
        target="y",
        features={"x": "numeric"},
        estimator="sklearn.linear_model.LogisticRegression",
        params={},
        data_hashes={},
        provenance=provenance,
        metrics={},
        library_versions={},
        model_sha256="",
        seed=0,
        window=window,
    )
    reg = Registry(open_storage(str(tmp_path / "store")), "ages")
    reg.register("v1", {MODEL_CARD_FILE: card.to_json().encode()})
    return reg


def _card(reg: Any) -> Any:
    from retrain._card import ModelCard
    from retrain.registry import MODEL_CARD_FILE

    return ModelCard.from_json(reg.read_file("v1", MODEL_CARD_FILE).decode())


def test_after_weekly_windows_become_daily_a_day_inside_the_champions_week_is_not_newer(
    tmp_path: Path,
) -> None:
    from retrain.steps._evaluate import _champion_age

    daily = _config("date", "1d")
    # The champion was trained on the week of Monday 2024-03-04 (its card records the end).
    reg = _registry_with_champion(tmp_path, "2024-03-04", {"window_end": "2024-03-11"})
    assert _champion_age(daily, _card(reg), "2024-03-05") == 0.0  # inside that week
    assert _champion_age(daily, _card(reg), "2024-03-10") == 0.0  # its last day
    assert _champion_age(daily, _card(reg), "2024-03-03") == -1.0  # older: as before
    # From the week's end on the data is newer, counted start to start as before.
    assert _champion_age(daily, _card(reg), "2024-03-11") == 7.0
    # A card without the end: start to start, as before.
    old = _registry_with_champion(tmp_path / "old", "2024-03-04", {})
    assert _champion_age(daily, _card(old), "2024-03-05") == 1.0


def test_the_train_step_records_the_windows_end_and_evaluate_counts_from_it(
    tmp_path: Path,
) -> None:
    from retrain import steps
    from retrain.registry import Registry
    from retrain.storage import open_storage
    from tests.unit.test_provisional_labels import config, run_label, run_train, write_stream

    write_stream(tmp_path)
    base = config(tmp_path)  # periods, one a window
    data = base.data.model_copy(update={"window_size": 4})
    four = base.model_copy(update={"data": data})
    run_label(tmp_path, four, "0", "r0", as_of="9")
    run_train(tmp_path, four, "0", "r0")  # the champion: periods 0 to 3
    card = json.loads((tmp_path / "r0-model" / "model.json").read_text())
    assert card["window"] == "0" and card["provenance"]["window_end"] == 4
    reg = Registry(open_storage(base.storage_root), base.name)
    model_dir = tmp_path / "r0-model"
    reg.register("v0", {p.name: p.read_bytes() for p in model_dir.iterdir()})
    reg.set_alias("champion", "v0", reg.get_alias("champion").generation)
    # Now one period a window: a challenger on period 2, inside the champion's window.
    evaluation = base.evaluation.model_copy(update={"refresh_after": 1})
    one = base.model_copy(update={"evaluation": evaluation})
    run_label(tmp_path, one, "2", "r2", as_of="9")
    run_train(tmp_path, one, "2", "r2")
    model, holdout = tmp_path / "r2-model", tmp_path / "r2-holdout"
    details = steps.evaluate(one.to_yaml(), "r2", str(model), str(holdout)).details
    assert details["comparison"]["champion_age_windows"] == 0.0  # not 2.0: not newer
    assert not details["comparison"]["refresh"]


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (
            {"blessed": True, "comparison": {"refresh": True, "champion_age_windows": 3.0}},
            {"blessed_by": "refresh", "champion_age_windows": 3.0},
        ),
        ({"blessed": True, "comparison": {"refresh": False}}, {"blessed_by": "gates"}),
        (
            {"blessed": True, "comparison": {"refresh": False, "evaluated": False}},
            {"blessed_by": "first model, not evaluated"},
        ),
        ({"blessed": False, "comparison": {"refresh": False}}, {}),
        (None, {}),  # no evaluate step in the run: a version deployed by hand
    ],
)
def test_the_registered_event_says_how_the_version_was_blessed(
    tmp_path: Path, details: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    from retrain.steps._deploy import _blessing
    from retrain.steps.records import finish_step, recorded_step
    from retrain.storage import open_storage

    store = open_storage(str(tmp_path / "store"))
    if details is not None:
        with recorded_step(store, "r1", "evaluate") as rec:
            finish_step(rec, None, "BLESSED", details, "# Evaluation\n")
    with recorded_step(store, "r1", "train") as rec:  # another step's record is not read
        finish_step(rec, None, "trained", {"blessed": True}, "# Train\n")
    assert _blessing(store, "r1") == expected


def test_the_shift_is_oriented_as_the_gains_for_an_error_metric() -> None:
    """rmse: the challenger's errors are smaller on the recent rows (a gain there), equal on
    history: a positive shift, equal to the recent gain less the history gain as the paired
    bootstrap computes each; swapping the sets turns its sign."""
    import numpy as np

    from retrain.evaluation.bootstrap import bootstrap_difference, bootstrap_gain_shift

    rng = np.random.default_rng(3)
    y_r, y_h = rng.normal(size=800), rng.normal(size=800)
    recent = (y_r, y_r + rng.normal(0, 0.5, 800), y_r + rng.normal(0, 1.0, 800))
    noise = rng.normal(0, 0.8, 800)
    history = (y_h, y_h + noise, y_h + noise[::-1])  # the same errors, reordered: equal
    boot = {"n": 200, "confidence": 0.95, "seed": 1, "stratify": False}
    point, lower, upper = bootstrap_gain_shift("regression", "rmse", recent, history, None, **boot)
    gain_r = bootstrap_difference("regression", "rmse", *recent, None, 200, 0.95, 1)[0]
    gain_h = bootstrap_difference("regression", "rmse", *history, None, 200, 0.95, 1)[0]
    assert gain_r > 0.3 and gain_h == pytest.approx(0.0, abs=1e-12)
    assert point == pytest.approx(gain_r - gain_h) and 0 < lower < point < upper
    swapped = bootstrap_gain_shift("regression", "rmse", history, recent, None, **boot)
    assert swapped[0] == pytest.approx(-point) and swapped[2] < 0


def test_an_unknown_evidence_value_takes_the_safe_rule() -> None:
    r = _decide(0.804, age=1.0, after=1, refresh_evidence="sfhit")  # a typo, not "age"
    assert not r.blessed and "no history rows" in r.comparison["refresh_not_applied"]
