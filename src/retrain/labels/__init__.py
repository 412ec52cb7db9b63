"""Ground truth: join late-arriving labels to events and queue the unlabelled ones."""

from __future__ import annotations

from retrain.labels._provisional import (
    ProvisionalLabels,
    join_provisional,
    provisional_window_ids,
)
from retrain.labels.join import LabelResult, join_labels

__all__ = [
    "LabelResult",
    "ProvisionalLabels",
    "join_labels",
    "join_provisional",
    "provisional_window_ids",
]
