"""Checking a rendered object against one of our JSON Schemas plus rules a schema cannot say."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from retrain.errors import ValidationError

__all__ = ["check_object", "load_schemas", "schema_validator"]


@functools.cache
def schema_validator(schema_file: str) -> Any:
    """A Draft 2020-12 validator for ``retrain/deploy/schemas/<schema_file>``, built once."""
    import jsonschema  # imported late to keep `import retrain.deploy` cheap

    text = resources.files("retrain.deploy").joinpath("schemas", schema_file).read_text()
    schema = json.loads(text)
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema)


def load_schemas() -> None:
    """Build every schema's validator now: a process about to fork workers builds them once
    for all of them, instead of once in each (importing jsonschema and checking the schema)."""
    for schema in resources.files("retrain.deploy").joinpath("schemas").iterdir():
        if schema.name.endswith(".schema.json"):
            schema_validator(schema.name)


def check_object(
    obj: Mapping[str, Any],
    kind: str,
    schema_file: str,
    semantic_problems: Callable[[Mapping[str, Any]], list[str]],
) -> None:
    """Raise ValidationError listing every problem by JSON path.

    `semantic_problems` runs only when the schema passes, so it may rely on the object's shape.
    """
    validator = schema_validator(schema_file)
    problems = [
        f"{err.json_path}: {err.message}"
        for err in sorted(validator.iter_errors(obj), key=lambda e: (e.json_path, e.message))
    ]
    if not problems:
        problems = semantic_problems(obj)
    if problems:
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = meta.get("name", "?") if isinstance(meta, Mapping) else "?"
        raise ValidationError(f"{kind} {name!r} is invalid", problems)
