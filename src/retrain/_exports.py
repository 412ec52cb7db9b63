"""Package exports imported on first use (PEP 562), so importing a package stays cheap.

A KFP component runs one step in its own process. When a package's ``__init__`` imports every
module it re-exports, that process pays for all of them: importing scikit-learn alone costs
about a second, and most steps never use it. A package built with `lazy_exports` names where
each export lives and imports that module only when the name is first read; type checkers
and readers see the same names through an ``if TYPE_CHECKING:`` block of ordinary imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Args:
        package: the package's ``__name__``.
        homes: for each module of the package (relative name, e.g. ``"_ingest"`` or
            ``"gates"``, or an absolute name), the exports it provides.

    The value read is cached in the package's namespace, so the next read is a plain lookup.
    """
    where: dict[str, str] = {}
    for module, names in homes.items():
        absolute = module if "." in module else f"{package}.{module}"
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported by two modules")
            where[name] = absolute

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            # A submodule is an attribute of its package once imported, as before the
            # exports were lazy (`retrain.triggers.controller` after `import retrain.triggers`).
            if importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return importlib.import_module(f"{package}.{name}")
        value = getattr(importlib.import_module(module), name)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
