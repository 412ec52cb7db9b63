"""Quantiles read off a sorted column: the values np.quantile gives, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from retrain.drift._columns import sorted_quantiles


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 999, 10_001])
@pytest.mark.parametrize("bins", [2, 10, 7, 64])
def test_equal_to_numpy_quantile_bit_for_bit(n: int, bins: int) -> None:
    rng = np.random.default_rng(n * 100 + bins)
    q = np.arange(1, bins) / bins
    for values in (
        rng.lognormal(0.0, 2.0, n),
        rng.integers(-3, 4, n).astype(float),  # ties: quantiles land inside runs of one value
        rng.standard_cauchy(n) * 1e6,
    ):
        ordered = np.sort(values)
        np.testing.assert_array_equal(sorted_quantiles(ordered, q), np.quantile(values, q))


def test_ends_of_the_range_are_the_minimum_and_the_maximum() -> None:
    ordered = np.array([-2.5, 0.0, 1.0, 7.0])
    got = sorted_quantiles(ordered, np.array([0.0, 1.0]))
    np.testing.assert_array_equal(got, [-2.5, 7.0])
