"""`retrain backtest`: compare retraining policies on history."""

from __future__ import annotations

import argparse
import sys

from retrain.errors import EXIT_OK, ValidationError

__all__ = ["add_commands"]


def _cmd_backtest(args: argparse.Namespace) -> int:
    from retrain.backtest.policies import parse_policies
    from retrain.backtest.run import check_compared, check_strict, run_backtest, select_windows
    from retrain.backtest.timing import ReplayOptions
    from retrain.config import load_config

    policies = parse_policies(args.policies)
    if args.canary_delay < 0:
        raise ValidationError(f"--canary-delay must be 0 or more windows, got {args.canary_delay}")
    cfg = load_config(args.config)
    options = ReplayOptions(
        label_delay=args.label_delay,
        canary_delay=args.canary_delay,
        ignore_label_times=args.ignore_label_times,
    )
    options.check(cfg)
    windows = select_windows(cfg, args.windows)
    known = (
        [w.strip() for w in args.known_drift.split(",") if w.strip()] if args.known_drift else []
    )
    result = run_backtest(
        cfg,
        policies,
        args.out,
        windows=windows,
        options=options,
        jobs=args.jobs,
        slo=args.slo,
        known_drift=known,
        cache=not args.no_cache,
        progress=None if args.quiet else sys.stderr,
    )
    check_compared(cfg, result, windows)  # an empty table is no result: exit 2, say why
    print((result.out_dir / "backtest.md").read_text(), flush=True)
    print(f"wrote {result.out_dir}/backtest.md, .json and .png", flush=True)
    if args.strict:
        check_strict(result.summaries)  # exit 2 on a window not scored, say which
    return EXIT_OK


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="replay history under several retraining policies and compare them",
        description=(
            "Replay the data window by window under each policy, with the real steps, each "
            "policy in its own store and GitOps repository under --out/<policy>/."
        ),
    )
    p.add_argument("--config", required=True, help="the use case's config file")
    p.add_argument(
        "--policies",
        default="never,every:4,drift,continuous,always,full_refit",
        help="comma-separated: never, every:N, drift, continuous, always, full_refit (a plain "
        "refit on all labelled history each window, no gates); a retraining policy may name "
        "its training mix, e.g. always@weighted, or always@provisional (also the labels known "
        "so far of windows not yet in history)",
    )
    p.add_argument(
        "--label-delay",
        type=int,
        default=None,
        help="windows until labels arrive, for labels without a time column (default 0); "
        "labels with labels.time_column arrive by their own times",
    )
    p.add_argument(
        "--ignore-label-times",
        action="store_true",
        help="replay labels that carry their own times (labels.time_column) as if they had "
        "none: each window's labels arrive --label-delay windows after it (default 0: by its "
        "end). A counterfactual: what the label times cost each policy",
    )
    p.add_argument(
        "--canary-delay", type=int, default=0, help="windows a canary serves before promotion"
    )
    p.add_argument("--windows", default=None, help="a..b: first and last window (inclusive)")
    p.add_argument("--out", default="backtest-out", help="output directory")
    p.add_argument("--jobs", type=int, default=None, help="processes (default: min(2, policies))")
    p.add_argument("--slo", type=float, default=None, help="count windows worse than this")
    p.add_argument(
        "--known-drift", default=None, help="comma-separated windows where the data changes"
    )
    p.add_argument("--no-cache", action="store_true", help="train every policy's models itself")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 if any policy could not score a window (ingest or scoring failed), or the "
        "baseline's refit met an unexpected error",
    )
    p.set_defaults(func=_cmd_backtest)
