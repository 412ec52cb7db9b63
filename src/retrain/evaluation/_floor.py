"""The floor gate: the challenger's metric on the recent rows against an absolute minimum."""

from __future__ import annotations

from retrain.evaluation._result import Gate, finite, fmt

__all__ = ["floor_gate", "floor_words"]

_EPS = 1e-12  # as the decision's: float noise must not fail a floor met exactly


def floor_gate(metric: str, greater_is_better: bool, floor: float | None, value: float) -> Gate:
    if floor is None:
        return Gate("floor", True, "no floor configured")
    if not finite(value):
        return Gate("floor", False, f"{metric} is undefined on recent data")
    ok = value >= floor - _EPS if greater_is_better else value <= floor + _EPS
    relation = (
        ("at or above" if ok else "below")
        if greater_is_better
        else ("at or below" if ok else "above")
    )
    return Gate("floor", ok, f"{metric} {fmt(value)} is {relation} the floor {fmt(floor)}")


def floor_words(floor: float | None, passed: bool) -> str:
    if floor is None:
        return ""
    return f"; floor {fmt(floor)} {'met' if passed else 'not met'}"
