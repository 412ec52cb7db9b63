"""What a rollout decision asks the controller to do: set traffic, promote, or roll back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from retrain.errors import ValidationError

__all__ = ["Action", "Promote", "RollBack", "SetTraffic", "action_dict", "action_from_dict"]


@dataclass(frozen=True)
class SetTraffic:
    """Serve champion + canary with the canary at `traffic` percent."""

    traffic: int
    kind: Literal["set_traffic"] = "set_traffic"


@dataclass(frozen=True)
class Promote:
    """Make `version` (the canary) the champion, alone at 100 %."""

    version: str
    reason: str
    kind: Literal["promote"] = "promote"


@dataclass(frozen=True)
class RollBack:
    """Remove canary `version`; the champion keeps 100 %."""

    version: str
    reason: str
    kind: Literal["roll_back"] = "roll_back"


Action = SetTraffic | Promote | RollBack


def action_from_dict(raw: Mapping[str, Any]) -> Action:
    """Rebuild an action persisted with `dataclasses.asdict`."""
    kind = raw.get("kind")
    if kind == "set_traffic":
        return SetTraffic(int(raw["traffic"]))
    if kind == "promote":
        return Promote(str(raw["version"]), str(raw.get("reason", "")))
    if kind == "roll_back":
        return RollBack(str(raw["version"]), str(raw.get("reason", "")))
    raise ValidationError(f"unknown rollout action kind {kind!r}")


def action_dict(action: Action) -> dict[str, Any]:
    """An action as the persisted rollout state holds it."""
    out: dict[str, Any] = {"kind": action.kind}
    if isinstance(action, SetTraffic):
        out["traffic"] = action.traffic
    else:
        out.update(version=action.version, reason=action.reason)
    return out
