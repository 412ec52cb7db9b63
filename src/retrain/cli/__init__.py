"""The `retrain` command: the same functions the KFP components call.

Exit codes: 0 ok; 2 bad input or failed validation (do not retry); 75 transient I/O (retry);
1 anything else.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from retrain import __version__, submit
from retrain._threads import limit_process_threads
from retrain.cli import backtest, deploy, lease, monitor, report
from retrain.config import Config, load_config
from retrain.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_VALIDATION,
    RetrainError,
    ValidationError,
    classify_os_error,
    exit_code_for,
)
from retrain.registry import Registry
from retrain.settings.deploy import check_remote, redact_remote
from retrain.storage import open_storage

__all__ = ["main"]


def _print(msg: str = "") -> None:
    print(msg, flush=True)


# --- run ---------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from retrain.deploy import require_deploy_target

    cfg = load_config(args.config)
    require_deploy_target(cfg)  # before any step: deploy would fail only after training
    return _run_and_report(cfg, args.window, args.engine, args.run_id, args.log, args.as_of)


def _run_and_report(
    cfg: Config,
    window: str,
    engine: str,
    run_id: str | None,
    log: str | None,
    as_of: str | None = None,
) -> int:
    """Run one cycle, printing a header, a line per step and a verdict.

    With window ``auto`` (a scheduled run) the window and, unless given, the run id are
    resolved by the run itself: the header waits for the resolve step and shows what it chose.
    """
    from retrain.runner import STEP_ORDER, new_run_id, run_cycle, step_line
    from retrain.steps.records import StepRecord
    from retrain.steps.resolve_rules import AUTO

    auto = window == AUTO
    if not auto:
        run_id = run_id or new_run_id(window)
    # An "auto" run's id is not known yet: its log is renamed after the run once it is.
    log_name = run_id or new_run_id(AUTO)
    log = log or (
        str(Path(cfg.storage_root).parent / "logs" / f"{log_name}.log")
        if "://" not in cfg.storage_root
        else None
    )
    terminal = _terminal()
    header: list[str] = []

    def show_header(window_id: str, rid: str, stream: TextIO) -> None:
        labels_at = f" · labels as of {as_of}" if as_of else ""
        header.append(f"window {window_id} · run {rid} · engine {engine}{labels_at}")
        print(header[-1], file=stream, flush=True)

    if not auto:
        show_header(window, str(run_id), sys.stdout)
    t0 = time.perf_counter()
    shown: set[str] = set()

    def progress(name: str, record: StepRecord) -> None:
        # Written to a copy of the terminal: kfp.local's own output goes to the log meanwhile.
        if not header and name == "resolve":
            resolved = (record.get("report") or {}).get("window_id")
            window_id = resolved if resolved and resolved != AUTO else "auto (not resolved)"
            show_header(window_id, str(record.get("run_id")), terminal)
        shown.add(name)
        print(step_line(name, {name: record}), file=terminal, flush=True)

    result = run_cycle(
        cfg, window, engine=engine, run_id=run_id, log_path=log, on_step=progress, as_of=as_of
    )
    if not header:  # no resolve record came (e.g. the store could not be read)
        show_header(result.window_id, result.run_id, terminal)
    for name in STEP_ORDER:
        if name not in shown:
            _print(step_line(name, result.records))
    took = time.perf_counter() - t0
    if auto and log and result.run_id != log_name and Path(log).exists():
        log = str(Path(log).rename(Path(log).with_name(f"{result.run_id}.log")))
    resolved_window = result.window_id if result.window_id != AUTO else "not resolved"
    ids = f"window {resolved_window}, run {result.run_id}" if auto else ""
    if result.exit_code == EXIT_OK:
        verdict = "deployed" if "deploy" in result.records else "kept the champion"
        if result.records.get("evaluate", {}).get("status") == "skipped":
            verdict = "no new data: nothing to train on"
        _print(f"  => {verdict} ({ids + '; ' if ids else ''}{took:.1f}s)")
    else:
        where = f"; full log: {log}" if log and Path(log).exists() else ""
        _print(f"  => failed with exit code {result.exit_code}{f' ({ids})' if ids else ''}{where}")
    return result.exit_code


def _terminal() -> TextIO:
    """A stream to this process's current stdout that survives fd 1 being redirected."""
    try:
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    except (OSError, ValueError, io.UnsupportedOperation):
        return sys.stdout  # no real file descriptor (e.g. captured in tests): not redirected


