"""`retrain run --window auto`: a scheduled run from the command line (direct engine).

The header and the verdict show the window and run id the run resolved, never "auto".
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from required import require
from retrain.cli import main
from retrain.config import load_config
from retrain.data.demo import generate_housing, generate_loans
from retrain.storage import open_storage
from retrain.triggers.lease import acquire_lease, read_lease

require("river", "the demo data generator uses river (extra 'demo')")


@pytest.fixture
def loans(tmp_path: Path) -> Path:
    """Weeks 0-3 of the loans demo (periods: the clock plays no part): "auto" is week 2."""
    return generate_loans(tmp_path, windows=4, rows_per_window=300, drift_window=3)


def run_auto(config: Path) -> int:
    return main(["run", "--config", str(config), "--window", "auto", "--engine", "direct"])


@pytest.mark.integration  # a whole cycle: trains, then deploys through git
def test_the_header_and_verdict_show_the_resolved_ids(
    loans: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_auto(loans) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.fullmatch(r"window 2 · run (w2-[0-9a-f]{12}) · engine direct", lines[0])
    assert header, lines[0]
    run_id = header.group(1)
    assert lines[1].startswith("  resolve   ok window 2: the newest")
    assert re.fullmatch(rf"  => deployed \(window 2, run {run_id}; [0-9.]+s\)", lines[-1])
    assert "auto" not in lines[0] + lines[-1]
    cfg = load_config(loans)
    store = open_storage(cfg.storage_root)
    assert {k.split("/")[1] for k in store.list("runs")} == {run_id}  # no "wauto-..." run
    lease, _ = read_lease(store, cfg.name)
    assert lease is not None and lease.run_id == run_id and lease.released_at is not None


def test_a_held_lease_exits_75_naming_the_holder(
    loans: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(loans)
    now = datetime.now(timezone.utc)
    kw = {"owner": "monitor-host:7", "run_id": "w2-drift", "snapshot": "2"}
    assert acquire_lease(
        open_storage(cfg.storage_root), cfg.name, ttl=timedelta(hours=1), now=now, **kw
    )
    assert run_auto(loans) == 75
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"window 2 · run w2-[0-9a-f]{12} · engine direct", lines[0]), lines[0]
    assert "x FAILED (TransientError)" in lines[1] and "held by run w2-drift" in lines[1]
    assert re.fullmatch(
        r"  => failed with exit code 75 \(window 2, run w2-[0-9a-f]{12}\)", lines[-1]
    )


def test_an_unresolved_window_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Housing weeks are in January 2024: today the newest complete week has no events.
    config = generate_housing(tmp_path, windows=2, rows_per_window=50, drift_window=1)
    assert run_auto(config) == 2
    lines = capsys.readouterr().out.splitlines()
    header = r"window auto \(not resolved\) · run auto-[0-9a-f]{12} · engine direct"
    assert re.fullmatch(header, lines[0]), lines[0]
    assert re.search(r"failed with exit code 2 \(window not resolved, run auto-", lines[-1])
