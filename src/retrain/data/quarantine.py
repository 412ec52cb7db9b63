"""Row-level checks: broken rows are set aside, drifted values are counted and kept.

A window is the very data retraining exists for, so a value outside what the reference saw is
a drift signal, not a reason to stop. `check_rows` sorts what it finds in three kinds:

- **drift** (kept, counted): a numeric value beyond the reference range (widened by
  `data.range_tolerance` of its width), a new category carried by at least
  `data.min_category_rows` rows of the window;
- **broken rows** (quarantined with a reason): no id, a value in a numeric feature that is not a
  finite number, a category the reference never saw carried by fewer rows than that (a typo is
  rare; a new product line is not);
- what is left is the window.

The reference is a `ValueReference`: the serving champion's training data when there is one
(so it re-bases each time a new champion is deployed), else the schema's first window.
Structural problems (missing columns, a numeric column mostly of text, duplicate ids, too few
rows) are not row problems: `retrain.data.schema.check_window` fails the window for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.schema import Schema, as_category_strings, numeric_values
from retrain.errors import sample_text

__all__ = [
    "QUARANTINE_REASON",
    "RowChecks",
    "ValueReference",
    "check_rows",
    "drift_lines",
    "rare_category_reason",
    "unseen_value_hints",
]

#: The column a quarantined row's reason is written to.
QUARANTINE_REASON = "_quarantine_reason"


def rare_category_reason(name: str) -> str:
    """The quarantine reason of a row whose `name` holds a category the reference never saw,
    on fewer than `data.min_category_rows` rows of the window."""
    return f"{name!r} has a category seen in too few rows"


def unseen_value_hints(
    reasons: dict[str, int], cfg: Config, reference: ValueReference | None
) -> list[str]:
    """What to do when a categorical feature's rare unseen values broke a window: one line for
    each such feature whose reference holds more than `training.max_onehot_categories` values.

    Training already encodes such a feature as an identifier, yet ingest takes each of its
    rare new values for a typo: a column of hundreds of codes (merchants, zip codes) meets new
    ones in every window, and every window after the first fails.
    """
    if reference is None:
        return []
    limit = cfg.training.max_onehot_categories
    hints = []
    for name in cfg.categorical_features:
        seen = reference.categories.get(name)
        if seen is None or len(seen) <= limit or rare_category_reason(name) not in reasons:
            continue
        hints.append(
            f"{name!r} takes {len(seen)} values in {reference.source}, more"
            f" than training.max_onehot_categories ({limit}), and its new values are expected:"
            f" declare it '{name}: identifier' in data.features (new values are then no broken"
            " rows), or set data.min_category_rows: 1 to keep them as drift"
        )
    return hints


@dataclass(frozen=True)
class ValueReference:
    """Ranges and category sets a window's values are compared with, and where they came from."""

    source: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, schema: Schema) -> ValueReference:
        """The first window's ranges and categories, as the schema recorded them."""
        ranges = {
            name: (col.min, col.max)
            for name, col in schema.columns.items()
            if col.kind == "numeric" and col.min is not None and col.max is not None
        }
        categories = {
            name: frozenset(col.categories)
            for name, col in schema.columns.items()
            if col.kind == "categorical" and col.categories is not None
        }
        return cls("the first window (schema)", ranges, categories)


