"""How many native threads a process may run: the CPUs it can really use, not the node's.

OpenMP (scikit-learn's HistGradientBoosting) and BLAS start one thread per core they see. In
a Kubernetes pod they see the node's cores, not the container's CPU limit, so a pod limited
to 1 CPU on a 64-core node runs 64 threads that the CFS quota then throttles: a fit that
takes a fraction of a second alone takes many times longer. The usable count is the
smallest of the CPUs this process may be scheduled on (its affinity) and the cgroup's CPU
quota, rounded up (cgroup v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).

`limit_process_threads` applies it once per process, at the entry points (the ``retrain``
command, the step launcher). An explicit ``OMP_NUM_THREADS`` wins: with it set, no thread
pool is touched (OpenMP and OpenBLAS read it themselves). Otherwise the count is exported
as ``OMP_NUM_THREADS`` too, so child processes (kfp.local's tasks, spawned workers) and an
OpenMP loaded later start at it. The limit of OpenMP is per thread: a pool of worker
threads or processes gives each worker its share (`worker_threads`, `limit_this_thread`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "THREADS_ENV",
    "applied_limit",
    "cgroup_cpu_quota",
    "limit_process_threads",
    "limit_this_thread",
    "openmp_threads",
    "usable_cpus",
    "worker_threads",
]

#: The variable that sets the count by hand (and that retrain exports once it chose one).
THREADS_ENV = "OMP_NUM_THREADS"

#: BLAS libraries (threadpoolctl's internal API names) and the variable each reads itself:
#: one set by hand leaves that library alone.
_BLAS_ENV = {
    "openblas": "OPENBLAS_NUM_THREADS",
    "mkl": "MKL_NUM_THREADS",
    "blis": "BLIS_NUM_THREADS",
    "flexiblas": "FLEXIBLAS_NUM_THREADS",
}

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")

#: The count this process applied (`limit_process_threads`), None if it applied none.
_applied: int | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_paths(proc_cgroup: str | None) -> tuple[list[str], list[str]]:
    """This process's cgroup paths from /proc/self/cgroup: (v2 paths, v1 ``cpu`` paths)."""
    v2: list[str] = []
    v1: list[str] = []
    for line in (proc_cgroup or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2.append(path)
        elif "cpu" in controllers.split(","):
            v1.append(path)
    return v2, v1


def _quota_v2(text: str | None) -> float | None:
    fields = (text or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(quota_text: str | None, period_text: str | None) -> float | None:
    try:
        quota, period = int(quota_text or ""), int(period_text or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: Path | None = None, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (1.5 for ``150000 100000``), or None.

    Looks at the cgroup mounted at `root` (what a container sees of its own cgroup) and at
    this process's cgroup under it (`proc_cgroup`, the text of /proc/self/cgroup; read when
    None); `root` is /sys/fs/cgroup when None. For cgroup v2 ``cpu.max``, for v1
    ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (under ``cpu/`` or ``cpu,cpuacct/``);
    the smallest quota set wins.
    """
    root = _CGROUP_ROOT if root is None else root
    if proc_cgroup is None:
        proc_cgroup = _read(_PROC_CGROUP)
    v2_paths, v1_paths = _own_paths(proc_cgroup)
    quotas: list[float] = []
    for rel in {"", *(p.strip("/") for p in v2_paths)}:
        quota = _quota_v2(_read(root / rel / "cpu.max"))
        if quota is not None:
            quotas.append(quota)
    for mount in ("cpu", "cpu,cpuacct"):
        for rel in {"", *(p.strip("/") for p in v1_paths)}:
            base = root / mount / rel
            quota = _quota_v1(_read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us"))
            if quota is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None


def usable_cpus(
    root: Path | None = None, proc_cgroup: str | None = None, affinity: int | None = None
) -> int:
    """The CPUs this process can use: its affinity's count, cut to the cgroup quota rounded
    up (`cgroup_cpu_quota`), at least 1. `affinity` stands for the affinity's count (tests)."""
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except AttributeError:  # no affinity on this platform
            affinity = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_cgroup)
    count = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, count)


def _limits(threads: int, environ: Mapping[str, str], blas: bool) -> dict[str, int]:
    limits = {"openmp": threads}
    if blas:
        limits.update({api: threads for api, var in _BLAS_ENV.items() if not environ.get(var)})
    return limits


def limit_process_threads(
    root: Path | None = None,
    proc_cgroup: str | None = None,
    affinity: int | None = None,
    environ: dict[str, str] | None = None,
) -> int | None:
    """Limit this process's native thread pools to `usable_cpus`; the count, or None when
    ``OMP_NUM_THREADS`` is set (by hand, or by a retrain parent for this process): nothing
    is touched then. Meant for a process's entry point, in its main thread."""
    global _applied
    env = os.environ if environ is None else environ
    if env.get(THREADS_ENV):
        return None
    threads = usable_cpus(root, proc_cgroup, affinity)
    env[THREADS_ENV] = str(threads)
    _apply(threads, env, blas=True)
    _applied = threads
    return threads


def applied_limit() -> int | None:
    """The count `limit_process_threads` applied in this process (None: none)."""
    return _applied


def worker_threads(workers: int, environ: Mapping[str, str] | None = None) -> int | None:
    """Each of `workers` workers' share of this process's count (at least 1), or None when
    ``OMP_NUM_THREADS`` was set by hand (then every worker keeps it, as every process does).

    The count is the one this process applied, else `usable_cpus`.
    """
    env = os.environ if environ is None else environ
    if _applied is not None:
        total = _applied
    elif env.get(THREADS_ENV):
        return None
    else:
        total = usable_cpus()
    return max(1, total // max(1, workers))


def limit_this_thread(threads: int | None, *, process: bool = False) -> None:
    """Limit OpenMP in the calling thread to `threads` (None: nothing). With `process` (a
    worker process's main thread) BLAS too, and ``OMP_NUM_THREADS`` for its children."""
    if threads is None:
        return
    if process:
        global _applied
        os.environ[THREADS_ENV] = str(threads)
        _applied = threads
    _apply(threads, os.environ, blas=process)


def openmp_threads() -> int | None:
    """The threads OpenMP would start for the calling thread now (None: no OpenMP loaded)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "openmp"]
    return min(counts) if counts else None


def _apply(threads: int, environ: Mapping[str, str], *, blas: bool) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=_limits(threads, environ, blas))
