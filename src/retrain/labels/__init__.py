"""Ground truth: join late-arriving labels to events and queue the unlabelled ones."""

from __future__ import annotations

from retrain.labels._arrival import (
    ArrivalCheck,
    Reference,
    check_arrival,
    find_reference,
    search_depth,
)
from retrain.labels._provisional import (
    ProvisionalLabels,
    join_provisional,
    provisional_window_ids,
)
from retrain.labels.join import LabelResult, join_labels

__all__ = [
    "ArrivalCheck",
    "LabelResult",
    "ProvisionalLabels",
    "Reference",
    "check_arrival",
    "find_reference",
    "join_labels",
    "join_provisional",
    "provisional_window_ids",
    "search_depth",
]
