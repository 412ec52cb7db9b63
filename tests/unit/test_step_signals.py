"""`sigterm_after`: work that must not be cut short by a SIGTERM stops right after it."""

from __future__ import annotations

import os
import signal

import pytest

from retrain.errors import Terminated
from retrain.rollout.lock import LockBusy
from retrain.steps.signals import sigterm_after, stop_on_sigterm


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
