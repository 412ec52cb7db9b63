"""The monitor's wiring (windows, signals, reports, metrics) and the `monitor`/`trigger` CLI.

These tests do not depend on the drift engine: the monitor takes its detector as an
argument, and here a stand-in compares window means against a fixed reference (it is not the
engine; the engine's own behaviour is tested in tests/integration/test_monitor_*.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from retrain.cli import main
from retrain.cli.monitor import _summary
from retrain.config import Config, load_config
from retrain.errors import EXIT_OK, EXIT_VALIDATION, ValidationError
from retrain.launchers import NoLauncher
from retrain.registry import Registry
from retrain.storage import open_storage
from retrain.triggers.controller import TriggerController
from retrain.triggers.lease import acquire_lease
from retrain.triggers.metrics import MonitorMetrics
from retrain.triggers.monitor import CheckResult, DriftSummary, FeatureStat, Monitor
from tests.unit.test_source_counts import corrupt_pages


def write_case(tmp_path: Path, shift_from: int = 3, triggers: dict[str, Any] | None = None) -> str:
    """Windows 0..5 of 200 rows; feature `a` moves by +3 from window `shift_from` on."""
    rng = np.random.default_rng(11)
    n, windows = 200, 6
    t = np.repeat(np.arange(windows), n)
    a = rng.normal(0, 1, n * windows) + np.where(t >= shift_from, 3.0, 0.0)
    events = pd.DataFrame(
        {"id": np.arange(n * windows), "t": t, "a": a, "b": rng.normal(size=t.size)}
    )
    (tmp_path / "events").mkdir()
    (tmp_path / "labels").mkdir()
    events.to_parquet(tmp_path / "events" / "e.parquet")
    pd.DataFrame({"id": events["id"], "y": (a > 0).astype(int)}).to_parquet(
        tmp_path / "labels" / "l.parquet"
    )
    cfg = {
        "name": "toy",
        "task": "classification",
        "target": "y",
        "storage_root": "store",
        "data": {
            "uri": "events",
            "id_column": "id",
            "time_column": "t",
            "time_kind": "period",
            "features": {"a": "numeric", "b": "numeric"},
        },
        "labels": {"uri": "labels", "id_column": "id", "label_column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "toy", "gitops_repo": "gitops"},
        "triggers": {"drift_windows": 2, "cooldown": "1h"} | (triggers or {}),
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def mean_shift(
    profile: str, current: pd.DataFrame, cfg: Config, scores: Any, labels: Any
) -> DriftSummary:
    """Stand-in detector: a feature drifts when its mean moves by more than 1 from 0."""
    feats = tuple(
        FeatureStat(
            name, "mean_shift", abs(float(current[name].mean())), abs(current[name].mean()) > 1
        )
        for name in cfg.data.features
    )
    share = sum(f.drifted for f in feats) / len(feats)
    return DriftSummary(
        share >= 0.5, share, feats, fired=("feature_share",) if share >= 0.5 else ()
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 6, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def with_champion(cfg: Config) -> None:
    """A champion version holding only a profile (the stand-in detector reads nothing)."""
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    reg.register("v1", {"profile.json": b"{}\n"})
    reg.set_alias("champion", "v1", 0)


def make_monitor(cfg: Config, clock: Clock) -> tuple[Monitor, MonitorMetrics]:
    metrics = MonitorMetrics(cfg.name)
    store = open_storage(cfg.storage_root)
    ctl = TriggerController(store, cfg.name, cfg.triggers, NoLauncher(), clock=clock)
    return Monitor(cfg, ctl, metrics=metrics, detector=mean_shift), metrics


def test_drift_needs_two_windows_then_launches_once(tmp_path: Path) -> None:
    cfg = load_config(write_case(tmp_path))
    with_champion(cfg)
    clock = Clock()
    monitor, metrics = make_monitor(cfg, clock)
    rules = []
    for window in range(6):
        clock.now += timedelta(minutes=30)
        result = monitor.check(str(window))
        rules.append([(o.decision.rule, o.decision.launch) for o in result.outcomes])
    assert rules == [
        [("no_drift", False)],
        [("no_drift", False)],
        [("no_drift", False)],
        [("hysteresis", False)],
        [("drift", True)],
        [("hysteresis", False)],  # a launch re-arms the hysteresis: counting starts again
    ]
    value = metrics.registry.get_sample_value
    assert value("retrain_drift_dataset_drifted", {"model": "toy"}) == 1.0
    assert value("retrain_drift_share_drifted", {"model": "toy"}) == 0.5
    stat = value(
        "retrain_drift_statistic", {"model": "toy", "feature": "a", "method": "mean_shift"}
    )
    assert stat is not None and stat > 2
    labels = {"model": "toy", "rule": "drift", "launch": "true"}
    assert value("retrain_trigger_decisions_total", labels) == 1.0
    assert (
        value("retrain_trigger_decisions_total", labels | {"rule": "no_drift", "launch": "false"})
        == 3.0
    )
    assert value("retrain_last_run_timestamp_seconds", {"model": "toy"}) == pytest.approx(
        (datetime(2024, 5, 6, 2, 30, tzinfo=timezone.utc)).timestamp()
    )


def test_a_window_counted_while_open_is_not_counted_again_once_the_older_one_is_judged(
    tmp_path: Path,
) -> None:
    """Window 5 checked while open (--window 5) counts once; the check that then judges the
    newest window over, the older 4, does not count a second drifted window."""
    cfg = load_config(write_case(tmp_path))
    with_champion(cfg)
    clock = Clock()
    monitor, _ = make_monitor(cfg, clock)
    first = monitor.check("5")
    assert [o.decision.rule for o in first.outcomes] == ["hysteresis"]
    clock.now += timedelta(hours=2)
    second = monitor.check()  # the newest over: 4, drifted too (a moves from window 3 on)
    assert second.window == "4" and second.drifted
    assert [(o.decision.rule, o.decision.launch) for o in second.outcomes] == [
        ("hysteresis", False)
    ]
    state, _ = monitor.controller.load_state()
    assert state.drift_streak == 1 and state.drift_last_snapshot == "5"


def test_an_older_window_named_does_not_launch_on_the_drift_streak_of_newer_ones(
    tmp_path: Path,
) -> None:
    """Windows 4 and 5 drift and 5's launch meets a held lease; `--window 3` (drifted too) is
    not counted, so it launches no run of 3 on 4's and 5's streak."""
    cfg = load_config(write_case(tmp_path))
    with_champion(cfg)
    clock = Clock()
    monitor, _ = make_monitor(cfg, clock)
    assert [o.decision.rule for o in monitor.check("4").outcomes] == ["hysteresis"]
    store = open_storage(cfg.storage_root)
    held = acquire_lease(
        store, cfg.name, owner="other", run_id="run-a", snapshot="2", ttl=timedelta(hours=1),
        now=clock.now,
    )  # fmt: skip
    assert held is not None
    assert [o.decision.rule for o in monitor.check("5").outcomes] == ["lease"]
    clock.now += timedelta(hours=2)  # the lease is over
    third = monitor.check("3")
    assert third.drifted and third.launched is None
    assert [o.decision.rule for o in third.outcomes] == ["not_counted"]


def test_reports_are_written_to_the_store(tmp_path: Path) -> None:
    cfg = load_config(write_case(tmp_path))
    with_champion(cfg)
    monitor, _ = make_monitor(cfg, Clock())
    result = monitor.check()  # the newest window that is over: 4 (5, the last, may be filling)
    assert result.window == "4"
    store = open_storage(cfg.storage_root)
    doc = json.loads(store.read_text(result.report_key or ""))
    assert doc["window"] == "4" and doc["champion"] == "v1"
    assert doc["window_choice"]["rule"] == "newest ended"
    assert doc["window_choice"]["open_windows"] == ["5"]
    assert doc["drift"]["dataset_drifted"] is True
    assert doc["decisions"][0]["rule"] == "hysteresis"
    md = store.read_text((result.report_key or "").replace(".json", ".md"))
    assert "window 4" in md and "| a | mean_shift |" in md
    assert "window 5 still open, not judged" in md and "[hysteresis]" in md


def test_without_a_champion_there_is_no_drift_but_new_data_and_schedules_count(
    tmp_path: Path,
) -> None:
    schedules = [{"name": "daily", "cron": "0 0 * * *"}]
    cfg = load_config(write_case(tmp_path, triggers={"new_data_rows": 500, "schedules": schedules}))
    clock = Clock()  # midnight: the daily schedule is due
    monitor, _ = make_monitor(cfg, clock)
    first = monitor.check("1")  # windows 0 and 1 untrained: 400 rows
    assert first.drift is None and first.drift_note == "no champion yet"
    assert first.untrained_rows == 400
    assert [(o.decision.signal.kind, o.decision.rule) for o in first.outcomes] == [
        ("new_data", "below_threshold"),
        ("schedule", "schedule"),
    ]
    clock.now += timedelta(hours=2)
    second = monitor.check("2")
    assert second.untrained_rows == 600
    assert [(o.decision.rule, o.decision.launch) for o in second.outcomes] == [
        ("new_data", True),
        ("not_due", False),
    ]


def test_cli_trigger_and_monitor_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_case(tmp_path)
    args = ["--config", config, "--launch", "none"]
    assert main(["trigger", "--window", "2", "--requested-by", "ops", *args]) == EXIT_OK
    assert "launched run" in capsys.readouterr().out
    # The same snapshot again: refused (dedupe), exit 2 (retrying cannot help).
    assert main(["trigger", "--window", "2", *args]) == EXIT_VALIDATION
    assert "[duplicate]" in capsys.readouterr().out

    assert main(["monitor", "--once", "--json", *args]) == EXIT_OK
    out = capsys.readouterr().out
    doc = json.loads(out[: out.rindex("}") + 1])
    assert doc["window"] == "4" and doc["drift"] is None
    records = list((tmp_path / "store" / "triggers" / "toy" / "launches").glob("*.json"))
    assert len(records) == 1
    assert json.loads(records[0].read_text())["signal"]["details"] == {"requested_by": "ops"}


def test_a_monitor_loads_its_champion_once_while_its_bytes_stay_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrain.triggers._scores as scores_module

    cfg = load_config(write_case(tmp_path))
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    reg.register("v1", {"model.skops": b"first", "model.json": b"{}"})
    reg.register("v2", {"model.skops": b"second", "model.json": b"{}"})
    loaded: list[bytes] = []

    def load(data: bytes, card: Any) -> object:
        loaded.append(data)
        return object()

    monkeypatch.setattr(scores_module.ModelCard, "from_json", staticmethod(lambda text: text))
    monkeypatch.setattr(scores_module, "load_model", load)
    monitor, _ = make_monitor(cfg, Clock())
    first = monitor.scorer.model("v1")
    assert monitor.scorer.model("v1") is first  # every check of a pass-after-pass monitor
    second = monitor.scorer.model("v2")  # a new champion is loaded (and verified) again
    assert second is not first
    assert monitor.scorer.model("v1") is not first  # only the last one is kept
    assert loaded == [b"first", b"second", b"first"]


def test_the_newest_window_is_found_from_the_footers_not_the_time_column(tmp_path: Path) -> None:
    cfg = load_config(write_case(tmp_path, triggers={"new_data_rows": 500}))
    with_champion(cfg)
    events = pd.read_parquet(tmp_path / "events" / "e.parquet")
    (tmp_path / "events" / "e.parquet").unlink()
    for w in range(6):  # one file a window, its row groups each in one window
        events[events["t"] == w].to_parquet(tmp_path / "events" / f"w{w}.parquet")
    for w in range(4):  # every page of the older windows unreadable: only footers remain
        corrupt_pages(tmp_path / "events" / f"w{w}.parquet")
    monitor, _ = make_monitor(cfg, Clock())
    result = monitor.check()
    assert result.window == "4"  # the newest over (5, the source's last, may be filling)
    assert result.untrained_rows == 1000  # five windows of 200 rows to 4, none trained


def _rewrite(reg: Registry, version: str, name: str, data: bytes) -> None:
    """Overwrite a registered file and its manifest entry, as a full rewrite of the version
    would (the registry refuses a file whose bytes no longer match its manifest)."""
    reg.storage.write_bytes(reg._file_key(version, name), data)
    key = reg._complete_key(version)
    manifest = json.loads(reg.storage.read_bytes(key))
    manifest["files"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    reg.storage.write_bytes(key, json.dumps(manifest).encode())


def test_a_rewritten_champion_model_or_card_is_loaded_and_verified_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrain.triggers._scores as scores_module

    def card_of(data: bytes) -> bytes:
        return json.dumps({"sha256": hashlib.sha256(data).hexdigest()}).encode()

    cfg = load_config(write_case(tmp_path))
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    reg.register("v1", {"model.skops": b"first", "model.json": card_of(b"first")})
    loaded: list[bytes] = []

    def load(data: bytes, card: Any) -> object:
        # Stands in for load_model's check of the bytes against the card's sha256.
        if json.loads(card)["sha256"] != hashlib.sha256(data).hexdigest():
            raise ValidationError("model bytes do not match the card")
        loaded.append(data)
        return object()

    monkeypatch.setattr(scores_module.ModelCard, "from_json", staticmethod(lambda text: text))
    monkeypatch.setattr(scores_module, "load_model", load)
    monitor, _ = make_monitor(cfg, Clock())
    first = monitor.scorer.model("v1")
    # The card alone rewritten (model bytes unchanged) to one the bytes do not match:
    # the cached model must not be served; verifying again refuses it.
    _rewrite(reg, "v1", "model.json", card_of(b"other"))
    with pytest.raises(ValidationError, match="do not match the card"):
        monitor.scorer.model("v1")
    # The same version's model and card rewritten consistently: loaded and verified again.
    _rewrite(reg, "v1", "model.skops", b"refit")
    _rewrite(reg, "v1", "model.json", card_of(b"refit"))
    again = monitor.scorer.model("v1")
    assert again is not first and loaded == [b"first", b"refit"]
    assert monitor.scorer.model("v1") is again  # unchanged since: the cache serves it
    # Model bytes changed behind the registry's back: refused before any cache lookup.
    reg.storage.write_bytes(reg._file_key("v1", "model.skops"), b"tampered")
    with pytest.raises(ValidationError, match="modified after registration"):
        monitor.scorer.model("v1")
    assert loaded == [b"first", b"refit"]


@pytest.mark.parametrize(("lower", "rule"), [(0.1, "performance"), (-0.01, "within_noise")])
def test_the_performance_trigger_gets_the_drop_s_interval(
    tmp_path: Path, lower: float, rule: str
) -> None:
    def dropped(
        profile: str, current: pd.DataFrame, cfg: Config, scores: Any, labels: Any
    ) -> DriftSummary:
        performance = {
            "metric": "roc_auc",
            "reference": 0.9,
            "current": 0.7,
            "drop": 0.2,
            "drop_lower": lower,
            "rows": 40,
        }
        return DriftSummary(False, 0.0, (), performance=performance)

    cfg = load_config(write_case(tmp_path, triggers={"performance_drop": 0.05}))
    with_champion(cfg)
    store = open_storage(cfg.storage_root)
    ctl = TriggerController(store, cfg.name, cfg.triggers, NoLauncher(), clock=Clock())
    result = Monitor(cfg, ctl, detector=dropped).check("1")
    outcomes = {o.decision.rule: o.decision.launch for o in result.outcomes}
    assert outcomes.get(rule) is (rule == "performance")


def test_a_directory_of_one_config_answers_as_many_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` is a list for a directory (a ConfigMap) even while it holds one model, as it
    will be once it holds two; a single file answers with the one model's object. Either way
    stdout is the JSON alone (the other lines go to stderr), so it parses as it is."""
    config = Path(write_case(tmp_path))
    configs = config.parent  # its only .yaml file
    args = ["--launch", "none", "--pool", "thread"]
    assert main(["monitor", "--once", "--json", "--config", str(configs), *args]) == EXIT_OK
    captured = capsys.readouterr()
    (entry,) = json.loads(captured.out)  # stdout is the JSON alone: the summary goes aside
    assert entry["model"] == "toy" and entry["result"]["window"] == "4"
    assert "checked 1 model: 1 ok (exit 0)" in captured.err
    assert main(["monitor", "--once", "--json", "--config", str(config), *args]) == EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["window"] == "4"
    assert "report: " in captured.err


def test_the_command_lines_summary_names_the_drift_signals_counted() -> None:
    # A labelled drop alone (no feature drifted): "drift YES (0% of features)" would read as
    # a contradiction; the summary names what was counted.
    result = CheckResult(
        model="m",
        window="5",
        champion="w1",
        checked_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
        drift=DriftSummary(dataset_drifted=True, share_drifted=0.0, features=()),
        drift_note="",
        performance={},
        untrained_rows=0,
        outcomes=[],
        drift_counted=("performance",),
    )
    assert _summary(result).startswith(
        "window 5: drift YES (0% of features; signals: performance); no signals"
    )
    quiet = CheckResult(**{**result.__dict__, "drift_counted": ()})
    assert _summary(quiet).startswith("window 5: drift no (0% of features); ")
