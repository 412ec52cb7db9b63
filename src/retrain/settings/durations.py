"""Durations such as '90s', '10m', '12h', '7d', '2w': the one parser every section uses."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["duration_delta", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int) -> int:
    """Seconds in a duration like '90s', '10m', '12h', '7d' or '2w'.

    Raises:
        ValueError: anything else, naming the value; a bare number is refused because its
            unit would be a guess.
    """
    if isinstance(value, int):
        raise ValueError(f"{value!r} needs a unit (e.g. '{value}d')")
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"'{value}' is not a duration like '90s', '10m', '12h' or '7d'")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def duration_delta(value: str) -> timedelta:
    """`parse_duration` as a `timedelta`."""
    return timedelta(seconds=parse_duration(value))
