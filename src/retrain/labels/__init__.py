"""Ground truth: join late-arriving labels to events and queue the unlabelled ones."""

from __future__ import annotations

from retrain.labels._arrival import (
    ArrivalCheck,
    ArrivalSample,
    arrival_sample,
    check_arrival,
    start_ages,
)
from retrain.labels._provisional import (
    ProvisionalLabels,
    join_provisional,
    provisional_window_ids,
)
from retrain.labels.join import LabelResult, join_labels

__all__ = [
    "ArrivalCheck",
    "ArrivalSample",
    "LabelResult",
    "ProvisionalLabels",
    "arrival_sample",
    "check_arrival",
    "join_labels",
    "join_provisional",
    "provisional_window_ids",
    "start_ages",
]
