"""`require`: a missing required package skips locally and fails under CI=true."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from required import require

TESTS = Path(__file__).parents[1]


def test_an_importable_module_is_returned() -> None:
    assert require("json", "the standard library") is json


def test_a_missing_module_skips_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no_such_module.*extra 'demo'"):
        require("no_such_module", "the demo needs it (extra 'demo')")


def test_a_missing_module_fails_with_the_reason_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no_such_module.*extra 'demo'"):
        require("no_such_module", "the demo needs it (extra 'demo')")


def test_no_test_skips_on_a_missing_package_with_importorskip() -> None:
    # Every package the tests import comes with an extra that `make venv` and CI install:
    # `require` it, so that CI fails instead of passing with the tests skipped.
    offenders = [
        str(path.relative_to(TESTS))
        for path in sorted(TESTS.rglob("*.py"))
        if re.search(r"importorskip\(", path.read_text()) and path != Path(__file__)
    ]
    assert offenders == []
