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
    """What to observe: the serving pair, the canary's share, and the analysis number."""

    cfg: Config
    store: Storage
    champion: str
    canary: str
    traffic: int
    analysis: int
    now: datetime


class MetricsProvider(Protocol):
    """Measures champion and canary for one analysis."""

    name: str

    def observe(self, request: ObserveRequest) -> Observations: ...
