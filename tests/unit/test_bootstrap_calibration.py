"""Two equally good models are blessed at most at the nominal rate, on few evaluation rows.

Binormal scores with a known truth (true AUC 0.8 for both, noise correlated 0.8, balanced
classes: the simulation of benchmarks/decisions/gates.py), 250 rows, 1200 seeded datasets: the
share whose 95% interval of the gain lies above 0 (a blessing) must not exceed the one-sided
nominal 2.5%. The percentile interval alone exceeded it (2.75% here; 2.7-3.5% in the benchmark).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from retrain.evaluation.bootstrap import bootstrap_difference

ROWS, DATASETS, RESAMPLES = 250, 1200, 200
MU = math.sqrt(2.0) * float(norm.ppf(0.8))


def test_equal_models_are_blessed_at_most_at_the_nominal_rate() -> None:
    blessed = 0
    y = (np.arange(ROWS) % 2).astype(int)
    for seed in range(DATASETS):
        rng = np.random.default_rng([ROWS, seed])
        noise = math.sqrt(0.8) * rng.normal(size=ROWS) + math.sqrt(0.2) * rng.normal(size=(2, ROWS))
        a, b = (expit(MU * y + noise[i]) for i in (0, 1))
        _, lower, _ = bootstrap_difference(
            "classification",
            "roc_auc",
            y,
            np.c_[1 - a, a],
            np.c_[1 - b, b],
            [0, 1],
            RESAMPLES,
            0.95,
            seed,
        )
        blessed += lower > 0
    assert blessed / DATASETS <= 0.025
