"""The base of every config section: unknown keys are errors, values are immutable."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

__all__ = ["K8S_NAME", "Section", "check_name"]

#: A Kubernetes object name (RFC 1123 label): also what names, schedules and models use.
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_name(value: str) -> str:
    """`value` if it is a Kubernetes object name; a ValueError (pydantic names the key) if not."""
    if not K8S_NAME.match(value):
        raise ValueError(f"'{value}' must be lowercase letters, digits and '-'")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
