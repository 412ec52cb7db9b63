"""The canary analysis' error rates, from small seeded runs of the decision simulation.

The full table is `benchmarks/decisions/canary.py`; these runs use fewer rollouts and assert
each rate against 5 % with a binomial margin: the count may not exceed the 99th percentile of
a binomial at 5 %, so a true rate at or below 5 % passes and a clearly higher one fails.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from scipy.stats import binom

from bench_script import BENCHMARKS


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "decisions_canary", BENCHMARKS / "decisions" / "canary.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decisions_canary"] = module
    spec.loader.exec_module(module)
    return module


canary = _load()
TRIALS = 150
LIMIT = int(binom.ppf(0.99, TRIALS, 0.05)) / TRIALS


@pytest.mark.parametrize(("mode", "labels"), [("split", 5000), ("paired", 500)])
def test_an_equal_canary_is_rarely_rolled_back(mode: str, labels: int) -> None:
    r = canary.rates(mode, labels, 0.0, TRIALS, seed=1)
    assert r["failed_checks"] + r["timed_out"] <= LIMIT
    assert r["promoted"] >= 1 - LIMIT


@pytest.mark.parametrize(("mode", "labels"), [("split", 5000), ("paired", 500)])
@pytest.mark.parametrize("gap", [0.05, 0.10])
def test_a_worse_canary_is_rarely_promoted(mode: str, labels: int, gap: float) -> None:
    assert canary.rates(mode, labels, gap, TRIALS, seed=2)["promoted"] <= LIMIT


def test_a_noisier_proportion_keeps_both_rates_low() -> None:
    # Accuracy 0.6: the largest spread of the table (sqrt(0.6 x 0.4) per label).
    equal = canary.rates("split", 5000, 0.0, TRIALS, seed=4, accuracy=0.6)
    worse = canary.rates("split", 5000, 0.05, TRIALS, seed=4, accuracy=0.6)
    assert equal["failed_checks"] + equal["timed_out"] <= LIMIT
    assert worse["promoted"] <= LIMIT


@pytest.mark.parametrize("gap", [0.0, 0.10])
def test_with_few_labels_the_quality_check_is_not_evaluated(gap: float) -> None:
    # 100 labels per analysis, 10 of them the canary's: no verdict either way. The rollout
    # waits and ends at the progress deadline, never on a check and never promoted.
    r = canary.rates("split", 100, gap, 50, seed=3)
    assert r == {"promoted": 0.0, "failed_checks": 0.0, "timed_out": 1.0}


def test_the_section_is_a_table_with_one_row_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canary, "LABELS", {"split": (5000,), "paired": (500,)})
    text = canary.section(quick=True)
    rows = [line for line in text.splitlines() if line.startswith(("| split", "| paired"))]
    per_setting = len(canary.CHAMPION_ACCURACIES)
    assert len(rows) == per_setting * sum(len(v) for v in canary.LABELS.values())
    assert text.startswith("## Canary analysis")
