"""Safe model persistence: skops files with an explicit trusted-type list, and a model card.

A model version is two files: ``model.skops`` and ``model.json`` (the `ModelCard`, which
carries the sha256 of the model file). Loading checks the hash first, then reads the skops
schema and refuses any type or node kind not listed here, before a single object is built.
pickle and joblib are never used: loading a pickle runs whatever code the file names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import platform
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops
import skops.io as sio
from sklearn.pipeline import Pipeline

import retrain
from retrain.config import Config
from retrain.errors import ValidationError

__all__ = [
    "MODEL_CARD_FILE",
    "MODEL_FILE",
    "TRUSTED_TYPES",
    "ModelCard",
    "card_from_config",
    "library_versions",
    "load_model",
    "model_files",
    "schema_types",
    "serialize_model",
    "sha256_hex",
]

MODEL_FILE = "model.skops"
MODEL_CARD_FILE = "model.json"

#: Every type a model file may contain: the preprocessing pipeline, the supported estimators
#: and their fitted internals, and the numpy/builtin containers they are made of. Collected by
#: fitting each estimator on binary, multiclass and regression data; review before extending.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # containers and scalars
        "builtins.bool",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.uint64",
        # preprocessing
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.preprocessing._label.LabelEncoder",
        # linear models
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        # trees and forests
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        # histogram gradient boosting
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # others
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    }
)

# The skops node kinds those types are stored with. Kinds that rebuild callables by name
# (functions, methods, operator.* and partials) are deliberately absent.
_TRUSTED_NODES = frozenset(
    {
        "DTypeNode",
        "DictNode",
        "JsonNode",
        "ListNode",
        "LossNode",
        "NdArrayNode",
        "ObjectNode",
        "RandomGeneratorNode",
        "RandomStateNode",
        "SliceNode",
        "TreeNode",
        "TupleNode",
        "TypeNode",
    }
)


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
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse a card.

        Raises:
            ValidationError: not JSON, not an object, or with missing or unknown keys.
        """
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValidationError(f"model card is not valid JSON: {err}") from None
        if not isinstance(raw, dict):
            raise ValidationError("model card must be a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        problems = [f"unknown key '{k}'" for k in sorted(set(raw) - set(fields))]
        problems += [f"required key '{k}' is missing" for k in sorted(required - set(raw))]
        for key, expected in _CARD_TYPES.items():
            value = raw.get(key)
            wrong = not isinstance(value, expected) or isinstance(value, bool)
            if key in raw and wrong and not (key in _NULLABLE and value is None):
                problems.append(f"'{key}' must be {expected.__name__}, got {value!r:.60}")
        if problems:
            raise ValidationError("model card is invalid", problems)
        return cls(**raw)


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


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def schema_types(data: bytes) -> tuple[set[str], set[str]]:
    """(qualified type names, node kinds) named anywhere in a skops file's schema.

    Reads only the JSON schema inside the zip; no object is constructed.

    Raises:
        ValidationError: the bytes are not a readable skops file.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            schema = json.loads(zf.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise ValidationError(f"model file is corrupted or not a skops file: {err}") from None
    types: set[str] = set()
    nodes: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if module is not None or name is not None:
                types.add(f"{module}.{name}")
            if "__loader__" in node:
                nodes.add(str(node["__loader__"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return types, nodes


def _untrusted(data: bytes) -> tuple[list[str], list[str]]:
    types, nodes = schema_types(data)
    return sorted(types - TRUSTED_TYPES), sorted(nodes - _TRUSTED_NODES)


def serialize_model(model: Pipeline) -> bytes:
    """The model as skops bytes.

    Raises:
        ValidationError: the model holds types `load_model` would refuse (checked now, so a
            model that cannot be loaded back is never written).
    """
    data = sio.dumps(model)
    types, nodes = _untrusted(data)
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


def load_model(model_bytes: bytes, card: ModelCard) -> Pipeline:
    """Load a model file after checking it against its card and the trusted-type list.

    Raises:
        ValidationError: hash mismatch, untrusted types, corrupted bytes, or not a Pipeline.
    """
    actual = sha256_hex(model_bytes)
    if not card.model_sha256 or actual != card.model_sha256:
        raise ValidationError(
            f"model file does not match its card (version {card.version}): sha256 {actual} != "
            f"{card.model_sha256 or '(empty)'}, refusing to load"
        )
    types, nodes = _untrusted(model_bytes)
    if types or nodes:
        raise ValidationError(
            f"model file (version {card.version}) contains types outside TRUSTED_TYPES, "
            "refusing to load",
            [f"untrusted type {t}" for t in types] + [f"untrusted skops node {n}" for n in nodes],
        )
    present, _ = schema_types(model_bytes)
    try:
        # Every type present was checked against TRUSTED_TYPES above; skops checks again.
        model = sio.loads(model_bytes, trusted=sorted(present))
    except Exception as err:  # skops raises many kinds on malformed content
        raise ValidationError(
            f"model file (version {card.version}) could not be loaded: {type(err).__name__}: {err}"
        ) from None
    if not isinstance(model, Pipeline):
        raise ValidationError(
            f"model file (version {card.version}) holds a {type(model).__name__}, not a Pipeline"
        )
    return model


def _json_default(value: Any) -> Any:
    # numpy scalars and tuples reach the card through metrics and params.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
