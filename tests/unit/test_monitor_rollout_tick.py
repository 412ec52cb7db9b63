"""`retrain monitor` ticks the rollout even when its check fails (a canary must not freeze)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

import retrain.cli.monitor as monitor_cli
from retrain.cli import main
from retrain.config import Config
from tests.unit.test_triggers_fleet import fleet
from tests.unit.test_triggers_monitor import write_case


class RecordingRollouts:
    """Stands in for `RolloutController`: records which models were ticked."""

    ticked: ClassVar[list[str]] = []
    stop: ClassVar[threading.Event | None] = None

    def __init__(self, cfg: Config, *args: Any, **kwargs: Any) -> None:
        self.name = cfg.name

    def tick(self) -> SimpleNamespace:
        RecordingRollouts.ticked.append(self.name)
        if RecordingRollouts.stop is not None:
            RecordingRollouts.stop.set()  # one pass of `--every` is enough
        return SimpleNamespace(message=f"canary of {self.name} advanced")


@pytest.fixture
def rollouts(monkeypatch: pytest.MonkeyPatch) -> type[RecordingRollouts]:
    RecordingRollouts.ticked = []
    RecordingRollouts.stop = None
    monkeypatch.setattr(monitor_cli, "RolloutController", RecordingRollouts)
    return RecordingRollouts


def test_every_ticks_the_rollout_when_the_check_fails(
    tmp_path: Path,
    rollouts: type[RecordingRollouts],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_case(tmp_path)
    shutil.rmtree(tmp_path / "events")  # the data source is down: every check fails
    stop = threading.Event()
    rollouts.stop = stop
    backstop = threading.Timer(10, stop.set)  # without a tick the loop would never end
    backstop.start()
    monkeypatch.setattr(monitor_cli, "_stop_on_signals", lambda: stop)
    code = main(["monitor", "--every", "1s", "--port", "0", "--config", config, "--launch", "none"])
    backstop.cancel()
    captured = capsys.readouterr()
    assert code == 0
    assert "check failed:" in captured.err
    assert rollouts.ticked == ["toy"]
    assert "rollout: canary of toy advanced" in captured.out


def test_once_ticks_the_rollout_when_the_check_fails(
    tmp_path: Path, rollouts: type[RecordingRollouts], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_case(tmp_path)
    shutil.rmtree(tmp_path / "events")
    code = main(["monitor", "--once", "--config", config, "--launch", "none"])
    assert code != 0  # the check still fails the command
    assert rollouts.ticked == ["toy"]
    assert "rollout: canary of toy advanced" in capsys.readouterr().out


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_fleet_ticks_every_model_including_one_whose_check_fails(
    tmp_path: Path,
    rollouts: type[RecordingRollouts],
    capsys: pytest.CaptureFixture[str],
    pool: str,
) -> None:
    configs = fleet(tmp_path, ["good", "down"])
    shutil.rmtree(tmp_path / "down" / "events")
    code = main(["monitor", "--once", "--config", str(configs), "--launch", "none", "--pool", pool])
    captured = capsys.readouterr()
    assert code != 0
    assert "down: check failed:" in captured.err
    if pool == "thread":  # a worker process records its ticks in its own memory
        assert sorted(rollouts.ticked) == ["down", "good"]
    assert "down: rollout: canary of down advanced" in captured.out
    assert "good: rollout: canary of good advanced" in captured.out
