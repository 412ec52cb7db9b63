"""Real `retrain run` processes: SIGTERM and SIGKILL mid-run, and a hostile input file.

Each test starts the command as an operator would and acts on it from outside: a SIGTERM
must end in exit 75 with the run lease released, nothing half-written and no step process
left behind; a SIGKILL of the runner must not leave kfp.local's step process running; a CSV
with one 300 MB field must be refused before it is loaded (peak RSS of the process, as the
kernel reports it for the child, not a timing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from required import require
from retrain.config import Config, load_config
from retrain.errors import EXIT_TRANSIENT, EXIT_VALIDATION
from retrain.steps.signals import descendants
from retrain.storage import open_storage
from retrain.triggers.lease import read_lease

pytestmark = pytest.mark.integration

TIMEOUT = 240.0


@pytest.fixture
def loans(tmp_path: Path) -> tuple[Config, Path]:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    path = generate_loans(tmp_path, windows=4, rows_per_window=3000, drift_window=3)
    return load_config(path), path


def _start(config: Path, engine: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "retrain.cli", "run", "--config", str(config), "--window", "auto",
         "--engine", engine, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _wait_for(what: str, check: Callable[[], object], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended before {what}:\n{proc.stdout.read() if proc.stdout else ''}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _records(cfg: Config) -> list[dict[str, object]]:
    store = open_storage(cfg.storage_root)
    return [json.loads(store.read_text(k)) for k in store.list("runs") if k.endswith(".json")]


def _step_started(cfg: Config) -> bool:
    """The run resolved its window (so it holds the lease) and its steps are under way."""
    return any(r.get("step") == "resolve" for r in _records(cfg))


def _gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        time.sleep(0.1)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _assert_clean_stop(cfg: Config, rc: int, output: str) -> None:
    assert rc == EXIT_TRANSIENT, output
    lease, _ = read_lease(open_storage(cfg.storage_root), cfg.name)
    assert lease is not None and lease.released_at is not None, "the lease is still held"
    root = Path(cfg.storage_root)
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")], "half-written files"
    # The step in progress says it was stopped (in its record, or the runner's if the signal
    # came between two steps), or the runner does if it came after the last step.
    assert (
        "x FAILED (Terminated): stopped by SIGTERM at a safe point" in output
        or "stopped by SIGTERM after its last step: every step finished" in output
    ), output
    stopped = [r for r in _records(cfg) if r.get("error") == "Terminated"]
    assert all(r["exit_code"] == EXIT_TRANSIENT for r in stopped), output


def test_sigterm_stops_a_direct_run_releases_the_lease_and_exits_75(
    loans: tuple[Config, Path],
) -> None:
    cfg, config = loans
    proc = _start(config, "direct")
    _wait_for("the run to start its steps", lambda: _step_started(cfg), proc)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=TIMEOUT)
    _assert_clean_stop(cfg, proc.returncode, output)


def _step_processes(pid: int) -> list[int]:
    """kfp.local's step processes below `pid` (python running a component)."""
    found = []
    for child in descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"executor_main" in cmd:
            found.append(child)
    return found


def test_sigterm_stops_a_kfp_local_run_and_its_step_processes(
    loans: tuple[Config, Path],
) -> None:
    require("kfp", "kfp.local runs need the 'kfp' extra")
    cfg, config = loans
    proc = _start(config, "kfp-local")
    _wait_for("a step process", lambda: _step_started(cfg) and _step_processes(proc.pid), proc)
    children = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert _gone(children, timeout=10) == [], "step processes outlived the run"
    _assert_clean_stop(cfg, proc.returncode, output)


def test_a_step_process_stops_when_its_runner_is_killed(loans: tuple[Config, Path]) -> None:
    require("kfp", "kfp.local runs need the 'kfp' extra")
    cfg, config = loans
    proc = _start(config, "kfp-local")
    _wait_for("a step process", lambda: _step_started(cfg) and _step_processes(proc.pid), proc)
    children = descendants(proc.pid)
    proc.kill()  # SIGKILL: no handler in the runner runs
    proc.communicate(timeout=TIMEOUT)
    # The runner's watchdog (retrain._reaper) stopped them: a step still importing ends at
    # once, a step under way records that it was stopped (exit 75), and nothing is half-written.
    assert _gone(children, timeout=10) == [], "a step process kept running after its runner"
    stopped = [r for r in _records(cfg) if r.get("error") == "Terminated"]
    assert all(r["exit_code"] == EXIT_TRANSIENT for r in stopped)
    assert not [p for p in Path(cfg.storage_root).rglob("*") if p.name.endswith(".tmp")]


def test_a_300_mb_field_is_refused_before_it_is_loaded(
    loans: tuple[Config, Path], tmp_path: Path
) -> None:
    cfg, config = loans
    events = tmp_path / "hostile"
    events.mkdir()
    field = 300 * 2**20
    with (events / "events.csv").open("w") as out:
        out.write(f"{cfg.data.id_column},{cfg.data.time_column},note\n")
        out.write("a1,1,")
        chunk = "x" * 2**20
        for _ in range(field // len(chunk)):
            out.write(chunk)
        out.write("\n")
    raw = yaml.safe_load(config.read_text())
    raw["data"]["uri"] = str(events)
    raw["data"]["format"] = "csv"
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen(
        [sys.executable, "-m", "retrain.cli", "run", "--config", str(hostile), "--window", "1",
         "--engine", "direct", "--run-id", "hostile"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == EXIT_VALIDATION, output[-2000:]
    assert "data.limits.max_value_bytes" in output
    assert len(output) < 20_000  # nothing echoed whole
    peak_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    assert peak_mb < 600, f"peak RSS {peak_mb:.0f} MB for a refused 300 MB field"
    record = Path(cfg.storage_root) / "runs" / "hostile" / "ingest.json"
    assert record.stat().st_size < 20_000
