"""The monitor reads labels as of its own clock, and re-runs a window whose run failed on
label coverage once the labels have arrived: a fake clock and a label feed that fills in."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from retrain.config import Config, load_config
from retrain.data.io import read_source
from retrain.data.windows import parse_as_of, parse_window, window_ids_in, window_mask
from retrain.errors import ValidationError
from retrain.labels import join_labels
from retrain.registry import Registry
from retrain.settings.triggers import TriggerConfig
from retrain.steps.records import recorded_step
from retrain.storage import Storage, open_storage
from retrain.triggers.controller import (
    LaunchResult,
    RunStatus,
    TriggerController,
    launches_prefix,
    state_key,
)
from retrain.triggers.monitor import DriftSummary, Monitor
from retrain.triggers.policy import Decision, PolicyState, Signal, decide
from retrain.triggers.relabel import awaiting_labels

DAY0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = DAY0

    def __call__(self) -> datetime:
        return self.now


def write_case(tmp_path: Path) -> Config:
    """Three daily windows of 100 events; half of each day's labels arrive a day later, the
    other half three days later."""
    n, days = 100, 3
    at = pd.Series(
        [DAY0 + timedelta(days=d, hours=1 + i * 0.2) for d in range(days) for i in range(n)]
    )
    rng = np.random.default_rng(5)
    events = pd.DataFrame({"id": np.arange(n * days), "at": at, "a": rng.normal(size=n * days)})
    late = np.where(np.arange(n * days) % 2 == 0, 1, 3)
    labels = pd.DataFrame(
        {
            "id": events["id"],
            "y": (events["a"] > 0).astype(int),
            "labelled_at": at + pd.to_timedelta(late, unit="D"),
        }
    )
    (tmp_path / "events").mkdir()
    (tmp_path / "labels").mkdir()
    events.to_parquet(tmp_path / "events" / "e.parquet")
    labels.to_parquet(tmp_path / "labels" / "l.parquet")
    cfg = {
        "name": "toy",
        "task": "classification",
        "target": "y",
        "storage_root": str(tmp_path / "store"),
        "data": {
            "uri": str(tmp_path / "events"),
            "id_column": "id",
            "time_column": "at",
            "time_kind": "timestamp",
            "window_size": "1d",
            "features": {"a": "numeric"},
        },
        "labels": {
            "uri": str(tmp_path / "labels"),
            "id_column": "id",
            "label_column": "y",
            "time_column": "labelled_at",
            "min_coverage": 0.9,
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "toy", "gitops_repo": str(tmp_path / "gitops")},
        "triggers": {"cooldown": "1h"},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(str(path))


class LabelStepLauncher:
    """Runs only the label join of a cycle, as of the clock, recorded like the label step."""

    name = "label-step"

    def __init__(self, cfg: Config, store: Storage, clock: Clock) -> None:
        self.cfg, self.store, self.clock = cfg, store, clock
        self.launched: list[str] = []

    def launch(self, snapshot: str, run_id: str, decision: Decision) -> LaunchResult:
        self.launched.append(snapshot)
        cfg = self.cfg
        source = read_source(cfg.data.uri, cfg.data.format)
        mask = window_mask(source["at"], parse_window(cfg.data, snapshot), cfg.data.time_kind)
        labels = read_source(cfg.labels.uri, cfg.labels.format)
        as_of = parse_as_of(cfg.data, self.clock().isoformat())
        try:
            with recorded_step(self.store, run_id, "label"):
                join_labels(cfg, source.loc[mask].reset_index(drop=True), labels, as_of=as_of)
        except ValidationError:
            return LaunchResult(run_id, "failed")
        return LaunchResult(run_id, "succeeded")

    def poll(self, run_id: str, external_id: str) -> RunStatus | None:
        return None


def test_a_window_failed_on_coverage_runs_again_once_its_labels_arrive(tmp_path: Path) -> None:
    cfg = write_case(tmp_path)
    store = open_storage(cfg.storage_root)
    clock = Clock()
    launcher = LabelStepLauncher(cfg, store, clock)
    controller = TriggerController(store, cfg.name, cfg.triggers, launcher, clock=clock)
    monitor = Monitor(cfg, controller, store=store)
    first = window_ids_in(cfg.data, read_source(cfg.data.uri, cfg.data.format)["at"])[0]

    # Day 1, 12:00: the first window is run by hand; half of its labels have arrived.
    clock.now = DAY0 + timedelta(days=1, hours=12)
    outcome = controller.handle(Signal("manual", first))
    assert outcome.launch is not None and outcome.launch.status == "failed"
    # Were it a pending drift launch, the back-off would wait for its re-run (a snapshot
    # never launched is not awaited).
    pending = replace(controller.load_state()[0], drift_pending=(first, "never-launched"))
    assert awaiting_labels(store, cfg.name, pending) == [first]

    def relabel_decisions() -> list[tuple[str, bool, str]]:
        result = monitor.check(first)
        return [
            (o.decision.rule, o.decision.launch, o.decision.reason)
            for o in result.outcomes
            if o.decision.signal.kind == "labels"
        ]

    # Day 2: still half (the labels dated after the monitor's clock have not arrived).
    clock.now = DAY0 + timedelta(days=2, hours=12)
    ((rule, launched, reason),) = relabel_decisions()
    assert (rule, launched) == ("coverage_short", False)
    assert "cover 50.0%, below labels.min_coverage 90.0%" in reason
    # Day 4: every label of the window has arrived: the window runs again, and succeeds.
    clock.now = DAY0 + timedelta(days=4, hours=12)
    ((rule, launched, reason),) = relabel_decisions()
    assert (rule, launched) == ("labels", True)
    assert "now cover 100.0%" in reason and "had failed for too few labels" in reason
    assert launcher.launched == [first, first]
    # Once: the window's run succeeded, so there is nothing left to re-run.
    clock.now += timedelta(days=1)
    assert relabel_decisions() == []
    pending = replace(controller.load_state()[0], drift_pending=(first,))
    assert awaiting_labels(store, cfg.name, pending) == []


def test_a_failed_window_whose_labels_are_refused_waits_and_says_why(tmp_path: Path) -> None:
    # The window's run failed on coverage; its labels then arrive, but 10% of them are dated
    # before their event, which the label join refuses: a re-run would fail on them. That is
    # not "cover 0%, waiting for labels": the decision names the refusal and its reason.
    cfg = write_case(tmp_path)
    store = open_storage(cfg.storage_root)
    clock = Clock()
    launcher = LabelStepLauncher(cfg, store, clock)
    controller = TriggerController(store, cfg.name, cfg.triggers, launcher, clock=clock)
    monitor = Monitor(cfg, controller, store=store)
    first = window_ids_in(cfg.data, read_source(cfg.data.uri, cfg.data.format)["at"])[0]
    clock.now = DAY0 + timedelta(days=1, hours=12)
    outcome = controller.handle(Signal("manual", first))
    assert outcome.launch is not None and outcome.launch.status == "failed"

    path = Path(cfg.labels.uri) / "l.parquet"
    labels = pd.read_parquet(path)
    early = labels.index[labels["id"] < 100][::10]  # the first window's events, one in ten
    labels.loc[early, "labelled_at"] = DAY0 - timedelta(days=1)
    labels.to_parquet(path)

    clock.now = DAY0 + timedelta(days=4, hours=12)  # every label of the window has arrived
    result = monitor.check(first)
    [decision] = [o.decision for o in result.outcomes if o.decision.signal.kind == "labels"]
    assert (decision.rule, decision.launch) == ("labels_refused", False)
    assert f"the label join refused the labels of window {first}" in decision.reason
    assert f"{len(early)} labels" in decision.reason
    assert "dated before their event" in decision.reason
    assert decision.signal.value is None
    assert launcher.launched == [first]  # not launched again


def test_the_labels_rule_fires_only_for_a_failed_window_with_enough_coverage() -> None:
    now = DAY0
    failed = PolicyState(snapshots={"w": "failed"})
    signal = Signal("labels", "w", value=0.95, details={"min_coverage": 0.9})
    decision, _ = decide(signal, failed, TriggerConfig(), now)
    assert (decision.launch, decision.rule) == (True, "labels")
    short = Signal("labels", "w", value=0.5, details={"min_coverage": 0.9})
    assert decide(short, failed, TriggerConfig(), now)[0].rule == "coverage_short"
    done = PolicyState(snapshots={"w": "succeeded"})
    assert decide(signal, done, TriggerConfig(), now)[0].rule == "not_failed"


def no_drift(
    profile: str, current: pd.DataFrame, cfg: Config, scores: Any, labels: Any
) -> DriftSummary:
    """Stand-in detector: the window never drifts (the signal's details are what is checked)."""
    return DriftSummary(False, 0.0, ())


def test_a_check_reads_each_launch_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pending drift launch that failed on coverage is awaited by the back-off and re-run
    by the labels rule: both learn it from one reading of the launch records."""
    cfg = write_case(tmp_path)
    store = open_storage(cfg.storage_root)
    registry = Registry(store, cfg.name)
    registry.register("v1", {"profile.json": b"{}\n"})
    registry.set_alias("champion", "v1", 0)
    clock = Clock()
    launcher = LabelStepLauncher(cfg, store, clock)
    controller = TriggerController(store, cfg.name, cfg.triggers, launcher, clock=clock)
    windows = window_ids_in(cfg.data, read_source(cfg.data.uri, cfg.data.format)["at"])
    first = windows[0]
    for day, window in enumerate(windows, start=1):  # three launch records; each run fails
        clock.now = DAY0 + timedelta(days=day)
        outcome = controller.handle(Signal("manual", window))
        assert outcome.launch is not None and outcome.launch.status == "failed"
    state, generation = controller.load_state()
    waiting = replace(state, drift_pending=(first,)).to_json().encode()
    store.compare_and_swap(state_key(cfg.name), waiting, generation)

    read: list[str] = []
    real = type(store).read_bytes

    def counted(self: Storage, key: str) -> bytes:
        read.append(key)
        return real(self, key)

    monkeypatch.setattr(type(store), "read_bytes", counted)
    clock.now = DAY0 + timedelta(days=3, hours=12)
    result = Monitor(cfg, controller, store=store, detector=no_drift).check(first)
    signals = [o.decision.signal for o in result.outcomes]
    [drift] = [s for s in signals if s.kind == "drift"]
    assert drift.details["awaiting_labels"] == [first]
    assert [s.snapshot for s in signals if s.kind == "labels"] == list(windows)
    records = [k for k in read if k.startswith(launches_prefix(cfg.name))]
    assert len(records) == 3 and len(set(records)) == 3
