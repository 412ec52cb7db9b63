"""The labelled signal's threshold: metric units for bounded metrics, a share of the reference
for error metrics in the target's units, so a setting decides the same in any unit."""

from __future__ import annotations

import pytest

from retrain.drift import PerformanceCheck, performance_fired
from retrain.settings.drift import DriftConfig


def _rmse_check(reference: float, drop: float) -> PerformanceCheck:
    # An interval well above zero: only the threshold decides.
    return PerformanceCheck(
        metric="rmse",
        reference=reference,
        current=reference + drop,
        lower=reference + 0.9 * drop,
        upper=reference + 1.1 * drop,
        drop=drop,
        drop_lower=0.5 * drop,
        drop_upper=1.5 * drop,
        n=5_000,
        confidence=0.95,
    )


@pytest.mark.parametrize("scale", [1.0, 1_000.0, 0.001])
def test_an_rmse_rise_fires_by_its_share_of_the_reference_in_any_unit(scale: float) -> None:
    dc = DriftConfig()  # max_performance_drop 0.05: 5% worse
    assert not performance_fired(_rmse_check(40.0 * scale, 1.6 * scale), dc)  # 4% worse
    assert performance_fired(_rmse_check(40.0 * scale, 2.4 * scale), dc)  # 6% worse


def test_a_bounded_metric_s_threshold_stays_in_metric_units() -> None:
    check = PerformanceCheck(
        metric="roc_auc",
        reference=0.9,
        current=0.84,
        lower=0.83,
        upper=0.85,
        drop=0.06,
        drop_lower=0.04,
        drop_upper=0.08,
        n=5_000,
        confidence=0.95,
    )
    assert performance_fired(check, DriftConfig())
    assert not performance_fired(check, DriftConfig(max_performance_drop=0.07))


def test_a_perfect_reference_makes_any_rise_beyond_noise_fire() -> None:
    # rmse 0 at training: 5% of 0 is 0, so a rise of 0.01 whose interval lies above zero
    # fires (read as 0.05 in the target's units it would not).
    assert performance_fired(_rmse_check(0.0, 0.01), DriftConfig())
