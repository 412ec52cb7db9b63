"""The evaluation split by id hash: stable, order-free, type-blind, and of the asked share."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from retrain.data.split import evaluation_mask, hash_unit
from retrain.errors import ValidationError


def test_a_row_keeps_its_role_whatever_the_order_or_company() -> None:
    ids = pd.Series(np.arange(5000))
    mask = evaluation_mask(ids, 0.2, "loans")
    shuffled = ids.sample(frac=1.0, random_state=3)
    again = evaluation_mask(shuffled, 0.2, "loans")
    assert np.array_equal(again, mask[shuffled.to_numpy()])
    subset = ids.iloc[100:200]
    assert np.array_equal(evaluation_mask(subset, 0.2, "loans"), mask[100:200])


def test_integer_and_text_ids_get_the_same_role() -> None:
    as_int = pd.Series([1, 22, 333, 4444])
    as_text = pd.Series(["1", "22", "333", "4444"])
    assert np.array_equal(hash_unit(as_int, "s"), hash_unit(as_text, "s"))


def test_the_value_is_blake2b_of_salt_and_id() -> None:
    # Computed independently of the module: the first 8 bytes of blake2b, big-endian, / 2**64.
    digest = hashlib.blake2b(b"m\x00" + b"abc", digest_size=8).digest()
    assert hash_unit(pd.Series(["abc"]), "m")[0] == int.from_bytes(digest, "big") / 2.0**64


@pytest.mark.parametrize("share", [0.1, 0.2, 0.5])
def test_the_share_is_close_to_the_one_asked(share: float) -> None:
    n = 20_000
    got = evaluation_mask(pd.Series([f"user-{i}" for i in range(n)]), share, "x").mean()
    # Binomial: 4 standard deviations.
    assert abs(got - share) < 4 * np.sqrt(share * (1 - share) / n)


def test_different_salts_give_independent_splits() -> None:
    ids = pd.Series(np.arange(20_000))
    a, b = evaluation_mask(ids, 0.5, "a"), evaluation_mask(ids, 0.5, "b")
    assert abs((a & b).mean() - 0.25) < 0.02


def test_missing_ids_and_bad_shares_are_refused() -> None:
    with pytest.raises(ValidationError, match="no id"):
        hash_unit(pd.Series(["a", None]), "s")
    with pytest.raises(ValidationError, match="share"):
        evaluation_mask(pd.Series(["a"]), 1.0, "s")
