"""`retrain monitor --pass-id`: the pass's recorded start is written and read within a bound that
counts against `--deadline`, and a SIGTERM meanwhile takes the graceful path.

A store that does not answer kept the pass waiting (its client retries each call for about
two minutes) before the deadline's clock and the SIGTERM handler existed: that time counted
against no deadline, and a SIGTERM then ended the process at once (exit 143).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import retrain.cli._pass_start as pass_start
import retrain.cli.monitor as monitor_cli
from retrain.cli import main
from retrain.errors import EXIT_OK, EXIT_TRANSIENT, AlreadyExists, TransientError
from retrain.storage import open_storage
from tests.unit.test_triggers_fleet import fleet

NAMES = ["m1", "m2", "m3"]
ONCE = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", "thread"]
#: How long the stand-in store takes to fail a call (a real one: ~105-120 s of retries).
STALL = 3.0


def _stalling_store(monkeypatch: pytest.MonkeyPatch, *, on: str, then: Any = None) -> None:
    """The record's store: its `on` call ("create" or "read_text") stalls, then fails.

    A create that is not the stalling call finds the record there (a retry of the pass). `then`
    runs at the start of the stall (in the thread that made the call).
    """
    real_open = pass_start.open_storage

    class StallingStore:
        def __init__(self, root: str) -> None:
            self._store = real_open(root)

        def _stall(self) -> None:
            if then is not None:
                then()
            time.sleep(STALL)
            raise TransientError(f"GCS error: Timeout of {STALL:g}s exceeded")

        def create(self, key: str, data: bytes) -> None:
            if on == "create":
                self._stall()
            raise AlreadyExists(key)

        def read_text(self, key: str) -> str:
            self._stall()
            raise AssertionError("unreachable")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._store, name)

    monkeypatch.setattr(pass_start, "open_storage", StallingStore)


def _watch_pass(monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], dict[str, Any]]:
    """When each model's check starts (monotonic), and the limits the pass ran with."""
    starts: list[float] = []
    limits: dict[str, Any] = {}
    real_note = monitor_cli.note_check_start
    real_run = monitor_cli.run_for_each

    def note(cfg: Any) -> Any:
        starts.append(time.monotonic())
        return real_note(cfg)

    def run_for_each(*args: Any, **kwargs: Any) -> Any:
        limits.update(kwargs)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(monitor_cli, "note_check_start", note)
    monkeypatch.setattr(monitor_cli, "run_for_each", run_for_each)
    return starts, limits


def _checked(tmp_path: Path) -> list[str]:
    return [n for n in NAMES if open_storage(str(tmp_path / n / "store")).list("monitor")]


@pytest.mark.parametrize(
    ("stalls", "said"),
    [
        ("create", "pass job-uid-1: its start was not recorded in "),
        ("read_text", "pass job-uid-1: its recorded start "),
    ],
)
def test_a_store_that_does_not_answer_holds_the_pass_a_tenth_of_its_deadline_at_most(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stalls: str,
    said: str,
) -> None:
    # A tenth of --deadline 2s is 0.2 s; the store takes 3 s to fail each call.
    configs = fleet(tmp_path, NAMES)
    _stalling_store(monkeypatch, on=stalls)
    starts, limits = _watch_pass(monkeypatch)
    t0 = time.monotonic()
    args = [*ONCE, "--deadline", "2s", "--pass-id", "job-uid-1", "--config", str(configs)]
    assert main(args) == EXIT_OK
    assert starts and starts[0] - t0 < 2.0, f"first check {starts[0] - t0:.1f} s in"
    # The wait counts against the deadline: the pass began before it.
    assert 0.2 <= limits["spent"] < STALL, limits["spent"]
    assert _checked(tmp_path) == NAMES
    err = capsys.readouterr().err
    assert said in err
    assert "--deadline counts from this attempt's start, as without --pass-id" in err


class _Killed(BaseException):
    """The default SIGTERM action, as far as this test can tell: the process ended at once."""


def test_a_sigterm_while_the_start_is_recorded_starts_no_check_and_exits_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The Job's deadline (or a drained node) sends SIGTERM while the first model's store does
    # not answer: the monitor must take its graceful path (no check starts, exit 75), not die.
    configs = fleet(tmp_path, NAMES)
    _stalling_store(monkeypatch, on="create", then=lambda: os.kill(os.getpid(), signal.SIGTERM))
    starts, _ = _watch_pass(monkeypatch)

    def killed(signum: int, frame: Any) -> None:
        raise _Killed

    assert threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, killed)
    t0 = time.monotonic()
    try:
        args = [*ONCE, "--deadline", "20m", "--pass-id", "job-uid-1", "--config", str(configs)]
        code: int | str = main(args)
    except _Killed:
        code = "killed by SIGTERM"
    finally:
        signal.signal(signal.SIGTERM, before)
    took = time.monotonic() - t0
    assert code == EXIT_TRANSIENT
    assert took < STALL, f"the pass waited {took:.1f} s for the store after the SIGTERM"
    assert starts == []
    captured = capsys.readouterr()
    assert "its start was not recorded in " in captured.err and "a SIGTERM came" in captured.err
    assert "m1: check failed: not started: the pass was asked to stop (SIGTERM)" in captured.err
    assert "checked 3 models: 0 ok (exit 75)" in captured.out
