"""Safe model persistence: skops files with an explicit trusted-type list, and a model card.

A model version is two files: ``model.skops`` and ``model.json`` (the `ModelCard`, which
carries the sha256 of the model file). Loading checks the hash first, then reads the skops
schema and refuses any type or node kind not listed in `retrain._safety` (the one trusted list,
shared with the model server), before a single object is built. pickle and joblib are never
used: loading a pickle runs whatever code the file names.
"""

from __future__ import annotations

import dataclasses
import platform
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops
import skops.io as sio
from sklearn.pipeline import Pipeline

import retrain
from retrain._card import ModelCard
from retrain._safety import (
    TRUSTED_TYPES,
    load_verified,
    schema_types,
    sha256_hex,
    untrusted_parts,
)
from retrain.config import Config
from retrain.errors import ValidationError
from retrain.registry import MODEL_CARD_FILE, MODEL_FILE, Registry

__all__ = [
    "MODEL_CARD_FILE",
    "MODEL_FILE",
    "TRUSTED_TYPES",
    "LibraryVersionWarning",
    "ModelCard",
    "card_from_config",
    "check_library_versions",
    "input_differences",
    "library_versions",
    "load_model",
    "load_model_dir",
    "load_registered",
    "load_registered_model",
    "model_files",
    "schema_types",
    "serialize_model",
    "sha256_hex",
]


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model file depends on (recorded on the card)."""
    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "skops": skops.__version__,
        "retrain": retrain.__version__,
    }


def card_from_config(
    cfg: Config,
    *,
    version: str,
    parent: str | None,
    created_at: datetime,
    data_hashes: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    window: str | None = None,
    run_id: str | None = None,
) -> ModelCard:
    """A card filled from the config; `model_sha256` is set later by `model_files`."""
    if created_at.tzinfo is None:
        raise ValidationError("created_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return ModelCard(
        version=version,
        parent=parent,
        created_at=created_at.isoformat(),
        task=cfg.task,
        target=cfg.target,
        features=dict(cfg.data.features),
        estimator=cfg.model.estimator,
        params=dict(cfg.model.params),
        seed=cfg.seed,
        data_hashes=dict(data_hashes or {}),
        provenance=dict(provenance or {}),
        metrics=dict(metrics or {}),
        library_versions=library_versions(),
        window=window,
        run_id=run_id,
    )


def serialize_model(model: Pipeline) -> bytes:
    """The model as skops bytes.

    Raises:
        ValidationError: the model holds types `load_model` would refuse (checked now, so a
            model that cannot be loaded back is never written).
    """
    data: bytes = sio.dumps(model)
    types, nodes = untrusted_parts(data)
    if types or nodes:
        raise ValidationError(
            "model.estimator: the fitted model contains types outside TRUSTED_TYPES and could "
            "not be loaded back safely",
            [f"untrusted type {t}" for t in types] + [f"untrusted skops node {n}" for n in nodes],
        )
    return data


def model_files(model: Pipeline, card: ModelCard) -> dict[str, bytes]:
    """The files of a model version: ``model.skops`` and ``model.json`` with its sha256 filled."""
    data = serialize_model(model)
    filled = dataclasses.replace(card, model_sha256=sha256_hex(data))
    return {MODEL_FILE: data, MODEL_CARD_FILE: filled.to_json().encode("utf-8")}


#: The card fields that say what a version was made from. A version's name is a digest of
#: them, so two cards that agree here describe the same model whatever bytes each fit wrote.
IDENTITY_FIELDS: tuple[str, ...] = (
    "version",
    "task",
    "target",
    "features",
    "estimator",
    "params",
    "seed",
    "data_hashes",
    "window",
)


def input_differences(registered: ModelCard, candidate: ModelCard) -> list[str]:
    """The identity fields on which two cards disagree ([] means the same recorded inputs)."""
    a, b = dataclasses.asdict(registered), dataclasses.asdict(candidate)
    return [
        f"{name}: {a[name]!r:.80} != {b[name]!r:.80}"
        for name in IDENTITY_FIELDS
        if a[name] != b[name]
    ]


class LibraryVersionWarning(UserWarning):
    """A model is loaded by a scikit-learn release other than the one that trained it."""


def check_library_versions(card: ModelCard) -> str | None:
    """Warn when the card's scikit-learn differs in major.minor from the one loading it.

    A warning, not an error: every load here is followed by a measurement with the running
    library (evaluation scores the champion again on the current holdout), so a behaviour
    change shows in the metrics the gates use rather than being trusted from the card, while
    an error would stop every run after a library upgrade until a manual retrain. Returns the
    message (None when the versions agree or the card records none).
    """
    recorded = card.library_versions.get("sklearn")
    if not recorded or _minor(recorded) == _minor(sklearn.__version__):
        return None
    message = (
        f"model {card.version} was trained with scikit-learn {recorded} and is loaded with "
        f"{sklearn.__version__}: predictions may differ; pin scikit-learn {_minor(recorded)}.* "
        "or retrain the model under this version"
    )
    warnings.warn(message, LibraryVersionWarning, stacklevel=3)
    return message


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def load_model(model_bytes: bytes, card: ModelCard) -> Pipeline:
    """Load a model file after checking it against its card and the trusted-type list.

    A scikit-learn version other than the card's (major.minor) is a `LibraryVersionWarning`
    (`check_library_versions` says why not an error).

    Raises:
        ValidationError: hash mismatch, untrusted types, corrupted bytes, or not a Pipeline.
    """
    check_library_versions(card)
    model = load_verified(
        model_bytes, card.model_sha256, what=f"model file (version {card.version})"
    )
    if not isinstance(model, Pipeline):
        raise ValidationError(
            f"model file (version {card.version}) holds a {type(model).__name__}, not a Pipeline"
        )
    return model


def load_registered_model(registry: Registry, version: str) -> Pipeline:
    """Load a registered version, verifying its sha256 against its card first."""
    return load_registered(registry, version)[0]


def load_registered(registry: Registry, version: str) -> tuple[Pipeline, ModelCard]:
    """A registered version and its card (each read once), the sha256 verified first."""
    card = ModelCard.from_json(registry.read_file(version, MODEL_CARD_FILE).decode())
    return load_model(registry.read_file(version, MODEL_FILE), card), card


def load_model_dir(model_dir: str | Path) -> tuple[Pipeline, ModelCard]:
    """Load a run's model artifact (model.skops + model.json), verifying its sha256."""
    d = Path(model_dir)
    card = ModelCard.from_json((d / MODEL_CARD_FILE).read_text())
    return load_model((d / MODEL_FILE).read_bytes(), card), card
