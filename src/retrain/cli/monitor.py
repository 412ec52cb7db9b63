"""`retrain monitor`, `retrain trigger` and `retrain schedule plan|apply`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from retrain.config import Config, load_config
from retrain.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    RetrainError,
    ValidationError,
)
from retrain.launchers import KfpLauncher, LocalLauncher, NoLauncher, kfp_client
from retrain.rollout.controller import RolloutController
from retrain.settings.durations import parse_duration
from retrain.storage import LocalStorage, open_storage
from retrain.triggers.controller import Launcher, TriggerController
from retrain.triggers.policy import Signal

__all__ = ["add_commands", "make_launcher"]


def _print(msg: str = "") -> None:
    print(msg, flush=True)


def _host(cfg: Config, given: str | None) -> str:
    host = given or cfg.triggers.kfp.host
    if not host:
        raise ValidationError("no KFP host: pass --host URL or set triggers.kfp.host")
    return host


def make_launcher(cfg: Config, kind: str, *, engine: str, host: str | None) -> Launcher:
    """The launcher for ``--launch local|kfp|none``."""
    if kind == "none":
        return NoLauncher()
    if kind == "kfp":
        return KfpLauncher(cfg, _host(cfg, host))
    store = open_storage(cfg.storage_root)
    log_dir = str(Path(store.root).parent / "logs") if isinstance(store, LocalStorage) else None
    return LocalLauncher(cfg, engine=engine, log_dir=log_dir)


def _controller(cfg: Config, args: argparse.Namespace) -> TriggerController:
    launcher = make_launcher(cfg, args.launch, engine=args.engine, host=args.host)
    return TriggerController(open_storage(cfg.storage_root), cfg.name, cfg.triggers, launcher)


# --- monitor -----------------------------------------------------------------------------------


def _summary(result: Any) -> str:
    drift = result.drift
    what = (
        f"drift {'YES' if drift.dataset_drifted else 'no'} ({drift.share_drifted:.0%} of features)"
        if drift is not None
        else f"drift not measured ({result.drift_note})"
    )
    decisions = "; ".join(
        f"{o.decision.signal.kind}: {'LAUNCH' if o.decision.launch else 'no'} "
        f"[{o.decision.rule}] {o.decision.reason}"
        + (f" -> run {o.launch.run_id} {o.launch.status}" if o.launch else "")
        for o in result.outcomes
    )
    return f"window {result.window}: {what}; {decisions or 'no signals'}"


def _cmd_monitor(args: argparse.Namespace) -> int:
    from retrain.triggers.metrics import MonitorMetrics
    from retrain.triggers.monitor import Monitor

    cfg = load_config(args.config)
    metrics = MonitorMetrics(cfg.name)
    monitor = Monitor(cfg, _controller(cfg, args), metrics=metrics)
    if args.every is None:
        result = monitor.check(args.window)
        _print(
            json.dumps(result.to_dict(), indent=2, default=str) if args.json else _summary(result)
        )
        _print(f"report: {monitor.store.uri(result.report_key or '')}")
        _print(_tick_rollout(RolloutController(cfg)))
        return EXIT_OK

    try:
        interval = float(parse_duration(args.every))
    except ValueError as err:
        raise ValidationError(f"--every: {err}") from None
    if args.port:
        server, _ = metrics.serve(args.port, addr=args.bind)
        _print(f"metrics on http://{args.bind}:{server.server_port}/metrics")
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _error(err: Exception) -> None:
        print(f"check failed: {err}", file=sys.stderr, flush=True)
        if not isinstance(err, RetrainError):
            raise err

    _print(f"monitoring {cfg.name} every {args.every} (launch: {args.launch})")
    rollouts = RolloutController(cfg)

    def _on_result(result: Any) -> None:
        _print(_summary(result))
        _print(_tick_rollout(rollouts))

    monitor.run_every(interval, stop, window=args.window, on_result=_on_result, on_error=_error)
    return EXIT_OK


def _tick_rollout(controller: RolloutController) -> str:
    """One rollout tick with each check: a canary advances, a half-done decision finishes.

    Its failures are reported, never fatal to the monitor: a held lock or an unreachable
    backend is tried again at the next check.
    """
    try:
        return f"rollout: {controller.tick().message}"
    except RetrainError as err:
        return f"rollout: not ticked ({type(err).__name__}: {err})"


# --- trigger (manual) --------------------------------------------------------------------------


def _cmd_trigger(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    controller = _controller(cfg, args)
    details = {"requested_by": args.requested_by} if args.requested_by else {}
    outcome = controller.handle(Signal("manual", args.window, details=details))
    d = outcome.decision
    if not d.launch:
        _print(f"not launched [{d.rule}]: {d.reason}")
        return EXIT_TRANSIENT if d.rule == "lease" else EXIT_VALIDATION
    run = outcome.launch
    assert run is not None
    _print(f"launched run {run.run_id} ({d.reason}): {run.status} {run.detail}".rstrip())
    return EXIT_INTERNAL if run.status == "failed" else EXIT_OK


# --- schedule ----------------------------------------------------------------------------------


def _cmd_schedule(args: argparse.Namespace) -> int:
    from retrain.launchers import pipeline_package
    from retrain.triggers.schedule import KfpSchedules, apply_plan, make_plan

    cfg = load_config(args.config)
    if args.pipeline_package:
        k = cfg.triggers.kfp.model_copy(update={"pipeline_package": args.pipeline_package})
        cfg = cfg.model_copy(update={"triggers": cfg.triggers.model_copy(update={"kfp": k})})
    if cfg.triggers.schedule_engine != "kfp" and cfg.triggers.schedules:
        _print(
            "note: triggers.schedule_engine is 'monitor', so `retrain monitor` fires these "
            "schedules too; set it to 'kfp' when KFP recurring runs own them"
        )
    client = kfp_client(_host(cfg, args.host), cfg.triggers.kfp.namespace)
    api = KfpSchedules(client, cfg.triggers.kfp.experiment, cfg.triggers.kfp.namespace)
    with pipeline_package(cfg) as package:
        plan = make_plan(cfg, api, package)
        for action in plan.actions:
            _print(action.line())
        if not plan.actions:
            _print("no schedules configured and none on the cluster")
        if args.action == "apply":
            apply_plan(cfg, api, plan, package)
            done = [a for a in plan.actions if a.kind in ("create", "replace", "delete")]
            _print(f"applied {len(done)} change(s)")
    if plan.deferred:
        _print(f"{len(plan.deferred)} change(s) deferred: runs in flight; apply again later")
        return EXIT_TRANSIENT
    return EXIT_OK


def _launch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launch", choices=["local", "kfp", "none"], default="local")
    p.add_argument(
        "--engine",
        choices=["kfp-local", "direct"],
        default="kfp-local",
        help="how a local launch runs the cycle",
    )
    p.add_argument("--host", help="KFP API URL for --launch kfp (default: triggers.kfp.host)")


def add_commands(sub: Any) -> None:
    """Add `monitor`, `trigger` and `schedule` to the `retrain` command."""
    m = sub.add_parser(
        "monitor", help="check the newest window for drift and retrain when the policy says so"
    )
    m.add_argument("--config", required=True)
    mode = m.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one check, then exit (default)")
    mode.add_argument("--every", metavar="DURATION", help="check every DURATION, e.g. 10m")
    m.add_argument("--window", help="check this window instead of the newest")
    m.add_argument("--port", type=int, default=9108, help="metrics port with --every (0: off)")
    m.add_argument("--bind", default="127.0.0.1", help="metrics address (default 127.0.0.1)")
    m.add_argument("--json", action="store_true", help="print the full result (with --once)")
    _launch_options(m)
    m.set_defaults(func=_cmd_monitor)

    t = sub.add_parser(
        "trigger", help="request a retrain now (skips the cooldown, never the lease)"
    )
    t.add_argument("--config", required=True)
    t.add_argument("--window", required=True, help="the data snapshot (window id) to train on")
    t.add_argument("--requested-by", help="who asks (recorded with the decision)")
    _launch_options(t)
    t.set_defaults(func=_cmd_trigger)

    s = sub.add_parser("schedule", help="reconcile the config's schedules with KFP recurring runs")
    s.add_argument("action", choices=["plan", "apply"])
    s.add_argument("--config", required=True)
    s.add_argument("--host", help="KFP API URL (default: triggers.kfp.host)")
    s.add_argument("--pipeline-package", help="compiled pipeline YAML (default: compile now)")
    s.set_defaults(func=_cmd_schedule)
