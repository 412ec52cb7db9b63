"""Benchmark one retraining cycle at scale, with the kfp-local and direct engines side by side.

    make bench    # 1,000,000 rows x 20 features -> benchmarks/results/cycle.md (+ cycle.json)
    python benchmarks/bench_cycle.py --rows 20000 --max-wait-idle 0 --output /tmp/cycle.md

What it does, in order:

1. Writes a synthetic classification use case into a work directory: seeded numpy data as
   Parquet events and late labels for two integer periods, and a config YAML. Period 0 is the
   history; period 1 is the new window of ``--rows`` rows. The target is a known non-linear
   function of the features plus logistic noise; period 1 shifts two features (data drift) and
   adds an effect where the shifted feature now lies (concept drift), so the challenger has
   something to learn. The data are written by a child process (see `_generate`).
2. Seeds the store outside the measurement: one direct-engine cycle on period 0 infers the
   schema, puts period 0 into history and deploys the first champion. The seeded store and
   GitOps repository are copied once per engine, so each engine starts from the same state.
3. Measures one full cycle on period 1 per engine, each in a fresh worker process, so the
   peak-memory figures belong to that engine alone. The worker imports the library first and
   then times `retrain.runner.run_cycle`; step times come from the run records every step
   writes (``runs/<run_id>/<step>.json``, key ``seconds``).
4. Writes a Markdown table and the same numbers as JSON (the output path with ``.json``).

Orchestration overhead is the cycle's wall time minus the sum of its step times: for kfp-local
that is compiling the pipeline, starting one Python process per step, importing the library in
each, and passing artifacts between steps.
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
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from retrain.runner import STEP_ORDER

__all__ = [
    "ENGINES",
    "STEPS",
    "Case",
    "case_config",
    "default_history_rows",
    "feature_layout",
    "machine_facts",
    "main",
    "make_window",
    "render_markdown",
    "summarise_engine",
    "write_case",
]

ENGINES = ("kfp-local", "direct")
#: The cycle's steps in order, as the runner reports them.
STEPS = STEP_ORDER

#: Overhead budget of the kfp-local engine, as a share of the cycle's wall time.
OVERHEAD_GOAL = 0.10
#: Share of events whose label never arrives (they go to the labelling queue).
UNLABELLED_SHARE = 0.03
HISTORY_PERIOD, NEW_PERIOD = 0, 1
#: Levels of the categorical features, cycled through when there are more than four.
_LEVELS = (5, 8, 12, 3)
_MODEL_PARAMS = {
    "max_iter": 100,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    # Fixed work per fit: with early stopping on, the time would depend on when it stops.
    "early_stopping": False,
}
# The config's defaults, restated here to size the history for the 80/20 mix.
_HISTORICAL_SHARE = 0.8
_RECENT_HOLDOUT = 0.25
_HISTORY_HOLDOUT_ROWS = 2000


@dataclass(frozen=True)
class Case:
    """The synthetic use case: sizes, feature layout and seed."""

    rows: int
    history_rows: int
    numeric: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]]
    seed: int = 7

    @property
    def features(self) -> dict[str, str]:
        out = dict.fromkeys(self.numeric, "numeric")
        out.update(dict.fromkeys(self.categorical, "categorical"))
        return out


def feature_layout(features: int) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Names of `features` features: four in five numeric, the rest categorical (at least one).

    20 features give 16 numeric (``num_00``..``num_15``) and 4 categorical (``cat_0``..).
    """
    if features < 2:
        raise ValueError(
            f"features must be at least 2 (one numeric, one categorical), got {features}"
        )
    n_cat = max(1, features // 5)
    numeric = tuple(f"num_{i:02d}" for i in range(features - n_cat))
    categorical = {
        f"cat_{i}": tuple(f"c{i}_{k}" for k in range(_LEVELS[i % len(_LEVELS)]))
        for i in range(n_cat)
    }
    return numeric, categorical


def default_history_rows(rows: int) -> int:
    """History rows that let the default mix reach its 80 % share of history.

    The new window keeps 75 % of its rows for training (25 % is the recent holdout); at an
    80/20 mix training takes four history rows per new row, after the history holdout.
    """
    new_train = rows - round(rows * _RECENT_HOLDOUT)
    wanted = round(new_train * _HISTORICAL_SHARE / (1.0 - _HISTORICAL_SHARE))
    return wanted + _HISTORY_HOLDOUT_ROWS


def make_window(case: Case, period: int, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and labels of one period; the same case and period give the same frames.

    Events: ``event_id`` (text), ``period`` (int) and the features. Labels: ``event_id``,
    ``label`` (0/1) and ``labelled_at`` (the next period), with ~3 % of events never labelled.
    """
    rng = np.random.default_rng([case.seed, period])
    z = rng.standard_normal((rows, len(case.numeric)))
    drifted = period >= NEW_PERIOD
    if drifted:
        # Data drift the ingest report and a drift monitor can see.
        z[:, 0] += 0.5
        if z.shape[1] > 1:
            z[:, 1] *= 1.2
    # Each numeric feature gets its own location and scale, fixed by the case's seed.
    layout = np.random.default_rng([case.seed, 1_000])
    loc = layout.uniform(-50.0, 50.0, size=len(case.numeric))
    scale = layout.uniform(0.5, 20.0, size=len(case.numeric))
    events: dict[str, Any] = {
        "event_id": [f"e{period}-{i:08d}" for i in range(rows)],
        "period": np.full(rows, period, dtype=np.int64),
    }
    for j, name in enumerate(case.numeric):
        events[name] = loc[j] + scale[j] * z[:, j]
    codes = {}
    for name, levels in case.categorical.items():
        # Skewed but with every level common enough to appear in any window of 1,000 rows.
        weights = 1.0 / np.arange(1, len(levels) + 1)
        codes[name] = rng.choice(len(levels), size=rows, p=weights / weights.sum())
        events[name] = np.asarray(levels, dtype=object)[codes[name]]
    first = next(iter(case.categorical))
    logit = _concept(z, codes[first], len(case.categorical[first]), drifted, case.seed)
    label = (logit + rng.logistic(size=rows) > 0).astype(np.int64)
    labelled = rng.random(rows) >= UNLABELLED_SHARE
    labels = pd.DataFrame(
        {
            "event_id": np.asarray(events["event_id"], dtype=object)[labelled],
            "label": label[labelled],
            "labelled_at": np.full(int(labelled.sum()), period + 1, dtype=np.int64),
        }
    )
    return pd.DataFrame(events), labels


def _concept(z: np.ndarray, cat: np.ndarray, levels: int, drifted: bool, seed: int) -> np.ndarray:
    """The known log-odds of a positive label: main effects, an interaction, a level effect.

    After the drift a new effect appears where the shifted feature now often lies (above
    1.5 standard deviations), which history rarely covers: a challenger trained on the new
    window can learn it without unlearning history.
    """
    col = [z[:, j % z.shape[1]] for j in range(6)]
    effects = np.random.default_rng([seed, 2_000]).uniform(-0.8, 0.8, size=levels)
    logit = 1.0 * col[0] - 0.8 * col[1] + 0.6 * col[2] * col[3] + 0.8 * np.sin(2.0 * col[4])
    logit += 0.5 * np.abs(col[5]) - 0.4 + effects[cat]
    if drifted:
        logit -= 2.0 * np.clip(col[0] - 1.5, 0.0, None)
    return logit


def case_config(case: Case, storage_root: str, gitops_repo: str, data_dir: Path) -> dict[str, Any]:
    """The use-case config (as a mapping) for one store and GitOps repository."""
    return {
        "name": "bench",
        "task": "classification",
        "target": "label",
        "storage_root": storage_root,
        "seed": case.seed,
        "data": {
            "uri": str(data_dir / "events"),
            "format": "parquet",
            "id_column": "event_id",
            "time_column": "period",
            "time_kind": "period",
            "window_size": 1,
            "features": case.features,
        },
        "labels": {
            "uri": str(data_dir / "labels"),
            "format": "parquet",
            "id_column": "event_id",
            "label_column": "label",
            "time_column": "labelled_at",
            "min_coverage": 0.9,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": dict(_MODEL_PARAMS),
        },
        "evaluation": {"metric": "roc_auc", "floor": 0.6},
        "deploy": {"deployment_name": "bench", "gitops_repo": gitops_repo},
        # Analyses back to back: the configured pause between canary steps (minutes in
        # production) is waiting, not work, and would swamp every other number.
        "rollout": {"interval_seconds": 0},
    }


def write_case(case: Case, data_dir: Path) -> dict[str, int]:
    """Write events/ and labels/ (one Parquet file per period); returns rows per file."""
    written = {}
    for sub in ("events", "labels"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    for period, rows in ((HISTORY_PERIOD, case.history_rows), (NEW_PERIOD, case.rows)):
        events, labels = make_window(case, period, rows)
        name = f"period-{period:03d}.parquet"
        pq.write_table(
            pa.Table.from_pandas(events, preserve_index=False), data_dir / "events" / name
        )
        pq.write_table(
            pa.Table.from_pandas(labels, preserve_index=False), data_dir / "labels" / name
        )
        written[f"events/{name}"] = len(events)
        written[f"labels/{name}"] = len(labels)
    return written


def _write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- measurement -------------------------------------------------------------------------------


def _preload(engine: str) -> None:
    """Import what the engine's own process would already hold in a long-lived service."""
    import retrain.deploy
    import retrain.evaluation.gates
    import retrain.runner
    import retrain.training.artifact
    import retrain.training.model  # noqa: F401

    if engine == "kfp-local":
        import kfp.local  # noqa: F401
        import retrain_pipelines  # noqa: F401


def _thread_pools() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    return [
        {"api": i.get("internal_api"), "threads": i.get("num_threads")} for i in threadpool_info()
    ]


def _worker(engine: str, window: str, run_id: str, config_path: str, result_path: str) -> int:
    """Run and time one cycle; write what was measured as JSON next to the config."""
    # A process started by exec inherits its starter's peak RSS as its own starting
    # ru_maxrss on Linux; recorded so a figure close to it can be recognised as inherited.
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _preload(engine)
    from retrain.config import load_config
    from retrain.runner import run_cycle

    cfg = load_config(config_path)
    log_path = str(Path(config_path).with_name("pipeline.log"))
    t0 = time.perf_counter()
    result = run_cycle(cfg, window, engine=engine, run_id=run_id, log_path=log_path)
    wall = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "engine": engine,
        "window": window,
        "wall_seconds": wall,
        "exit_code": result.exit_code,
        "lines": result.lines(),
        "records": result.records,
        # Linux reports ru_maxrss in KiB; for RUSAGE_CHILDREN it is the largest single child.
        "maxrss_self_kib": own.ru_maxrss,
        "maxrss_inherited_kib": inherited,
        "maxrss_children_kib": children.ru_maxrss,
        "cpu_self_seconds": own.ru_utime + own.ru_stime,
        "cpu_children_seconds": children.ru_utime + children.ru_stime,
        "thread_pools": _thread_pools(),
    }
    Path(result_path).write_text(json.dumps(out, indent=2, default=str))
    return 0


def _run_worker(
    engine: str, window: int, case: Case, d: Path, data_dir: Path, threads: int | None
) -> dict[str, Any]:
    """One cycle in a fresh process, on the store and GitOps repository under `d`."""
    cfg_path = _write_config(
        d / "bench.yaml", case_config(case, str(d / "store"), str(d / "gitops"), data_dir)
    )
    result_path = d / "result.json"
    env = dict(os.environ)
    if threads:
        # Inherited by kfp-local's step processes too.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--worker={engine}",
        f"--worker-window={window}",
        f"--worker-run-id=bench-{engine}-w{window}",
        f"--worker-config={cfg_path}",
        f"--worker-result={result_path}",
    ]
    proc = subprocess.run(cmd, check=False, env=env)
    if proc.returncode != 0 or not result_path.exists():
        raise SystemExit(f"the {engine} worker failed (exit {proc.returncode}); see {d}")
    measured: dict[str, Any] = json.loads(result_path.read_text())
    return measured


