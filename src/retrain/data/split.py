"""Which labelled rows judge models and which train them: a fixed split by a hash of the id.

A row's role depends on its id alone (and a salt), never on the run, the window or the order
of the data: a row that is an evaluation row today was one yesterday and will be tomorrow, so
no model ever trains on a row that any later comparison scores (TFX-style consistent
holdouts). Ids are compared as text the way the label join does (``7`` and ``"7"`` are one
id), and each distinct id is hashed once.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pandas as pd

from retrain.data.schema import as_category_strings
from retrain.errors import ValidationError

__all__ = ["evaluation_mask", "hash_unit"]

_SCALE = float(2**64)


def hash_unit(ids: pd.Series, salt: str) -> npt.NDArray[np.float64]:
    """A number in [0, 1) per row: blake2b of ``salt`` and the id's text, as a fraction.

    Stable across processes, machines and library versions (unlike Python's `hash`). A
    missing id raises: a row without an id cannot be given a permanent role.
    """
    text = as_category_strings(ids)
    if text.isna().any():
        raise ValidationError(f"{int(text.isna().sum())} row(s) have no id: cannot split them")
    codes, uniques = pd.factorize(text)
    prefix = salt.encode() + b"\x00"
    values = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(prefix + str(u).encode(), digest_size=8).digest(), "big")
            / _SCALE
            for u in uniques
        ),
        dtype=np.float64,
        count=len(uniques),
    )
    return np.asarray(values[codes], dtype=np.float64)


def evaluation_mask(ids: pd.Series, share: float, salt: str) -> npt.NDArray[np.bool_]:
    """True for the rows whose id falls in the evaluation share (about `share` of the ids)."""
    if not 0.0 <= share < 1.0:
        raise ValidationError(f"evaluation share must be in [0, 1), got {share}")
    return hash_unit(ids, salt) < share
