"""A fleet pass on worker processes: the same per-model results as one model at a time,
errors kept per model, each model on the same process at every pass."""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

import retrain.cli.monitor as monitor_cli
import retrain.triggers.metrics as metrics_module
from retrain import steps
from retrain._process import host_name, process_gone
from retrain.cli import main
from retrain.config import Config, load_config
from retrain.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    TransientError,
    ValidationError,
    exit_code_for,
)
from retrain.registry import Registry
from retrain.storage import open_storage
from retrain.triggers.fleet import fleet_exit_code, load_configs
from retrain.triggers.fleet_pool import ProcessFleet, WorkerError, portable_error
from retrain.triggers.metrics import MonitorMetrics
from tests.unit.test_triggers_fleet import fleet

NAMES = ["m1", "m2", "m3"]


# --- work run in the worker processes (module level: sent by reference) ------------------------


def pid_of(cfg: Config) -> tuple[str, int]:
    return cfg.name, os.getpid()


def fails_for_m2(cfg: Config) -> str:
    if cfg.name == "m2":
        raise TransientError("store unreachable")
    return cfg.name


def dies_for_m2(cfg: Config) -> tuple[str, int]:
    if cfg.name == "m2":
        os._exit(3)  # as a worker killed by the kernel: no exception, no result
    return cfg.name, os.getpid()


class Unpicklable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()  # a lock cannot be pickled


def raises_unpicklable(cfg: Config) -> None:
    raise Unpicklable(f"{cfg.name} broke")


def sleeps(cfg: Config) -> None:
    """A long check: says which process runs it, then sleeps."""
    Path(os.environ["SLEEPS_PID_FILE"]).write_text(str(os.getpid()))
    time.sleep(60)


def stop_after_m1(cfg: Config) -> str:
    """m1's work asks the pass to stop (as its parent's SIGTERM handler would)."""
    if cfg.name == "m1":
        Path(os.environ["STOP_FILE"]).write_text("stop")
    return cfg.name


def appends_name(cfg: Config) -> str:
    """Says in which order the models ran (one worker: one after another)."""
    with open(os.environ["ORDER_FILE"], "a") as f:
        f.write(cfg.name + "\n")
    return cfg.name


def returns_unpicklable(cfg: Config) -> Any:
    return threading.Lock()


#: The processes that ran `warm_up_here` (as this module's copy in each process saw it).
WARMED: list[int] = []


def warm_up_here() -> None:
    """Stands in for a lazy build (imports, compiled schemas): says which process did it."""
    WARMED.append(os.getpid())


def warmed(cfg: Config) -> tuple[list[int], int]:
    return list(WARMED), os.getpid()


def frozen_objects(cfg: Config) -> int:
    return gc.get_freeze_count()


# --- the pool ------------------------------------------------------------------------------------


def test_each_model_stays_on_its_process_and_results_keep_the_configs_order(
    tmp_path: Path,
) -> None:
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(5)]))])
    with ProcessFleet[tuple[str, int]](2) as pool:
        first = pool.run(configs, pid_of)
        second = pool.run(configs, pid_of)
    assert [r.model for r in first] == [c.name for c in configs]
    assert all(r.ok and r.result is not None and r.result[0] == r.model for r in first)
    pids = [r.result[1] for r in first if r.result is not None]
    assert len(set(pids)) == 2 and os.getpid() not in pids  # two processes, not this one
    assert pids == [r.result[1] for r in second if r.result is not None]  # pinned


def test_an_error_stays_with_its_model(tmp_path: Path) -> None:
    configs = load_configs([str(fleet(tmp_path, NAMES))])
    with ProcessFleet[str](2) as pool:
        results = pool.run(configs, fails_for_m2)
    assert [r.result for r in results] == ["m1", None, "m3"]
    assert isinstance(results[1].error, TransientError)
    assert str(results[1].error) == "store unreachable"
    assert fleet_exit_code(results) == EXIT_TRANSIENT


