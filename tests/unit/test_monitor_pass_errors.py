"""A pass's errors other than Ctrl-C, and --pass-id's refusal with --every."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import pytest

import retrain.cli._pass_start as pass_start
from retrain.config import Config
from retrain.errors import ValidationError
from retrain.triggers.fleet import load_configs
from retrain.triggers.fleet_pool import ProcessFleet
from tests.unit.test_triggers_fleet import fleet


def test_an_empty_pass_id_with_every_is_refused() -> None:
    """Refused as a non-empty one is: --every's passes each count from their own start."""
    args = argparse.Namespace(pass_id="", every="10m", deadline="20m")
    with pytest.raises(ValidationError, match="--pass-id is for a --once pass"):
        pass_start.checked_pass_id(args)


def _explode() -> None:
    raise RuntimeError("a result the parent cannot load")


class _FailsToLoad:
    """Pickles in the worker; unpickling it in the parent raises (a bug, not a Ctrl-C)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


def bad_m1_slow_m2(cfg: Config) -> Any:
    if cfg.name == "m1":
        return _FailsToLoad()
    time.sleep(1.5)  # a check (with its rollout tick) in progress on the other worker
    (Path(cfg.storage_root).parent / "finished").write_text(str(os.getpid()))
    return cfg.name


def test_a_dispatch_error_that_is_not_ctrl_c_lets_the_other_checks_finish(
    tmp_path: Path,
) -> None:
    """Only Ctrl-C kills the workers mid-check; any other error of the parent's dispatch lets
    the check in progress on another worker finish (its rollout tick would otherwise hold its
    lock to the lock's TTL)."""
    configs = load_configs([str(fleet(tmp_path, ["m1", "m2", "m3"]))])
    with ProcessFleet[Any](2) as pool, pytest.raises(RuntimeError, match="cannot load"):
        pool.run(configs, bad_m1_slow_m2)
    assert (tmp_path / "m2" / "finished").exists()  # m2 was on the other worker
