"""Why no label matched: a hint when labels exist but not one of their ids is an event id.

A label coverage of 0% has two usual causes: the window's labels have not arrived, or they have
and the ids differ (the wrong ``labels.id_column``, or the two sides write ids differently:
integers against zero-padded text, a prefix, a different case). `id_mismatch_hint` tells the
second from the first where it can, and shows a few ids of each side with their types.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.schema import as_category_strings
from retrain.data.windows import event_times

__all__ = ["id_mismatch_hint"]

_EXAMPLES = 3


def _examples(ids: pd.Series) -> str:
    values = ids.dropna().drop_duplicates().head(_EXAMPLES).tolist()
    return ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values)


def _dated_from(cfg: Config, labels: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The labels dated at or after the window's first event (a label comes after its event;
    an unreadable or missing date is kept), when both sides have times."""
    column = cfg.labels.time_column
    if not column or column not in labels.columns or cfg.data.time_column not in events.columns:
        return labels
    start = event_times(events[cfg.data.time_column], cfg.data.time_kind, errors="coerce").min()
    if pd.isna(start):
        return labels
    dated = event_times(labels[column], cfg.data.time_kind, errors="coerce")
    kept: pd.DataFrame = labels[(dated.isna() | (dated >= start)).to_numpy()]
    return kept


def id_mismatch_hint(
    cfg: Config, events: pd.DataFrame, labels: pd.DataFrame, *, sampled: bool = False
) -> str | None:
    """A hint naming the id columns, a few ids of each side and their types, when `labels`
    (with a time column: those dated from the window's first event on) exist but not one of
    their ids matches an event id; None when some id matches or there is no such label.

    `sampled`: `labels` is a few rows of the source, not the labels the join read (a read
    filtered by the events' ids found none); their dates are then not judged.
    """
    id_col, label_id = cfg.data.id_column, cfg.labels.id_column
    if id_col not in events.columns or label_id not in labels.columns:
        return None
    candidates = labels if sampled else _dated_from(cfg, labels, events)
    label_keys = as_category_strings(candidates[label_id]).dropna()
    if label_keys.empty:
        return None
    event_keys = as_category_strings(events[id_col]).dropna()
    if event_keys.empty or pd.Index(label_keys.unique()).isin(event_keys.unique()).any():
        return None
    where = (
        "the label source has labels (a few of them shown), but none for these events' ids"
        if sampled
        else f"{len(label_keys)} labels"
        + (" dated from the first event's time on" if cfg.labels.time_column else "")
        + " exist, but not one of their ids is an event id"
    )
    return (
        f"no label id matches an event id: {where}; events' {id_col!r} ({_dtype(events[id_col])}"
        f"), e.g. {_examples(events[id_col])}; labels' {label_id!r} "
        f"({_dtype(candidates[label_id])}), e.g. {_examples(candidates[label_id])}. Check "
        "labels.id_column and that both sides write ids alike (type, zero padding, prefixes)"
    )


def _dtype(values: pd.Series) -> Any:
    """The column's type; for text held as objects, the types of its values."""
    if values.dtype == object:
        kinds = sorted({type(v).__name__ for v in values.dropna().head(100)})
        return f"object: {', '.join(kinds)}" if kinds else "object"
    return str(values.dtype)
