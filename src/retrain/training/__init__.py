"""Training: mix new data with history, fit the configured pipeline, persist it safely."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrain._exports import lazy_exports

if TYPE_CHECKING:
    from retrain.training._encoding import encoding_warnings, identifier_features, refit_reason
    from retrain.training._memory import release_unused_memory
    from retrain.training.artifact import (
        TRUSTED_TYPES,
        ModelCard,
        card_from_config,
        load_model,
        model_files,
        serialize_model,
    )
    from retrain.training.mix import TrainingSet, build_training_set
    from retrain.training.model import build_estimator, fit_model, predict_scores

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "_encoding": ("encoding_warnings", "identifier_features", "refit_reason"),
            "_memory": ("release_unused_memory",),
            "artifact": (
                "TRUSTED_TYPES",
                "ModelCard",
                "card_from_config",
                "load_model",
                "model_files",
                "serialize_model",
            ),
            "mix": ("TrainingSet", "build_training_set"),
            "model": ("build_estimator", "fit_model", "predict_scores"),
        },
    )

__all__ = [
    "TRUSTED_TYPES",
    "ModelCard",
    "TrainingSet",
    "build_estimator",
    "build_training_set",
    "card_from_config",
    "encoding_warnings",
    "fit_model",
    "identifier_features",
    "load_model",
    "model_files",
    "predict_scores",
    "refit_reason",
    "release_unused_memory",
    "serialize_model",
]
