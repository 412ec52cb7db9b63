"""Ground truth: join late-arriving labels to events and queue the unlabelled ones."""

from __future__ import annotations

from retrain.labels.join import LabelResult, join_labels

__all__ = ["LabelResult", "join_labels"]
