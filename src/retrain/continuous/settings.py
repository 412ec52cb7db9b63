"""The `continuous:` config section (incremental updates with replay)."""

from __future__ import annotations

from retrain.settings_base import Section

__all__ = ["ContinuousConfig"]


class ContinuousConfig(Section):
    """Continuous learning: incremental updates on each window with a replay buffer."""
