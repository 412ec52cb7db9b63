"""`retrain monitor --pass-id`: a Job's retried pod counts `--deadline` from the Job's first
pod's start (recorded in the first model's store), not from its own."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import retrain.cli.monitor as monitor_cli
from retrain.cli import main
from retrain.errors import EXIT_OK, EXIT_VALIDATION
from retrain.storage import open_storage
from retrain.triggers import fleet as fleet_module
from tests.unit.test_triggers_fleet import fleet

NAMES = ["m1", "m2", "m3"]
#: Where the pass `job-uid-1` records its start: the store of the first model (m1).
RECORD = ("m1", "monitor-passes/job-uid-1.json")
ONCE = ["monitor", "--once", "--launch", "none", "--workers", "1", "--deadline", "20m"]


def _half_minutes() -> Callable[[], float]:
    """A clock that reads 0, 30, 60, ... seconds: the pass's start, then each model's turn."""
    counter: Iterator[int] = iter(range(10**6))
    return lambda: 30.0 * next(counter)


@pytest.fixture
def half_minute_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread-pool pass gets a fresh clock on which each model's turn comes 30 s later."""
    real = fleet_module.run_for_each

    def run_for_each(*args: Any, **kwargs: Any) -> Any:
        return real(*args, clock=_half_minutes(), **kwargs)

    monkeypatch.setattr(monitor_cli, "run_for_each", run_for_each)


def _record(tmp_path: Path, text: str) -> None:
    name, key = RECORD
    open_storage(str(tmp_path / name / "store")).write_text(key, text)


def _started(at: datetime) -> str:
    return json.dumps({"pass_id": "job-uid-1", "started_at": at.isoformat()})


def _checked(tmp_path: Path) -> list[str]:
    return [n for n in NAMES if open_storage(str(tmp_path / n / "store")).list("monitor")]


def test_a_retry_19_minutes_into_a_20_minute_pass_starts_only_what_the_minute_left_allows(
    tmp_path: Path, half_minute_turns: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The Job's first pod started 19 minutes ago and exited 75; this pod is its retry. It
    # counted its 20 minutes afresh, so it started every check (the turns at 30, 60 and 90 s),
    # while the Job's deadline (1500 s from its start) would kill them mid-way.
    configs = fleet(tmp_path, NAMES)
    _record(tmp_path, _started(datetime.now(timezone.utc) - timedelta(minutes=19)))
    args = [*ONCE, "--pool", "thread", "--config", str(configs)]
    assert main([*args, "--pass-id", "job-uid-1"]) == EXIT_OK  # not reached is no failure
    captured = capsys.readouterr()
    assert _checked(tmp_path) == ["m1"]  # its turn 30 s in: 19.5 of the pass's 20 minutes
    for name in NAMES[1:]:  # 60 s in: the pass's 20 minutes are over
        assert f"{name}: not reached: the pass's deadline of 1200 s passed" in captured.err
    assert "pass job-uid-1: a retry of the pass started at " in captured.err
    assert "checked 3 models: 1 ok, 2 not reached before --deadline (exit 0)" in captured.out


def test_a_first_attempt_records_its_start_and_checks_as_without_a_pass_id(
    tmp_path: Path, half_minute_turns: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = fleet(tmp_path, NAMES)
    before = datetime.now(timezone.utc)
    args = [*ONCE, "--pool", "thread", "--config", str(configs)]
    assert main([*args, "--pass-id", "job-uid-1"]) == EXIT_OK
    assert _checked(tmp_path) == NAMES
    assert "checked 3 models: 3 ok (exit 0)" in capsys.readouterr().out
    name, key = RECORD
    record = json.loads(open_storage(str(tmp_path / name / "store")).read_text(key))
    assert record["pass_id"] == "job-uid-1"
    assert before <= datetime.fromisoformat(record["started_at"]) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_a_retry_past_its_pass_deadline_starts_no_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pool: str
) -> None:
    configs = fleet(tmp_path, NAMES)
    _record(tmp_path, _started(datetime.now(timezone.utc) - timedelta(minutes=21)))
    args = [*ONCE, "--pool", pool, "--pass-id", "job-uid-1", "--config", str(configs)]
    assert main(args) == EXIT_OK
    assert _checked(tmp_path) == []
    assert "checked 3 models: 0 ok, 3 not reached before --deadline (exit 0)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("record", "said"),
    [
        (_started(datetime.now(timezone.utc) + timedelta(hours=1)), "is not plausible"),
        (_started(datetime.now(timezone.utc) - timedelta(days=2)), "is not plausible"),
        ('{"pass_id": "job-uid-1", "started_at": "half past"}', "is unreadable"),
        ("{half a wri", "is unreadable"),
    ],
)
def test_an_implausible_or_unreadable_record_counts_from_this_attempts_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: str, said: str
) -> None:
    configs = fleet(tmp_path, NAMES)
    _record(tmp_path, record)
    args = [*ONCE, "--pool", "thread", "--pass-id", "job-uid-1", "--config", str(configs)]
    assert main(args) == EXIT_OK
    captured = capsys.readouterr()
    assert _checked(tmp_path) == NAMES
    assert "pass job-uid-1: its recorded start " in captured.err and said in captured.err
    assert "--deadline counts from this attempt's start" in captured.err


def test_an_empty_pass_id_checks_as_without_one(
    tmp_path: Path, half_minute_turns: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CronJob's id comes from a pod label through the downward API: a cluster that did
    # not set it gives an empty string, which must not stop every pass (exit 2 fails the Job).
    configs = fleet(tmp_path, NAMES)
    _record(tmp_path, _started(datetime.now(timezone.utc) - timedelta(minutes=21)))
    args = [*ONCE, "--pool", "thread", "--pass-id", "", "--config", str(configs)]
    assert main(args) == EXIT_OK
    assert _checked(tmp_path) == NAMES
    assert "--pass-id is empty: --deadline counts from this attempt's start" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pass-id", "../other"], "--pass-id: '../other' is not an id"),
        (["--pass-id", "job-1", "--every", "10m"], "--pass-id is for a --once pass"),
    ],
)
def test_a_bad_pass_id_is_refused_before_any_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    configs = fleet(tmp_path, NAMES)
    args = ["monitor", "--launch", "none", "--pool", "thread", "--deadline", "20m", "--port", "0"]
    args = [*args, *(["--once"] if "--every" not in extra else []), *extra]
    assert main([*args, "--config", str(configs)]) == EXIT_VALIDATION
    assert message in capsys.readouterr().err
    assert _checked(tmp_path) == []
