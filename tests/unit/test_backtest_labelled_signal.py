"""The backtest's drift policy judges the champion on labels as the monitor's engine does:
against the metric its profile recorded at training, with only the labels known then."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retrain import steps
from retrain.backtest._trigger import drift_policy_decision
from retrain.backtest.scoring import labelled_check
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.data.io import from_parquet_bytes, read_source
from retrain.drift import PROFILE_FILE, PerformanceCheck, ReferenceProfile, performance_fired
from retrain.registry import Registry
from retrain.storage import open_storage
from retrain.training.artifact import load_registered_model
from retrain.training.model import predict_scores
from retrain.triggers.monitor import detect_with_engine
from retrain.triggers.policy import PolicyState

Trained = tuple[Config, Registry, Any, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Week 0 of the loans stream trained and registered as `v0`; week 4, after the concept
    change at week 2, ingested. Loans' labels come one or two weeks after their week."""
    root = tmp_path_factory.mktemp("loans")
    cfg = load_config(generate_loans(root, windows=5, rows_per_window=1000, drift_window=2))
    text, work = cfg.to_yaml(), root / "run"
    steps.ingest(text, "0", "w0", str(work / "d0.parquet"))
    steps.label(text, "0", "w0", str(work / "d0.parquet"), str(work / "l0.parquet"))
    steps.train(text, "0", "w0", str(work / "l0.parquet"), str(work / "model"), str(work / "h"))
    registry = Registry(open_storage(cfg.storage_root), cfg.name)
    registry.register("v0", {p.name: p.read_bytes() for p in (work / "model").iterdir()})
    steps.ingest(text, "4", "w4", str(work / "d4.parquet"))
    events, _ = from_parquet_bytes((work / "d4.parquet").read_bytes())
    labels = read_source(cfg.labels.uri, cfg.labels.format)
    return cfg, registry, load_registered_model(registry, "v0"), events, labels


def _known(
    cfg: Config, events: pd.DataFrame, labels: pd.DataFrame, as_of: int | None
) -> pd.DataFrame:
    """Week 4's events with the labels dated at or before `as_of` (None: all)."""
    lab = labels if as_of is None else labels[labels[cfg.labels.time_column] <= as_of]
    key = cfg.labels.id_column
    return events.merge(
        lab[[key, cfg.labels.label_column]], left_on=cfg.data.id_column, right_on=key
    )


def test_the_reference_is_the_training_metric_and_only_labels_known_then_count(
    trained: Trained,
) -> None:
    cfg, registry, model, events, labels = trained
    profile = ReferenceProfile.from_json(registry.read_file("v0", PROFILE_FILE))
    # At week 4's end (as of week 5) only the labels one week late have come.
    then = labelled_check(cfg, registry, "v0", model, events, labels, 5)
    later = labelled_check(cfg, registry, "v0", model, events, labels, None)
    assert then is not None and later is not None
    known_then, known_later = _known(cfg, events, labels, 5), _known(cfg, events, labels, None)
    assert 0 < then.n == len(known_then) < later.n == len(known_later)
    for check, rows in ((then, known_then), (later, known_later)):
        assert check.metric == "roc_auc"
        assert check.reference == profile.metrics["roc_auc"]  # what training measured
        scores = model.predict_proba(rows[list(cfg.data.features)])[:, 1]
        assert check.current == pytest.approx(roc_auc_score(rows[cfg.target], scores))
        assert check.drop == pytest.approx(check.reference - check.current)


def test_a_concept_change_fires_and_no_labels_yet_is_not_measured(trained: Trained) -> None:
    cfg, registry, model, events, labels = trained
    later = labelled_check(cfg, registry, "v0", model, events, labels, None)
    assert later is not None and later.drop_lower > cfg.drift.max_performance_drop
    assert performance_fired(later, cfg.drift)
    # At week 4's start none of its labels exist: nothing to judge, not a zero drop.
    assert labelled_check(cfg, registry, "v0", model, events, labels, 4) is None


def test_a_model_without_a_profile_or_with_drift_off_is_not_measured(trained: Trained) -> None:
    cfg, registry, model, events, labels = trained
    files = {"model.json": registry.read_file("v0", "model.json")}
    registry.register("bare", files)
    assert labelled_check(cfg, registry, "bare", model, events, labels, None) is None
    off = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"enabled": False})})
    assert labelled_check(off, registry, "v0", model, events, labels, None) is None