def test_a_dead_worker_fails_its_model_only_and_is_replaced(tmp_path: Path) -> None:
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(1, 6)]))])
    with ProcessFleet[tuple[str, int]](2) as pool:
        results = pool.run(configs, dies_for_m2)  # m2 and m4 share the second process
        again = pool.run(configs[:1], pid_of)
    assert [r.ok for r in results] == [True, False, True, True, True]
    assert "m2 ended unexpectedly (exit 3)" in str(results[1].error)
    assert fleet_exit_code(results) == EXIT_INTERNAL
    assert results[3].result is not None and results[3].result[0] == "m4"  # a fresh process
    assert again[0].ok


def test_the_warm_up_runs_once_in_the_parent_and_the_workers_inherit_it(tmp_path: Path) -> None:
    WARMED.clear()
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(4)]))])
    with ProcessFleet[tuple[list[int], int]](2, warm_up=warm_up_here) as pool:
        results = pool.run(configs, warmed)
    assert [os.getpid()] == WARMED  # once, here, not once per worker
    assert {r.result[1] for r in results if r.result is not None} != {os.getpid()}
    assert all(r.result is not None and r.result[0] == [os.getpid()] for r in results)


def test_workers_leave_the_objects_they_share_with_the_parent_out_of_their_collections(
    tmp_path: Path,
) -> None:
    configs = load_configs([str(fleet(tmp_path, NAMES[:2]))])
    with ProcessFleet[int](2) as pool:
        counts = [r.result for r in pool.run(configs, frozen_objects)]
    # Frozen at the fork in the workers (their collections skip the parent's objects, so
    # they do not copy the pages holding them); the parent collects as before.
    assert all(c is not None and c > 1000 for c in counts)
    assert gc.get_freeze_count() == 0


def test_a_replacement_worker_is_spawned_not_forked_beside_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forks: list[int] = []  # live threads in this process at each fork
    real_fork = os.fork

    def fork() -> int:
        forks.append(threading.active_count())
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    WARMED.clear()
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(1, 6)]))])
    threads_before = threading.active_count()
    with ProcessFleet[Any](2, warm_up=warm_up_here) as pool:
        died = pool.run(configs, dies_for_m2)  # m2's process dies; m4 goes to its replacement
        after = pool.run(configs[:2], warmed)
    assert forks == [threads_before] * 2  # the first two workers only, before any thread
    assert [r.ok for r in died] == [True, False, True, True, True]
    assert all(r.ok for r in after), [str(r.error) for r in after]
    (_, first_pid), (replacement_warmed, replacement_pid) = (r.result for r in after)
    assert replacement_pid not in (first_pid, os.getpid())
    assert replacement_warmed == [replacement_pid]  # a fresh interpreter warmed itself


def test_errors_and_results_that_cannot_be_pickled_still_reach_the_parent(
    tmp_path: Path,
) -> None:
    configs = load_configs([str(fleet(tmp_path, NAMES[:1]))])
    with ProcessFleet[Any](1) as pool:
        raised = pool.run(configs, raises_unpicklable)[0]
        returned = pool.run(configs, returns_unpicklable)[0]
    assert isinstance(raised.error, WorkerError)
    assert str(raised.error) == "m1 broke" and raised.error.kind == "Unpicklable"
    assert exit_code_for(raised.error) == EXIT_INTERNAL
    assert returned.result is None and returned.error is not None


def test_portable_error_keeps_message_and_exit_code() -> None:
    bad = ValidationError("bad config", ["data.uri: missing"])
    kept = portable_error(bad)
    assert isinstance(kept, ValidationError) and str(kept) == str(bad)
    stand_in = portable_error(Unpicklable("x"))
    assert isinstance(stand_in, WorkerError) and exit_code_for(stand_in) == EXIT_INTERNAL
    stand_in = portable_error(_UnpicklableValidation("y"))
    assert exit_code_for(stand_in) == EXIT_VALIDATION and str(stand_in) == "y"


