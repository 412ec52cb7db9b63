"""What a step adapter gets and returns, whichever packaging runs it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from retrain_components._interface import REPORT_OUTPUTS

__all__ = ["StepCall", "StepResult"]


@dataclass(frozen=True)
class StepCall:
    """A step's run parameters and the local paths of its input and output artifacts."""

    values: Mapping[str, Any]
    paths: Mapping[str, str]

    def report_paths(self) -> dict[str, Any]:
        """The report keywords of the `retrain.steps` function (`REPORT_OUTPUTS`)."""
        return {keyword: self.paths[name] for name, (_, keyword) in REPORT_OUTPUTS.items()}


@dataclass(frozen=True)
class StepResult:
    """A step's output parameters, details (JSON) and output artifacts' metadata."""

    values: dict[str, Any]
    details: Mapping[str, Any]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