def _check(drop: float, lower: float) -> PerformanceCheck:
    return PerformanceCheck(
        metric="roc_auc",
        reference=0.9,
        current=0.9 - drop,
        lower=0.9 - drop - 0.01,
        upper=0.9 - drop + 0.01,
        drop=drop,
        drop_lower=lower,
        drop_upper=drop + 0.01,
        n=500,
        confidence=0.95,
    )


def _with_triggers(cfg: Config, **update: Any) -> Config:
    return cfg.model_copy(update={"triggers": cfg.triggers.model_copy(update=update)})


def test_a_labelled_drop_launches_at_once_and_waits_for_the_hysteresis_with_the_trigger_off(
    trained: Trained,
) -> None:
    off = _with_triggers(trained[0], drift_windows=2, cooldown="0s", performance_drop=None)
    now = datetime(2024, 1, 8, tzinfo=timezone.utc)
    big = _check(0.3, 0.25)
    launch, why, state = drift_policy_decision(off, PolicyState(), "5", False, big, now)
    assert not launch and why.startswith("hysteresis")
    launch, why, _ = drift_policy_decision(off, state, "6", False, big, now + timedelta(days=7))
    assert launch and why.startswith("drift")
    at_once = _with_triggers(trained[0], drift_windows=2, cooldown="0s")  # the default trigger
    launch, why, _ = drift_policy_decision(at_once, PolicyState(), "5", False, big, now)
    assert launch and why.startswith("performance")
    # A drift streak that qualifies with the drop: the drift launch gives way to it, as in
    # the monitor (the same snapshot here; the labelled drop opens the catch-up chain).
    launch, why, state = drift_policy_decision(at_once, PolicyState(), "5", True, None, now)
    assert not launch and why.startswith("hysteresis")
    later = now + timedelta(days=7)
    launch, why, state = drift_policy_decision(at_once, state, "6", True, big, later)
    assert launch and why.startswith("performance")
    assert state.catch_up == "6"
    # A drop the labelled rows' noise explains fires neither way.
    noisy = _check(0.3, -0.01)
    launch, why, _ = drift_policy_decision(at_once, PolicyState(), "5", False, noisy, now)
    assert not launch and why.startswith("no_drift")
    # Nothing measured: the feature verdict alone decides, as before.
    launch, why, _ = drift_policy_decision(at_once, PolicyState(), "5", False, None, now)
    assert not launch and why.startswith("no_drift")


def test_the_monitor_s_engine_summary_carries_the_drop_s_interval(trained: Trained) -> None:
    cfg, registry, model, events, labels = trained
    key = cfg.labels.id_column
    aligned = events[cfg.data.id_column].map(labels.set_index(key)[cfg.labels.label_column])
    summary = detect_with_engine(
        registry.read_file("v0", PROFILE_FILE).decode(),
        events,
        cfg,
        predict_scores(model, events, cfg),
        aligned,
    )
    perf = summary.performance
    assert perf is not None  # what the performance trigger reads
    assert perf["drop_lower"] < perf["drop"] < perf["drop_upper"]


def test_a_catch_up_reason_names_the_labelled_windows_not_the_replayed_ones(
    trained: Trained,
) -> None:
    """Labels a few windows late: the drop is measured on window 3 at replayed window 5, whose
    launch trains on 3; at replayed window 7 the newest labelled window is 4. The catch-up
    reason names 3 and 4, the windows trained on and measured (5 and 7 have no labels yet)."""
    cfg = _with_triggers(trained[0], drift_windows=2, cooldown="0s")
    now = datetime(2024, 1, 8, tzinfo=timezone.utc)
    launch, why, state = drift_policy_decision(
        cfg, PolicyState(), "5", False, _check(0.3, 0.25), now, windows=("3", None)
    )
    assert launch and why.startswith("performance")
    # The model launched at 5 serves; on window 4 it is level with its own training metric
    # (0.70) but still 0.21 below the 0.90 its predecessor had before the drop.
    level = PerformanceCheck(
        metric="roc_auc", reference=0.7, current=0.69, lower=0.64, upper=0.74, drop=0.01,
        drop_lower=-0.04, drop_upper=0.06, n=500, confidence=0.95,
    )  # fmt: skip
    later = now + timedelta(days=14)
    launch, why, _ = drift_policy_decision(
        cfg, state, "7", False, level, later, champion_from="5", windows=("4", "3")
    )
    assert launch and why.startswith("catch_up"), why
    assert "the model launched for 3 after a confirmed drop serves" in why
    assert "on the newer labelled window 4 its roc_auc 0.69 is still 0.21 worse" in why
