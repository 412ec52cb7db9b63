"""The model registry: immutable versions, aliases moved by compare-and-swap, an event log."""

from __future__ import annotations

from retrain.registry._registry import (
    EVENT_KINDS,
    MODEL_CARD_FILE,
    MODEL_FILE,
    AliasState,
    Registry,
    event_key,
)

__all__ = ["EVENT_KINDS", "MODEL_CARD_FILE", "MODEL_FILE", "AliasState", "Registry", "event_key"]
