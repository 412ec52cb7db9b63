"""The `triggers:` config section."""

from __future__ import annotations

from retrain.settings_base import Section

__all__ = ["TriggerConfig"]


class TriggerConfig(Section):
    """When to retrain: schedule, drift, performance drop, new data, cooldown, budget."""
