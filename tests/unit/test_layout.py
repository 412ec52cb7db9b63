"""The layout the README promises: small modules, every package installed, every module layered."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra installs tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "retrain"
MAX_LINES = 500


def _pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_no_module_of_the_library_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (at most {MAX_LINES} lines): {long}"


def test_every_package_is_installed() -> None:
    # The wheel lists packages by hand (components/ and pipelines/ install under other names):
    # a new subpackage missing here would import in the tests and fail in the image.
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("retrain", *p.parent.relative_to(SRC).parts)).rstrip(".")
        for p in SRC.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    found |= {"retrain_components", "retrain_pipelines"}
    assert found - listed == set(), "add them to [tool.setuptools] packages"


def test_every_top_level_module_is_in_a_layer() -> None:
    # A module the layers contract does not name is not checked by it.
    contracts = _pyproject()["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    top = {
        f"retrain.{p.stem if p.is_file() else p.name}"
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert top - named == set(), "name them in a layer of [tool.importlinter]"


def test_every_test_the_readme_names_exists() -> None:
    # The Reliability table points at the test that shows each claim: `file::test_name`.
    refs = set(re.findall(r"`(tests/[\w/.-]+\.py)::(\w+)", (REPO / "README.md").read_text()))
    assert refs, "the README names its tests as `tests/<file>.py::<test>`"
    dangling = sorted(
        f"{file}::{name}"
        for file, name in refs
        if not (REPO / file).is_file()
        or not re.search(rf"^\s*def {name}\(", (REPO / file).read_text(), re.M)
    )
    assert dangling == [], f"the README names tests that do not exist: {dangling}"
