"""Benchmark the memory of reading one window of a CSV source, 5 vs 50 windows in the source.

    python benchmarks/bench_csv_window.py --rows 20000   # -> benchmarks/results/csv-window.md

The source is bench_cycle's synthetic events (string ids, an integer period as event time,
16 numeric and 4 categorical features) plus one long text column the config ignores
(``data.ignore_columns``), written as CSV, five windows per file. For a source of 5 and of 50
windows, each in a fresh process:

- ``stream``: `retrain.data.source.read_window` of the newest window with the columns ingest
  keeps (what the ingest step reads now);
- ``ingest``: the whole ingest step on that window (first run: schema inferred; no champion);
- ``whole``: `retrain.data.io.read_source`, the whole read ingest did before.

Peak memory is measured twice: Python's ``tracemalloc`` peak (allocations made through
Python and numpy during the read: the frames and chunks) and the process's peak RSS
(``ru_maxrss``, which also counts the interpreter, the libraries and the C parser's buffers).
Times are wall seconds of the call. The streamed read parses every row of the source (a CSV
file has no statistics to skip by), so its time grows with the source; its memory should not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SIZES = (5, 50)
WINDOWS_PER_FILE = 5
KINDS = ("stream", "ingest", "whole")


def _config(rows: int, data: Path, store: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))  # benchmarks/ is not a package
    import bench_cycle as bc

    numeric, categorical = bc.feature_layout(20)
    case = bc.Case(rows, rows, numeric, categorical, seed=7)
    cfg: dict[str, Any] = bc.case_config(case, str(store), str(store.parent / "gitops"), data)
    cfg["data"].update({"format": "csv", "ignore_columns": ["comment"]})
    return cfg


def _write_source(rows: int, windows: int, root: Path) -> None:
    sys.path.insert(0, str(HERE))
    import bench_cycle as bc

    numeric, categorical = bc.feature_layout(20)
    case = bc.Case(rows, rows, numeric, categorical, seed=7)
    (root / "events").mkdir(parents=True, exist_ok=True)
    for first in range(0, windows, WINDOWS_PER_FILE):
        path = root / "events" / f"part-{first // WINDOWS_PER_FILE:03d}.csv"
        for period in range(first, min(first + WINDOWS_PER_FILE, windows)):
            events, _ = bc.make_window(case, period, rows)
            events["comment"] = [f"free text, not a model input ({i})" * 4 for i in range(rows)]
            events.to_csv(path, mode="a", header=period == first, index=False)


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    from retrain.config import config_from_text
    from retrain.data.io import read_source
    from retrain.data.schema import known_columns
    from retrain.data.source import read_window
    from retrain.data.windows import parse_window
    from retrain.steps import ingest

    text = Path(spec["config"]).read_text()
    cfg = config_from_text(text)
    window = parse_window(cfg.data, str(spec["window"]))
    kind = spec["kind"]
    out: dict[str, Any] = {}
    traced = kind != "ingest"  # tracemalloc slows the step's other work; RSS suffices there
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    if kind == "stream":
        frame, _ = read_window(cfg.data.uri, "csv", cfg.data, window, columns=known_columns(cfg))
        out["rows"], out["columns"] = frame.shape
    elif kind == "whole":
        frame = read_source(cfg.data.uri, "csv")
        out["rows"], out["columns"] = frame.shape
    else:
        o = ingest(text, window.id, "bench", str(Path(spec["tmp"]) / "dataset.parquet"))
        out["summary"] = o.summary
    out["seconds"] = time.perf_counter() - t0
    if traced:
        out["traced_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    path = Path(tempfile.mkstemp(dir=work, suffix=".json")[1])
    path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    result = path.with_suffix(".out.json")
    if proc.returncode != 0 or not result.exists():
        raise SystemExit(f"{spec['kind']} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(result.read_text())
    return measured


def render(results: dict[str, Any]) -> str:
    rows = results["rows"]
    lines = [
        "# Reading one window of a CSV source: 5 vs 50 windows in the source",
        "",
        f"`python benchmarks/bench_csv_window.py --rows {rows}`: measured {results['date']} on "
        f"{results['machine']}. {rows:,} rows per window; 20 features (16 numeric, 4 "
        "categorical), string ids, integer periods, and one ignored text column; five windows "
        "per CSV file. Each read in a fresh process; tracemalloc peak (Python and numpy "
        "allocations during the read; pandas keeps text in Arrow buffers, which it does not "
        "see) and the process's peak RSS (about 250 MiB of it is the imported libraries), in "
        "MiB.",
        "",
        "| windows in the source | CSV MiB | streamed window read: s / traced / RSS | "
        "ingest step: s / RSS | whole read (before): s / traced / RSS |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, r in results["sizes"].items():
        s, i, w = r["stream"], r["ingest"], r["whole"]
        lines.append(
            f"| {size} | {r['csv_mib']:.0f} | {s['seconds']:.1f} / {s['traced_mib']:.0f} / "
            f"{s['rss_mib']:.0f} | {i['seconds']:.1f} / {i['rss_mib']:.0f} | "
            f"{w['seconds']:.1f} / {w['traced_mib']:.0f} / {w['rss_mib']:.0f} |"
        )
    big, small = results["sizes"][str(SIZES[1])], results["sizes"][str(SIZES[0])]
    lines += [
        "",
        f"Streamed read, traced peak at {SIZES[1]} windows / at {SIZES[0]}: "
        f"**{big['stream']['traced_mib'] / small['stream']['traced_mib']:.2f}×** (the whole "
        f"read: {big['whole']['traced_mib'] / small['whole']['traced_mib']:.2f}×); ingest "
        f"step's peak RSS: {big['ingest']['rss_mib'] / small['ingest']['rss_mib']:.2f}×. "
        "The streamed read's time grows with the source: every row is parsed; the ingest "
        "step's also holds the input-limit scan of every file (`data.limits`).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000, help="rows per window")
    p.add_argument("--output", default=str(HERE / "results" / "csv-window.md"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = Path(args.child)
        spec.with_suffix(".out.json").write_text(json.dumps(_child(json.loads(spec.read_text()))))
        return 0
    work = Path(tempfile.mkdtemp(prefix="retrain-csv-window-"))
    results: dict[str, Any] = {
        "rows": args.rows,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "sizes": {},
    }
    for size in SIZES:
        d = work / f"source-{size}"
        _write_source(args.rows, size, d / "data")
        cfg = _config(args.rows, d / "data", d / "store")
        path = d / "bench.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        csv_bytes = sum(f.stat().st_size for f in (d / "data" / "events").glob("*.csv"))
        entry: dict[str, Any] = {"csv_mib": csv_bytes / 2**20}
        for kind in KINDS:
            tmp = tempfile.mkdtemp(dir=work)
            spec = {"kind": kind, "config": str(path), "window": size - 1, "tmp": tmp}
            entry[kind] = _run(spec, work)
            print(f"{size} windows, {kind}: {entry[kind]}", flush=True)
        results["sizes"][str(size)] = entry
    out = Path(args.output)
    out.write_text(render(results))
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
