"""`retrain monitor`, `retrain trigger` and `retrain schedule plan|apply`."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrain.cli._fleet import (
    config_options,
    deadline_option,
    deadline_seconds,
    fleet_entry,
    models,
)
from retrain.cli._pass_start import checked_pass_id, pass_id_option, seconds_spent
from retrain.cli._signals import interrupted
from retrain.cli._signals import signals_restored as _signals_restored
from retrain.cli._signals import stop_on_signals as _stop_on_signals
from retrain.cli._signals import stop_on_sigterm as _stop_on_sigterm
from retrain.config import Config, load_config
from retrain.deploy import load_schemas
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
from retrain.triggers.fleet import (
    Fleet,
    ModelResult,
    NotStarted,
    fleet_exit_code,
    last_checked,
    load_fleet,
    note_check_start,
    raise_refused,
    run_for_each,
)
from retrain.triggers.fleet_pool import ProcessFleet, portable_error
from retrain.triggers.policy import Signal

__all__ = ["add_commands", "make_launcher"]


def _print(msg: str = "", *, aside: bool = False) -> None:
    print(msg, file=sys.stderr if aside else sys.stdout, flush=True)  # aside: beside --json


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


def _controller(cfg: Config, args: argparse.Namespace | _FleetOptions) -> TriggerController:
    launcher = make_launcher(cfg, args.launch, engine=args.engine, host=args.host)
    return TriggerController(open_storage(cfg.storage_root), cfg.name, cfg.triggers, launcher)


# --- monitor -----------------------------------------------------------------------------------


def _summary(result: Any) -> str:
    drift = result.drift
    counted = ", ".join(result.drift_counted or ())
    what = (
        f"drift {'YES' if result.drifted else 'no'} ({drift.share_drifted:.0%} of features"
        + (f"; signals: {counted})" if counted else ")")
        if drift is not None
        else f"drift not measured ({result.drift_note})"
    )
    decisions = "; ".join(
        f"{o.decision.signal.kind}: {'LAUNCH' if o.decision.launch else 'no'} "
        f"[{o.decision.rule}] {o.decision.reason}"
        + (f" -> run {o.launch.run_id} {o.launch.status}" if o.launch else "")
        for o in result.outcomes
    )
    unjudged = (result.window_choice or {}).get("open_windows") or []
    still = f"; window {', '.join(unjudged)} still open, not judged" if unjudged else ""
    refused = (result.performance or {}).get("refused") or {}
    if refused:  # not "no labels yet": said where the operator looks first
        still += "; labels refused by the label join: " + "; ".join(
            f"{w} ({why})" for w, why in refused.items()
        )
    return f"window {result.window}: {what}; {decisions or 'no signals'}{still}"


def _cmd_monitor(args: argparse.Namespace) -> int:
    # The handlers `_stop_for` installs last only as long as the command: a caller in the
    # same process (`retrain.cli.main` from Python) gets its own back.
    with _signals_restored():
        try:
            return _monitor(args)
        except KeyboardInterrupt:  # Ctrl-C of a --once pass (--every stops at a safe point)
            return interrupted()


def _monitor(args: argparse.Namespace) -> int:
    from retrain.triggers.metrics import MonitorMetrics
    from retrain.triggers.monitor import Monitor

    fleet = load_fleet(args.config)
    if not fleet.configs:  # nothing to serve: fail at once (a long-running monitor too)
        raise_refused(fleet)
    if not fleet.one:
        return _monitor_fleet(fleet, args)
    deadline_seconds(args.deadline)  # one model starts with its pass; a bad flag still fails
    checked_pass_id(args)  # a bad --pass-id fails too; one check has no deadline to count
    cfg = fleet.configs[0]
    metrics = MonitorMetrics(cfg.name)
    monitor = Monitor(cfg, _controller(cfg, args), metrics=metrics)
    stop = _stop_for(args)
    if args.every is None:
        try:
            result = monitor.check(args.window)
        except Exception:
            _print(_tick_rollout(RolloutController(cfg)), aside=args.json)  # canary goes on
            raise
        _print(
            json.dumps(result.to_dict(), indent=2, default=str) if args.json else _summary(result)
        )
        _print(f"report: {monitor.store.uri(result.report_key or '')}", aside=args.json)
        _print(_tick_rollout(RolloutController(cfg)), aside=args.json)
        return EXIT_OK

    interval = _interval(args.every)
    if args.port:
        server, _ = metrics.serve(args.port, addr=args.bind)
        _print(f"metrics on http://{args.bind}:{server.server_port}/metrics")

    _print(f"monitoring {cfg.name} every {args.every} (launch: {args.launch})")
    rollouts = RolloutController(cfg)

    def _error(err: Exception) -> None:
        print(f"check failed: {err}", file=sys.stderr, flush=True)
        # The rollout does not depend on the check: a canary must not freeze while the data
        # source is down.
        _print(_tick_rollout(rollouts))
        if not isinstance(err, RetrainError):
            raise err

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


def _interval(every: str) -> float:
    try:
        return float(parse_duration(every))
    except ValueError as err:
        raise ValidationError(f"--every: {err}") from None


def _stop_for(args: argparse.Namespace) -> threading.Event:
    """The event that ends a monitor at a safe point, set by the signals its mode hears.

    With ``--every``, SIGTERM and SIGINT: the pass in progress finishes, then the monitor
    stops. With ``--once``, SIGTERM (the CronJob's deadline, a drained node): the checks in
    progress finish with their rollout ticks (a tick cut short could leave its lock held to
    its TTL) and no other starts. Not with ``--launch local``: a check could then start a
    whole run after the SIGTERM, which the run's own guard (`retrain.runner.run_cycle`) would
    never see, so there a SIGTERM ends the monitor as it always has.
    """
    if args.every is not None:
        return _stop_on_signals()
    if args.launch != "local":
        return _stop_on_sigterm()
    return threading.Event()


@dataclass(frozen=True)
class _FleetOptions:
    """What a model's share of a fleet pass needs of the command line (sent to workers)."""

    launch: str
    engine: str
    host: str | None
    window: str | None


@dataclass(frozen=True)
class _ModelCheck:
    """A model's check (or the error that ended it) and its rollout tick's line."""

    result: Any  # a CheckResult
    error: Exception | None
    rollout: str


#: Each model's monitor, built on first use and kept for the next passes (its champion stays
#: loaded); keyed by the options and the whole config, as a worker process serves one fleet.
_MONITORS: dict[tuple[_FleetOptions, str], Any] = {}


def _check_model(options: _FleetOptions, cfg: Config) -> _ModelCheck:
    """One model's share of a pass, in a worker thread or process: its check, then its
    rollout tick (after a failed check too: a canary must not freeze while its source is
    down). Metrics are recorded by the caller from the result (`observe_result`)."""
    from retrain.triggers.monitor import Monitor

    key = (options, cfg.model_dump_json())
    result, error = None, None
    # Noted first, so a pass cut short takes the models checked longest ago first. It is
    # bookkeeping only: a marker not written leaves the model where it was in line, and its
    # check goes on.
    with contextlib.suppress(Exception):
        note_check_start(cfg)
    try:
        if key not in _MONITORS:  # built here, so one bad model fails alone
            _MONITORS[key] = Monitor(cfg, _controller(cfg, options))
        result = _MONITORS[key].check(options.window)
    except Exception as err:  # reported per model; fleet_exit_code ranks them
        error = portable_error(err)
    return _ModelCheck(result, error, _tick_rollout(RolloutController(cfg)))


def _monitor_fleet(fleet: Fleet, args: argparse.Namespace) -> int:
    """One check per model per pass, on a bounded pool; one metrics endpoint for all. A
    refused config is reported at every pass, beside the others' results."""
    from retrain.triggers.metrics import MonitorMetrics
    from retrain.triggers.monitor import observe_result

    configs = fleet.configs
    metrics = MonitorMetrics(configs[0].name)
    options = _FleetOptions(args.launch, args.engine, args.host, args.window)
    work = functools.partial(_check_model, options)
    if args.workers < 1:
        raise ValidationError(f"--workers must be at least 1, not {args.workers}")
    workers = min(args.workers, len(configs))
    deadline = deadline_seconds(args.deadline)  # a bad flag fails before any fork
    interval = _interval(args.every) if args.every is not None else None
    pass_id = checked_pass_id(args)  # a bad --pass-id too
    # A SIGTERM lets the models in progress finish and starts no other (`_stop_for`): a pass
    # exits 75 if it left one unstarted, and a monitor with --every stops after that pass.
    # Heard from here on: while the pass's start is recorded too.
    stop = _stop_for(args)
    # Forked now, before the metrics server's thread starts (see ProcessFleet), and before the
    # thread that records the pass's start (which a store that does not answer leaves running).
    processes = (
        ProcessFleet[_ModelCheck](workers, warm_up=load_schemas) if args.pool == "process" else None
    )
    # The models checked longest ago first, so a pass cut short (by --deadline or a SIGTERM)
    # serves the ones it left out first next time.
    limits: dict[str, Any] = {"stop": stop.is_set, "deadline": deadline, "priority": last_checked}

    def one_pass() -> tuple[int, bool]:
        """A pass's exit code, and whether a stop left one of its models unstarted."""
        if processes is not None:
            done = processes.run(configs, work, **limits)
        else:
            done = run_for_each(configs, work, workers=workers, **limits)
        results: list[ModelResult[Any]] = list(fleet.refused)
        rollouts: list[str] = ["rollout: not ticked (config refused)"] * len(fleet.refused)
        for r in done:
            check = r.result
            if check is None:  # not started, or the rollout tick failed with a bug
                results.append(ModelResult(r.model, None, r.error, r.seconds, r.skipped))
                rollouts.append("rollout: not ticked")
                continue
            if check.result is not None:
                observe_result(metrics.for_model(r.model), check.result)
            results.append(ModelResult(r.model, check.result, check.error, r.seconds))
            rollouts.append(check.rollout)
        if args.json:
            entries = [fleet_entry(r, lambda check: check.to_dict()) for r in results]
            _print(json.dumps(entries, indent=2, default=str))
        for r, rollout in zip(results, rollouts, strict=True):
            if r.result is not None and not args.json:
                _print(f"{r.model}: {_summary(r.result)}")
                _print(f"{r.model}: {rollout}")
            elif r.error is not None:
                print(f"{r.model}: check failed: {r.error}", file=sys.stderr, flush=True)
                if not args.json:
                    _print(f"{r.model}: {rollout}")
            elif r.skipped is not None:
                print(f"{r.model}: {r.skipped}; the next pass serves it first", file=sys.stderr)
        code = fleet_exit_code(results)
        skipped = sum(r.skipped is not None for r in results)
        late = f", {skipped} not reached before --deadline" if skipped else ""
        ok = sum(r.ok for r in results)
        _print(f"checked {models(len(results))}: {ok} ok{late} (exit {code})", aside=args.json)
        return code, any(isinstance(r.error, NotStarted) for r in done)

    try:
        # --pass-id: the seconds a Job's earlier pods spent, and the record's own (bounded)
        root = configs[0].storage_root
        limits["spent"] = seconds_spent(pass_id, deadline, root, stop=stop.is_set)
        if interval is None:
            return one_pass()[0]
        if args.port:
            server, _ = metrics.serve(args.port, addr=args.bind)
            _print(f"metrics on http://{args.bind}:{server.server_port}/metrics")
        names = ", ".join(c.name for c in configs)
        _print(
            f"monitoring {models(len(configs))} ({names}) every {args.every} "
            f"(launch: {args.launch}, {workers} worker {args.pool}es)"
        )
        cut_short = False
        while not stop.is_set():
            code, cut_short = one_pass()
            if code == EXIT_INTERNAL:
                return EXIT_INTERNAL  # a bug: stop, as a single-model monitor does
            stop.wait(interval)
        # A stop during a pass that left models unstarted exits 75, as that pass did.
        return EXIT_TRANSIENT if cut_short else EXIT_OK
    finally:
        if processes is not None:
            processes.close()


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
    fleet = load_fleet(args.config)
    if not fleet.configs:
        raise_refused(fleet)
    if fleet.one:
        lines, deferred = _reconcile(fleet.configs[0], args)
        for line in lines:
            _print(line)
        return EXIT_TRANSIENT if deferred else EXIT_OK
    work = functools.partial(_reconcile, args=args)
    results = [*fleet.refused, *run_for_each(fleet.configs, work, workers=args.workers)]
    deferred_models = 0
    for r in results:
        if r.result is not None:
            lines, deferred = r.result
            deferred_models += bool(deferred)
            for line in lines:
                _print(f"{r.model}: {line}")
        elif r.error is not None:
            print(f"{r.model}: schedule {args.action} failed: {r.error}", file=sys.stderr)
    code = fleet_exit_code(results)
    if code in (EXIT_OK, EXIT_VALIDATION) and deferred_models:
        code = EXIT_TRANSIENT  # a retry applies what waited (75 over 2)
    _print(f"reconciled {models(len(results))}: {sum(r.ok for r in results)} ok (exit {code})")
    return code


def _reconcile(cfg: Config, args: argparse.Namespace) -> tuple[list[str], int]:
    """Plan (and with ``apply`` apply) one model's schedules: the lines to print and how
    many changes were deferred."""
    from retrain.launchers import pipeline_package
    from retrain.triggers.schedule import KfpSchedules, apply_plan, make_plan

    lines: list[str] = []
    if args.pipeline_package:
        k = cfg.triggers.kfp.model_copy(update={"pipeline_package": args.pipeline_package})
        cfg = cfg.model_copy(update={"triggers": cfg.triggers.model_copy(update={"kfp": k})})
    if cfg.triggers.schedule_engine != "kfp" and cfg.triggers.schedules:
        lines.append(
            "note: triggers.schedule_engine is 'monitor', so `retrain monitor` fires these "
            "schedules too; set it to 'kfp' when KFP recurring runs own them"
        )
    client = kfp_client(_host(cfg, args.host), cfg.triggers.kfp.namespace)
    api = KfpSchedules(client, cfg.triggers.kfp.experiment, cfg.triggers.kfp.namespace)
    with pipeline_package(cfg) as package:
        plan = make_plan(cfg, api, package)
        lines.extend(action.line() for action in plan.actions)
        if not plan.actions:
            lines.append("no schedules configured and none on the cluster")
        if args.action == "apply":
            apply_plan(cfg, api, plan, package)
            done = [a for a in plan.actions if a.kind in ("create", "replace", "delete")]
            lines.append(f"applied {len(done)} change(s)")
    if plan.deferred:
        lines.append(f"{len(plan.deferred)} change(s) deferred: runs in flight; apply again later")
    return lines, len(plan.deferred)


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
        "monitor",
        help="check the newest window that is over for drift and retrain when the policy says so",
    )
    config_options(m)
    mode = m.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one check, then exit (default)")
    mode.add_argument("--every", metavar="DURATION", help="check every DURATION, e.g. 10m")
    m.add_argument(
        "--window",
        help="check this window instead of the newest that is over (an open one too)",
    )
    m.add_argument("--port", type=int, default=9108, help="metrics port with --every (0: off)")
    m.add_argument("--bind", default="127.0.0.1", help="metrics address (default 127.0.0.1)")
    m.add_argument("--json", action="store_true", help="print the full result (with --once)")
    deadline_option(m, "check")
    pass_id_option(m)
    m.add_argument(
        "--pool",
        choices=["process", "thread"],
        default="process",
        help="with several configs: check models on worker processes (default; every core "
        "works, one process per worker) or threads (one core for the Python-bound work, "
        "less memory)",
    )
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
    config_options(s)
    s.add_argument("--host", help="KFP API URL (default: triggers.kfp.host)")
    s.add_argument("--pipeline-package", help="compiled pipeline YAML (default: compile now)")
    s.set_defaults(func=_cmd_schedule)