class _UnpicklableValidation(ValidationError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        ProcessFleet[Any](0)


# --- the monitor on processes --------------------------------------------------------------------


def _with_champions(configs_dir: Path, work: Path) -> None:
    """One champion (a real model and profile, trained on window 0 of the first model's data),
    registered as every model's champion."""
    cfgs = [load_config(p) for p in sorted(configs_dir.glob("m*.yaml"))]
    text, run = cfgs[0].to_yaml(), "w0"
    steps.ingest(text, "0", run, str(work / "d.parquet"))
    steps.label(text, "0", run, str(work / "d.parquet"), str(work / "l.parquet"))
    steps.train(text, "0", run, str(work / "l.parquet"), str(work / "model"), str(work / "hold"))
    files = {p.name: p.read_bytes() for p in (work / "model").iterdir() if p.is_file()}
    for cfg in cfgs:
        reg = Registry(open_storage(cfg.storage_root), cfg.name)
        reg.register("v1", files)
        reg.set_alias("champion", "v1", 0)


def _measured(result: dict[str, Any]) -> dict[str, Any]:
    """What a check measured and decided, without its clock readings."""
    return {
        "window": result["window"],
        "champion": result["champion"],
        "drift": result["drift"],
        "performance": result["performance"],
        "untrained_rows": result["untrained_rows"],
        "decisions": [(d["signal"]["kind"], d["rule"], d["launch"]) for d in result["decisions"]],
    }


def test_a_process_pass_measures_what_one_model_at_a_time_measures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pooled, alone = tmp_path / "pooled", tmp_path / "alone"
    pooled.mkdir()
    alone.mkdir()
    pooled_configs, alone_configs = fleet(pooled, NAMES), fleet(alone, NAMES)
    _with_champions(pooled_configs, pooled)
    _with_champions(alone_configs, alone)
    capsys.readouterr()

    # Window 5, the source's last, named: the newest that is over (4) holds labels of one
    # class only, so its labelled check would measure nothing (see `measured` below).
    common = ["--once", "--launch", "none", "--json", "--window", "5"]
    args = ["monitor", *common, "--pool", "process", "--workers", "2"]
    assert main([*args, "--config", str(pooled_configs)]) == EXIT_OK
    captured = capsys.readouterr()
    entries = json.loads(captured.out)  # the JSON alone; the summary goes to stderr
    assert "checked 3 models: 3 ok (exit 0)" in captured.err
    by_pool = {e["model"]: _measured(e["result"]) for e in entries}

    for name in NAMES:
        assert main(["monitor", *common, "--config", str(alone_configs / f"{name}.yaml")]) == 0
        single, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
        assert by_pool[name] == _measured(single), name
    measured = by_pool["m1"]
    assert measured["drift"] is not None and "drop" in measured["performance"]  # not vacuous


def test_process_pass_reports_metrics_labelled_by_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = fleet(tmp_path, NAMES)
    _with_champions(configs, tmp_path)
    made: list[MonitorMetrics] = []

    class Recording(MonitorMetrics):
        def __init__(self, model: str) -> None:
            super().__init__(model)
            made.append(self)

    monkeypatch.setattr(metrics_module, "MonitorMetrics", Recording)
    code = main(["monitor", "--once", "--launch", "none", "--config", str(configs)])
    assert code == EXIT_OK
    text = generate_latest(made[0].registry).decode()
    for name in NAMES:  # measured in a worker process, recorded in this one
        assert f'retrain_drift_share_drifted{{model="{name}"}}' in text
        assert f'retrain_monitor_last_check_timestamp_seconds{{model="{name}"}}' in text
        decided = [
            line
            for line in text.splitlines()
            if line.startswith("retrain_trigger_decisions_total") and f'model="{name}"' in line
        ]
        assert decided and all(float(line.split()[-1]) >= 1 for line in decided)


def test_pool_option_is_checked(tmp_path: Path) -> None:
    configs = fleet(tmp_path, NAMES[:2])
    with pytest.raises(SystemExit):
        main(["monitor", "--once", "--config", str(configs), "--pool", "fibres"])


def test_workers_ignore_sigterm_the_parent_decides(tmp_path: Path) -> None:
    configs = load_configs([str(fleet(tmp_path, NAMES[:1]))])
    with ProcessFleet[tuple[str, int]](1) as pool:
        (first,) = pool.run(configs, pid_of)
        assert first.result is not None
        os.kill(first.result[1], signal.SIGTERM)  # as a `kill` of the whole process group
        (second,) = pool.run(configs, pid_of)
    assert second.result == first.result  # the same process finished the next pass too
    assert not multiprocessing.active_children()  # closed: every worker joined


def test_once_asked_to_stop_a_worker_starts_no_other_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = load_configs([str(fleet(tmp_path, NAMES))])
    stop_file = tmp_path / "stop"
    monkeypatch.setenv("STOP_FILE", str(stop_file))
    with ProcessFleet[str](1) as pool:
        results = pool.run(configs, stop_after_m1, stop=stop_file.exists)
    assert [r.model for r in results] == NAMES
    assert results[0].ok and results[0].result == "m1"  # in progress: it finished
    for r in results[1:]:
        assert r.result is None and type(r.error).__name__ == "NotStarted"
        assert "asked to stop (SIGTERM) before this model's turn" in str(r.error)
    assert fleet_exit_code(results) == EXIT_TRANSIENT  # a re-run serves them


def test_a_worker_takes_its_models_by_priority_and_none_after_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = load_configs([str(fleet(tmp_path, [f"m{i}" for i in range(4)]))])
    order = tmp_path / "order"
    monkeypatch.setenv("ORDER_FILE", str(order))
    ticks = iter(range(100))  # each reading of the clock a second later

    def last_first(cfg: Config) -> int:
        return -int(cfg.name[1:])

    with ProcessFleet[str](1) as pool:
        every = pool.run(configs, appends_name, priority=last_first)
        order.unlink()
        # The clock reads 0 at the pass's start, then 1, 2, ... as each model's turn comes.
        cut = pool.run(
            configs, appends_name, priority=last_first, deadline=3, clock=lambda: next(ticks)
        )
    assert all(r.ok for r in every) and [r.model for r in every] == ["m0", "m1", "m2", "m3"]
    assert order.read_text().split() == ["m3", "m2"]  # started before the deadline
    assert [r.ok for r in cut] == [False, False, True, True]
    for r in cut[:2]:
        assert r.error is None and r.skipped is not None
        assert r.skipped.startswith("not reached: the pass's deadline of 3 s passed")
    assert fleet_exit_code(cut) == EXIT_OK  # left out is not a failure


def test_workers_of_a_fleet_dropped_unclosed_end(tmp_path: Path) -> None:
    # Each forked worker must not keep a copy of the parent's end of its pipe: the end closed
    # by a dropped fleet then reaches it as an end of file, and it ends (else the
    # interpreter's exit, which waits for its non-daemon children, would wait for ever).
    # Nor may a worker forked later, for another fleet, keep a copy of those ends.
    configs = load_configs([str(fleet(tmp_path, NAMES))])
    pool = ProcessFleet[tuple[str, int]](2)
    pids = {r.result[1] for r in pool.run(configs, pid_of) if r.result is not None}
    other = ProcessFleet[tuple[str, int]](1)
    del pool
    gc.collect()
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            if all(process_gone(host_name(), pid) for pid in pids):
                break
            time.sleep(0.05)
        assert len(pids) == 2 and all(process_gone(host_name(), pid) for pid in pids)
    finally:
        for pid in pids:  # a worker left alive would keep this test session from ending
            if not process_gone(host_name(), pid):
                os.kill(pid, signal.SIGKILL)
        other.close()


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_monitor_starts_no_check_after_its_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pool: str
) -> None:
    configs = fleet(tmp_path, NAMES)
    args = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", pool]
    args += ["--config", str(configs)]
    assert main([*args, "--deadline", "0s"]) == EXIT_OK
    captured = capsys.readouterr()
    for name in NAMES:
        assert (
            f"{name}: not reached: the pass's deadline of 0 s passed before its turn; "
            "the next pass serves it first"
        ) in captured.err
        assert not open_storage(str(tmp_path / name / "store")).list("monitor")
    assert "checked 3 models: 0 ok, 3 not reached before --deadline (exit 0)" in captured.out
    assert main([*args, "--deadline", "soon"]) == EXIT_VALIDATION
    assert "--deadline: 'soon' is not a duration" in capsys.readouterr().err


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_a_pass_checks_the_models_checked_longest_ago_first(tmp_path: Path, pool: str) -> None:
    # A pass cut short (its deadline, a SIGTERM) must not leave out the same models each time.
    configs = fleet(tmp_path, NAMES)
    recent = {"m1": "2026-01-01T12:00:00+00:00", "m2": "2026-01-01T11:00:00+00:00"}
    for name, at in recent.items():  # m3 was never checked
        store = open_storage(str(tmp_path / name / "store"))
        store.write_text(f"triggers/{name}/last-check.json", json.dumps({"started_at": at}))
    args = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", pool]
    assert main([*args, "--config", str(configs)]) == EXIT_OK

    def started(name: str) -> str:
        store = open_storage(str(tmp_path / name / "store"))
        return str(json.loads(store.read_text(f"triggers/{name}/last-check.json"))["started_at"])

    assert started("m3") < started("m2") < started("m1")
    assert started("m1") > recent["m1"]  # noted anew


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_a_missing_or_unreadable_marker_counts_as_never_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pool: str
) -> None:
    names = ["m1", "m2", "m3", "m4"]
    configs = fleet(tmp_path, names)
    markers = {
        "m1": json.dumps({"started_at": "2026-01-01T12:00:00+00:00"}),
        "m2": "{half a wri",  # not JSON
        "m4": json.dumps({"started_at": 5}),  # JSON, no time; m3 has none
    }
    for name, text in markers.items():
        open_storage(str(tmp_path / name / "store")).write_text(
            f"triggers/{name}/last-check.json", text
        )
    args = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", pool]
    assert main([*args, "--config", str(configs)]) == EXIT_OK
    assert "checked 4 models: 4 ok (exit 0)" in capsys.readouterr().out

    def started(name: str) -> str:
        store = open_storage(str(tmp_path / name / "store"))
        return str(json.loads(store.read_text(f"triggers/{name}/last-check.json"))["started_at"])

    # The three never checked (in the configs' order) before the one checked at noon.
    assert started("m2") < started("m3") < started("m4") < started("m1")


