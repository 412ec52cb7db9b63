"""The import contracts of `make lint` hold on the tree, and break on the imports they forbid.

The contracts (layers from the entry points down to storage and errors, no cycles among the
modules of any package) are in pyproject.toml. Each forbidden import below is added to a copy
of the packages, and `lint-imports` must fail naming it: a contract that cannot fail would
guard nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from required import unavailable

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "retrain": REPO / "src" / "retrain",
    "retrain_components": REPO / "components",
    "retrain_pipelines": REPO / "pipelines",
}
LAYERS = "One direction"
NO_CYCLES = "No cycles"


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        unavailable("lint-imports is not installed (import-linter, in the 'dev' extra)")
    return str(exe)


def _run(root: Path, packages: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(packages)}
    return subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the three packages under their import names, with the project's contracts."""
    root = tmp_path_factory.mktemp("contracts")
    for name, source in PACKAGES.items():
        shutil.copytree(source, root / "pkgs" / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_its_contracts(tree: Path) -> None:
    result = _run(tree, tree / "pkgs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{LAYERS}" in result.stdout and "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken", "named"),
    [
        # a domain package reaching up into the steps
        ("retrain/data/windows.py", "from retrain.steps import records", LAYERS, "steps"),
        # two domain packages of one layer are independent
        ("retrain/labels/join.py", "from retrain.drift import _report", LAYERS, "drift"),
        # the settings may not import the code they configure
        ("retrain/settings/drift.py", "import retrain.drift", LAYERS, "retrain.drift"),
        # the library below the entry points never imports the KFP adapters
        ("retrain/steps/_train.py", "import retrain_components", LAYERS, "retrain_components"),
        # inside a package: _detect imports _report, so the way back is a cycle
        ("retrain/drift/_report.py", "from retrain.drift import _detect", NO_CYCLES, "_detect"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, tmp_path: Path, module: str, line: str, broken: str, named: str
) -> None:
    packages = tmp_path / "pkgs"
    shutil.copytree(tree / "pkgs", packages)
    target = packages / module
    target.write_text(target.read_text() + f"\n{line}  # noqa: E402, F401\n")
    result = _run(tree, packages)
    assert result.returncode != 0, result.stdout
    verdicts = {
        ln.rsplit(" ", 1)[0]: ln.rsplit(" ", 1)[1]
        for ln in result.stdout.splitlines()
        if ln.endswith((" KEPT", " BROKEN"))
    }
    assert [v for name, v in verdicts.items() if name.startswith(broken)] == ["BROKEN"]
    assert named in result.stdout
