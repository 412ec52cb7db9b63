"""Stratified sampling under `training.max_train_rows`: a rare class keeps at least one row.

Proportional quotas round a class of 3 rows in 10,000 to 0.3 of a row at a cap of 1,000; by
largest remainders alone it lost that row to a larger class and the model never saw it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrain.data.quotas import proportional_quotas
from retrain.data.split import evaluation_mask
from retrain.training._sampling import sample_positions, seeded_rng
from retrain.training.mix import build_training_set
from tests.unit.test_training import make_cfg, make_frame


def _strata(counts: list[int], seed: int = 0) -> np.ndarray:
    """Stratum codes with `counts[k]` rows of code k, shuffled."""
    codes = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(codes)


@pytest.mark.parametrize(
    ("counts", "n"),
    [
        ([6000, 3997, 3], 1000),  # 600, 399.7 and 0.3: the 0.3 lost the last row to 399.7
        ([9990, 3, 3, 4], 1000),  # three rare classes, each under one row's share
        ([5000, 4994, 1, 1, 1, 1, 1, 1], 8),  # as many rows as classes: one each
        ([9999, 1], 2),
    ],
)
def test_every_class_keeps_a_row_when_the_cap_allows_one_each(counts: list[int], n: int) -> None:
    strata = _strata(counts)
    positions = sample_positions(strata, n, seeded_rng(7, 3))
    assert len(positions) == n == len(set(positions.tolist()))
    kept = np.bincount(strata[positions], minlength=len(counts))
    assert kept.min() >= 1, kept.tolist()
    # The other classes stay proportional: within a row for each row the rare ones took.
    total, rare = sum(counts), sum(1 for c in counts if c * n / sum(counts) < 1)
    for count, got in zip(counts, kept.tolist(), strict=True):
        assert abs(got - count * n / total) <= rare + 1


def test_max_train_rows_keeps_the_rare_class_of_the_new_window() -> None:
    new = make_frame(10_000, 1)
    training = np.flatnonzero(~evaluation_mask(new["id"], 0.2, "demo"))
    new.loc[training[:3], "label"] = "chargeback"  # 3 training rows of a third class
    # About 8,000 training rows capped at 1,000: the third class's share is 0.4 of a row.
    cfg = make_cfg(training={"max_train_rows": 1000})
    ts = build_training_set(new, None, cfg, seed=3)
    assert len(ts.train) == 1000
    assert int((ts.train["label"] == "chargeback").sum()) >= 1
    assert pd.Index(ts.train["id"]).is_unique


def test_a_least_is_kept_when_there_is_room_for_every_least() -> None:
    # Shares 50, 49.97 and 0.03: the third group's least 2 comes from the group furthest above
    # its share (the first, at exactly 50).
    assert proportional_quotas([5000, 4997, 3], 100, least=[0, 0, 2]).tolist() == [49, 49, 2]
    # No room for every least (2 + 2 + 2 > 5): shares alone, as without the rule.
    plain = proportional_quotas([5000, 4997, 3], 5, one_each=False)
    assert proportional_quotas([5000, 4997, 3], 5, one_each=False, least=[2, 2, 2]).tolist() == (
        plain.tolist()
    )
    # Quotas that keep every least already are unchanged by it.
    shares = proportional_quotas([600, 397, 3], 100)
    assert shares.tolist() == proportional_quotas([600, 397, 3], 100, least=[1, 1, 1]).tolist()


def test_without_room_for_every_least_one_each_still_holds() -> None:
    # Leasts of 3 + 3 do not fit in 5 rows, one row each does: no group is emptied (with
    # the leasts dropped as well, the biggest group would have given up every row).
    got = proportional_quotas([1000, 3, 3], 5, least=[0, 3, 3]).tolist()
    assert got == proportional_quotas([1000, 3, 3], 5).tolist() == [3, 1, 1]
    assert proportional_quotas([1000, 3, 3], 6, least=[0, 3, 3]).tolist() == [4, 1, 1]
