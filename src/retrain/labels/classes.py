"""Label classes: a class the model has never been told about is an error, not a new output.

A binary use case whose labels suddenly carry a third value ("unknown", a typo, a new code)
would otherwise train a 3-class model without a word, and deploy it. The classes a model may
learn are `labels.classes` when the config lists them, else the champion's classes; a label
outside them stops the run (exit 2) naming it, with the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from retrain.data.targets import label_key, label_keys
from retrain.errors import ValidationError, sample_text

__all__ = ["check_label_classes", "class_count", "without_unknown_classes"]


def check_label_classes(
    labels: pd.Series, known: Iterable[object] | None, *, where: str, known_from: str
) -> None:
    """Refuse labels whose class is not in `known` (compared by `label_key`; None: no reference).

    Raises:
        ValidationError: naming each unseen class (a few, cut short), its row count, where
            the known classes came from and how to accept a genuine new class.
    """
    if known is None:
        return
    allowed = set(label_keys(pd.Series(list(known), dtype=object)))
    outside = _outside(labels, allowed)
    if outside.empty:
        return
    counts = outside.value_counts()
    listed = [f"{sample_text([value])} ({n} rows)" for value, n in counts.iloc[:5].items()]
    raise ValidationError(
        f"{where}: {len(counts)} label class(es) never seen before: {', '.join(listed)}",
        [
            f"known classes ({known_from}): {sample_text(sorted(str(v) for v in known), limit=20)}",
            "fix the labels, or, if the class is genuine, list every class in labels.classes",
        ],
    )


def class_count(*labels: pd.Series) -> int:
    """How many distinct classes the label columns hold together (by `label_key`)."""
    return len(set().union(*(set(label_keys(y)) for y in labels)))


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
    outside = _outside(history[target], set(label_keys(pd.Series(list(known), dtype=object))))
    if outside.empty:
        return history, {}
    dropped = {str(value): int(n) for value, n in outside.value_counts().items()}
    return history.drop(index=outside.index).reset_index(drop=True), dropped


def _outside(labels: pd.Series, allowed: set[tuple[str, Any]]) -> pd.Series:
    """The present labels whose `label_key` is not in `allowed`, each as the text of its class
    (values of one class, 1 and 1.0, counted together under the first one's text)."""
    present = labels.dropna()
    codes, uniques = pd.factorize(present)
    shown: dict[tuple[str, Any], str] = {}
    texts = []
    for v in uniques.tolist():
        key = label_key(v)
        texts.append(None if key in allowed else shown.setdefault(key, _shown(v)))
    text = np.asarray(texts, dtype=object)[codes] if len(codes) else np.asarray([], dtype=object)
    out = pd.Series(text, index=present.index, dtype=object)
    return out[out.notna()]


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a missing label made the column float: class 1, not "1.0"
    return str(value)