@dataclass
class RowChecks:
    """What `check_rows` found: which rows to keep, the quarantined ones, and the drift."""

    keep: np.ndarray
    quarantined: pd.DataFrame
    reasons: dict[str, int]
    out_of_range: dict[str, dict[str, Any]]
    new_categories: dict[str, dict[str, int]]
    reference: str | None

    @property
    def quarantined_rows(self) -> int:
        return len(self.quarantined)

    def to_dict(self, rows: int) -> dict[str, Any]:
        """JSON-ready: counts, shares and what drifted."""
        return {
            "reference": self.reference,
            "quarantined_rows": self.quarantined_rows,
            "quarantined_share": self.quarantined_rows / rows if rows else 0.0,
            "quarantine_reasons": dict(self.reasons),
            "out_of_range": self.out_of_range,
            "new_categories": {k: _top(v) for k, v in self.new_categories.items()},
            "drifted_values": sum(v["rows"] for v in self.out_of_range.values())
            + sum(sum(c.values()) for c in self.new_categories.values()),
        }


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def check_rows(df: pd.DataFrame, cfg: Config, reference: ValueReference | None) -> RowChecks:
    """Sort `df`'s rows into kept and quarantined, and count the drifted values of the kept.

    Without a reference only the reference-free row checks run (ids, numbers).
    """
    n = len(df)
    reason = pd.Series([None] * n, index=df.index, dtype=object)

    def mark(mask: pd.Series | np.ndarray, why: str) -> None:
        hit = np.asarray(mask, dtype=bool) & reason.isna().to_numpy()
        reason[hit] = why

    id_col = cfg.data.id_column
    if id_col in df.columns:
        mark(df[id_col].isna(), f"no id ({id_col!r} is empty)")
    for name in cfg.numeric_features:
        if name not in df.columns:
            continue
        values, not_number = numeric_values(df[name])
        infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        mark(not_number | infinite, f"{name!r} is not a finite number")
    out_of_range: dict[str, dict[str, Any]] = {}
    new_categories: dict[str, dict[str, int]] = {}
    if reference is not None:
        for name in cfg.categorical_features:
            seen = reference.categories.get(name)
            if name not in df.columns or seen is None:
                continue
            labels = as_category_strings(df[name])
            unseen = labels.notna() & ~labels.isin(list(seen))
            if not unseen.any():
                continue
            counts = labels[unseen].value_counts()
            rare = counts[counts < cfg.data.min_category_rows]
            mark(labels.isin(list(rare.index)), rare_category_reason(name))
            # Counted on the rows the window keeps: what the dataset will hold.
            frequent = labels[unseen & reason.isna()].value_counts()
            frequent = frequent[
                frequent.index.isin(counts[counts >= cfg.data.min_category_rows].index)
            ]
            if len(frequent):
                new_categories[name] = {str(k): int(v) for k, v in frequent.sort_index().items()}
        tol = cfg.data.range_tolerance
        kept = reason.isna().to_numpy()
        for name in cfg.numeric_features:
            bounds = reference.ranges.get(name)
            if name not in df.columns or bounds is None:
                continue
            values, _ = numeric_values(df[name])
            values = values[kept].dropna()
            lo, hi = bounds
            width = hi - lo
            outside = (values < lo - tol * width) | (values > hi + tol * width)
            if outside.any():
                out_of_range[name] = {
                    "rows": int(outside.sum()),
                    "reference": [lo, hi],
                    "allowed": [lo - tol * width, hi + tol * width],
                    "seen": [float(values.min()), float(values.max())],
                }
    bad = reason.notna().to_numpy()
    quarantined = df.loc[bad].copy()
    quarantined[QUARANTINE_REASON] = reason[bad].astype(str)
    counts = reason[bad].value_counts()
    return RowChecks(
        keep=~bad,
        quarantined=quarantined.reset_index(drop=True),
        reasons={str(k): int(v) for k, v in sorted(counts.items())},
        out_of_range=out_of_range,
        new_categories=new_categories,
        reference=None if reference is None else reference.source,
    )


def drift_lines(checks: RowChecks) -> list[str]:
    """The drifted values in words, one line per feature, for the report."""
    lines = []
    for name, e in checks.out_of_range.items():
        lo, hi = e["allowed"]
        s_lo, s_hi = e["seen"]
        lines.append(
            f"{name!r}: {e['rows']} values outside [{_fmt(lo)}, {_fmt(hi)}] (seen "
            f"[{_fmt(s_lo)}, {_fmt(s_hi)}])"
        )
    for name, cats in checks.new_categories.items():
        top = _top(cats)
        listed = ", ".join(f"{sample_text([k])} ({v} rows)" for k, v in top.items())
        more = f" and {len(cats) - len(top)} more" if len(cats) > len(top) else ""
        lines.append(f"{name!r}: {len(cats)} new categories: {listed}{more}")
    return lines


_LISTED = 10


def _top(counts: dict[str, int]) -> dict[str, int]:
    """The most frequent `_LISTED` categories, each cut to a short text: a report never holds
    every value of a high-cardinality column, nor a hostile value whole."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:_LISTED]
    return {k if len(k) <= 80 else f"{k[:80]}…": v for k, v in ranked}
