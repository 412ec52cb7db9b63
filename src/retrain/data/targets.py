"""One rule for "the same label", and one dtype for the target when labelled frames are combined.

Label sources change over time: one window's labels arrive as integers 0/1, a later one's as
the text "0"/"1" (a CSV export, a schema change). Concatenated as they are, the target holds
both the number 1 and the text "1": scikit-learn refuses the mix ("Unknown label type"), and
code that compares classes would count four classes where there are two.

`label_key` is the one rule every comparison of labels uses (the class checks of
`retrain.labels.classes`, the gates' class alignment, `reconcile_targets`): a number, a
boolean or text written as a decimal number ("1", "-2", "1.0", " 1 ") is that number, compared
by value (True, 1, 1.0 and "1.0" are the label 1; integers exactly, never through a float);
any other text ("yes", "1e0", "inf", "0x1") is a label of its own, as written.

`reconcile_targets` makes the target one dtype when the frames disagree:

- frames whose label values are of one kind (all integers, all floats, all text...) in one
  dtype are returned unchanged; so are frames that all hold text when no label is written
  differently in two frames (text "1" in one, "1.0" in another);
- otherwise every value becomes the number `label_key` reads (int64 when every value is whole
  and none is missing, else float64), so text "0"/"1" beside "0.0"/"1.0" or beside 0/1
  integers trains as the two labels 0 and 1;
- a frame with a value that is no number (text "yes" beside 0/1, "True" text beside booleans)
  is refused, naming each frame and its type, and so are non-finite numbers and integers a
  float cannot hold exactly when floats are needed. Labels are never merged by guessing;
- a frame that writes one label two ways ("1" and "01", or "1" and "1.0", in one frame) is
  refused even when every frame writes it so: kept as text they would train as two classes
  where every class check (and the gates) counts one.

`select_joinable` says which frames can be kept together when some cannot (stored windows
of history, the label step's new window among them): a frame failing on its own is left
out, and of the rest the group with the most frames, a tie going to the newest.

Each column's distinct values are decided on once (`pd.factorize`: a source has few labels)
and mapped back by their codes; only the target column of a frame is replaced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from retrain.errors import ValidationError

__all__ = [
    "class_positions",
    "label_key",
    "label_keys",
    "plain_values",
    "reconcile_fix",
    "reconcile_targets",
    "select_joinable",
    "split_reconcilable",
    "target_kind",
]

#: Text that is a number: decimal notation only (no exponent, no "inf"/"nan", no hex).
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
#: Integers above this lose exactness as float64.
_FLOAT_EXACT = 2**53


def label_key(value: Any) -> tuple[str, Any]:
    """A label as every comparison of labels sees it: ("number", value) or ("text", text).

    Numbers and booleans by value (an integer as a Python int, exact), text written as a
    decimal number by the number it writes, any other text as written.
    """
    number = _number(value)
    if number is not None:
        return ("number", number)
    return ("text", value if isinstance(value, str) else str(value))


def label_keys(values: pd.Series) -> pd.Series:
    """`label_key` of each present label (missing ones left out), once per distinct value."""
    present = values.dropna()
    codes, uniques = pd.factorize(present)
    keys = np.empty(len(uniques), dtype=object)
    for j, v in enumerate(plain_values(uniques)):
        keys[j] = label_key(v)  # one by one: numpy would unpack a list of tuples
    return pd.Series(keys[codes], index=present.index, dtype=object)


def reconcile_targets(
    frames: Sequence[pd.DataFrame | None], names: Sequence[str], target: str
) -> list[pd.DataFrame | None]:
    """`frames` with `target` in one dtype (None and frames without the column pass through).

    Args:
        names: what each frame is, for the error ("window 3", "the new window").

    Raises:
        ValidationError: the targets cannot be one dtype without changing a label.
    """
    out, refused = _reconcile(frames, names, target)
    if refused:
        raise ValidationError(_refusal(frames, names, target, refused), [_FIX])
    return out


def split_reconcilable(
    frames: Sequence[pd.DataFrame | None], names: Sequence[str], target: str
) -> tuple[list[pd.DataFrame | None], dict[str, str]]:
    """Like `reconcile_targets`, but the frames that cannot join the others (`select_joinable`)
    are replaced by None.

    Returns:
        The frames, and for each one left out its name and why.
    """
    out, refused = _reconcile(frames, names, target)
    if not refused:
        return out, {}
    kept, reasons = select_joinable(frames, names, target)
    trial = [f if i in kept else None for i, f in enumerate(frames)]
    out, still = _reconcile(trial, names, target)
    assert not still  # the frames kept were checked together
    return out, {names[i]: why for i, why in sorted(reasons.items())}


def select_joinable(
    frames: Sequence[pd.DataFrame | None], names: Sequence[str], target: str
) -> tuple[set[int], dict[int, str]]:
    """Which frames' targets are kept together, decided on each frame's distinct values.

    A frame that fails on its own (a non-finite label, one label written two ways) is left
    out. Of the others, the largest group that can be one type is kept: most frames, a tie
    going to the group with the newest frame (the later position), so one odd frame never
    decides for the rest, whether it is the newest or the oldest.

    Returns:
        The positions kept, and for each position left out why (naming it and the kept ones).
    """
    small = {
        i: f[[target]].drop_duplicates()
        for i, f in enumerate(frames)
        if f is not None and target in f.columns
    }
    reasons: dict[int, str] = {}
    for i, f in small.items():
        if _reconcile([f], [names[i]], target)[1]:
            reasons[i] = _refusal([f], [names[i]], target, {0})
    # Frames of the same distinct values and dtype join or not alike: decided once per group.
    groups: dict[tuple[str, str], list[int]] = {}
    for i, f in small.items():
        if i not in reasons:
            col = f[target]
            signature = repr([(type(v).__name__, repr(v)) for v in plain_values(col.tolist())])
            groups.setdefault((_dtype_kind(col), signature), []).append(i)
    reps = sorted(groups.values(), key=lambda g: (len(g), max(g)), reverse=True)
    best: list[list[int]] = []
    for seed in reps:
        chosen = [seed]
        for other in reps:
            if other is seed:
                continue
            trial = [small[g[0]] for g in [*chosen, other]]
            if not _reconcile(trial, [names[g[0]] for g in [*chosen, other]], target)[1]:
                chosen.append(other)
        if _rank(chosen) > _rank(best):
            best = chosen
    kept = {i for g in best for i in g}
    order = sorted(kept)
    for i in sorted(set(small) - kept - set(reasons)):
        trial = [small[j] for j in order] + [small[i]]
        reasons[i] = _refusal(trial, [names[j] for j in order] + [names[i]], target, {len(order)})
    return kept, reasons


def _rank(groups: list[list[int]]) -> tuple[int, list[int]]:
    members = sorted((i for g in groups for i in g), reverse=True)
    return len(members), members


_FIX = (
    "write the label column with one type in every window (e.g. 0/1 integers, or the same"
    " text values); numbers written as text (decimal notation) are read as those numbers"
)


def _reconcile(
    frames: Sequence[pd.DataFrame | None], names: Sequence[str], target: str
) -> tuple[list[pd.DataFrame | None], set[int]]:
    columns = {i: f[target] for i, f in enumerate(frames) if f is not None and target in f.columns}
    facts = {i: pd.factorize(col) for i, col in columns.items()}
    values = {i: plain_values(uniques) for i, (_, uniques) in facts.items()}
    infinite = {i for i, vals in values.items() if _infinite(vals)}
    if infinite:
        return list(frames), infinite  # no class and no target value
    if _agree(columns, values):
        return list(frames), set()
    numbers: dict[int, list[int | float]] = {}
    refused: set[int] = set()
    for i, vals in values.items():
        read = [_number(v) for v in vals]
        keys = {label_key(v) for v in vals}
        if any(n is None for n in read) or len(keys) != len(vals):
            refused.add(i)  # no number, or two labels of the source falling together
        else:
            numbers[i] = [n for n in read if n is not None]
    if refused:
        return list(frames), refused
    missing = any(bool((facts[i][0] < 0).any()) for i in numbers)
    whole = not missing and all(isinstance(n, int) for ns in numbers.values() for n in ns)
    if whole and any(not -(2**63) <= int(n) < 2**63 for ns in numbers.values() for n in ns):
        whole = False
    if not whole and any(
        isinstance(n, int) and abs(n) > _FLOAT_EXACT for ns in numbers.values() for n in ns
    ):
        return list(frames), set(numbers)  # as floats they would merge (2**53 and 2**53+1)
    out = list(frames)
    for i, ns in numbers.items():
        codes = facts[i][0]
        if whole:
            column: np.ndarray = np.asarray(ns, dtype=np.int64)[codes]
        else:
            lookup = np.append(np.asarray(ns, dtype=np.float64), np.nan)  # code -1: missing
            column = lookup[codes]
        frame = frames[i]
        assert frame is not None  # a present column is in a frame
        out[i] = frame.assign(**{target: pd.Series(column, index=frame.index)})
    return out, set()


def _agree(columns: dict[int, pd.Series], values: dict[int, list[Any]]) -> bool:
    """Whether the frames need no conversion: one kind of value in one dtype, or text written
    the same way in each frame."""
    if any(len({label_key(v) for v in vals}) != len(vals) for vals in values.values()):
        return False  # one label written two ways in a frame ("1" and "01"): refused
    kinds = {i: {_value_kind(v) for v in vals} for i, vals in values.items()}
    if all(k <= {"text"} for k in kinds.values()):
        # All text: one label written differently in two frames ("1" and "1.0") disagrees.
        spelled: dict[tuple[str, Any], set[frozenset[str]]] = {}
        for vals in values.values():
            by_key: dict[tuple[str, Any], set[str]] = {}
            for v in vals:
                by_key.setdefault(label_key(v), set()).add(v)
            for key, texts in by_key.items():
                spelled.setdefault(key, set()).add(frozenset(texts))
        return all(len(s) == 1 for s in spelled.values())
    dtypes = {_dtype_kind(col) for col in columns.values()}
    found = {frozenset(k) for k in kinds.values() if k}
    return len(dtypes) == 1 and len(found) <= 1 and all(len(k) == 1 for k in found)


def _infinite(values: list[Any]) -> list[float]:
    return [v for v in values if isinstance(v, float) and not math.isfinite(v)]


def _value_kind(v: Any) -> str:
    if isinstance(v, str):
        return "text"
    return type(v).__name__  # bool, int, float, or another type (refused if converted)


def _dtype_kind(col: pd.Series) -> str:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return f"category[{col.dtype.categories.dtype}]"
    return str(col.dtype)


def plain_values(values: Any) -> list[Any]:
    """`values` as Python objects (numpy scalars unwrapped: 0, not np.int64(0))."""
    return [v.item() if isinstance(v, np.generic) else v for v in list(values)]


def _number(value: Any) -> int | float | None:
    """The number a label is: a bool or int exactly, a whole float as int, decimal text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_TEXT.fullmatch(text):
            return None
        whole, _, fraction = text.partition(".")
        if not fraction.strip("0"):
            return int(whole) if whole not in ("", "+", "-") else 0
        return float(text)
    return None


