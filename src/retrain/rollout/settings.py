"""The `rollout:` config section (progressive canary analysis)."""

from __future__ import annotations

from retrain.settings_base import Section

__all__ = ["RolloutConfig"]


class RolloutConfig(Section):
    """Canary steps, analysis interval, checks and their thresholds, failure limit, deadline."""
