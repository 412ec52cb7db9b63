"""Label classes: a class the model has never been told about is an error, not a new output.

A binary use case whose labels suddenly carry a third value ("unknown", a typo, a new code)
would otherwise train a 3-class model without a word, and deploy it. The classes a model may
learn are `labels.classes` when the config lists them, else the champion's classes; a label
outside them stops the run (exit 2) naming it, with the fix.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from retrain.errors import ValidationError, sample_text

__all__ = ["check_label_classes", "class_count", "without_unknown_classes"]


def check_label_classes(
    labels: pd.Series, known: Iterable[object] | None, *, where: str, known_from: str
) -> None:
    """Refuse labels whose class is not in `known` (compared as text; None: no reference).

    Raises:
        ValidationError: naming each unseen class (a few, cut short), its row count, where
            the known classes came from and how to accept a genuine new class.
    """
    if known is None:
        return
    allowed = set(_class_text(pd.Series(list(known))))
    text = _class_text(labels)
    counts = text[~text.isin(allowed)].value_counts()
    if counts.empty:
        return
    listed = [f"{sample_text([value])} ({n} rows)" for value, n in counts.iloc[:5].items()]
    raise ValidationError(
        f"{where}: {len(counts)} label class(es) never seen before: {', '.join(listed)}",
        [
            f"known classes ({known_from}): {sample_text(sorted(allowed), limit=20)}",
            "fix the labels, or, if the class is genuine, list every class in labels.classes",
        ],
    )


def class_count(*labels: pd.Series) -> int:
    """How many distinct classes the label columns hold together (compared as text, 1.0 as 1)."""
    return len(set().union(*(set(_class_text(y)) for y in labels)))


def without_unknown_classes(
    history: pd.DataFrame, target: str, known: Iterable[object]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """History without the rows of a class `check_label_classes` would refuse, and their counts.

    A window refused for an unseen class is already in history (the label step commits
    it before train refuses it): without this the next window's challenger would learn the
    class without a word. Listing the class in `labels.classes` brings its rows back.
    """
    if target not in history.columns:
        return history, {}
    text = _class_text(history[target])
    outside = text[~text.isin(set(_class_text(pd.Series(list(known)))))]
    if outside.empty:
        return history, {}
    dropped = {str(value): int(n) for value, n in outside.value_counts().items()}
    return history.drop(index=outside.index).reset_index(drop=True), dropped


def _class_text(values: pd.Series) -> pd.Series:
    """Labels present, as text; whole-number floats as integers ("1", not "1.0").

    A missing label turns an integer label column into floats (pandas has no NaN integer
    without the nullable dtype), so class 1 can arrive as 1.0 on one side and 1 on the other.
    """
    present = values.dropna()
    if pd.api.types.is_float_dtype(present) and bool((present == present.round()).all()):
        present = present.astype("int64")
    return present.astype(str)
