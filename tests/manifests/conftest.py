"""Shared helpers: the manifests directory, its base objects, and kubectl for rendering."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).parents[2] / "manifests"

# Base files that are not plain objects: the kustomization and the ConfigMap generator's input.
_NOT_OBJECTS = {"kustomization.yaml", "config.yaml", "pipeline.yaml"}


@pytest.fixture
def base_objs() -> list[dict[str, Any]]:
    """The base's objects as written (no kustomize), fresh for each test to mutate."""
    out: list[dict[str, Any]] = []
    for path in sorted((MANIFESTS / "base").glob("*.yaml")):
        if path.name not in _NOT_OBJECTS:
            out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


def _find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    def named(obj: dict[str, Any]) -> bool:
        actual = str(obj["metadata"]["name"])
        # Generated ConfigMaps carry a content-hash suffix.
        return actual == name or (kind == "ConfigMap" and actual.startswith(name + "-"))

    hits = [o for o in objs if o["kind"] == kind and named(o)]
    assert len(hits) == 1, f"expected one {kind} {name}, found {len(hits)}"
    return hits[0]


@pytest.fixture
def find() -> Callable[[list[dict[str, Any]], str, str], dict[str, Any]]:
    """`find(objs, kind, name)`: the one object of `kind` named `name` (or a generated
    name starting with it)."""
    return _find


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl on PATH (its built-in kustomize renders the overlays); fails under CI=true."""
    exe = shutil.which("kubectl")
    if exe is None:
        reason = "kubectl is not installed (needed to render the kustomize overlays)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return exe


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> Callable[[str], list[dict[str, Any]]]:
    """Renders a kustomization under manifests/ once per session; callers get a deep copy."""
    import copy

    from tools.manifests_check import render

    cache: dict[str, list[dict[str, Any]]] = {}

    def get(target: str) -> list[dict[str, Any]]:
        if target not in cache:
            cache[target] = render(MANIFESTS / target, kubectl)
        return copy.deepcopy(cache[target])

    return get
