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


# 100 paired labels per analysis is 20 % of `min_labelled`: only the labels pooled over a
# step's analyses reach it. 2000 split labels give the canary 200 per analysis at 10 %; 300
# give it 30, which reach `min_labelled` only by waiting past the fixed progress deadline.
SETTINGS = [("split", 5000), ("split", 2000), ("split", 300), ("paired", 500), ("paired", 100)]


@pytest.mark.parametrize(("mode", "labels"), SETTINGS)
def test_an_equal_canary_is_rarely_rolled_back(mode: str, labels: int) -> None:
    # Rolled back on evidence, or ended unjudged: neither should happen where labels suffice.
    r = canary.rates(mode, labels, 0.0, TRIALS, seed=1)
    assert r["rolled_back"] + r["inconclusive"] <= LIMIT
    assert r["promoted"] >= 1 - LIMIT


@pytest.mark.parametrize(("mode", "labels"), SETTINGS)
@pytest.mark.parametrize("gap", [0.05, 0.10])
def test_a_worse_canary_is_rarely_promoted(mode: str, labels: int, gap: float) -> None:
    assert canary.rates(mode, labels, gap, TRIALS, seed=2)["promoted"] <= LIMIT


@pytest.mark.parametrize(("mode", "labels"), [("split", 2000), ("paired", 100)])
def test_a_noisier_proportion_at_low_traffic_keeps_both_rates_low(mode: str, labels: int) -> None:
    equal = canary.rates(mode, labels, 0.0, TRIALS, seed=5, accuracy=0.6)
    worse = canary.rates(mode, labels, 0.05, TRIALS, seed=5, accuracy=0.6)
    assert equal["rolled_back"] + equal["inconclusive"] <= LIMIT
    assert worse["promoted"] <= LIMIT


def test_pooling_takes_several_analyses_per_step_at_low_traffic() -> None:
    # 100 paired labels per analysis: `min_labelled` (500) pooled at a step's 5th analysis,
    # where a paired pool is first judged (within the 6 that fit before the 1800 s deadline
    # at 300 s intervals): 15 analyses for three steps.
    r = canary.rates("paired", 100, 0.0, 50, seed=6)
    assert r["median_analyses"] == 15


def test_a_noisier_proportion_keeps_both_rates_low() -> None:
    # Accuracy 0.6: the largest spread of the table (sqrt(0.6 x 0.4) per label).
    equal = canary.rates("split", 5000, 0.0, TRIALS, seed=4, accuracy=0.6)
    worse = canary.rates("split", 5000, 0.05, TRIALS, seed=4, accuracy=0.6)
    assert equal["rolled_back"] + equal["inconclusive"] <= LIMIT
    assert worse["promoted"] <= LIMIT


@pytest.mark.parametrize("gap", [0.0, 0.10])
def test_with_too_few_labels_for_the_cap_the_rollout_is_inconclusive(gap: float) -> None:
    # 20 labels per analysis, 2 of them the canary's: 144 pooled by the 10 % step's cap (72
    # analyses), no verdict either way. The rollout ends inconclusive at the cap, never on a
    # check and never promoted.
    r = canary.rates("split", 20, gap, 30, seed=3)
    assert r == {"promoted": 0.0, "rolled_back": 0.0, "inconclusive": 1.0, "median_analyses": 72}


def test_the_section_is_a_table_with_one_row_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canary, "LABELS", {"split": (5000,), "paired": (500,)})
    text = canary.section(quick=True)
    rows = [line for line in text.splitlines() if line.startswith(("| split", "| paired"))]
    per_setting = len(canary.CHAMPION_ACCURACIES)
    assert len(rows) == per_setting * sum(len(v) for v in canary.LABELS.values())
    assert text.startswith("## Canary analysis")