#: Runs `retrain monitor ...` with each model's check sending the monitor a SIGTERM at its
#: start (a Job's deadline, a node drained), from the worker process where it runs.
_SIGTERM_IN_CHECK = """
import os, signal, sys, time
from retrain.cli import main
from retrain.triggers.monitor import Monitor

original = Monitor.check

def check(self, *args, **kwargs):
    os.kill(int(os.environ["MONITOR_PID"]), signal.SIGTERM)
    time.sleep(1)  # the SIGTERM arrives meanwhile
    return original(self, *args, **kwargs)

os.environ["MONITOR_PID"] = str(os.getpid())
Monitor.check = check
sys.exit(main(sys.argv[1:]))
"""


def _monitor_with_sigterm(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "monitor_sigterm.py"
    script.write_text(_SIGTERM_IN_CHECK)
    return subprocess.run(
        [sys.executable, str(script), "monitor", "--once", "--launch", "none", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_a_sigterm_during_a_once_pass_lets_the_check_finish_and_starts_no_other(
    tmp_path: Path, pool: str
) -> None:
    # Killed at the Job's deadline, a pass used to die mid-check, its worker with it (a
    # rollout tick in progress then held its lock to its TTL).
    configs = fleet(tmp_path, NAMES)
    done = _monitor_with_sigterm(
        tmp_path, "--workers", "1", "--pool", pool, "--config", str(configs)
    )
    assert done.returncode == EXIT_TRANSIENT, done.stderr  # a re-run serves the others
    lines = done.stdout.splitlines()
    assert lines[0].startswith("m1: window ") and lines[1].startswith("m1: rollout: ")
    assert lines[-1] == "checked 3 models: 1 ok (exit 75)"
    for name in NAMES[1:]:
        assert f"{name}: check failed: not started: the pass was asked to stop" in done.stderr
    reports = open_storage(str(tmp_path / "m1" / "store")).list("monitor")
    assert reports and not open_storage(str(tmp_path / "m2" / "store")).list("monitor")


def test_a_sigterm_during_a_one_model_check_lets_it_and_the_tick_finish(tmp_path: Path) -> None:
    configs = fleet(tmp_path, NAMES[:1])
    done = _monitor_with_sigterm(tmp_path, "--config", str(configs / "m1.yaml"))
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.startswith("window "), done.stdout
    assert "rollout: " in done.stdout.splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_a_busy_worker_dies_with_a_killed_parent(tmp_path: Path) -> None:
    configs = fleet(tmp_path, NAMES[:1])
    pid_file = tmp_path / "worker.pid"
    script = (
        "import os, threading, time\n"
        "from retrain.triggers.fleet import load_configs\n"
        "from retrain.triggers.fleet_pool import ProcessFleet\n"
        "from tests.unit.test_fleet_pool import sleeps\n"
        f"configs = load_configs([{str(configs)!r}])\n"
        "pool = ProcessFleet(1)\n"
        "threading.Thread(target=pool.run, args=(configs, sleeps), daemon=True).start()\n"
        f"while not os.path.exists({str(pid_file)!r}): time.sleep(0.05)\n"
        "os._exit(0)  # no shutdown: as a parent killed outright\n"
    )
    env = {**os.environ, "SLEEPS_PID_FILE": str(pid_file)}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=env)
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 10  # the check would sleep for 60 s
    while time.monotonic() < deadline and not process_gone(host_name(), worker):
        time.sleep(0.1)
    assert process_gone(host_name(), worker)


class _OnePass(threading.Event):
    """A stop event that is set by the first wait between passes."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_every_on_processes_runs_passes_then_stops_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = fleet(tmp_path, NAMES)
    monkeypatch.setattr(monitor_cli, "_stop_on_signals", _OnePass)
    args = ["monitor", "--every", "1s", "--port", "0", "--launch", "none", "--workers", "2"]
    code = main([*args, "--config", str(configs)])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "(launch: none, 2 worker processes)" in out
    assert "checked 3 models: 3 ok (exit 0)" in out
    assert not multiprocessing.active_children()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_the_whole_group_ends_the_pass_then_the_monitor(tmp_path: Path) -> None:
    configs = fleet(tmp_path, NAMES)
    args = ["monitor", "--every", "1h", "--port", "0", "--launch", "none", "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "retrain.cli", *args, "--config", str(configs)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a container's
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("checked 3 models"):
                break
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 2  # the two workers
        os.killpg(proc.pid, signal.SIGTERM)  # the monitor and its workers alike
        assert proc.wait(timeout=60) == EXIT_OK
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(process_gone(host_name(), int(pid)) for pid in children)


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_a_sigterm_that_leaves_models_unstarted_ends_an_every_monitor_with_75(
    tmp_path: Path, pool: str
) -> None:
    # The pass that the SIGTERM cut short says "exit 75"; so must the process.
    configs = fleet(tmp_path, NAMES)
    script = tmp_path / "monitor_sigterm.py"
    script.write_text(_SIGTERM_IN_CHECK)
    args = ["monitor", "--every", "1h", "--port", "0", "--launch", "none", "--workers", "1"]
    done = subprocess.run(
        [sys.executable, str(script), *args, "--pool", pool, "--config", str(configs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "checked 3 models: 1 ok (exit 75)" in done.stdout.splitlines(), done.stdout
    assert done.returncode == EXIT_TRANSIENT, done.stderr


def test_with_local_launches_a_sigterm_still_ends_the_monitor(tmp_path: Path) -> None:
    # A check that went on after the SIGTERM could start a whole local run, which its own
    # guard would never hear of: the monitor ends as it always has.
    configs = fleet(tmp_path, NAMES[:1])
    script = tmp_path / "monitor_sigterm.py"
    script.write_text(_SIGTERM_IN_CHECK)
    done = subprocess.run(
        [sys.executable, str(script), "monitor", "--once", "--config", str(configs / "m1.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert not open_storage(str(tmp_path / "m1" / "store")).list("runs")


@pytest.mark.parametrize(
    ("every", "launch", "guarded"),
    [
        (None, "kfp", {signal.SIGTERM}),
        (None, "none", {signal.SIGTERM}),
        (None, "local", set()),  # a check could start a whole local run after it
        ("10m", "local", {signal.SIGTERM, signal.SIGINT}),
    ],
)
def test_one_rule_says_which_signals_stop_a_monitor_at_a_safe_point(
    every: str | None, launch: str, guarded: set[signal.Signals]
) -> None:
    # The one-model and the fleet monitor take the rule from one place.
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = monitor_cli._stop_for(argparse.Namespace(every=every, launch=launch))
        changed = {s for s, handler in before.items() if signal.getsignal(s) is not handler}
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert changed == guarded and not stop.is_set()


@pytest.mark.parametrize("models", [NAMES[:1], NAMES])
def test_a_monitor_run_in_process_gives_back_the_callers_signal_handlers(
    tmp_path: Path, models: list[str]
) -> None:
    configs = fleet(tmp_path, models)
    config = configs / "m1.yaml" if len(models) == 1 else configs

    def callers(signum: int, frame: Any) -> None:
        pass

    before = {s: signal.signal(s, callers) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        args = ["monitor", "--launch", "none", "--pool", "thread", "--config", str(config)]
        assert main([*args, "--once"]) == EXIT_OK
        assert main([*args, "--every", "soon", "--port", "0"]) == EXIT_VALIDATION
        after = {s: signal.getsignal(s) for s in before}
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert after == {signal.SIGTERM: callers, signal.SIGINT: callers}


def test_a_one_model_monitor_refuses_a_bad_deadline_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = fleet(tmp_path, NAMES[:1])
    args = ["monitor", "--once", "--launch", "none", "--config", str(configs / "m1.yaml")]
    assert main([*args, "--deadline", "soon"]) == EXIT_VALIDATION
    assert "--deadline: 'soon' is not a duration" in capsys.readouterr().err
    assert not open_storage(str(tmp_path / "m1" / "store")).list("monitor")  # not checked


def test_off_the_main_thread_the_once_guard_is_not_installed() -> None:
    made: list[threading.Event] = []
    worker = threading.Thread(target=lambda: made.append(monitor_cli._stop_on_sigterm()))
    worker.start()
    worker.join()
    assert len(made) == 1 and not made[0].is_set()  # before: ValueError in the thread


#: Runs `retrain monitor ...` with each model's check pressing Ctrl-C at its start: a SIGINT to
#: the monitor's whole process group (a terminal's foreground group), its workers too.
_CTRL_C_IN_CHECK = """
import os, signal, sys, time
from retrain.cli import main
from retrain.triggers.monitor import Monitor

original = Monitor.check

def check(self, *args, **kwargs):
    with open(os.environ["STARTED_FILE"], "a") as f:
        f.write(f"{self.cfg.name} {os.getpid()}\\n")
    os.killpg(os.getpgid(0), signal.SIGINT)
    time.sleep(3)  # a check of a large window
    return original(self, *args, **kwargs)

Monitor.check = check
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_ctrl_c_ends_a_once_pass_in_one_line_with_130_and_no_worker_left(
    tmp_path: Path, pool: str
) -> None:
    # It ended with a KeyboardInterrupt's traceback (exit -2), and only once every model
    # queued to a worker had been checked.
    configs = fleet(tmp_path, NAMES)
    script, started = tmp_path / "monitor_ctrl_c.py", tmp_path / "started"
    script.write_text(_CTRL_C_IN_CHECK)
    args = ["monitor", "--once", "--launch", "none", "--workers", "1", "--pool", pool]
    proc = subprocess.Popen(
        [sys.executable, str(script), *args, "--config", str(configs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STARTED_FILE": str(started)},
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.splitlines() == [
        "interrupted (Ctrl-C): the monitor stopped before the end of its pass"
    ]
    (line,) = started.read_text().splitlines()  # no other model's check started
    name, pid = line.split()
    checked = {n for n in NAMES if open_storage(str(tmp_path / n / "store")).list("monitor")}
    if pool == "process":  # the worker is killed with its check (it ignores SIGINT)
        assert name == "m1" and int(pid) != proc.pid and not checked
        assert process_gone(host_name(), int(pid))
    else:  # a thread's check cannot be killed: it finishes
        assert name == "m1" and int(pid) == proc.pid and checked == {"m1"}
