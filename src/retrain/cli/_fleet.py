"""What the commands that serve many models share: their options and a model's JSON entry."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from retrain.errors import ValidationError
from retrain.settings.durations import parse_duration
from retrain.triggers.fleet import ModelResult, fleet_exit_code

__all__ = ["config_options", "deadline_option", "deadline_seconds", "fleet_entry", "models"]

T = TypeVar("T")


def config_options(p: argparse.ArgumentParser) -> None:
    """``--config`` (files or directories, several at once) and ``--workers``."""
    p.add_argument(
        "--config",
        required=True,
        nargs="+",
        metavar="PATH",
        help="config file(s), or directories of *.yaml configs: one pass serves every model",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=4,
        help="models handled at once when several configs are given (default 4)",
    )


def deadline_option(p: argparse.ArgumentParser, work: str) -> None:
    """``--deadline``: no model's `work` starts after that long from a pass's start."""
    p.add_argument(
        "--deadline",
        metavar="DURATION",
        help=f"start no model's {work} after this long from the pass's start (e.g. 3m; several "
        "configs): the models not reached are named and served first by the next pass. Leave "
        f"a {work}'s time under the Job's activeDeadlineSeconds",
    )


def deadline_seconds(duration: str | None) -> float | None:
    """``--deadline`` in seconds (None: no deadline)."""
    if duration is None:
        return None
    try:
        return float(parse_duration(duration))
    except ValueError as err:
        raise ValidationError(f"--deadline: {err}") from None


def fleet_entry(r: ModelResult[T], doc: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """One model's entry in a pass's ``--json`` list: its result as `doc` renders it, or its
    error and the exit code that error alone would give, or why it was skipped."""
    entry: dict[str, Any] = {"model": r.model, "seconds": round(r.seconds, 3)}
    if r.result is not None:
        entry["result"] = doc(r.result)
    if r.error is not None:
        entry["error"] = str(r.error)
        entry["exit_code"] = fleet_exit_code([r])
    if r.skipped is not None:
        entry["skipped"] = r.skipped
    return entry


def models(n: int) -> str:
    """``1 model``, ``2 models``: how a pass's summary line counts them."""
    return f"{n} model" if n == 1 else f"{n} models"
