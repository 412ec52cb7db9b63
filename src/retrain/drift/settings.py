"""The `drift:` config section."""

from __future__ import annotations

from retrain.settings_base import Section

__all__ = ["DriftConfig"]


class DriftConfig(Section):
    """Which drift methods run and when a feature or the dataset counts as drifted."""
