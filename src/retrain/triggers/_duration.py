"""Durations such as '90s', '10m', '12h', '7d', '2w' (kept here: `retrain.config` imports this
package's settings, so importing its parser back would be circular)."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str) -> timedelta:
    """A duration like '10m' or '7d'. Raises ValueError on anything else."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not a duration like '90s', '10m', '12h' or '7d'")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
