"""One dtype for the target when labelled frames are combined (history windows, new data).

Label sources change over time: one window's labels arrive as integers 0/1, a later one's as
the text "0"/"1" (a CSV export, a schema change). Concatenated as they are, the target holds
both the number 1 and the text "1": scikit-learn refuses the mix ("Unknown label type"), and
code that compares classes would count four classes where there are two.

`reconcile_targets` makes the target one dtype when the frames disagree:

- numbers of any width, booleans and text that parses in full as a number become numbers
  (int64 when every value is whole and none is missing, else float64): text "1" and "1.0", the
  integer 1, the float 1.0 and True are the label 1, as numpy and pandas compare them;
- text whose distinct values would fall together as numbers ("1" and "01" in one frame) is
  not converted: those are different labels in their own source;
- frames that cannot be reconciled (text that is not a number beside numbers or booleans, or
  text values falling together) are refused, naming each frame and its dtype. Labels are never
  merged by guessing.

Frames that already agree on the dtype, or all hold text, are returned unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from retrain.errors import ValidationError

__all__ = ["reconcile_targets"]


def reconcile_targets(
    frames: Sequence[pd.DataFrame | None], names: Sequence[str], target: str
) -> list[pd.DataFrame | None]:
    """`frames` with `target` in one dtype (None and frames without the column pass through).

    Args:
        names: what each frame is, for the error ("window 3", "the new window").

    Raises:
        ValidationError: the targets cannot be one dtype without changing a label.
    """
    present = [
        (i, f[target]) for i, f in enumerate(frames) if f is not None and target in f.columns
    ]
    if len({str(col.dtype) for _, col in present}) <= 1 or all(_is_text(c) for _, c in present):
        return list(frames)  # one dtype, or text in each (object and string dtypes agree)
    converted: dict[int, pd.Series] = {}
    refused: list[str] = []
    for i, col in present:
        numbers = _as_numbers(col)
        if numbers is None:
            refused.append(names[i])
        else:
            converted[i] = numbers
    if refused:
        kinds = ", ".join(f"{names[i]}: {_kind(col)}" for i, col in present)
        raise ValidationError(
            f"target {target!r} has different types across the labelled data ({kinds}) and"
            f" the values of {', '.join(refused)} cannot be read as numbers without changing"
            " or merging a label; combined as they are, they would train as different classes",
            [
                "write the label column with one type in every window (e.g. 0/1 integers, or"
                " the same text values); numbers written as text are read as those numbers"
            ],
        )
    whole = all(
        bool(s.notna().all()) and bool((s == np.floor(s)).all()) for s in converted.values()
    )
    out = list(frames)
    for i, numbers in converted.items():
        frame = frames[i]
        assert frame is not None  # a present column is in a frame
        frame = frame.copy()
        frame[target] = numbers.astype("int64" if whole else "float64")
        out[i] = frame
    return out


def _as_numbers(col: pd.Series) -> pd.Series | None:
    """The column as float64 numbers, or None when that would change or merge a label."""
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return col.astype("float64")
    present = col.dropna()
    if not all(isinstance(v, (str, bool, int, float, np.number, np.bool_)) for v in present):
        return None
    text = present.map(lambda v: v.strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(text, errors="coerce")
    if bool(numbers.isna().any()):
        return None  # text that is not a number (or "nan"): a label of its own
    # Two distinct values of the source must stay two labels.
    if numbers.nunique() != present.map(_label_key).nunique():
        return None
    return pd.Series(
        np.where(col.isna(), np.nan, pd.to_numeric(col.map(_strip), errors="coerce")),
        index=col.index,
        dtype="float64",
    )


def _is_text(col: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        return True
    return col.dtype == object and all(isinstance(v, str) for v in col.dropna())


def _strip(v: object) -> object:
    return v.strip() if isinstance(v, str) else v


def _label_key(v: object) -> object:
    """A value as its source distinguishes it: text as written, a number or bool by value."""
    if isinstance(v, str):
        return ("text", v)
    return ("number", float(v))  # type: ignore[arg-type]


def _kind(col: pd.Series) -> str:
    """The column's dtype, and for object columns the Python types of its values."""
    if col.dtype != object:
        return str(col.dtype)
    types = sorted({type(v).__name__ for v in col.dropna()})
    return f"object ({', '.join(types) or 'empty'})"
