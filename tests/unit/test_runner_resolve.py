"""`run_cycle` with "auto" ids: the direct engine resolves exactly as the pipeline's task does."""

from __future__ import annotations

import os
import re
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from required import require
from retrain import runner, steps
from retrain.config import Config, load_config
from retrain.data.demo import generate_housing, generate_loans
from retrain.errors import (
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    TransientError,
    ValidationError,
)
from retrain.runner import STEP_ORDER, run_cycle
from retrain.steps.resolve_rules import PERIOD_RULE, TIME_RULE
from retrain.storage import LocalStorage, open_storage
from retrain.triggers.lease import acquire_lease, lease_key, read_lease

require("river", "the demo data generator uses river (extra 'demo')")

NOW = datetime(2030, 1, 7, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def loans(tmp_path: Path) -> Config:
    """Weeks 0-3 of the loans demo: "auto" means week 2 (week 3 may still be filling)."""
    return load_config(generate_loans(tmp_path, windows=4, rows_per_window=300, drift_window=3))


@pytest.mark.integration  # a whole cycle: trains, then deploys through git
def test_direct_engine_resolves_auto_window_and_run_id(loans: Config) -> None:
    seen: list[str] = []
    # No run id given with an "auto" window: resolve derives it from the window it picks.
    result = run_cycle(loans, "auto", engine="direct", now=NOW, on_step=lambda n, r: seen.append(n))
    assert result.exit_code == EXIT_OK, result.lines()
    assert result.window_id == "2"
    assert re.fullmatch(r"w2-[0-9a-f]{12}", result.run_id), result.run_id
    assert sorted(result.records) == sorted(["resolve", *STEP_ORDER])
    assert seen == ["resolve", *STEP_ORDER]
    resolve = result.records["resolve"]
    assert resolve["report"]["window"]["rule"] == PERIOD_RULE
    assert result.lines()[0].startswith("  resolve   ok window 2: the newest")
    # Every step ran on the resolved ids: the model was trained on week 2, under this run.
    assert result.records["train"]["report"]["version"].startswith("w2-")
    assert result.records["deploy"]["run_id"] == result.run_id
    store = open_storage(loans.storage_root)
    assert store.list("datasets") == ["datasets/2/labelled.parquet"]
    assert {k.split("/")[1] for k in store.list("runs")} == {result.run_id}
    # A scheduled run: it held the run lease, and released it when the cycle ended.
    job = result.run_id.removeprefix("w2-")
    lease, _ = read_lease(store, loans.name)
    assert lease is not None
    assert (lease.owner, lease.run_id, lease.snapshot) == (f"pipeline:{job}", result.run_id, "2")
    assert lease.external_id is None  # this process is no KFP run the monitor could poll
    assert lease.released_at == NOW
    assert resolve["report"]["lease"]["expires_at"] == "2030-01-07T09:00:00+00:00"  # 6h ttl


@pytest.mark.integration  # a whole cycle: trains, then deploys through git
def test_explicit_ids_leave_no_resolve_record(loans: Config) -> None:
    result = run_cycle(loans, "1", engine="direct", run_id="given", now=NOW)
    assert result.exit_code == EXIT_OK, result.lines()
    assert (result.window_id, result.run_id) == ("1", "given")
    assert sorted(result.records) == sorted(STEP_ORDER)
    assert [line.split()[0] for line in result.lines()] == list(STEP_ORDER)
    # A manual run holds the run lease too (so two never overlap), and releases it at the end.
    lease, _ = read_lease(open_storage(loans.storage_root), loans.name)
    assert lease is not None
    assert (lease.run_id, lease.snapshot, lease.released_at) == ("given", "1", NOW)


@pytest.mark.integration  # the first run trains; the second is refused before any step
def test_a_manual_run_is_refused_while_another_run_holds_the_lease(loans: Config) -> None:
    store = open_storage(loans.storage_root)
    held = acquire_lease(
        store, loans.name, owner="pipeline:other", run_id="other-run", snapshot="1",
        ttl=timedelta(hours=6), now=NOW,
    )  # fmt: skip
    assert held is not None
    result = run_cycle(loans, "1", engine="direct", run_id="second", now=NOW)
    assert result.exit_code == EXIT_TRANSIENT, result.lines()
    assert "other-run" in str(result.records["resolve"]["message"])
    assert not store.list("runs/second")  # no step ran, so no canary was replaced
    lease, _ = read_lease(store, loans.name)
    assert lease is not None and (lease.run_id, lease.released_at) == ("other-run", None)


def test_a_held_lease_stops_an_auto_run_at_resolve_with_exit_75(loans: Config) -> None:
    store = open_storage(loans.storage_root)
    held = acquire_lease(
        store,
        loans.name,
        owner="monitor-host:7",
        run_id="w2-drift",
        snapshot="2",
        ttl=timedelta(hours=6),
        now=NOW,
    )
    assert held is not None
    before = store.read_bytes(lease_key(loans.name))
    result = run_cycle(loans, "auto", engine="direct", now=NOW + timedelta(minutes=5))
    assert result.exit_code == EXIT_TRANSIENT
    assert re.fullmatch(r"w2-[0-9a-f]{12}", result.run_id), result.run_id
    assert result.window_id == "2"  # resolved before the lease was refused
    assert list(result.records) == ["resolve"]
    failed = result.failed_step
    assert failed is not None and failed["error"] == "TransientError"
    assert (
        "held by run w2-drift (owner monitor-host:7, expires 2030-01-07T09:00:00Z)"
        in (failed["message"])
    )
    assert "the next scheduled run will try again" in failed["message"]
    # Nothing but the failure record: no dataset, no model, the holder's lease untouched.
    assert store.list("") == [lease_key(loans.name), f"runs/{result.run_id}/resolve.json"]
    assert store.read_bytes(lease_key(loans.name)) == before


def test_an_empty_auto_window_fails_with_exit_2_and_writes_nothing_shared(tmp_path: Path) -> None:
    cfg = load_config(generate_housing(tmp_path, windows=2, rows_per_window=50, drift_window=1))
    # The housing weeks are in January 2024; in 2030 the newest complete week has no events.
    result = run_cycle(cfg, "auto", engine="direct", run_id="auto", now=NOW)
    assert result.exit_code == EXIT_VALIDATION
    assert re.fullmatch(r"auto-[0-9a-f]{12}", result.run_id), result.run_id
    assert list(result.records) == ["resolve"]
    failed = result.failed_step
    assert failed is not None and failed["step"] == "resolve"
    assert "window 2029-12-31" in failed["message"] and TIME_RULE in failed["message"]
    assert result.lines()[0].startswith("  resolve   x FAILED (ValidationError)")
    store = open_storage(cfg.storage_root)
    assert [k.split("/")[0] for k in store.list("")] == ["runs"]


def test_an_explicit_run_id_records_a_failed_resolution_under_itself(tmp_path: Path) -> None:
    cfg = load_config(generate_housing(tmp_path, windows=2, rows_per_window=50, drift_window=1))
    result = run_cycle(cfg, "auto", engine="kfp-local", run_id="nightly-1", now=NOW)
    assert (result.exit_code, result.run_id) == (EXIT_VALIDATION, "nightly-1")
    assert list(result.records) == ["resolve"]


def test_a_misspelt_run_id_keyword_is_refused_up_front(loans: Config) -> None:
    with pytest.raises(ValidationError, match="'Auto'"):
        run_cycle(loans, "auto", engine="direct", run_id="Auto", now=NOW)
    assert open_storage(loans.storage_root).list("") == []


# --- failures outside the steps ----------------------------------------------------------------


def refuse_run_records(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The store takes no writes under runs/ (an outage): resolve cannot record anything."""
    real_write = LocalStorage.write_text

    def write_text(self: LocalStorage, key: str, text: str) -> None:
        if key.startswith("runs/"):
            raise error
        real_write(self, key, text)

    monkeypatch.setattr(LocalStorage, "write_text", write_text)


@pytest.mark.parametrize(
    ("error", "code", "shown", "message"),
    [
        (
            TransientError("store unavailable (503)"),
            EXIT_TRANSIENT,
            "TransientError",
            "store unavailable (503)",
        ),
        # An OSError is classified at the edge: permanent, with the fix, not an internal 1.
        (
            PermissionError("runs/ is read-only"),
            EXIT_VALIDATION,
            "ValidationError",
            "permission denied on the store: give this process's user write access to it, "
            "or point the config at a location it may write",
        ),
    ],
)
def test_an_unrecorded_resolve_failure_keeps_its_message_and_exit_code(
    loans: Config,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    code: int,
    shown: str,
    message: str,
) -> None:
    refuse_run_records(monkeypatch, error)
    seen: list[tuple[str, str]] = []
    result = run_cycle(
        loans, "auto", engine="direct", now=NOW, on_step=lambda n, r: seen.append((n, r["error"]))
    )
    assert result.exit_code == code
    assert re.fullmatch(r"auto-[0-9a-f]{12}", result.run_id), result.run_id
    record = result.records["resolve"]
    assert record["recorded"] is False
    assert (record["status"], record["error"]) == ("failed", shown)
    assert (record["message"], record["exit_code"]) == (message, code)
    assert seen == [("resolve", shown)]
    assert result.lines()[0] == f"  resolve   x FAILED ({shown}): {message}"
    # The lease was taken before the record failed; the cycle still released it.
    lease, _ = read_lease(open_storage(loans.storage_root), loans.name)
    assert lease is not None and lease.released_at == NOW


def test_an_unrecorded_failure_names_the_failure_it_was_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(generate_housing(tmp_path, windows=2, rows_per_window=50, drift_window=1))
    refuse_run_records(monkeypatch, TransientError("store unavailable (503)"))
    # In 2030 the newest complete week is empty (exit 2), and that record cannot be written.
    result = run_cycle(cfg, "auto", engine="direct", now=NOW)
    assert result.exit_code == EXIT_TRANSIENT  # the write may work on a retry
    record = result.records["resolve"]
    assert record["message"] == "store unavailable (503)"
    assert record["cause"].startswith("ValidationError: window_id 'auto' resolved to window ")


@pytest.mark.integration  # a whole cycle: trains, then deploys through git
def test_a_lease_that_cannot_be_released_does_not_mask_the_result(
    loans: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def store_down(*args: object, **kwargs: object) -> None:
        raise TransientError("GCS error on leases/loans.json: 503")

    monkeypatch.setattr(steps, "release_run_lease", store_down)
    log = tmp_path / "logs" / "run.log"
    result = run_cycle(loans, "auto", engine="direct", now=NOW, log_path=str(log))
    assert result.exit_code == EXIT_OK, result.lines()
    assert sorted(result.records) == sorted(["resolve", *STEP_ORDER])
    message = (
        f"could not release the run lease of 'loans' for job {result.run_id.removeprefix('w2-')} "
        "(TransientError: GCS error on leases/loans.json: 503)"
    )
    assert message in capsys.readouterr().err
    assert message in log.read_text()
    assert "stays held until it expires (triggers.lease_ttl 6h" in log.read_text()
    lease, _ = read_lease(open_storage(loans.storage_root), loans.name)
    assert lease is not None and lease.released_at is None  # it expires on its own


def test_a_sigterm_after_the_last_step_exits_75_and_says_so(
    loans: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every step finished; the SIGTERM comes while the lease is being released (where it is
    # only remembered). The run exits 75, as any stopped run does, and says why.
    def finished(*args: object, **kwargs: object) -> runner.CycleResult:
        return runner.CycleResult("w2-done", "2", {}, EXIT_OK, None)

    def release(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(runner, "_resolve_and_run", finished)
    monkeypatch.setattr(runner, "_release_lease", release)
    # The runner's SIGTERM handler stops every process below it: here, the test session's own
    # (its GCS emulator). There are no step processes to stop in this test.
    monkeypatch.setattr(runner.signals, "terminate_descendants", lambda: None)
    result = run_cycle(loans, "2", engine="direct")
    assert result.exit_code == EXIT_TRANSIENT
    assert "run w2-done stopped by SIGTERM after its last step" in capsys.readouterr().err
