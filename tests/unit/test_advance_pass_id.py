"""`retrain deploy advance --pass-id`: a Job's retried pod counts `--deadline` from the Job's
first pod's start (recorded in the first model's store), as the Job's activeDeadlineSeconds
counts, so it starts no tick the Job's deadline would cut short."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from retrain.cli import main
from retrain.errors import EXIT_OK
from tests.unit.test_rollout_cli import _ticked, _two_models

#: Where the pass `job-uid-1` records its start: the first model's store (fraud's, by name).
RECORD = "advance-passes/job-uid-1.json"
ADVANCE = ["deploy", "advance", "--workers", "1", "--deadline", "3m", "--pass-id", "job-uid-1"]


def test_a_retry_past_its_pass_deadline_starts_no_tick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The Job's first pod started four minutes ago and exited 75 (a held lock); this pod is
    # its retry. It counted its 3 minutes afresh, so it ticked while the Job's 240 s (from
    # the Job's start) ran out: a tick started then had only the grace period left.
    configs, stores = _two_models(tmp_path)
    started = datetime.now(timezone.utc) - timedelta(minutes=4)
    doc = {"pass_id": "job-uid-1", "started_at": started.isoformat()}
    stores["fraud"].write_text(RECORD, json.dumps(doc))
    assert main([*ADVANCE, "--config", str(configs)]) == EXIT_OK  # not reached is no failure
    captured = capsys.readouterr()
    assert not any(_ticked(store, name) for name, store in stores.items())
    assert "pass job-uid-1: a retry of the pass started at " in captured.err
    for name in ("fraud", "loans"):
        assert f"{name}: not reached: the pass's deadline of 180 s passed" in captured.err
    assert "ticked 2 models: 0 ok, 2 not reached before --deadline (exit 0)" in captured.out


def test_a_first_attempt_records_its_start_and_ticks_every_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs, stores = _two_models(tmp_path)
    before = datetime.now(timezone.utc)
    assert main([*ADVANCE, "--config", str(configs)]) == EXIT_OK
    assert "ticked 2 models: 2 ok (exit 0)" in capsys.readouterr().out
    assert all(_ticked(store, name) for name, store in stores.items())
    record = json.loads(stores["fraud"].read_text(RECORD))
    assert record["pass_id"] == "job-uid-1"
    assert before <= datetime.fromisoformat(record["started_at"]) <= datetime.now(timezone.utc)
    assert not stores["loans"].exists(RECORD)  # one record a pass, in the first model's store
