"""A backtest counts the windows it could not score; --strict turns any such skip into exit 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from required import require
from retrain.cli import main

pytestmark = pytest.mark.integration


def test_a_window_that_fails_ingest_is_counted_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("git") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("git is required for GitOps deploys")
        pytest.skip("git is not installed (GitOps deploys need it)")
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    config = generate_loans(tmp_path / "data", windows=5, rows_per_window=600, drift_window=3)
    # Week 3's file gets a duplicated id: a structural problem, so its ingest fails closed.
    (week3,) = [
        p
        for p in (tmp_path / "data" / "events").iterdir()
        if (pd.read_parquet(p)["event_week"] == 3).all()
    ]
    frame = pd.read_parquet(week3)
    frame.loc[1, "application_id"] = frame.loc[0, "application_id"]
    frame.to_parquet(week3)
    args = ["backtest", "--config", str(config), "--policies", "never,full_refit", "--quiet"]
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "backtest.json").read_text())
    summary = {s["policy"]: s for s in doc["summary"]}
    assert summary["never"]["windows_skipped"] == 1
    assert summary["never"]["skipped"]["3"].startswith("ingest failed: window 3")
    # The baseline has no ingest checks, but a window the policies' ingest refused is no
    # comparison: it is skipped there too.
    assert summary["full_refit"]["windows_skipped"] == 1
    assert summary["full_refit"]["skipped"]["3"].startswith(
        "refused by every retraining policy's ingest: ingest failed: window 3"
    )
    # Both means are over the same windows: the one never skipped is left out of both.
    assert summary["never"]["common_windows"] == summary["full_refit"]["common_windows"]
    assert "| never |" in capsys.readouterr().out
    assert main([*args, "--jobs", "1", "--strict", "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    # Counted once: the baseline's skip of window 3 mirrors the policy's, and is listed.
    assert "--strict: 1 policy windows were not scored (and the baseline left out 1" in err
    assert "never: window 3: ingest failed" in err
    assert "full_refit: window 3: refused by every retraining policy's ingest" in err
