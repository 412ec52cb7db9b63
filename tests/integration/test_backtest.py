"""The backtest on a real drifting stream, with the real steps, stores and GitOps commits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from required import require
from retrain.backtest import ReplayOptions, parse_policies, replay_policy, run_backtest
from retrain.config import load_config
from retrain.drift import PROFILE_FILE, ReferenceProfile
from retrain.registry import MODEL_CARD_FILE, Registry
from retrain.runner import run_cycle
from retrain.steps.records import read_dataset
from retrain.storage import open_storage
from retrain.training.artifact import load_registered_model
from retrain.training.model import predict_scores

pytestmark = pytest.mark.integration


def _need_git() -> None:
    if shutil.which("git") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("git is required for GitOps deploys")
        pytest.skip("git is not installed (GitOps deploys need it)")


@pytest.fixture(scope="module")
def loans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    root = tmp_path_factory.mktemp("loans")
    # Nine weeks: labels come one or two weeks late, so any retraining reacts to the change at
    # week 3 a week after it is labelled; the weeks after give room to see the recovery.
    return generate_loans(root / "data", windows=9, rows_per_window=1500, drift_window=3, seed=3)


def test_retraining_beats_never_after_an_abrupt_drift(loans: Path, tmp_path: Path) -> None:
    _need_git()
    cfg = load_config(loans)
    result = run_backtest(
        cfg, parse_policies("never,drift,always"), tmp_path / "out", jobs=2, known_drift=["3"]
    )
    after = {s.policy: s.mean_after_drift for s in result.summaries}
    assert after["never"] is not None and after["never"] < 0.6  # the old concept fails
    assert after["always"] is not None and after["always"] > after["never"] + 0.1
    assert after["drift"] is not None and after["drift"] > after["never"] + 0.1
    retrains = {s.policy: s.retrains for s in result.summaries}
    # Window 0 has no labels yet at its end: "always" retrains from window 1 on.
    assert retrains["never"] == 1 and retrains["always"] == 8 and 1 < retrains["drift"] < 8
    for ext in ("md", "json", "png"):
        assert (tmp_path / "out" / f"backtest.{ext}").stat().st_size > 0
    doc = json.loads((tmp_path / "out" / "backtest.json").read_text())
    assert [p["policy"] for p in doc["policies"]] == ["never", "drift", "always"]
    # Each policy deployed through its own GitOps repository.
    assert (tmp_path / "out" / "always" / "gitops" / ".git").is_dir()
    # The drift policy judged each champion on labels as the monitor's engine does: against
    # the metric its profile recorded at training, not against its first served window.
    drift = next(r for r in result.results if r.policy == "drift")
    registry = Registry(open_storage(str(tmp_path / "out" / "drift" / "store")), cfg.name)
    checked = [(w, n) for w in drift.windows for n in w.notes if " at training, drop " in n]
    assert len(checked) >= 3
    for window, note in checked:
        assert window.champion is not None
        profile = ReferenceProfile.from_json(registry.read_file(window.champion, PROFILE_FILE))
        assert f"vs {profile.metrics['roc_auc']:.3f} at training" in note
    # The change is seen on the first labelled window after it (week 3, labelled by week 5).
    assert any(n.endswith(": fired") for w, n in checked if w.index <= 5)
    # After it the model of the drop's launch serves, still far below the old level: the
    # next labelled window launches again (the catch-up chain), on a newer window than the
    # one the serving model trained on.
    opened = next(w for w in drift.windows if w.retrained and w.index > 1)
    caught = [w for w in drift.windows if any(n.startswith("catch_up:") for n in w.notes)]
    assert caught and caught[0].index > opened.index and caught[0].retrained
    assert caught[0].champion == opened.deployed
    assert caught[0].trained_on is not None and opened.trained_on is not None
    assert int(caught[0].trained_on) > int(opened.trained_on)


def test_a_backtest_window_trains_what_the_pipeline_trains(loans: Path, tmp_path: Path) -> None:
    _need_git()
    cfg = load_config(loans)
    bt = run_backtest(
        cfg,
        parse_policies("always"),
        tmp_path / "bt",
        windows=["0", "1"],
        options=ReplayOptions(),
        jobs=1,
        cache=False,
    )
    # Window 0's labels arrive one or two weeks late: it is trained at window 1's end.
    assert [w.trained_on for w in bt.results[0].windows] == [None, "0"]
    version = bt.results[0].windows[1].deployed
    assert version is not None
    bt_store = open_storage(str(tmp_path / "bt" / "always" / "store"))
    bt_card = json.loads(Registry(bt_store, cfg.name).read_file(version, MODEL_CARD_FILE))

    run_cfg = cfg.model_copy(
        update={
            "storage_root": str(tmp_path / "run" / "store"),
            "deploy": cfg.deploy.model_copy(update={"gitops_repo": str(tmp_path / "run" / "git")}),
        }
    )
    cycle = run_cycle(run_cfg, "0", engine="direct", run_id="pipeline-0")
    assert cycle.exit_code == 0 and "deploy" in cycle.records
    run_store = open_storage(run_cfg.storage_root)
    run_version = Registry(run_store, cfg.name).get_alias("champion").version
    assert run_version == version  # content-addressed: same data, spec and seed
    run_card = json.loads(Registry(run_store, cfg.name).read_file(version, MODEL_CARD_FILE))
    assert run_card["data_hashes"] == bt_card["data_hashes"]
    events, _ = read_dataset(
        str(next((tmp_path / "bt" / "always" / "work").glob("00001/dataset.parquet")))
    )
    a = predict_scores(load_registered_model(Registry(bt_store, cfg.name), version), events, cfg)
    run_model = load_registered_model(Registry(run_store, run_cfg.name), version)
    b = predict_scores(run_model, events, cfg)
    np.testing.assert_array_equal(a, b)


def test_labels_are_used_by_their_own_times(loans: Path, tmp_path: Path) -> None:
    _need_git()
    cfg = load_config(loans)
    windows = [str(w) for w in range(4)]
    timed = run_backtest(
        cfg, parse_policies("always"), tmp_path / "timed", windows=windows, jobs=1
    ).results[0]
    # Demo labels come one or two weeks after the event: a window is labelled enough (90%)
    # only at the next window's end, so the first model comes a window later.
    assert [w.trained_on for w in timed.windows] == [None, "0", "1", "2"]
    assert "no window's labels have arrived yet" in timed.windows[0].notes
    assert timed.windows[1].champion is None and timed.windows[2].champion is not None
    # The same data without label times takes every label as there at once.
    untimed_cfg = cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"time_column": None})}
    )
    untimed = run_backtest(
        untimed_cfg, parse_policies("always"), tmp_path / "untimed", windows=windows, jobs=1
    ).results[0]
    assert [w.trained_on for w in untimed.windows] == ["0", "1", "2", "3"]
    # --ignore-label-times does the same to a config whose labels carry times, and says so.
    ignored = run_backtest(
        cfg,
        parse_policies("always"),
        tmp_path / "ignored",
        windows=windows,
        options=ReplayOptions(ignore_label_times=True),
        jobs=1,
    )
    assert [w.trained_on for w in ignored.results[0].windows] == ["0", "1", "2", "3"]
    settings = json.loads((tmp_path / "ignored" / "backtest.json").read_text())["settings"]
    assert settings["labels"] == (
        "0 window(s) late (--label-delay); their own times (labelled_at_week) ignored"
        " (--ignore-label-times)"
    )
    # One policy replayed on its own honours the option too.
    alone = replay_policy(
        cfg,
        parse_policies("always")[0],
        windows,
        tmp_path / "alone",
        options=ReplayOptions(ignore_label_times=True),
    )
    assert [w.trained_on for w in alone.windows] == ["0", "1", "2", "3"]


def test_label_and_canary_delays(loans: Path, tmp_path: Path) -> None:
    _need_git()
    # A delay in windows is for labels without their own times.
    timed = load_config(loans)
    cfg = timed.model_copy(update={"labels": timed.labels.model_copy(update={"time_column": None})})
    bt = run_backtest(
        cfg,
        parse_policies("always"),
        tmp_path / "out",
        windows=[str(w) for w in range(6)],
        options=ReplayOptions(label_delay=1, canary_delay=1),
        jobs=1,
    )
    windows = bt.results[0].windows
    # Labels are one window late: window i trains on window i - 1, never on its own labels.
    assert [w.trained_on for w in windows] == [None, "0", "1", "2", "3", "4"]
    assert windows[0].champion is None and windows[1].champion is None
    deployed = [w for w in windows[2:] if w.deployed]
    assert deployed, "the drift at window 3 should bless a challenger"
    first = deployed[0]
    # A canary serves one window beside the champion, then is promoted and serves alone.
    if first.index + 1 < len(windows):
        assert windows[first.index + 1].champion != first.deployed
        assert windows[first.index + 1].promoted == first.deployed
    if first.index + 2 < len(windows):
        assert windows[first.index + 2].champion == first.deployed
