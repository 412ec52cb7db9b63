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

__all__ = ["check_label_classes"]


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
    allowed = {str(k) for k in known}
    text = labels.dropna().astype(str)
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