def _generate(args: argparse.Namespace, data_dir: Path) -> None:
    """Write the case's data from a child process, so this process stays small.

    Workers inherit this process's peak RSS as their own starting ru_maxrss (see `_worker`):
    generating millions of rows here would inflate every engine's memory figure.
    """
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--rows={args.rows}",
        f"--features={args.features}",
        f"--seed={args.seed}",
        f"--worker-data={data_dir}",
    ]
    if args.history_rows:
        cmd.append(f"--history-rows={args.history_rows}")
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"writing the data failed (exit {proc.returncode})")


def _case_from(args: argparse.Namespace) -> Case:
    numeric, categorical = feature_layout(args.features)
    return Case(
        rows=args.rows,
        history_rows=args.history_rows or default_history_rows(args.rows),
        numeric=numeric,
        categorical=categorical,
        seed=args.seed,
    )


def _seed(case: Case, work: Path, threads: int | None) -> dict[str, Any]:
    """Period 0 through the direct engine: schema, history and the first champion."""
    seeded = _run_worker("direct", HISTORY_PERIOD, case, work / "seed", work / "data", threads)
    if seeded["exit_code"] != 0 or "deploy" not in seeded["records"]:
        raise SystemExit(
            f"seeding period {HISTORY_PERIOD} did not deploy a champion:\n"
            + "\n".join(seeded["lines"])
        )
    return seeded