# --- compile -----------------------------------------------------------------------------------


def _cmd_compile(args: argparse.Namespace) -> int:
    from retrain_components import DEFAULT_IMAGE
    from retrain_pipelines import compile_pipeline

    out = compile_pipeline(args.output, image=args.image or DEFAULT_IMAGE)
    _print(f"wrote {out} (image {args.image or DEFAULT_IMAGE})")
    _print("upload it in the Kubeflow UI, or: kfp pipeline create -p retrain " + str(out))
    return EXIT_OK


# --- status ------------------------------------------------------------------------------------


def _cmd_status(args: argparse.Namespace) -> int:

    cfg = load_config(args.config)
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    versions = reg.versions()
    aliases = {a: reg.get_alias(a).version for a in ("champion", "canary")}
    events = reg.events(limit=args.events)
    if args.json:
        status = {"model": cfg.name, "versions": versions, "aliases": aliases, "events": events}
        _print(json.dumps(status, indent=2, default=str))
        return EXIT_OK
    _print(f"model {cfg.name}: {len(versions)} registered version(s)")
    for alias, version in aliases.items():
        _print(f"  {alias:<9} {version or '-'}")
    _print(f"last {len(events)} event(s):")
    for ev in events:
        extra = {k: v for k, v in ev.items() if k not in ("kind", "at", "id", "time")}
        _print(
            f"  {ev.get('at', ev.get('time', '')):<26} {ev['kind']:<15} "
            + " ".join(f"{k}={v}" for k, v in extra.items())
        )
    return EXIT_OK


# --- demo --------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from retrain.data.demo import generate_loans

    try:  # model_copy (below) does not validate: check it as the config's validator would
        remote = check_remote(args.gitops_remote or None)
    except ValueError as err:
        raise ValidationError(str(err)) from None
    work = Path(args.workdir).resolve()
    if work.exists() and any(work.iterdir()) and not args.keep:
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    config_path = generate_loans(
        work,
        windows=args.windows,
        rows_per_window=args.rows,
        drift_window=args.drift_window,
        seed=args.seed,
    )
    cfg = load_config(config_path)
    if args.gitops_remote:  # push every traffic change to this repository (GitOps remote)
        deploy = cfg.deploy.model_copy(update={"gitops_remote": remote})
        cfg = cfg.model_copy(update={"deploy": deploy})
    _print(
        f"retrain {__version__} demo: loan defaults (river Agrawal stream), "
        f"{args.windows} weekly windows of {args.rows} applications, concept change at "
        f"week {args.drift_window}"
    )
    _print(
        f"data: {cfg.data.uri}\nlabels: {cfg.labels.uri} (late: 1-2 weeks)\n"
        f"store: {cfg.storage_root}\ngitops repo: {cfg.deploy.gitops_repo}\n"
    )
    last = args.windows - 3  # the last two weeks' labels have not all arrived yet
    # Labels come one or two weeks after the event. A run as of week 0's end (period 1) sees
    # only those already in: too few for labels.min_coverage, so it stops before training.
    _print("== week 0 at its end (as of period 1): its labels are still coming in ==")
    code = _run_and_report(cfg, "0", args.engine, None, None, as_of="1")
    if code != EXIT_VALIDATION:
        _print(
            f"demo expected the label coverage check to stop this run (exit {EXIT_VALIDATION}), "
            f"got exit {code}"
        )
        return EXIT_INTERNAL
    _print(
        "\n== so each week is trained a week after it ends (as of period w + 2), once its "
        "labels are in ==\n"
    )
    for w in range(last):
        code = _run_and_report(cfg, str(w), args.engine, None, None, as_of=str(w + 2))
        _print()
        if code != EXIT_OK:
            return code
    _rollback_drill(cfg)
    # The last week's canary is started and left in flight, as on a cluster where the
    # analysis runs for hours: `retrain deploy advance` (or a CronJob) carries it on.
    _print(f"\n== week {last}: the canary is started and left in flight ==")
    in_flight = cfg.model_copy(
        update={"rollout": cfg.rollout.model_copy(update={"step_budget_seconds": 0.0})}
    )
    code = _run_and_report(in_flight, str(last), args.engine, None, None, as_of=str(last + 2))
    if code != EXIT_OK:
        return code
    _print("\n== registry ==")
    _cmd_status(argparse.Namespace(config=str(config_path), events=14, json=False))
    code = _demo_check(cfg)
    index = report.write_history_page(cfg, work / "report")
    _print(f"\nmodel history page (metric, drift, retrains and canaries on one page): {index}")
    return code


