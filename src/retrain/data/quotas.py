"""How many rows each group gives to a proportional sample: the one rule every sampler follows.

Used for the history read window by window (`retrain.data.history`: windows, then labels
within a window) and for the training mix (`retrain.training._sampling`: labels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["proportional_quotas"]


def proportional_quotas(
    counts: Sequence[int] | np.ndarray,
    n: int,
    *,
    one_each: bool = True,
    larger_first: bool = True,
    least: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Rows to take from each group (of `counts[k]` rows) so that `n` rows keep their shares.

    Largest remainders: the quotas add up to `n` and each is within one row of its group's
    proportional share, with one exception. With `one_each`, when `n` is at least the number
    of non-empty groups, every non-empty group keeps at least one row (a class of 3 rows in
    10,000 is not sampled away at 1,000 rows), the rows this needs coming from the groups
    furthest above their share. `least` asks the same for ``least[k]`` rows of group k (at
    most its size), when `n` has room for all of them (with one each, when `n` has room for
    that too; with room for one each but not for that, one each holds and the leasts give
    way). A group whose share already rounds to its least gets the quota it would get without
    the rule, unless it is one of those that give a row up: quotas that keep every least
    without the rule are unchanged by it.

    Ties go to the larger group when `larger_first`, then to the lower index, so the quotas
    are deterministic. With `n` at least the rows in all, every row is taken.
    """
    sizes = np.asarray(counts, dtype=np.int64)
    total = int(sizes.sum())
    if n >= total:
        return sizes.copy()
    exact = sizes * (n / total)
    quota: np.ndarray = np.floor(exact).astype(np.int64)
    asked = np.zeros_like(sizes) if least is None else np.minimum(np.asarray(least), sizes)
    present = (sizes > 0).astype(np.int64)
    # The first that fits: every least and one each; one each (no group emptied); every least.
    options = [np.maximum(asked, present), present, asked] if one_each else [asked]
    floor = next((f for f in options if n >= int(f.sum())), np.zeros_like(sizes))
    quota = np.maximum(quota, floor)
    index = np.arange(len(sizes))
    size_key = -sizes if larger_first else np.zeros_like(sizes)
    short = n - int(quota.sum())
    if short > 0:
        order = np.lexsort((index, size_key, -(exact - quota)))
        quota[order[:short]] += 1
    for _ in range(-short):
        # One row back from the group furthest above its share that keeps its least.
        over = np.where(quota > floor, quota - exact, -np.inf)
        quota[np.lexsort((index, size_key, -over))[0]] -= 1
    return quota
