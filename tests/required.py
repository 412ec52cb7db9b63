"""Packages the tests need: skipped where they are missing locally, a failure under CI=true.

`pytest.importorskip` turns a missing package into a skip, so a broken install passes as a
green run with skips. The packages the ``kfp``, ``demo`` and ``dev`` extras install (kfp,
kfp-kubernetes, kubernetes, river, ...) are required: `make venv` and CI install them. Import
them with `require` instead; on a developer's partial install it still skips, with the reason.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["require", "unavailable"]


def unavailable(reason: str) -> NoReturn:
    """Skip for `reason` (also at module level), or fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required: under CI=true it fails, not skips)", pytrace=False)
    raise pytest.skip.Exception(reason, allow_module_level=True)


def require(module: str, reason: str) -> ModuleType:
    """`module` imported; if it cannot be, `unavailable` says why (skip, or fail in CI).

    Args:
        module: the module to import, e.g. ``"kfp"`` or ``"kfp.kubernetes"``.
        reason: what needs it and which extra installs it, for the skip or failure message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        problem = f"cannot import {module} ({err}): {reason}"
    unavailable(problem)  # outside the except block: no chained traceback in the report