def _rollback_drill(cfg: Config) -> None:
    """Put the week-0 model (trained before the concept change) back up as a canary.

    The rollout must catch that it is worse than the champion on live traffic and roll it
    back: the same path a bad model that slipped past offline evaluation would take.
    """
    from retrain.steps import rollout

    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    champion = reg.get_alias("champion").version
    stale = reg.versions()[0]
    if champion is None or stale == champion:
        _print("rollback drill skipped: the first model is still the champion")
        return
    _print(f"== rollback drill: canary {stale} (trained before the change) vs champion {champion}")
    canary = reg.get_alias("canary")
    reg.set_alias("canary", stale, canary.generation)
    reg.append_event("alias_moved", alias="canary", version=stale, reason="rollback drill")
    outcome = rollout(cfg.to_yaml(), "drill-rollback", None)
    _print(f"  rollout   {outcome.summary}")


def _demo_check(cfg: Config) -> int:
    """Show where the results are, and fail loudly if the loop did not reach its end state."""

    store = open_storage(cfg.storage_root)
    reg = Registry(store, cfg.name)
    champion = reg.get_alias("champion").version
    kinds = {e["kind"] for e in reg.events()}
    repo = cfg.deploy.gitops_repo
    two_predictors = False
    _print("\n== GitOps repository (what Argo CD / Flux would sync) ==")
    if repo:
        history = ["log", "--oneline"]
        if cfg.deploy.gitops_remote:  # the remote's branch, not the scratch checkout
            fetch = subprocess.run(
                ["git", "-C", repo, "fetch", "--quiet", "origin"],
                capture_output=True,
                text=True,
                check=False,
            )
            history.append(f"origin/{cfg.deploy.gitops_branch}")
            shown = redact_remote(cfg.deploy.gitops_remote)  # never a token in the output
            _print(f"remote: {shown} ({cfg.deploy.gitops_branch})")
            if fetch.returncode != 0:
                _print(f"(fetch failed: {redact_remote(fetch.stderr.strip())})")
        log = subprocess.run(
            ["git", "-C", repo, *history], capture_output=True, text=True, check=False
        )
        _print(log.stdout.rstrip() or "(no commits)")
        two_predictors = "canary=" in log.stdout
        _print(f"manifests: {Path(repo) / cfg.deploy.gitops_path / cfg.deploy.namespace}")
    _print(
        f"step reports (Markdown and HTML, as the Kubeflow UI shows them): "
        f"{store.uri('runs')}/<run>/"
    )
    canary = reg.get_alias("canary").version
    missing = [k for k in ("canary_started", "promoted", "rolled_back") if k not in kinds]
    if champion is None or canary is None or missing or not two_predictors:
        _print(
            f"demo did not reach its end state (champion {champion}, canary {canary}, missing "
            f"events {missing}, canary committed: {two_predictors}): see the summaries above"
        )
        return EXIT_INTERNAL
    _print(
        f"\ndone: one canary promoted after healthy analysis, a stale model rolled back, and "
        f"canary {canary} now in flight beside champion {champion} "
        f"(carry it on with: retrain deploy advance --config {cfg.name}.yaml)."
    )
    return EXIT_OK


