"""Native thread pools limited to the CPUs a process can use (cgroup quota, affinity), once
per process at the entry points, with each worker of a pool given its share."""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import retrain.cli as cli
from retrain import _threads, steps
from retrain._threads import (
    THREADS_ENV,
    cgroup_cpu_quota,
    limit_process_threads,
    openmp_threads,
    usable_cpus,
    worker_threads,
)
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.triggers.fleet import run_for_each
from retrain.triggers.fleet_pool import ProcessFleet

pytestmark = pytest.mark.skipif(
    openmp_threads() is None, reason="no OpenMP runtime loaded (scikit-learn ships one)"
)


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    """A fake /sys/fs/cgroup holding `files` (relative path -> text)."""
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return root


def fresh_thread_openmp() -> int:
    """What OpenMP starts for a thread nobody limited (the process's default)."""
    seen: list[int | None] = []
    t = threading.Thread(target=lambda: seen.append(openmp_threads()))
    t.start()
    t.join()
    assert seen[0] is not None
    return seen[0]


@pytest.fixture
def restored() -> Iterator[None]:
    """This thread's and the process's thread pools, OMP_NUM_THREADS and the module's record
    put back as they were after the test (the limits are set for the whole process)."""
    saved_env = os.environ.get(THREADS_ENV)
    saved_applied = _threads._applied
    with threadpool_limits(limits=None):  # restores the original limits on exit
        yield
    _threads._applied = saved_applied
    if saved_env is None:
        os.environ.pop(THREADS_ENV, None)
    else:
        os.environ[THREADS_ENV] = saved_env


# --- the count ----------------------------------------------------------------------------------


def test_a_v2_cgroup_without_a_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu.max": "max 100000"})
    assert cgroup_cpu_quota(root, "0::/") is None
    assert usable_cpus(root, "0::/", affinity=6) == 6


def test_a_v2_quota_of_one_and_a_half_cpus_rounds_up_to_2(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu.max": "150000 100000"})
    assert cgroup_cpu_quota(root, "0::/") == 1.5
    assert usable_cpus(root, "0::/", affinity=64) == 2


def test_a_quota_under_one_cpu_still_gives_one_thread(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu.max": "20000 100000"})
    assert usable_cpus(root, "0::/", affinity=64) == 1


def test_a_v2_quota_of_the_process_own_cgroup_is_found_under_the_root(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"kubepods/pod1/c1/cpu.max": "300000 100000"})
    assert usable_cpus(root, "0::/kubepods/pod1/c1", affinity=64) == 3


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_v1_quota_and_period_files(tmp_path: Path, mount: str) -> None:
    root = cgroup(
        tmp_path, {f"{mount}/cpu.cfs_quota_us": "250000", f"{mount}/cpu.cfs_period_us": "100000"}
    )
    proc = "4:memory:/x\n3:cpu,cpuacct:/\n0::/"
    assert cgroup_cpu_quota(root, proc) == 2.5
    assert usable_cpus(root, proc, affinity=64) == 3


def test_a_v1_quota_of_minus_one_is_no_limit(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert usable_cpus(root, "3:cpu,cpuacct:/", affinity=5) == 5


def test_an_affinity_smaller_than_the_quota_wins(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"cpu.max": "800000 100000"})
    assert usable_cpus(root, "0::/", affinity=2) == 2


def test_no_cgroup_files_at_all_gives_the_affinity(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "missing", "", affinity=3) == 3


# --- applying it ---------------------------------------------------------------------------------


def test_an_omp_num_threads_set_by_hand_is_left_alone(tmp_path: Path, restored: None) -> None:
    root = cgroup(tmp_path, {"cpu.max": "100000 100000"})
    threadpool_limits(limits=2, user_api="openmp")
    env = {THREADS_ENV: "2"}
    assert limit_process_threads(root, "0::/", affinity=8, environ=env) is None
    assert env == {THREADS_ENV: "2"}
    assert openmp_threads() == 2


def test_the_limit_is_applied_and_exported_for_child_processes(
    tmp_path: Path, restored: None
) -> None:
    root = cgroup(tmp_path, {"cpu.max": "100000 100000"})
    env: dict[str, str] = {"OPENBLAS_NUM_THREADS": "2"}
    threadpool_limits(limits=2)
    assert limit_process_threads(root, "0::/", affinity=8, environ=env) == 1
    assert env[THREADS_ENV] == "1"
    assert openmp_threads() == 1
    # A BLAS whose own variable is set by hand keeps it.
    blas = [i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"]
    assert all(n == 2 for n in blas)


def test_the_retrain_command_limits_threads_before_its_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored: None
) -> None:
    root = cgroup(tmp_path, {"cpu.max": "100000 100000"})
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/\n")
    monkeypatch.setattr(_threads, "_CGROUP_ROOT", root)
    monkeypatch.setattr(_threads, "_PROC_CGROUP", proc)
    os.environ.pop(THREADS_ENV, None)
    threadpool_limits(limits=2, user_api="openmp")
    seen: dict[str, object] = {}

    def probe(args: argparse.Namespace) -> int:
        seen["openmp"] = openmp_threads()
        seen["env"] = os.environ.get(THREADS_ENV)
        return 0

    monkeypatch.setattr(cli, "_cmd_status", probe)
    assert cli.main(["status", "--config", "unused.yaml"]) == 0
    assert seen == {"openmp": 1, "env": "1"}


# --- pools: each worker its share ----------------------------------------------------------------


def test_the_share_of_each_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "_applied", 8)
    assert [worker_threads(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setattr(_threads, "_applied", None)
    assert worker_threads(2, environ={THREADS_ENV: "6"}) is None  # set by hand: kept


def openmp_in_worker(cfg: Config) -> int | None:
    return openmp_threads()


@pytest.fixture
def configs(tmp_path: Path) -> list[Config]:
    cfg = load_config(generate_loans(tmp_path, windows=2, rows_per_window=50, drift_window=1))
    return [cfg.model_copy(update={"name": f"m{i}"}) for i in range(2)]


def test_worker_threads_of_a_pass_get_their_share(
    configs: list[Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    if fresh_thread_openmp() < 2:
        pytest.skip("OpenMP starts 1 thread here anyway: no share to tell apart")
    monkeypatch.setattr(_threads, "_applied", 2)
    done = run_for_each(configs, openmp_in_worker, workers=2)
    assert [r.result for r in done] == [1, 1]


def test_worker_processes_of_a_pass_get_their_share(
    configs: list[Config], monkeypatch: pytest.MonkeyPatch, restored: None
) -> None:
    monkeypatch.setattr(_threads, "_applied", 2)
    threadpool_limits(limits=2, user_api="openmp")  # what a forked worker would inherit
    with ProcessFleet[int | None](2) as fleet:
        done = fleet.run(configs, openmp_in_worker)
    assert [r.result for r in done] == [1, 1]


def test_the_train_step_records_the_threads_of_its_fit(tmp_path: Path, restored: None) -> None:
    cfg = load_config(generate_loans(tmp_path, windows=2, rows_per_window=300, drift_window=1))
    work, text = tmp_path / "run", cfg.to_yaml()
    steps.ingest(text, "0", "w0", str(work / "d.parquet"))
    steps.label(text, "0", "w0", str(work / "d.parquet"), str(work / "l.parquet"))
    threadpool_limits(limits=1, user_api="openmp")
    out = steps.train(
        text, "0", "w0", str(work / "l.parquet"), str(work / "model"), str(work / "hold")
    )
    assert out.details["fit_threads"] == 1