def _refusal(
    frames: Sequence[pd.DataFrame | None], names: Sequence[str], target: str, refused: set[int]
) -> str:
    columns = {i: f[target] for i, f in enumerate(frames) if f is not None and target in f.columns}
    kinds = ", ".join(f"{names[i]}: {_kind(col)}" for i, col in columns.items())
    for i in sorted(refused):
        infinite = _infinite(plain_values(pd.unique(columns[i].dropna())))
        if infinite:
            return (
                f"target {target!r} of {names[i]} holds {infinite[0]!r} ({kinds}): a label"
                " must be finite, no class and no target value"
            )
    for i in sorted(refused):
        twice = _spelled_twice(plain_values(pd.unique(columns[i].dropna())))
        if twice:
            return (
                f"target {target!r} of {names[i]} writes one label in more than one way"
                f" ({' and '.join(repr(v) for v in twice)}; {kinds}): they would train as"
                " different classes while every class check counts one; write each label"
                " one way in the source"
            )
    return (
        f"target {target!r} has different types across the labelled data ({kinds}) and"
        f" the values of {', '.join(names[i] for i in sorted(refused))} cannot be read as"
        " numbers without changing or merging a label; combined as they are, they would"
        " train as different classes"
    )


def _spelled_twice(values: list[Any]) -> list[Any]:
    """The first values of one label (by `label_key`) written more than one way, or []."""
    seen: dict[tuple[str, Any], list[Any]] = {}
    for v in values:
        seen.setdefault(label_key(v), []).append(v)
    return next((vs for vs in seen.values() if len(vs) > 1), [])