# --- generate ----------------------------------------------------------------------------------


def _cmd_generate(args: argparse.Namespace) -> int:
    from retrain.data import case_concept, case_reviews, case_shop, cases, demo

    generators = {
        "loans": demo.generate_loans,
        "housing": demo.generate_housing,
        "fraud": cases.generate_fraud,
        "shop": case_shop.generate_shop,
        "reviews": case_reviews.generate_reviews,
        "concept": case_concept.generate_concept,
    }
    fn = generators[args.case]
    path = fn(Path(args.out), seed=args.seed)
    _print(f"wrote {args.case} data and config: {path}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retrain", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"retrain {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="one retraining cycle for a data window")
    r.add_argument("--config", required=True)
    r.add_argument(
        "--window",
        required=True,
        help="window id: a period number or an ISO date; 'auto' runs as a scheduled run does "
        "(the newest complete window, labels.delay allowing, under the run lease)",
    )
    r.add_argument("--engine", choices=["kfp-local", "direct"], default="kfp-local")
    r.add_argument("--run-id", help="default: derived from the window (resolved one for 'auto')")
    r.add_argument(
        "--as-of",
        help="the run's time for the label join: labels dated later (labels.time_column) have "
        "not arrived and are left out; an ISO time, or a period number for period sources "
        "(default: the time 'auto' resolves at, else the label step's clock)",
    )
    r.add_argument("--log", help="file for the pipeline's own output (default: next to the store)")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("compile", help="compile the KFP pipeline to YAML")
    c.add_argument("--output", default="build/retrain-pipeline.yaml")
    c.add_argument("--image", help="components image (tag or digest)")
    c.set_defaults(func=_cmd_compile)

    s = sub.add_parser("status", help="registry versions, aliases and recent events")
    s.add_argument("--config", required=True)
    s.add_argument("--events", type=int, default=10)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_status)

    d = sub.add_parser("demo", help="generate drifting data and run the loop window by window")
    d.add_argument("--workdir", default="demo-run")
    d.add_argument("--windows", type=int, default=10)
    d.add_argument("--rows", type=int, default=2000)
    d.add_argument("--drift-window", type=int, default=6)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--engine", choices=["kfp-local", "direct"], default="kfp-local")
    d.add_argument("--keep", action="store_true", help="keep an existing workdir")
    d.add_argument(
        "--gitops-remote",
        default=None,
        help="push every traffic change to this git repository (deploy.gitops_remote)",
    )
    d.set_defaults(func=_cmd_demo)

    g = sub.add_parser("generate", help="write a demo dataset and its config")
    g.add_argument(
        "--case",
        choices=["loans", "housing", "fraud", "shop", "reviews", "concept"],
        default="loans",
    )
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(func=_cmd_generate)

    # Each adds its subcommands and sets `func` on its parsers (a callable taking the parsed
    # args and returning an exit code).
    for module in (monitor, deploy, lease, submit, backtest, report):
        module.add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # OpenMP and BLAS would start a thread per core of the node (see retrain._threads).
    limit_process_threads()
    try:
        return int(args.func(args))
    except ValidationError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_VALIDATION
    except RetrainError as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code_for(err)
    except OSError as err:  # the file system's, outside any store: a one-line fix, no traceback
        known = classify_os_error(err)
        print(f"error: {known}", file=sys.stderr)
        return known.exit_code


if __name__ == "__main__":
    sys.exit(main())
