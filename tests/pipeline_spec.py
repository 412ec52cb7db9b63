"""Reading a compiled pipeline spec in the pipeline tests."""

from __future__ import annotations

from typing import Any

__all__ = ["all_tasks"]


def all_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task with its own component, including those inside sub-DAGs (the exit
    handler's group, the `blessed` condition)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(dag_tasks: dict[str, Any]) -> None:
        for name, task in dag_tasks.items():
            out[name] = task
            inner = spec["components"][task["componentRef"]["name"]].get("dag")
            if inner:
                walk(inner["tasks"])

    walk(spec["root"]["dag"]["tasks"])
    return out