def reconcile_fix() -> str:
    """What to do about labels that cannot be one type."""
    return _FIX


def target_kind(col: pd.Series) -> str:
    """The column's dtype, and for object columns the Python types of its values."""
    return _kind(col)


def _kind(col: pd.Series) -> str:
    """The column's dtype, and for object columns the Python types of its values."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return _dtype_kind(col)
    if col.dtype != object:
        return str(col.dtype)
    types = sorted({type(v).__name__ for v in plain_values(pd.unique(col.dropna()))})
    return f"object ({', '.join(types) or 'empty'})"


def class_positions(labels: Any, classes: Sequence[object]) -> np.ndarray:
    """Per label, the position in `classes` of the class it is by `label_key` (-1: a missing
    label, or one none of the classes is).

    Raises:
        ValidationError: two of `classes` are one label ("1" and 1.0): no label could be told
            which it is.
    """
    codes, uniques = pd.factorize(pd.Series(labels))  # in its own dtype: fast on numbers
    index: dict[tuple[str, Any], int] = {}
    for i, c in enumerate(classes):
        if index.setdefault(label_key(c), i) != i:
            raise ValidationError(
                f"the classes {plain_values([classes[index[label_key(c)]], c])} are one label"
                " written two ways: a model's classes must be distinct labels",
                [_FIX],
            )
    at = [index.get(label_key(u), -1) for u in uniques]
    return np.asarray([*at, -1], dtype=int)[codes]  # code -1 (missing) takes the last
