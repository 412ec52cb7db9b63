"""`sigterm_after`: work that must not be cut short by a SIGTERM stops right after it; and a
step whose code caught the stop is stopped all the same (`stop_step_on_sigterm`)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from retrain.errors import EXIT_TRANSIENT, Terminated, ValidationError
from retrain.rollout.lock import LockBusy
from retrain.steps.records import recorded_step, run_key
from retrain.steps.signals import sigterm_after, stop_on_sigterm, stop_step_on_sigterm
from retrain.storage import open_storage


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # the guard's handler receives it


def test_the_block_finishes_then_the_sigterm_stops_the_caller() -> None:
    finished = []
    with stop_on_sigterm(), pytest.raises(Terminated, match="after the work in progress"):
        with sigterm_after():
            _sigterm()
            finished.append("the rest of the block")
        finished.append("after the block")  # never reached
    assert finished == ["the rest of the block"]


def test_a_block_that_fails_after_the_sigterm_still_stops_the_caller() -> None:
    # A rollout step that polls a lock held by another must not go on polling: the SIGTERM,
    # once received, would never be raised again.
    attempts = 0
    with stop_on_sigterm(), pytest.raises(Terminated):
        while attempts < 3:
            attempts += 1
            try:
                with sigterm_after():
                    if attempts == 1:
                        _sigterm()
                    raise LockBusy("held by another")
            except LockBusy:
                continue
    assert attempts == 1


def test_under_an_outer_deferral_the_sigterm_is_only_noted() -> None:
    with stop_on_sigterm() as guard, guard.deferred():
        with sigterm_after():
            _sigterm()
        assert guard.received  # the outer block decides what to do with it


def test_without_a_guard_the_block_just_runs() -> None:
    ran = []
    with sigterm_after():
        ran.append(True)
    assert ran == [True]


def test_a_step_that_catches_the_stop_and_goes_on_is_still_stopped() -> None:
    # A champion comparison that records any error as a note would turn the stop into a
    # verdict ("comparison failed: Terminated") and let the step finish as if nothing came.
    went_on = []
    with pytest.raises(Terminated, match="caught the stop and went on"), stop_step_on_sigterm():
        try:
            _sigterm()
        except Exception:
            went_on.append("recorded as a note")
        went_on.append("the rest of the step")
    assert went_on == ["recorded as a note", "the rest of the step"]


def test_a_stop_turned_into_another_error_still_exits_as_a_stop() -> None:
    # Re-raised as a ValidationError, the stop would exit 2: "do not retry".
    stopped = pytest.raises(Terminated, match="failed with ValidationError")
    with stopped as caught, stop_step_on_sigterm():
        try:
            _sigterm()
        except Exception as err:
            raise ValidationError(f"bad input? {err}") from err
    assert caught.value.exit_code == EXIT_TRANSIENT
    assert isinstance(caught.value.__cause__, ValidationError)


def test_without_a_sigterm_a_step_error_is_left_as_it_is() -> None:
    with pytest.raises(ValidationError, match="bad column"), stop_step_on_sigterm():
        raise ValidationError("bad column")
    with stop_step_on_sigterm() as guard:
        pass
    assert not guard.received


def test_a_recorded_step_that_caught_the_stop_is_recorded_as_stopped(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "store"))
    with pytest.raises(Terminated), recorded_step(store, "r1", "ingest") as record:
        try:
            _sigterm()
        except Exception as err:
            record["report"] = {"note": f"comparison failed: {err}"}
    saved = json.loads(store.read_text(run_key("r1", "ingest")))
    assert saved["status"] == "failed" and saved["exit_code"] == EXIT_TRANSIENT
    assert saved["error"] == "Terminated"
