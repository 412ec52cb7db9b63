"""Encoding of high-cardinality columns (user, item, merchant ids) inside the saved pipeline.

One-hot encoding gives a column as many inputs as it has values: for a user id that is one
input per user, which neither fits in memory nor generalises. Columns of type ``identifier``,
and ``categorical`` columns with more than `training.max_onehot_categories` distinct values in
the training data, are encoded by `training.identifier_encoding`:

- ``target`` (default): scikit-learn's `TargetEncoder`, one number per class (one for binary
  and regression) per column: the shrunk mean of the target for that value. ``fit_transform``
  cross-fits (each row is encoded by statistics from the other folds), so the estimator does
  not learn from a row's own label leaking through its id; the folds are seeded by the config's
  `seed`. A value unseen at fit time gets the target's overall mean.
- ``hashing``: `FeatureHasher`, `training.identifier_hash_features` inputs per column, the
  value hashed to one of them. Stateless: a new id has a place without a refit, which is what
  lets an incrementally updated model (``partial_fit``) learn new ids. Collisions are the cost.

Nulls become the value ``"__missing__"`` before either encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sklearn.feature_extraction import FeatureHasher
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import TargetEncoder

from retrain.config import Config
from retrain.data.schema import as_category_strings
from retrain.training._text import frozen_vocabulary_reason

__all__ = [
    "MISSING_VALUE",
    "TARGET_ENCODING_FOLDS",
    "encoded_as_identifiers",
    "encoding_warnings",
    "high_cardinality_categoricals",
    "identifier_features",
    "identifier_transformers",
    "identifiers_as_text",
    "refit_reason",
]

#: What a null id is encoded as: one more value, so a null is not confused with any id.
MISSING_VALUE = "__missing__"
#: Folds of the target encoder's cross-fitting (scikit-learn's default).
TARGET_ENCODING_FOLDS = 5
#: Transformer names in the pipeline's ColumnTransformer.
_TARGET = "identifier_target"
_HASH_PREFIX = "identifier_hash_"


def identifiers_as_text(X: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """`X` with numeric identifier columns as the text ingest and serving give them ('7', not
    7.0; a copy if any changed): the encoders' text fill value for nulls cannot be cast to a
    number, and an id is a name, not a quantity."""
    numeric = [
        c
        for c in identifier_features(cfg)
        if c in X.columns
        and (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
    ]
    if not numeric:
        return X
    out = X.copy()
    for c in numeric:
        out[c] = as_category_strings(out[c])
    return out


def identifier_features(cfg: Config) -> list[str]:
    """Columns of type ``identifier``, in config order."""
    return [c for c, t in cfg.data.features.items() if t == "identifier"]


def high_cardinality_categoricals(cfg: Config, frame: pd.DataFrame | None) -> list[str]:
    """The ``categorical`` columns of `frame` with more than `training.max_onehot_categories`
    distinct non-null values (none without a frame)."""
    if frame is None:
        return []
    limit = cfg.training.max_onehot_categories
    return [
        c
        for c in cfg.categorical_features
        if c in frame.columns and int(frame[c].nunique(dropna=True)) > limit
    ]


def encoded_as_identifiers(cfg: Config, frame: pd.DataFrame | None) -> list[str]:
    """Every column the identifier encoding applies to, in config order."""
    chosen = set(identifier_features(cfg)) | set(high_cardinality_categoricals(cfg, frame))
    return [c for c in cfg.data.features if c in chosen]


def encoding_warnings(cfg: Config, frame: pd.DataFrame | None) -> list[str]:
    """One sentence per categorical column encoded as an identifier because of its size."""
    limit = cfg.training.max_onehot_categories
    return [
        f"categorical feature '{c}' has {int(frame[c].nunique(dropna=True))} distinct values in"
        f" the training data, more than training.max_onehot_categories ({limit}): encoded by"
        f" '{cfg.training.identifier_encoding}' like an identifier instead of one-hot"
        for c in high_cardinality_categoricals(cfg, frame)
        if frame is not None
    ]


def identifier_transformers(
    cfg: Config, columns: Sequence[str]
) -> list[tuple[str, Any, list[str]]]:
    """ColumnTransformer entries encoding `columns` by `training.identifier_encoding`."""
    if not columns:
        return []
    impute = ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_VALUE))
    if cfg.training.identifier_encoding == "hashing":
        # One hasher per column, so equal values of two columns (user 7, item 7) do not share
        # an input.
        n = cfg.training.identifier_hash_features
        return [
            (
                f"{_HASH_PREFIX}{c}",
                Pipeline([impute, ("hash", FeatureHasher(n_features=n, input_type="string"))]),
                [c],
            )
            for c in columns
        ]
    folds: KFold | StratifiedKFold
    if cfg.task == "classification":
        folds = StratifiedKFold(TARGET_ENCODING_FOLDS, shuffle=True, random_state=cfg.seed)
        target_type = "auto"  # binary or multiclass, from the labels
    else:
        folds = KFold(TARGET_ENCODING_FOLDS, shuffle=True, random_state=cfg.seed)
        target_type = "continuous"
    encoder = TargetEncoder(target_type=target_type, cv=folds)
    return [(_TARGET, Pipeline([impute, ("encode", encoder)]), list(columns))]


def refit_reason(model: Pipeline) -> str | None:
    """Why `model` cannot be updated incrementally because of its identifier encoding or its
    text vocabulary (`retrain.training._text.frozen_vocabulary_reason`), or None.

    A fitted target encoder's statistics are frozen in an incremental update: every id first
    seen since the last full fit would stay encoded as the overall mean, and the model could
    never learn it. So such a model is refitted, encoder included, on the replay mix. Hashing
    is stateless and needs no such refit.
    """
    preprocess = model.steps[0][1] if model.steps else None
    for name, _, columns in getattr(preprocess, "transformers_", []):
        if name == _TARGET:
            listed = ", ".join(f"'{c}'" for c in columns)
            return (
                f"the target encoding of identifier column(s) {listed} is refitted on the "
                "replay mix (its per-id statistics cannot learn new ids in an update; "
                "training.identifier_encoding: hashing can)"
            )
    return frozen_vocabulary_reason(preprocess)
