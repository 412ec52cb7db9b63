"""Benchmark how cost grows with the history kept and the number of models.

    make bench-scale   # -> benchmarks/results/scale.md (+ scale.json)
    python benchmarks/bench_scale.py --rows 20000 --output /tmp/scale.md
    python benchmarks/bench_scale.py --sections monitor   # one section; the rest kept

Three measurements, each step in a fresh process (peak RSS is the process's own ``ru_maxrss``;
the parent stays small so no child inherits a large figure):

1. **One cycle with 1, 5 and 20 history windows**: one store is seeded with 20 labelled
   windows of ``--rows`` rows (periods 0..18 committed to history directly, then a full cycle
   on period 19 registers the champion), then copied three times, keeping the newest 1, 5 or 20
   windows of history. On each copy ingest, label, train and evaluate run on period 20, each
   in its own process. The config caps the history training rows at one window
   (``training.max_history_rows: --rows``), so the row budget is the same for every history
   size and the table shows what the history's size costs beyond it. Train then runs again on
   each copy with the default training settings (no ``max_history_rows``: the budget is what
   the 80/20 mix can use, about 4.4 windows of this size), to show memory growing until the
   budget is filled and flat after.
2. **resolve and ingest with a source of 5 vs 50 windows** of ``--rows`` rows (the history
   data's windows, re-dated): ``resolve`` (window ``auto``) and ingest of the newest complete
   window, each in its own process; the whole-source read they
   replaced (`read_source`) is timed beside them.
3. **A monitor pass over 1, 10 and 50 models**: ``retrain monitor --once --launch none`` with
   a directory of configs (each model its own store and champion, copied from one trained
   store; all read the same small source), four worker processes; the 1- and 50-model passes
   run a second time on the same, unchanged stores (labelled *second pass*: stored scores
   reused); then 50 fresh copies on four threads (``--pool thread``), for the two pools side
   by side. Each count runs two ways, one right after the other on their own copies: in a
   warm process (the CLI called after the imports, as a long-running ``--every`` monitor pays
   a pass) and as the CronJob runs it (a new ``retrain`` process per pass, interpreter start
   and imports included, timed around the process). Then 50 one-model CronJob passes, one
   after another, each on its own fresh store: the setup of one CronJob per model.

Times are wall seconds of the step's function (imports excluded), except the monitor's
CronJob passes, timed around the whole process; RSS in MiB.
``--sections cycle,source`` re-measures only those sections and keeps the others' figures
from the existing results file. Each section records the commit it was measured on (short hash,
with ``+ uncommitted changes`` when tracked or new files outside ``benchmarks/results/`` differ
from it), so figures of different code are never read as one run's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from retrain._provenance import code_version  # light: the parent stays small

HERE = Path(__file__).resolve().parent
HISTORY_SIZES = (1, 5, 20)
SOURCE_SIZES = (5, 50)
#: resolve is timed this many times per source size (the fastest kept; see measure_source).
RESOLVE_ROUNDS = 7
#: ingest is timed this many times per source size (the fastest kept).
INGEST_ROUNDS = 3
MODEL_COUNTS = (1, 10, 50)
STEPS = ("ingest", "label", "train", "evaluate")
SEED_WINDOWS = max(HISTORY_SIZES)
NEW_WINDOW = SEED_WINDOWS  # period 20: the window every measured cycle ingests
MONITOR_ROWS = 2000
MONITOR_WINDOWS = 4
MONITOR_WORKERS = 4
#: How a monitor row that checks the same stores a second time is named.
SECOND_PASS = "(second pass)"
#: The CronJob's command (manifests/base/drift-monitor.yaml) from this interpreter's console
#: script, with no launch and the in-process rows' worker count and pool.
RETRAIN = Path(sys.executable).parent / "retrain"
CRONJOB_ARGS = ("monitor", "--once", "--launch", "none", "--workers", str(MONITOR_WORKERS),
                "--pool", "process")  # fmt: skip
#: One-model CronJob passes run one after another: the setup of one CronJob per model.
SEPARATE_CRONJOBS = 50
GOALS = {"train_rss": 1.2, "resolve_ingest_time": 1.5, "monitor_time": 10.0}
TARGET_ROWS = 1_000_000
#: Section names of --sections and their keys in the results.
SECTIONS = {"cycle": "history", "source": "source", "monitor": "monitor"}


def _bench_cycle() -> Any:
    sys.path.insert(0, str(HERE))  # benchmarks/ is not a package
    import bench_cycle

    return bench_cycle


# --- the child process: one measured action ---------------------------------------------------


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one action named by `spec`; its own time and peak RSS."""
    import retrain.steps as steps
    from retrain.data.io import read_source

    kind = spec["kind"]
    text = Path(spec["config"]).read_text() if "config" in spec else ""
    t = Path(spec.get("tmp", "."))
    window, run_id = str(spec.get("window", "")), spec.get("run_id", "bench")
    out: dict[str, Any] = {}
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    if kind == "data":
        _write_data(spec)
    elif kind == "seed_history":
        _seed_history(text, int(spec["periods"]))
    elif kind == "source_data":
        _source_data(Path(spec["from"]), Path(spec["dir"]), int(spec["periods"]))
    elif kind == "ingest":
        steps.ingest(text, window, run_id, str(t / "dataset.parquet"))
    elif kind == "label":
        steps.label(
            text,
            window,
            run_id,
            str(t / "dataset.parquet"),
            str(t / "labelled.parquet"),
            str(t / "queue.parquet"),
        )
    elif kind == "train":
        model, hold = (str(t / f"{name}{spec.get('suffix', '')}") for name in ("model", "hold"))
        o = steps.train(text, window, run_id, str(t / "labelled.parquet"), model, hold)
        out["provenance"] = {
            k: o.details["provenance"].get(k) for k in ("history_rows", "new_rows", "history_load")
        }
    elif kind == "evaluate":
        out["blessed"] = steps.evaluate(text, run_id, str(t / "model"), str(t / "hold")).blessed
    elif kind == "cycle":
        from retrain.config import config_from_text
        from retrain.runner import run_cycle

        out["exit_code"], out["lines"] = 0, []
        for w in str(window).split(","):  # one or more cycles, one after another
            result = run_cycle(config_from_text(text), w, engine="direct", run_id=f"{run_id}-{w}")
            out["exit_code"] = max(out["exit_code"], result.exit_code)
            out["lines"] = result.lines()
    elif kind == "resolve":
        o = steps.resolve_run(text, "auto", "auto", job_id="bench", kfp_run=False)
        out["window"] = o.window_id
    elif kind == "read_source":
        cfg = yaml.safe_load(text)
        out["rows"] = len(read_source(cfg["data"]["uri"], "parquet"))
    elif kind == "monitor":
        from retrain.cli import main as cli

        options = ["--once", "--launch", "none", "--workers", str(MONITOR_WORKERS)]
        options += ["--pool", spec.get("pool", "process")]
        out["exit_code"] = cli(["monitor", *options, "--config", spec["configs"]])
    else:
        raise SystemExit(f"unknown action {kind}")
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = _cpu_seconds() - cpu0
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The largest of the ended child processes (the monitor's worker processes).
    out["child_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def _cpu_seconds() -> float:
    """CPU seconds of every thread of this process and of its ended, waited-for children (the
    monitor's worker processes)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _seed_history(config_yaml: str, periods: int) -> None:
    """Labelled windows ``0..periods-1`` straight into the history store (setup, not measured).

    What ingest and label would commit, without their reports, drift profile and the full read
    of the label source per window, which make seeding twenty windows slow.
    """
    import pandas as pd

    from retrain.config import config_from_text
    from retrain.data.history import commit_history
    from retrain.data.ingest import ingest_window
    from retrain.data.io import content_sha256
    from retrain.data.source import read_window
    from retrain.data.windows import parse_window
    from retrain.labels.join import join_labels
    from retrain.storage import open_storage

    cfg = config_from_text(config_yaml)
    store = open_storage(cfg.storage_root)
    for period in range(periods):
        window = parse_window(cfg.data, str(period))
        part, facts = read_window(cfg.data.uri, cfg.data.format, cfg.data, window)
        events = ingest_window(cfg, part, window, None, facts=facts).data
        labels = pd.read_parquet(Path(cfg.labels.uri) / f"period-{period:03d}.parquet")
        labelled = join_labels(cfg, events, labels).labelled
        commit_history(store, window.id, labelled, {"sha256": content_sha256(labelled)})


def _source_data(history: Path, root: Path, periods: int) -> None:
    """A source of `periods` windows made of the history data's windows, re-dated in turn."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((history / "events").glob("*.parquet"))
    (root / "events").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for period in range(periods):
        table = pq.read_table(files[period % len(files)])
        at = table.schema.get_field_index("period")
        column = pa.array([period] * table.num_rows, type=pa.int64())
        name = f"period-{period:03d}.parquet"
        pq.write_table(table.set_column(at, "period", column), root / "events" / name)


def _write_data(spec: dict[str, Any]) -> None:
    """Events and labels of periods ``0..periods-1``, one file per period (bench_cycle's case)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bc = _bench_cycle()
    numeric, categorical = bc.feature_layout(spec["features"])
    case = bc.Case(spec["rows"], spec["rows"], numeric, categorical, seed=7)
    root = Path(spec["dir"])
    for sub in ("events", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for period in range(spec["periods"]):
        events, labels = bc.make_window(case, period, spec["rows"])
        name = f"period-{period:03d}.parquet"
        pq.write_table(pa.Table.from_pandas(events, preserve_index=False), root / "events" / name)
        pq.write_table(pa.Table.from_pandas(labels, preserve_index=False), root / "labels" / name)


def run(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """`spec` in a fresh process; what it measured."""
    spec_path = Path(tempfile.mkstemp(dir=work, suffix=".json")[1])
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    result_path = spec_path.with_suffix(".out.json")
    if proc.returncode != 0 or not result_path.exists():
        raise SystemExit(
            f"{spec['kind']} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    measured: dict[str, Any] = json.loads(result_path.read_text())
    return measured


# --- setups --------------------------------------------------------------------------------------


def _config(rows: int, data: Path, store: Path, name: str = "bench") -> dict[str, Any]:
    bc = _bench_cycle()
    numeric, categorical = bc.feature_layout(20)
    case = bc.Case(rows, rows, numeric, categorical, seed=7)
    cfg: dict[str, Any] = bc.case_config(case, str(store), str(store.parent / "gitops"), data)
    cfg["name"] = name
    return cfg


def _write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _steps(cfg_path: Path, window: int, work: Path, run_id: str) -> dict[str, dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(dir=work, prefix=f"{run_id}-"))
    base = {"config": str(cfg_path), "window": window, "run_id": run_id, "tmp": str(tmp)}
    return {step: run({**base, "kind": step}, work) for step in STEPS}


def measure_history(rows: int, work: Path) -> dict[str, Any]:
    """One cycle on period 20 with 1, 5 and 20 windows of history."""
    data = work / "history-data"
    run({"kind": "data", "dir": str(data), "rows": rows, "features": 20,
         "periods": NEW_WINDOW + 1}, work)  # fmt: skip
    seed = work / "seed"
    cfg_path = _write_config(seed / "bench.yaml", _config(rows, data, seed / "store"))
    tmp = Path(tempfile.mkdtemp(dir=work))
    spec = {"config": str(cfg_path), "periods": SEED_WINDOWS - 1, "tmp": str(tmp)}
    run({**spec, "kind": "seed_history"}, work)
    last = SEED_WINDOWS - 1
    cycle = run({"kind": "cycle", "config": str(cfg_path), "window": last,
                 "run_id": f"seed-{last}"}, work)  # fmt: skip
    deployed = any(ln.split()[:2] == ["deploy", "ok"] for ln in cycle["lines"])
    if cycle["exit_code"] != 0 or not deployed:
        raise SystemExit("seeding did not deploy a champion:\n" + "\n".join(cycle["lines"]))
    out = {}
    for size in HISTORY_SIZES:
        d = work / f"history-{size}"
        shutil.copytree(seed / "store", d / "store")
        shutil.copytree(seed / "gitops", d / "gitops")
        for period in range(SEED_WINDOWS - size):
            shutil.rmtree(d / "store" / "datasets" / str(period))
        path = _write_config(d / "bench.yaml", _config(rows, data, d / "store"))
        out[str(size)] = _steps(path, NEW_WINDOW, work, f"h{size}")
        print(f"history {size}: " + _line(out[str(size)]), flush=True)
    for size in HISTORY_SIZES:  # the same labelled window, trained with no row cap
        d = work / f"history-{size}"
        cfg = _config(rows, data, d / "store")
        cfg["training"] = {"max_train_rows": None}
        path = _write_config(d / "uncapped.yaml", cfg)
        tmp = next(work.glob(f"h{size}-*"))
        spec = {"config": str(path), "window": NEW_WINDOW, "run_id": f"u{size}", "tmp": str(tmp)}
        out[str(size)]["train_uncapped"] = run({**spec, "kind": "train", "suffix": "-u"}, work)
        print(f"history {size}, no row cap: " + _line(
            {"train": out[str(size)]["train_uncapped"]}), flush=True)  # fmt: skip
    return out


def measure_source(rows: int, work: Path) -> dict[str, Any]:
    """resolve and ingest with 5 and 50 windows in the source."""
    data = work / "source-data"
    run({"kind": "source_data", "from": str(work / "history-data"), "dir": str(data),
         "periods": max(SOURCE_SIZES)}, work)  # fmt: skip
    out: dict[str, Any] = {}
    configs = {}
    for size in SOURCE_SIZES:
        d = work / f"source-{size}"
        (d / "data" / "labels").mkdir(parents=True)  # resolve and ingest read no labels
        (d / "data" / "events").mkdir(parents=True)
        for period in range(size):
            name = f"period-{period:03d}.parquet"
            os.link(data / "events" / name, d / "data" / "events" / name)
        configs[size] = _write_config(d / "bench.yaml", _config(rows, d / "data", d / "store"))
    # One run of a step is within a shared machine's noise (resolve takes tens of
    # milliseconds; ingest's time moved 1.6x between two runs of the same code with other work
    # on the machine): each size is measured several times, the sizes side by side and their
    # order reversed every other round, and each step's fastest round is kept.
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for i in range(RESOLVE_ROUNDS):
        for size in SOURCE_SIZES if i % 2 == 0 else SOURCE_SIZES[::-1]:
            spec = {"kind": "resolve", "config": str(configs[size])}
            rounds.setdefault(("resolve", size), []).append(run(spec, work))
    for size in SOURCE_SIZES:
        windows = {r["window"] for r in rounds["resolve", size]}
        if len(windows) != 1:
            raise SystemExit(f"resolve chose different windows over its rounds: {windows}")
    for i in range(INGEST_ROUNDS):
        for size in SOURCE_SIZES if i % 2 == 0 else SOURCE_SIZES[::-1]:
            tmp = Path(tempfile.mkdtemp(dir=work))
            window = rounds["resolve", size][0]["window"]
            spec = {"kind": "ingest", "config": str(configs[size]), "tmp": str(tmp),
                    "window": window, "run_id": f"s{size}-{i}"}  # fmt: skip
            rounds.setdefault(("ingest", size), []).append(run(spec, work))
            shutil.rmtree(tmp)
    for size in SOURCE_SIZES:
        fastest = {
            step: {
                **min(rounds[step, size], key=lambda r: r["seconds"]),
                "rounds_seconds": [r["seconds"] for r in rounds[step, size]],
            }
            for step in ("resolve", "ingest")
        }
        whole = run({"kind": "read_source", "config": str(configs[size])}, work)
        out[str(size)] = {**fastest, "read_source": whole}
        print(f"source {size}: " + _line(out[str(size)]), flush=True)
    return out


def measure_monitor(work: Path) -> dict[str, Any]:
    """A monitor pass over 1, 10 and 50 models, each with its own store and champion: in a warm
    process and as the CronJob runs it, side by side; and fifty one-model CronJob passes."""
    if not RETRAIN.exists():
        raise SystemExit(f"no `retrain` console script beside {sys.executable}: install retrain")
    data = work / "monitor-data"
    # One period more than the monitored ones: a check judges the newest window that is over,
    # before the source's last (which may still be filling), so it judges period
    # MONITOR_WINDOWS - 1, the first after the champion's training windows.
    run({"kind": "data", "dir": str(data), "rows": MONITOR_ROWS, "features": 20,
         "periods": MONITOR_WINDOWS + 1}, work)  # fmt: skip
    first = work / "monitor-seed"
    path = _write_config(first / "m000.yaml", _config(MONITOR_ROWS, data, first / "store", "m000"))
    windows = ",".join(str(p) for p in range(MONITOR_WINDOWS - 1))
    done = run({"kind": "cycle", "config": str(path), "window": windows, "run_id": "m"}, work)
    if done["exit_code"] != 0:
        raise SystemExit("seeding the monitor's model failed:\n" + "\n".join(done["lines"]))
    warm: dict[str, Any] = {}
    cronjob: dict[str, Any] = {}
    largest = max(MODEL_COUNTS)
    for count in MODEL_COUNTS:
        pool = "process" if count > 1 else "none (one model)"
        # Each way on its own fresh copies, one right after the other, so both meet the same
        # load on the machine.
        configs = _monitor_models(work, data, first, count, f"models-{count}")
        job_configs = _monitor_models(work, data, first, count, f"cronjob-{count}")
        passes = ("", f" {SECOND_PASS}") if count in (min(MODEL_COUNTS), largest) else ("",)
        for suffix in passes:  # the second: the same stores again, unchanged (the next --once)
            row = f"{count}{suffix}"
            warm[row] = {**run({"kind": "monitor", "configs": str(configs)}, work), "pool": pool}
            cronjob[row] = {**cronjob_pass(job_configs, work), "pool": pool}
            for way, r in (("in process", warm[row]), ("as a CronJob", cronjob[row])):
                if r["exit_code"] != 0:
                    raise SystemExit(f"the monitor pass over {row} models {way} failed")
            print(f"monitor {row}: {warm[row]['seconds']:.2f} s in process, "
                  f"{cronjob[row]['seconds']:.2f} s as a CronJob", flush=True)  # fmt: skip
    # The largest first pass again on threads, on fresh copies: the pools side by side.
    configs = _monitor_models(work, data, first, largest, f"threads-{largest}")
    spec = {"kind": "monitor", "configs": str(configs), "pool": "thread"}
    warm[f"{largest} (threads)"] = {**run(spec, work), "pool": "thread"}
    print(f"monitor {largest} on threads: {warm[f'{largest} (threads)']['seconds']:.2f} s")
    separate = _separate_cronjobs(work, data, first)
    return {"in_process": warm, "cronjob": cronjob, "separate": separate}


def _separate_cronjobs(work: Path, data: Path, first: Path) -> dict[str, Any]:
    """`SEPARATE_CRONJOBS` one-model CronJob passes, one after another, each model its own
    fresh store: what one CronJob per model costs a pass (first passes, then second ones)."""
    dirs = [
        _monitor_models(work, data, first, 1, f"separate-{k:03d}") for k in range(SEPARATE_CRONJOBS)
    ]
    out: dict[str, Any] = {"runs": SEPARATE_CRONJOBS}
    for name in ("first", "second"):
        each = [cronjob_pass(configs, work) for configs in dirs]
        if any(r["exit_code"] != 0 for r in each):
            raise SystemExit(f"a one-model CronJob pass ({name}) failed")
        out[name] = {
            "seconds": sum(r["seconds"] for r in each),
            "cpu_seconds": sum(r["cpu_seconds"] for r in each),
            "rss_mib": max(r["rss_mib"] for r in each),
            "seconds_each": [r["seconds"] for r in each],
            "cpu_seconds_each": [r["cpu_seconds"] for r in each],
        }
        total = f"{out[name]['seconds']:.1f} s, {out[name]['cpu_seconds']:.1f} CPU s"
        print(f"{SEPARATE_CRONJOBS} one-model CronJobs, {name} pass: {total}", flush=True)
    return out


def cronjob_pass(configs: Path, work: Path) -> dict[str, Any]:
    """One pass as the CronJob runs it: `retrain monitor --once` started as a new process from
    the console script, timed around the process (interpreter start and imports included).

    CPU is the process's and its worker processes' (all waited for), from the parent's
    ``RUSAGE_CHILDREN``; peak RSS is the largest of them (``wait4``'s usage of the process).
    """
    command = [str(RETRAIN), *CRONJOB_ARGS, "--config", str(configs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # as run() has
    with (work / "cronjob.log").open("ab") as log:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": proc.returncode,
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "rss_mib": usage.ru_maxrss / 1024,
    }


def _monitor_models(work: Path, data: Path, first: Path, count: int, name: str) -> Path:
    """A directory of `count` configs, each model with a fresh copy of the seeded store (its
    champion) and no GitOps repository yet; all read the same source."""
    configs = work / name
    for k in range(count):
        model = f"m{k:03d}"
        store = work / "model-stores" / f"{name}-{model}" / "store"
        shutil.copytree(first / "store", store, ignore=shutil.ignore_patterns("runs"))
        if model != "m000":
            (store / "models" / "m000").rename(store / "models" / model)
        _write_config(configs / f"{model}.yaml", _config(MONITOR_ROWS, data, store, model))
    return configs


def _line(measured: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v['seconds']:.1f} s / {v['rss_mib']:.0f} MiB" for k, v in measured.items()
    )


# --- report --------------------------------------------------------------------------------------


def _when(results: dict[str, Any], key: str) -> str:
    """When and at what size a section was measured."""
    m = results.get("measured", {}).get(key) or {}
    commit = f"commit `{m['commit']}`" if m.get("commit") else "a commit not recorded"
    when = f"Measured {m.get('date')} on {commit}, {m.get('machine')} (`--rows {m.get('rows')}`)."
    if m.get("load"):  # a shared machine: what else ran shows in the wall times
        start, end = m["load"]
        when += (
            f" The machine was shared with other work: load average {start:.1f} at the start,"
            f" {end:.1f} at the end, so wall times include waiting for a core."
        )
    return when


def _history_rows(measured: dict[str, Any]) -> str:
    provenance = measured.get("provenance", {})
    read = (provenance.get("history_load") or {}).get("loaded_rows", "all")
    return f"{provenance.get('history_rows')} used, {read} read"


def _training_rows(measured: dict[str, Any]) -> int:
    provenance = measured.get("provenance", {})
    return int(provenance.get("history_rows") or 0) + int(provenance.get("new_rows") or 0)


def _size_note(results: dict[str, Any]) -> str:
    """Why a run below the target size: what the measured sections took at that size."""
    measured = results.get("measured", {})
    rows = (measured.get("history") or {}).get("rows") or 0
    took = sum((measured.get(k) or {}).get("seconds") or 0 for k in ("history", "source"))
    if rows >= TARGET_ROWS or not took:
        return ""
    return (
        f" Not the {TARGET_ROWS:,} rows of the target: at this size the cycle and source "
        f"sections took {took / 60:.0f} min of wall time on this shared machine, and they grow "
        "about linearly with the rows."
    )


def _provenance(results: dict[str, Any]) -> str:
    """Whether every section was measured on one commit, and which."""
    measured = results.get("measured", {})
    commits = {(measured.get(key) or {}).get("commit") for key in SECTIONS.values()}
    if len(commits) == 1 and None not in commits:
        return f"Every section measured on one commit, `{commits.pop()}`."
    return (
        "The sections were not all measured on one commit (each says which): their figures "
        "come from different code."
    )


def _goal(ratio: float, goal: float) -> str:
    return "met" if ratio <= goal else "not met"


def _pass_ratios(rows: dict[str, Any]) -> dict[str, dict[str, float]]:
    """50-model pass / 1-model pass, wall and CPU, first and (where measured) second pass."""
    out = {}
    for name, suffix in (("first", ""), ("second", f" {SECOND_PASS}")):
        one, fifty = rows.get(f"1{suffix}"), rows.get(f"50{suffix}")
        if one and fifty:
            out[name] = {
                "wall": fifty["seconds"] / one["seconds"],
                "cpu": fifty["cpu_seconds"] / one["cpu_seconds"],
            }
    return out


def _ratio_line(ratios: dict[str, dict[str, float]]) -> str:
    return "; ".join(
        f"{name} pass **{r['wall']:.1f}×** wall, **{r['cpu']:.1f}×** CPU"
        for name, r in ratios.items()
    )


def _met(ratio: float) -> str:
    return _goal(ratio, GOALS["monitor_time"])


def _render_monitor(results: dict[str, Any]) -> list[str]:
    """The monitor section: the CronJob pass (compared with the goal), fifty one-model
    CronJobs, and the warm in-process pass; the ratios go into `results`."""
    m = results["monitor"]
    job, warm, separate = m["cronjob"], m["in_process"], m["separate"]
    goal = GOALS["monitor_time"]
    job_ratios, warm_ratios = _pass_ratios(job), _pass_ratios(warm)
    lines = [
        f"## A monitor pass over 1, 10 and 50 models ({MONITOR_WORKERS} workers, "
        f"{MONITOR_ROWS:,} rows per window)",
        "",
        _when(results, "monitor"),
        "",
        "Each count is measured two ways, one right after the other, each on its own fresh "
        "copies of the stores (each model its own store and champion). A first pass loads "
        "every champion and scores the window, and creates and commits every model's GitOps "
        "repository. A row marked *second pass* checks the same stores again right after, "
        "nothing changed (the next `--once` pass of a CronJob): each model reuses its stored "
        "champion scores and finds its GitOps tree as it left it. More than one model: "
        "worker processes (`--pool process`).",
        "",
        "### As the CronJob runs it (the figure compared with the goal)",
        "",
        f"Each pass is a new process, `retrain {' '.join(CRONJOB_ARGS)} --config DIR` from the "
        "`retrain` console script (the manifests' CronJob command, with no launch and the "
        "in-process rows' worker count), timed around the process: it includes the "
        "interpreter start and the imports, which one CronJob per model would pay once per "
        "model (fifty times for fifty models). CPU is the process's and its workers' "
        "(`RUSAGE_CHILDREN`); peak RSS is the largest of them.",
        "",
        "| models | pass s | CPU s (process and workers) | peak RSS MiB (largest process) |",
        "|---:|---:|---:|---:|",
    ]
    for count, r in job.items():
        lines.append(
            f"| {count} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['rss_mib']:.0f} |"
        )
    first = job_ratios["first"]
    lines += [
        "",
        f"50-model CronJob pass / 1-model CronJob pass: {_ratio_line(job_ratios)}. Goal "
        f"≤ {goal}× (compared with the CronJob's first pass): **{_met(first['wall'])}** in "
        f"wall time, **{_met(first['cpu'])}** in CPU, with the process start counted (it is "
        "part of what each CronJob pays); on the passes' own work, the warm in-process ratio "
        f"(below): {_ratio_line(warm_ratios)}, against the same goal "
        f"**{_met(warm_ratios['first']['wall'])}** in wall time, "
        f"**{_met(warm_ratios['first']['cpu'])}** in CPU.",
        "",
        f"### {separate['runs']} CronJobs of one model each (the setup one pass over every "
        "model replaces)",
        "",
        f"All {separate['runs']} one-model CronJob passes measured (none extrapolated), one "
        "after another, each model on its own fresh store; their first passes, then their "
        "second passes. Seconds are the sum of the processes' wall times (the pod time a "
        "platform pays), CPU the sum of theirs.",
        "",
        f"| pass | {separate['runs']} × 1 model: s | CPU s | largest peak RSS MiB | "
        f"one {separate['runs']}-model pass: s | CPU s | one pass / {separate['runs']} "
        "passes: wall | CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    versus = {}
    for name, suffix in (("first", ""), ("second", f" {SECOND_PASS}")):
        many, one = separate[name], job[f"{separate['runs']}{suffix}"]
        versus[name] = {
            "wall": one["seconds"] / many["seconds"],
            "cpu": one["cpu_seconds"] / many["cpu_seconds"],
        }
        lines.append(
            f"| {name} | {many['seconds']:.1f} | {many['cpu_seconds']:.1f} | "
            f"{many['rss_mib']:.0f} | {one['seconds']:.2f} | {one['cpu_seconds']:.2f} | "
            f"{versus[name]['wall']:.2f}× | {versus[name]['cpu']:.2f}× |"
        )
    lines += [
        "",
        f"One {separate['runs']}-model CronJob pass takes "
        f"{versus['first']['wall']:.0%} of the wall time and {versus['first']['cpu']:.0%} of "
        f"the CPU of {separate['runs']} one-model CronJob passes (first passes; second "
        f"passes {versus['second']['wall']:.0%} and {versus['second']['cpu']:.0%}).",
        "",
        "### In a warm process: what `retrain monitor --every` pays a pass",
        "",
        "The CLI called in a process that has already imported `retrain.steps`, pandas and "
        "scikit-learn; the timer covers the pass only, not the interpreter start or the "
        "imports: what a long-running `retrain monitor --every` pays each pass. The threads "
        "row (`--pool thread`) is a first pass on fresh copies, run last.",
        "",
        "| models | pass s | CPU s (all threads and workers) | peak RSS MiB | "
        "largest worker's peak RSS MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for count, r in warm.items():
        child = f"{r['child_rss_mib']:.0f}" if r.get("pool") == "process" else "–"
        cells = f"{r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['rss_mib']:.0f} | {child}"
        lines.append(f"| {count} | {cells} |")
    saved = 1 - warm[f"50 {SECOND_PASS}"]["cpu_seconds"] / warm["50"]["cpu_seconds"]
    lines += [
        "",
        f"50-model pass / 1-model pass in a warm process: {_ratio_line(warm_ratios)} (not the "
        f"figure compared with the goal); the 50-model second pass takes {saved:.0%} less CPU "
        "than the first.",
    ]
    results.pop("ratios_second_pass", None)  # the warm pass's, before both were measured
    results["monitor_ratios"] = {
        "compared_with_goal": "cronjob first pass, wall",
        "cronjob": job_ratios,
        "in_process": warm_ratios,
        f"cronjob_{separate['runs']}_models_over_{separate['runs']}_one_model_cronjobs": versus,
    }
    return lines


def render(results: dict[str, Any]) -> str:
    """The Markdown report of `results`."""
    h, s = results["history"], results["source"]
    rows = (results.get("measured", {}).get("history") or {}).get("rows") or results["rows"]
    lines = [
        "# Scale: cost by history kept and by number of models",
        "",
        "`python benchmarks/bench_scale.py --rows N [--sections ...]`: 20 features (16 numeric, "
        "4 categorical); each step in its own process, one BLAS thread; times exclude imports "
        "(but for the monitor's CronJob passes, which time the whole process). "
        "Each section says when, on which commit and at what size it was measured. "
        + _provenance(results),
        "",
        "## One cycle with 1, 5 and 20 history windows (default settings)",
        "",
        _when(results, "history") + f" {rows:,} rows per window." + _size_note(results),
        "",
        "| history windows | " + " | ".join(f"{st} s / MiB" for st in STEPS) + " | history rows |",
        "|---:|" + "---:|" * (len(STEPS) + 1),
    ]
    for size, steps in h.items():
        cells = [f"{steps[st]['seconds']:.1f} / {steps[st]['rss_mib']:.0f}" for st in STEPS]
        lines.append(f"| {size} | " + " | ".join(cells) + f" | {_history_rows(steps['train'])} |")
    train_ratio = h["20"]["train"]["rss_mib"] / h["1"]["train"]["rss_mib"]
    capped = {k: _training_rows(h[k]["train"]) for k in ("1", "20")}
    lines += [
        "",
        f"Train's peak RSS with 20 windows / with 1: **{train_ratio:.2f}×** "
        f"(goal ≤ {GOALS['train_rss']}×: **{_goal(train_ratio, GOALS['train_rss'])}**) under "
        "the defaults, where one training fits at most `training.max_train_rows` (1,000,000) "
        f"rows: {capped['1']:,} training rows with one window, {capped['20']:,} with 20.",
    ]
    if all("train_uncapped" in steps for steps in h.values()):
        lines += [
            "",
            "The same windows trained with no row cap (`training.max_train_rows: null`: the "
            "budget is what the 80/20 mix can use, about 4.4 windows of this size):",
            "",
            "| history windows | train s / MiB | history rows |",
            "|---:|---:|---:|",
        ]
        for size, steps in h.items():
            d = steps["train_uncapped"]
            lines.append(
                f"| {size} | {d['seconds']:.1f} / {d['rss_mib']:.0f} | {_history_rows(d)} |"
            )
        flat = h["20"]["train_uncapped"]["rss_mib"] / h["5"]["train_uncapped"]["rss_mib"]
        grow = h["20"]["train_uncapped"]["rss_mib"] / h["1"]["train_uncapped"]["rss_mib"]
        rows = {k: _training_rows(h[k]["train_uncapped"]) for k in ("1", "20")}
        per_row = (h["20"]["train_uncapped"]["rss_mib"] - h["1"]["train_uncapped"]["rss_mib"]) * (
            1024 / (rows["20"] - rows["1"])
        )
        results["uncapped"] = {
            "rss_20_over_5": flat,
            "rss_20_over_1": grow,
            "kib_per_training_row": per_row,
        }
        lines += [
            "",
            f"With no row cap: train's peak RSS with 20 windows / with 5: **{flat:.2f}×** (flat "
            f"once the history fills the mix's budget); with 20 / with 1: {grow:.2f}× (one "
            "window of history is below that budget). Peak RSS per training row (the slope "
            f"from {rows['1']:,} to {rows['20']:,} training rows): **{per_row:.2f} KiB**.",
        ]
    lines += [
        "",
        "## resolve and ingest with a source of 5 vs 50 windows",
        "",
        _when(results, "source"),
        "",
        "| windows in the source | resolve s / MiB | ingest s / MiB | whole-source read "
        "(before) s / MiB |",
        "|---:|---:|---:|---:|",
    ]
    for size, r in s.items():
        cells = [
            f"{r[k]['seconds']:.2f} / {r[k]['rss_mib']:.0f}"
            for k in ("resolve", "ingest", "read_source")
        ]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    both = {k: s[k]["resolve"]["seconds"] + s[k]["ingest"]["seconds"] for k in s}
    src_ratio = both["50"] / both["5"]
    resolve_ratio = s["50"]["resolve"]["seconds"] / s["5"]["resolve"]["seconds"]
    lines += [
        "",
        f"resolve + ingest at 50 windows / at 5: **{src_ratio:.2f}×** "
        f"(goal ≤ {GOALS['resolve_ingest_time']}×: "
        f"**{_goal(src_ratio, GOALS['resolve_ingest_time'])}**); resolve alone: "
        f"{resolve_ratio:.2f}× (against the same goal read step by step: "
        f"**{_goal(resolve_ratio, GOALS['resolve_ingest_time'])}**).",
    ]
    for step in ("resolve", "ingest"):
        if all("rounds_seconds" in s[k][step] for k in s):
            spread = "; ".join(
                f"{k} windows {min(r):.3f}–{max(r):.3f} s"
                for k, r in ((k, s[k][step]["rounds_seconds"]) for k in s)
            )
            lines.append(
                f"{step} is the fastest of {len(s['5'][step]['rounds_seconds'])} rounds per "
                f"size, the sizes side by side ({spread})."
            )
    lines += ["", *_render_monitor(results), ""]
    monitor = results["monitor_ratios"]["cronjob"]["first"]["wall"]  # the CronJob pass
    results["ratios"] = {"train_rss": train_ratio, "resolve_ingest_time": src_ratio,
                         "monitor_time": monitor}  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows per window")
    p.add_argument("--output", default=str(HERE / "results" / "scale.md"))
    p.add_argument("--workdir", help="keep the work here (default: a temporary directory)")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated sections to measure (others keep their figures from the results"
        " file): " + ", ".join(SECTIONS),
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sections = [SECTIONS.get(x.strip(), x.strip()) for x in args.sections.split(",") if x.strip()]
    if not sections or set(sections) - set(SECTIONS.values()):
        p.error(f"--sections must name some of {', '.join(SECTIONS)}")
    if args.child:
        spec_path = Path(args.child)
        result = _child(json.loads(spec_path.read_text()))
        spec_path.with_suffix(".out.json").write_text(json.dumps(result, default=str))
        return 0
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    out = Path(args.output)
    kept = out.with_suffix(".json")
    results: dict[str, Any] = json.loads(kept.read_text()) if kept.exists() else {}
    missing = [k for k in SECTIONS if k not in sections and SECTIONS[k] not in results]
    if missing:
        p.error(f"no earlier results for sections {missing} in {kept}: measure them too")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="retrain-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    measured = results.setdefault("measured", {})
    for key in SECTIONS.values():  # figures of an earlier run say when and how they were made
        measured.setdefault(key, {k: results.get(k) for k in ("rows", "machine", "date")})
    if "source" in sections and "cycle" not in sections and not (work / "history-data").exists():
        p.error("the source section re-dates the cycle section's data: run both, or --workdir")
    for name in sections:
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        commit = code_version()
        key = SECTIONS[name]
        if name == "cycle":
            results[key] = measure_history(args.rows, work)
        elif name == "source":
            results[key] = measure_source(args.rows, work)
        else:
            results[key] = measure_monitor(work)
        measured[key] = {"rows": args.rows, "machine": machine, "date": today, "commit": commit,
                         "seconds": time.perf_counter() - t0,
                         "load": [load0, os.getloadavg()[0]]}  # fmt: skip
    results.update({"rows": args.rows, "machine": machine, "date": today})
    markdown = render(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    print(markdown)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
