"""What a canary analysis asks of a metrics provider, and the shape of the answer's source.

Every provider (`retrain.rollout.providers`) implements `MetricsProvider.observe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from retrain.config import Config
from retrain.rollout.machine import Observations
from retrain.storage import Storage

__all__ = ["MetricsProvider", "ObserveRequest"]


@dataclass(frozen=True)
class ObserveRequest:
    """What to observe: the serving pair, the canary's share, and the analysis number.

    `rollout_id` and `step` name the traffic step, and `pooled` counts the step's analyses
    whose observations are already pooled (`retrain.rollout.pool.analyses`): all three come
    from the persisted rollout state, so a provider that draws from a finite population (the
    replay) gives each analysis of a step rows no earlier one used, and a re-run after a crash
    the same rows as the analysis it repeats. `population` is what the step's first analysis
    drew from (`Observations.population`, kept in the state; empty: the provider chooses), so
    data landing mid-step does not change the step's draw.
    """

    cfg: Config
    store: Storage
    champion: str
    canary: str
    traffic: int
    analysis: int
    now: datetime
    rollout_id: str = ""
    step: int = 0
    pooled: int = 0
    population: tuple[str, ...] = ()


class MetricsProvider(Protocol):
    """Measures champion and canary for one analysis."""

    name: str

    def observe(self, request: ObserveRequest) -> Observations: ...
