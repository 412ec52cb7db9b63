"""Lazy package exports: each name is its home module's object, and light steps stay light."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from retrain._exports import lazy_exports

SRC = Path(__file__).resolve().parents[2] / "src"
LAZY = sorted(
    ".".join(p.parent.relative_to(SRC).parts)
    for p in SRC.glob("retrain/**/__init__.py")
    if "lazy_exports(" in p.read_text()
)


def _type_checking_names(package: str) -> set[str]:
    tree = ast.parse((SRC / package.replace(".", "/") / "__init__.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names |= {a.asname or a.name for a in stmt.names}
    return names


def test_the_step_and_domain_packages_are_lazy() -> None:
    assert {"retrain.steps", "retrain.training", "retrain.drift"} <= set(LAZY)


@pytest.mark.parametrize("package", LAZY)
def test_every_export_resolves_to_the_object_its_module_defines(package: str) -> None:
    module = importlib.import_module(package)
    declared = set(module.__all__)
    assert _type_checking_names(package) == declared, "TYPE_CHECKING imports differ from __all__"
    for name in sorted(declared):
        value = getattr(module, name)
        assert name in vars(module), f"{package}.{name} is not cached after the first read"
        assert name in dir(module)
        homes = [
            m
            for m in list(sys.modules.values())
            if m is not None
            and getattr(m, "__name__", "").startswith("retrain.")
            and m is not module
            and name in vars(m)
            and vars(m)[name] is value
        ]
        assert homes, f"{package}.{name} is not defined by any other retrain module"


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    import retrain.steps

    with pytest.raises(AttributeError, match=r"'retrain.steps' has no attribute 'ingestt'"):
        retrain.steps.ingestt  # noqa: B018 - the read is the test
    assert not hasattr(retrain.steps, "ingestt")


def test_a_name_exported_by_two_modules_is_refused() -> None:
    with pytest.raises(ValueError, match="'x' is exported by two modules"):
        lazy_exports("pkg", {"a": ("x",), "b": ("y", "x")})


@pytest.mark.parametrize(
    "names", ["resolve_run, release_run_lease", "label", "rollout", "read_run"]
)
def test_steps_that_load_no_model_import_neither_scikit_learn_nor_scipy_stats(names: str) -> None:
    # Each KFP step runs in its own process; importing scikit-learn costs about a second.
    code = (
        f"import sys\nfrom retrain.steps import {names}\n"
        "print(sorted(m for m in ('sklearn', 'skops', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


def _fresh(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.strip()


def test_a_submodule_is_an_attribute_of_its_lazy_package() -> None:
    # As before the exports were lazy: `import retrain.triggers` gave `retrain.triggers.lease`.
    code = (
        "import retrain.triggers, retrain.training\n"
        "print(retrain.triggers.controller.__name__, retrain.training.artifact.__name__)"
    )
    assert _fresh(code) == "retrain.triggers.controller retrain.training.artifact"


def test_the_ranking_checks_are_registered_however_the_rollout_package_is_first_imported() -> None:
    code = (
        "from retrain.rollout.checks import CHECKS, check_for\n"
        "check_for('average_precision_drop')\nprint('average_precision_drop' in CHECKS)"
    )
    assert _fresh(code) == "True"