def _measure(engine: str, case: Case, work: Path, threads: int | None) -> dict[str, Any]:
    """Copy the seeded state for `engine`, then run the measured cycle on the new window."""
    d = work / engine
    shutil.copytree(work / "seed" / "store", d / "store")
    shutil.copytree(work / "seed" / "gitops", d / "gitops")
    return _run_worker(engine, NEW_PERIOD, case, d, work / "data", threads)


def summarise_engine(measured: dict[str, Any]) -> dict[str, Any]:
    """Per-step seconds, their sum, the overhead and peak memory of one engine's cycle."""
    records = measured["records"]
    steps = {name: (float(records[name]["seconds"]) if name in records else None) for name in STEPS}
    step_sum = sum(s for s in steps.values() if s is not None)
    wall = float(measured["wall_seconds"])
    overhead = wall - step_sum
    train = records.get("train", {}).get("report", {})
    evaluate = records.get("evaluate", {})
    return {
        "exit_code": measured["exit_code"],
        "steps": steps,
        "step_status": {n: records[n].get("status") for n in STEPS if n in records},
        "fit_seconds": train.get("fit_seconds"),
        "step_sum_seconds": step_sum,
        "wall_seconds": wall,
        "overhead_seconds": overhead,
        "overhead_share": overhead / wall if wall > 0 else None,
        "peak_rss_self_mib": measured["maxrss_self_kib"] / 1024,
        "peak_rss_largest_child_mib": measured["maxrss_children_kib"] / 1024,
        "peak_rss_inherited_mib": measured.get("maxrss_inherited_kib", 0) / 1024,
        "cpu_seconds": measured["cpu_self_seconds"] + measured["cpu_children_seconds"],
        "challenger": train.get("version"),
        "provenance": train.get("provenance", {}),
        "verdict": evaluate.get("summary"),
        "blessed": evaluate.get("blessed"),
        "deploy": records.get("deploy", {}).get("summary"),
        "rollout": records.get("rollout", {}).get("summary"),
        "lines": measured["lines"],
        "thread_pools": measured.get("thread_pools", []),
    }


