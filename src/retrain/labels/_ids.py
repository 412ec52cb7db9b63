"""Why no label matched: labels still to come, or ids that differ, told apart where the ids show it.

A label coverage of 0% has two usual causes: the window's labels have not arrived, or they have
and the ids differ (the wrong ``labels.id_column``, or the two sides write ids differently:
integers against zero-padded text, a prefix, a different case). Labels that have not arrived
are the common case, and ids of other events look just like ids written differently; so
`id_mismatch_hint` says the ids differ only on evidence: the two id columns are of different
types (integers against text), or some label ids match an event id once case and surrounding
spaces, leading zeros, or one side's common prefix or suffix are ignored. Without it, it says
neutrally that no label for these ids has arrived yet (or the ids differ). Either way it shows
a few ids of each side with their types.
"""

from __future__ import annotations

import re
from numbers import Number
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from retrain.data.schema import as_category_strings
from retrain.data.windows import event_times

__all__ = ["id_mismatch_hint"]

_EXAMPLES = 3
#: Ids of a side looked at for a common prefix or suffix.
_AFFIX_SAMPLE = 1000


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


def _value_kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, Number):
        return "number"
    return "text" if isinstance(value, str) else type(value).__name__


def _kind(values: pd.Series) -> str | None:
    """What the ids are: number (integers and floats alike), text, bool, time or another type;
    "mixed" for objects of several kinds; None when nothing shows it (no value)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    dtype = values.dtype
    if not pd.api.types.is_object_dtype(dtype):
        if pd.api.types.is_bool_dtype(dtype):
            return "bool"
        if pd.api.types.is_numeric_dtype(dtype):
            return "number"
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return "time"
        return "text" if pd.api.types.is_string_dtype(dtype) else str(dtype)
    kinds = {_value_kind(v) for v in values.dropna().head(100)}
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _plain(keys: pd.Series) -> pd.Series:
    return keys.str.strip().str.casefold()


def _unpadded(keys: pd.Series) -> pd.Series:
    out = _plain(keys).str.lstrip("0")
    return out.where(out != "", "0")


def _affixes(keys: pd.Series, *, suffix: bool) -> list[str]:
    """The side's common prefix (or suffix) up to its first digit, and that cut after each
    separator in it (a character neither letter nor digit): longest first."""
    sample = [k[::-1] if suffix else k for k in keys.head(_AFFIX_SAMPLE).tolist()]
    text = min(sample, default="")
    for key in sample:
        while not key.startswith(text):
            text = text[:-1]
    text = re.sub(r"\d.*", "", text, flags=re.DOTALL)  # up to the first digit
    cuts = {text} | {text[: i + 1] for i, ch in enumerate(text) if not ch.isalnum()}
    return [c[::-1] if suffix else c for c in sorted(cuts - {""}, key=len, reverse=True)]


def _matching(event_norm: pd.Series, label_norm: pd.Series) -> int:
    """How many distinct label ids, so rewritten, are an event id so rewritten."""
    labels = pd.Index(label_norm[label_norm != ""].unique())
    return int(labels.isin(event_norm[event_norm != ""].unique()).sum())


def _rewritten_match(event_keys: pd.Series, label_keys: pd.Series) -> str | None:
    """Which rewriting of the ids (case, padding, one side's prefix or suffix) makes some label
    ids match an event id, and how many; None when none does."""
    ev = pd.Series(event_keys.unique(), dtype=event_keys.dtype)
    lab = pd.Series(label_keys.unique(), dtype=label_keys.dtype)
    n = _matching(_plain(ev), _plain(lab))
    if n:
        return f"{n} label ids match an event id once case and surrounding spaces are ignored"
    ev_bare, lab_bare = _unpadded(ev), _unpadded(lab)
    n = _matching(ev_bare, lab_bare)
    if n:
        return f"{n} label ids match an event id once leading zeros (and case) are ignored"
    for side, keys in (("labels'", lab), ("events'", ev)):
        for suffix in (False, True):
            for affix in _affixes(keys, suffix=suffix):
                bare = keys.str.removesuffix(affix) if suffix else keys.str.removeprefix(affix)
                cut = _unpadded(bare)
                n = _matching(ev_bare, cut) if side == "labels'" else _matching(cut, lab_bare)
                if n:
                    return (
                        f"{n} label ids match an event id once the {side} common "
                        f"{'suffix' if suffix else 'prefix'} {affix!r} is removed"
                    )
    return None


def _written_alike(events: pd.Series, labels: pd.Series, kinds: tuple[str | None, ...]) -> bool:
    """Whether ids of a number type and ids in text are written alike (every text id is a
    number as the join writes numbers: '12', not '0012'): the join compares both as text, so
    the types are then no sign that the ids differ (12 and '12' join)."""
    if set(kinds) != {"number", "text"}:
        return False
    text = (labels if kinds[1] == "text" else events).dropna().astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    if text.empty or numbers.isna().any():
        return False
    return bool((as_category_strings(numbers).to_numpy() == text.to_numpy()).all())


def _evidence(events: pd.Series, labels: pd.Series) -> list[str]:
    """What shows the two sides' ids are the same entities written differently."""
    found = []
    kinds = _kind(events), _kind(labels)
    if None not in kinds and kinds[0] != kinds[1] and not _written_alike(events, labels, kinds):
        found.append(
            f"the two id columns are of different types ({_dtype(events)} against {_dtype(labels)})"
        )
    rewritten = _rewritten_match(
        as_category_strings(events).dropna(), as_category_strings(labels).dropna()
    )
    return found + ([rewritten] if rewritten else [])


def id_mismatch_hint(
    cfg: Config,
    events: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    sampled: bool = False,
    evidence_only: bool = False,
) -> str | None:
    """Why none of `labels` (with a time column: those dated from the window's first event
    on) matches an event id, with the id columns, a few ids of each side and their types; None
    when some id matches or there is no such label.

    It says the ids differ (check ``labels.id_column``) only on evidence (`_evidence`: types
    that differ, or ids that match once rewritten); otherwise that no label for these ids has
    arrived yet, or the ids differ; with `evidence_only`, None then.

    `sampled`: `labels` is a few rows of the source, not the labels the join read (a read
    filtered by the events' ids found none).
    """
    id_col, label_id = cfg.data.id_column, cfg.labels.id_column
    if id_col not in events.columns or label_id not in labels.columns:
        return None
    candidates = _dated_from(cfg, labels, events)
    label_keys = as_category_strings(candidates[label_id]).dropna()
    if label_keys.empty:
        return None
    event_keys = as_category_strings(events[id_col]).dropna()
    if event_keys.empty or pd.Index(label_keys.unique()).isin(event_keys.unique()).any():
        return None
    evidence = _evidence(events[id_col], candidates[label_id])
    if evidence_only and not evidence:
        return None
    dated = " dated from the first event's time on" if cfg.labels.time_column else ""
    where = (
        "the label source has labels (a few of them shown), but none for these events' ids"
        if sampled
        else f"{len(label_keys)} labels{dated} exist, but not one of their ids is an event id"
    )
    ids = (
        f"events' {id_col!r} ({_dtype(events[id_col])}), e.g. {_examples(events[id_col])}; "
        f"labels' {label_id!r} ({_dtype(candidates[label_id])}), e.g. "
        f"{_examples(candidates[label_id])}"
    )
    if evidence:
        return (
            f"no label id matches an event id: {where}; {ids}; {'; '.join(evidence)}. Check "
            "labels.id_column and that both sides write ids alike (type, zero padding, prefixes)"
        )
    return (
        f"no label for these events' ids has arrived yet, or the ids differ: {where}; {ids} "
        "(same type of id, and none matches once case, leading zeros or a common prefix or "
        "suffix is ignored)"
    )


def _dtype(values: pd.Series) -> Any:
    """The column's type; for text held as objects, the types of its values."""
    if values.dtype == object:
        kinds = sorted({type(v).__name__ for v in values.dropna().head(100)})
        return f"object: {', '.join(kinds)}" if kinds else "object"
    return str(values.dtype)
