"""`retrain report`: the model history page, with every run's step reports beside it.

Reads the run records (``runs/<run_id>/``), this model's monitor records (``monitor/``) and
the registry, and writes ``DIR/index.html`` plus ``DIR/runs/<run_id>/<step>.html`` (and the
``.md``): copied from the store where the step wrote them, drawn from the step's record where
it did not (runs recorded before steps wrote HTML). The directory is self-contained: open
``index.html`` from a laptop, a CI artifact or a bucket.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from retrain.config import Config, load_config
from retrain.errors import EXIT_OK
from retrain.registry import Registry
from retrain.reports import build_history, history_html, step_html
from retrain.steps import read_run
from retrain.storage import Storage, open_storage

__all__ = ["add_commands", "write_history_page"]


def write_history_page(cfg: Config, out_dir: str | Path) -> Path:
    """Write the history page of `cfg`'s model and its step reports under `out_dir`."""
    store = open_storage(cfg.storage_root)
    out = Path(out_dir)
    runs: dict[str, Any] = {}
    for run_id in sorted({k.split("/")[1] for k in store.list("runs") if k.count("/") >= 2}):
        records = read_run(store, run_id)
        if records:
            runs[run_id] = records
    links: dict[str, dict[str, str]] = {}
    for run_id, records in runs.items():
        links[run_id] = _copy_step_reports(store, run_id, records, out / "runs" / run_id)
    reg = Registry(store, cfg.name)
    aliases = {a: reg.get_alias(a).version for a in ("champion", "canary")}
    history = build_history(
        cfg.name, runs, _monitor_records(store, cfg.name), reg.events(), aliases
    )
    index = out / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(history_html(history, links), encoding="utf-8")
    return index


def _copy_step_reports(
    store: Storage, run_id: str, records: dict[str, Any], folder: Path
) -> dict[str, str]:
    """Each step's HTML (and Markdown) report into `folder`; its address relative to the page."""
    folder.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    for step, rec in records.items():
        key = f"runs/{run_id}/{step}"
        if store.exists(f"{key}.html"):
            html = store.read_text(f"{key}.html")
        else:
            html = step_html(
                step,
                str(rec.get("summary") or rec.get("message") or ""),
                rec.get("report") or {},
                store.read_text(f"{key}.md") if store.exists(f"{key}.md") else "",
                run_id=run_id,
                status=str(rec.get("status") or ""),
                error=_error_text(rec),
            )
        (folder / f"{step}.html").write_text(html, encoding="utf-8")
        if store.exists(f"{key}.md"):
            (folder / f"{step}.md").write_text(store.read_text(f"{key}.md"), encoding="utf-8")
        links[step] = f"runs/{run_id}/{step}.html"
    return links


def _error_text(rec: dict[str, Any]) -> str:
    if rec.get("status") != "failed":
        return ""
    return f"{rec.get('error')}: {rec.get('message')} (exit code {rec.get('exit_code')})"


def _monitor_records(store: Storage, model: str) -> list[dict[str, Any]]:
    docs = []
    for key in store.list("monitor"):
        if key.endswith(".json"):
            doc = json.loads(store.read_text(key))
            if doc.get("model") == model:
                docs.append(doc)
    return docs


def _cmd_report(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    index = write_history_page(cfg, args.out)
    print(f"model history page: {index}", flush=True)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add `report` to the `retrain` command."""
    r = sub.add_parser(
        "report", help="write the model history page (metric, drift, retrains, canaries)"
    )
    r.add_argument("--config", required=True)
    r.add_argument("--out", required=True, help="directory for index.html and the step reports")
    r.set_defaults(func=_cmd_report)
