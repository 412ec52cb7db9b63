"""The model card (``model.json``): one reader for training, the registry and serving.

It imports only the standard library, numpy and `retrain.errors`, so the serving image (which
installs the package with ``--no-deps``) reads cards with exactly the code that wrote them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrain.errors import ValidationError

__all__ = ["ModelCard"]

_CARD_TYPES: dict[str, type] = {
    "version": str,
    "parent": str,
    "created_at": str,
    "task": str,
    "target": str,
    "features": dict,
    "estimator": str,
    "params": dict,
    "seed": int,
    "data_hashes": dict,
    "provenance": dict,
    "metrics": dict,
    "library_versions": dict,
    "model_sha256": str,
    "window": str,
    "run_id": str,
}
_NULLABLE = frozenset({"parent", "window", "run_id"})


@dataclass(frozen=True)
class ModelCard:
    """What a model version is, where it came from and how good it was (``model.json``).

    `data_hashes` holds sha256 digests of the data it was trained on (by role, e.g. new window,
    history, training set); `window` and `run_id` name the data window and the run that made it.
    """

    version: str
    parent: str | None
    created_at: str
    task: str
    target: str
    features: dict[str, str]
    estimator: str
    params: dict[str, Any]
    seed: int
    data_hashes: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    model_sha256: str = ""
    window: str | None = None
    run_id: str | None = None

    def to_json(self) -> str:
        """The card as indented, key-sorted JSON text."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=_json_default)

    @classmethod
    def from_json(
        cls, text: str | bytes, where: str = "", *, ignore_unknown: bool = False
    ) -> ModelCard:
        """Parse a card; `where` (a path or URI) names it in errors.

        `ignore_unknown` drops keys this version does not know instead of refusing them: a
        server reading cards that a newer release wrote keeps starting.

        Raises:
            ValidationError: not JSON, not an object, or with missing, unknown or mistyped keys.
        """
        card = f"model card {where}" if where else "model card"
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValidationError(f"{card} is not valid JSON: {err}") from None
        if not isinstance(raw, dict):
            raise ValidationError(f"{card} must be a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        unknown = sorted(set(raw) - set(fields))
        if ignore_unknown:
            raw = {k: v for k, v in raw.items() if k in fields}
            unknown = []
        problems = [f"unknown key '{k}'" for k in unknown]
        problems += [f"required key '{k}' is missing" for k in sorted(required - set(raw))]
        for key, expected in _CARD_TYPES.items():
            value = raw.get(key)
            wrong = not isinstance(value, expected) or isinstance(value, bool)
            if key in raw and wrong and not (key in _NULLABLE and value is None):
                problems.append(f"'{key}' must be {expected.__name__}, got {value!r:.60}")
        if problems:
            raise ValidationError(f"{card} is invalid", problems)
        return cls(**raw)


def _json_default(value: Any) -> Any:
    # numpy scalars and tuples reach the card through metrics and params.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
