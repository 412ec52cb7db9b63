"""The model: feature preprocessing derived from the config, then a scikit-learn estimator.

The estimator is named in the config (`model.estimator`, a dotted path under ``sklearn.``) and
resolved with importlib; nothing else is importable this way. It must be a classifier with
`predict_proba` for classification, or a regressor for regression, and its type must be one
the artifact loader trusts (`retrain.training.artifact.TRUSTED_TYPES`): a model that could not
be loaded back safely is refused before any training time is spent on it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import has_fit_parameter

from retrain.config import Config
from retrain.data.targets import label_key, plain_values
from retrain.errors import ValidationError
from retrain.settings.training import check_takes_sparse
from retrain.training._encoding import (
    encoded_as_identifiers,
    identifier_transformers,
    identifiers_as_text,
)
from retrain.training._memory import one_hot_columns, text_as_categories
from retrain.training._text import empty_text_problems, fill_missing_text, text_transformers
from retrain.training.artifact import TRUSTED_TYPES

__all__ = ["build_estimator", "feature_frame", "fit_model", "predict_scores", "resolve_estimator"]


def resolve_estimator(path: str) -> type[BaseEstimator]:
    """The estimator class at a dotted path under ``sklearn.``.

    Raises:
        ValidationError: naming `model.estimator` if the path is outside scikit-learn, does not
            exist, is not an estimator class, or is not in the trusted type list.
    """
    key = "model.estimator"
    module_name, _, attr = path.rpartition(".")
    if not path.startswith("sklearn.") or not module_name or not attr:
        raise ValidationError(
            f"{key}: '{path}' is not a scikit-learn class path like "
            "sklearn.linear_model.LogisticRegression"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ValidationError(f"{key}: module '{module_name}' not found (from '{path}')") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValidationError(f"{key}: '{module_name}' has no attribute '{attr}'")
    if not inspect.isclass(cls) or not issubclass(cls, BaseEstimator):
        raise ValidationError(f"{key}: '{path}' is not a scikit-learn estimator class")
    qualified = f"{cls.__module__}.{cls.__qualname__}"
    if qualified not in TRUSTED_TYPES:
        raise ValidationError(
            f"{key}: '{path}' ({qualified}) is not in the trusted type list of "
            "retrain.training.artifact.TRUSTED_TYPES, so a trained model could not be loaded "
            "back safely; choose a listed estimator or extend the list after reviewing it"
        )
    return cls


def build_estimator(cfg: Config, train: pd.DataFrame | None = None) -> Pipeline:
    """An unfitted pipeline: preprocessing from `data.features`, then `model.estimator`.

    Numeric features are median-imputed and standardised; categorical ones are imputed with
    the most frequent value and one-hot encoded (unknown categories at predict time are
    ignored). Identifier features, and categorical ones with more distinct values in `train`
    than `training.max_onehot_categories`, are encoded as `retrain.training._encoding`
    describes. Without text features the output is dense, so that every scikit-learn
    estimator accepts it. Text features are vectorised per `training.text`
    (`retrain.training._text`); their output is sparse, so the estimator must accept sparse
    input.
    `random_state` is set to the config's `seed` when the estimator has one.

    Raises:
        ValidationError: naming `model.estimator` or `model.params`.
    """
    cls = resolve_estimator(cfg.model.estimator)
    params: dict[str, Any] = dict(cfg.model.params)
    if "random_state" in params:
        raise ValidationError(
            "model.params.random_state: set the top-level 'seed' key instead; it seeds the "
            "estimator and is recorded on the model card"
        )
    try:
        estimator = cls()
    except TypeError as err:
        raise ValidationError(
            f"model.estimator: {cfg.model.estimator} cannot be built without arguments ({err})"
        ) from None
    if "random_state" in estimator.get_params(deep=False):
        params["random_state"] = cfg.seed
    try:
        estimator.set_params(**params)
    except ValueError as err:
        raise ValidationError(f"model.params: {err}") from None
    # Check parameter values now rather than minutes into fit. `_validate_params` is private but
    # is how every scikit-learn estimator validates; estimators without it are checked at fit.
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, TypeError) as err:
            raise ValidationError(f"model.params: {err}") from None

    if cfg.task == "classification":
        if not is_classifier(estimator):
            raise ValidationError(
                f"model.estimator: {cfg.model.estimator} is not a classifier, but task is "
                "'classification'"
            )
        if not hasattr(estimator, "predict_proba"):
            raise ValidationError(
                f"model.estimator: {cfg.model.estimator} with these model.params has no "
                "predict_proba; the evaluation gates need class probabilities"
            )
    elif not is_regressor(estimator):
        raise ValidationError(
            f"model.estimator: {cfg.model.estimator} is not a regressor, but task is 'regression'"
        )

    as_identifiers = encoded_as_identifiers(cfg, train)
    transformers: list[tuple[str, Any, list[str] | str]] = []
    if cfg.numeric_features:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers.append(("numeric", numeric, cfg.numeric_features))
    one_hot = [c for c in cfg.categorical_features if c not in as_identifiers]
    if one_hot:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, one_hot))
    transformers += identifier_transformers(cfg, as_identifiers)
    if cfg.text_features:
        # Checked when the config loads; again here for a config updated without validation.
        try:
            check_takes_sparse(cfg.model.estimator, cfg.model.params)
        except ValueError as err:
            raise ValidationError(str(err)) from None
        transformers.extend(text_transformers(cfg))
    # Dense unless there is text: a vocabulary-wide dense matrix would not fit in memory.
    dense_or_sparse = 1.0 if cfg.text_features else 0.0
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=dense_or_sparse)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def feature_frame(df: pd.DataFrame, cfg: Config, what: str = "data") -> pd.DataFrame:
    """The feature columns of `df` in config order, missing text as empty text, numeric ids
    as text.

    Raises:
        ValidationError: listing every missing feature column.
    """
    features = list(cfg.data.features)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{what} lacks feature columns listed in data.features",
            [f"missing column '{c}'" for c in missing],
        )
    return identifiers_as_text(fill_missing_text(df[features], cfg), cfg)


def fit_model(
    cfg: Config, train: pd.DataFrame, sample_weight: np.ndarray | None = None
) -> Pipeline:
    """Build the pipeline and fit it on `train`, with per-row `sample_weight` if given.

    Raises:
        ValidationError: missing columns, missing labels, a single class, an estimator that
            takes no sample weights when they are given, or the estimator refusing the data or
            its parameters.
    """
    model = build_estimator(cfg, train)
    fit_params: dict[str, Any] = {}
    if sample_weight is not None:
        if not has_fit_parameter(model.named_steps["estimator"], "sample_weight"):
            raise ValidationError(
                f"training.mix 'weighted': {cfg.model.estimator} takes no sample_weight; use "
                "training.mix: sample, or an estimator that accepts weights"
            )
        fit_params["estimator__sample_weight"] = np.asarray(sample_weight, dtype=float)
    X = feature_frame(train, cfg, "training data")
    if cfg.target not in train.columns:
        raise ValidationError(f"training data lacks the target column '{cfg.target}'")
    y = train[cfg.target]
    problems = []
    if len(train) == 0:
        problems.append("training data is empty")
    n_missing = int(y.isna().sum())
    if n_missing:
        problems.append(f"target '{cfg.target}' has {n_missing} missing value(s)")
    if cfg.task == "classification" and y.nunique(dropna=True) < 2:
        problems.append(f"target '{cfg.target}' has fewer than 2 classes in the training data")
    problems += empty_text_problems(X, cfg)
    if problems:
        raise ValidationError("cannot train on this data", problems)
    if cfg.task == "classification":
        _match_class_weight_keys(model, y)
    X = text_as_categories(X, one_hot_columns(model))  # same model, far fewer strings in memory
    try:
        model.fit(X, y, **fit_params)
    except ValueError as err:
        # The estimator rejected the data or a parameter value: the config or data must change.
        raise ValidationError(f"fitting {cfg.model.estimator} failed: {err}") from None
    return model


def _match_class_weight_keys(model: Pipeline, y: pd.Series) -> None:
    """Key `class_weight` by the target's own class values.

    A config travels as YAML text (the pipeline parameter), where mapping keys come back as
    strings: ``{0: 1, 1: 50}`` arrives as ``{"0": 1, "1": 50}``, which scikit-learn would not
    match to the integer classes. Keys are matched to classes as labels are (`label_key`: the
    key "1" is the class 1, 1.0 or True), else by their text.

    Raises:
        ValidationError: a key that names no class of the target.
    """
    estimator = model.steps[-1][1]
    weights = getattr(estimator, "class_weight", None)
    if not isinstance(weights, dict):
        return
    classes = plain_values(pd.unique(y.dropna()))
    by_key = {label_key(c): c for c in classes}
    by_text = {str(c): c for c in classes}

    def named(k: Any) -> Any:
        return by_key.get(label_key(k), by_text.get(str(k)))

    unknown = sorted(str(k) for k in weights if named(k) is None)
    if unknown:
        raise ValidationError(
            f"model.params.class_weight: {unknown} are not classes of the target; "
            f"its classes are {sorted(by_text)}"
        )
    estimator.set_params(class_weight={named(k): w for k, w in weights.items()})


def predict_scores(model: Pipeline, df: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Class probabilities (rows x `model.classes_`) for classification, values for regression."""
    X = feature_frame(df, cfg)
    if cfg.task == "classification":
        return np.asarray(model.predict_proba(X), dtype=float)
    return np.asarray(model.predict(X), dtype=float)