# --- report ------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_facts() -> dict[str, Any]:
    """Cores, CPU model, memory, OS and the versions of the libraries that do the work."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: _version(d) for d in ("retrain", "numpy", "pandas", "pyarrow", "scikit-learn", "kfp")
        },
    }


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _threads_words(requested: int | None, pools: list[dict[str, Any]]) -> str:
    found = ", ".join(sorted({f"{p['api']} {p['threads']}" for p in pools})) or "unknown"
    origin = f"--threads {requested}" if requested else "the libraries' defaults"
    return f"{origin} ({found})"


def render_markdown(report: dict[str, Any]) -> str:
    """The benchmark report: setup, the side-by-side table, the machine and the method."""
    engines: dict[str, dict[str, Any]] = report["engines"]
    names = list(engines)
    setup = report["setup"]
    first = engines[names[0]]
    prov = first["provenance"]
    header = "| | " + " | ".join(f"`{n}`" for n in names) + " |"
    rule = "|---|" + "---:|" * len(names)

    def row(label: str, cells: Sequence[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    table: list[tuple[str, Any]] = [
        *((f"{step} (s)", lambda e, step=step: _s(e["steps"][step])) for step in STEPS),
        ("sum of steps (s)", lambda e: _s(e["step_sum_seconds"])),
        ("**total wall time (s)**", lambda e: f"**{_s(e['wall_seconds'])}**"),
        (
            "orchestration overhead",
            lambda e: f"{_s(e['overhead_seconds'])} s ({e['overhead_share']:.1%})",
        ),
        ("peak RSS, engine process (MiB)", lambda e: f"{e['peak_rss_self_mib']:,.0f}"),
        (
            "peak RSS, largest child process (MiB)",
            lambda e: f"{e['peak_rss_largest_child_mib']:,.0f}",
        ),
        ("CPU time, user + sys (s)", lambda e: _s(e["cpu_seconds"])),
        ("1-min load average before → after", lambda e: f"{e['load_before']} → {e['load_after']}"),
    ]
    # The model fit is part of train: show it right below.
    at = next((i + 1 for i, (label, _) in enumerate(table) if label == "train (s)"), len(table))
    table.insert(at, ("&nbsp;&nbsp;of which model fit (s)", lambda e: _s(e["fit_seconds"])))
    rows = [header, rule] + [
        row(label, [cell(e) for e in engines.values()]) for label, cell in table
    ]

    lines = [
        f"# Cycle benchmark: {setup['rows']:,} rows × {setup['features']} features",
        "",
        f"Measured {report['date']} with `{report['command']}`.",
        "",
        "## Setup",
        "",
        f"- New window (period {NEW_PERIOD}): {setup['rows']:,} events, "
        f"{len(setup['numeric'])} numeric + {len(setup['categorical'])} categorical features, "
        f"binary target from a known function plus logistic noise, "
        f"{UNLABELLED_SHARE:.0%} of labels never arrive.",
        f"- History (period {HISTORY_PERIOD}): {setup['history_rows']:,} events, seeded outside "
        f"the measurement by one direct-engine cycle ({setup['seed_seconds']:.0f} s) that also "
        "deployed the champion.",
        f"- Training set: {prov.get('train_rows', 0):,} rows ({prov.get('history_rows', 0):,} "
        f"history + {prov.get('new_rows', 0):,} new, history share "
        f"{prov.get('realised_share', 0):.0%}); holdouts: {prov.get('recent_holdout_rows', 0):,} "
        f"recent, {prov.get('history_holdout_rows', 0):,} history.",
        f"- Model: `{setup['estimator']}` with `{json.dumps(setup['params'])}`; "
        f"threads: {_threads_words(setup.get('threads'), first['thread_pools'])}.",
        f"- Outcome: {first['verdict']}",
        f"- Deploy: {first['deploy'] or 'not run'}",
        f"- Rollout (analyses back to back, no pause between canary steps): "
        f"{first.get('rollout') or 'not run'}",
    ]
    versions = {e["challenger"] for e in engines.values()}
    if len(names) > 1:
        same = "the same" if len(versions) == 1 else "DIFFERENT"
        lines.append(f"- Both engines trained {same} content-addressed challenger version.")
    lines += ["", "## Results", "", *rows, ""]
    if "kfp-local" in engines:
        share = engines["kfp-local"]["overhead_share"]
        met = "met" if share is not None and share <= OVERHEAD_GOAL else "NOT met"
        lines.append(
            f"kfp-local orchestration overhead: {share:.1%} of the cycle's wall time; "
            f"goal ≤ {OVERHEAD_GOAL:.0%}: {met}."
        )
        lines.append("")
    m = report["machine"]
    v = m["versions"]
    lines += [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable) |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        "| libraries | " + ", ".join(f"{k} {val}" for k, val in v.items()) + " |",
        "",
        "## How it is measured",
        "",
        "- Each engine runs one full cycle on the same seeded state (a copy per engine), in its "
        "own fresh process that has already imported the library; the timer covers "
        "`retrain.runner.run_cycle`.",
        "- Step times are the `seconds` of each step's run record "
        "(`runs/<run_id>/<step>.json`); they exclude the imports and config parsing done before "
        "a step's record starts. Modules a step imports lazily are already loaded in the "
        "`direct` process but not in a fresh kfp-local step process, so a few step times "
        "(deploy, rollout) are up to a second longer under kfp-local.",
        "- Orchestration overhead = total wall time − sum of step times. For `kfp-local` it is "
        "building the pipeline, one Python process per step (start-up and imports), artifact "
        "passing and the runner's own bookkeeping.",
        "- Peak RSS is `getrusage` `ru_maxrss`: of the engine's process (`RUSAGE_SELF`) and of "
        "the largest child it waited for (`RUSAGE_CHILDREN`; kfp-local runs each step in a child "
        "process, steps one after another). The process tree's peak lies between the larger of "
        "the two and their sum. The data are generated in a separate process so that the "
        "launcher, whose peak RSS every worker inherits as its starting `ru_maxrss`, stays "
        "small (the JSON records that starting value).",
        "- The machine may be shared: each cycle starts once the one-minute load average is "
        "below 0.5 (waiting at most `--max-wait-idle` seconds), and the load before and after "
        "is recorded with its numbers. A load well above 1 after a cycle means a neighbour "
        "competed for the cores.",
        "",
    ]
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------


def _load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _wait_for_quiet(max_wait: float, threshold: float = 0.5) -> float:
    """Wait (at most `max_wait` s) until the one-minute load average is below `threshold`.

    On a shared machine a neighbour's test run can slow an OpenMP fit several-fold (its
    threads spin at barriers while a core is taken); a quiet start makes runs comparable.
    Returns the seconds waited.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        load = _load1()
        if load is None or load < threshold:
            break
        time.sleep(5)
    return time.monotonic() - t0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the new window")
    p.add_argument("--features", type=int, default=20, help="features (4 in 5 numeric)")
    p.add_argument(
        "--history-rows",
        type=int,
        default=None,
        help="rows in the history window (default: enough for the config's 80/20 mix)",
    )
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, run in order")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OpenMP/BLAS threads for every measured process (default: the libraries' own)",
    )
    p.add_argument(
        "--max-wait-idle",
        type=float,
        default=120.0,
        help="seconds to wait for a quiet machine before each measured cycle (0: do not wait)",
    )
    p.add_argument("--output", default="benchmarks/results/cycle.md")
    p.add_argument("--workdir", help="keep data and stores here (default: a temporary directory)")
    # Internal: the measured cycle runs in a fresh process started by this script.
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--worker-window", help=argparse.SUPPRESS)
    p.add_argument("--worker-run-id", help=argparse.SUPPRESS)
    p.add_argument("--worker-config", help=argparse.SUPPRESS)
    p.add_argument("--worker-result", help=argparse.SUPPRESS)
    p.add_argument("--worker-data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    problems = []
    if args.rows < 1000:
        problems.append(f"--rows must be at least 1000, got {args.rows}")
    if args.features < 2:
        problems.append(f"--features must be at least 2, got {args.features}")
    if args.threads is not None and args.threads < 1:
        problems.append(f"--threads must be at least 1, got {args.threads}")
    if args.history_rows is not None and args.history_rows < 1000:
        problems.append(f"--history-rows must be at least 1000, got {args.history_rows}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines or len(set(engines)) != len(engines):
        problems.append(f"--engines must name each of {', '.join(ENGINES)} at most once")
    if problems:
        p.error("; ".join(problems))
    args.engines = engines
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        return _worker(
            args.worker,
            args.worker_window,
            args.worker_run_id,
            args.worker_config,
            args.worker_result,
        )

    case = _case_from(args)
    if args.worker_data:
        write_case(case, Path(args.worker_data))
        return 0
    output = Path(args.output)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="retrain-bench-"))
    if args.workdir and work.exists() and any(work.iterdir()):
        raise SystemExit(f"--workdir {work} is not empty; give a new or empty directory")
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        _generate(args, work / "data")
        print(f"data written in {time.perf_counter() - t0:.1f} s to {work / 'data'}", flush=True)
        seeded = _seed(case, work, args.threads)
        print(f"seeded period {HISTORY_PERIOD} in {seeded['wall_seconds']:.1f} s", flush=True)
        engines = {}
        for engine in args.engines:
            waited = _wait_for_quiet(args.max_wait_idle)
            load_before = _load1()
            e = summarise_engine(_measure(engine, case, work, args.threads))
            e.update(load_before=load_before, load_after=_load1(), waited_for_quiet=waited)
            engines[engine] = e
            print(
                f"{engine}: {e['wall_seconds']:.1f} s, overhead {e['overhead_share']:.1%}",
                flush=True,
            )
            print("\n".join(e["lines"]), flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    command = " ".join(
        [
            "python",
            "benchmarks/bench_cycle.py",
            f"--rows {args.rows}",
            f"--features {args.features}",
        ]
        + ([f"--history-rows {args.history_rows}"] if args.history_rows else [])
        + ([f"--engines {','.join(args.engines)}"] if args.engines != list(ENGINES) else [])
        + ([f"--seed {args.seed}"] if args.seed != 7 else [])
        + ([f"--threads {args.threads}"] if args.threads else [])
        + ([f"--max-wait-idle {args.max_wait_idle:g}"] if args.max_wait_idle != 120 else [])
    )
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "setup": {
            "rows": case.rows,
            "history_rows": case.history_rows,
            "features": args.features,
            "numeric": list(case.numeric),
            "categorical": {k: len(v) for k, v in case.categorical.items()},
            "seed": case.seed,
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": dict(_MODEL_PARAMS),
            "seed_seconds": seeded["wall_seconds"],
            "seed_lines": seeded["lines"],
            "threads": args.threads,
        },
        "engines": engines,
        "overhead_goal": OVERHEAD_GOAL,
        "machine": machine_facts(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_markdown(report))
    output.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {output} and {output.with_suffix('.json')}", flush=True)
    failed = [n for n, e in engines.items() if e["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
