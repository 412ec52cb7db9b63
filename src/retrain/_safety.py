"""Verified loading of skops model files: sha256 first, then an explicit trusted-type list.

This module is the one source of `TRUSTED_TYPES`. It imports only the standard library, numpy
(through skops) and skops, so the serving image can install the package with ``--no-deps`` and
import it without pandas, pydantic or kfp. pickle and joblib are never used: loading a pickle
runs whatever code the file names.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

from retrain.errors import ValidationError

__all__ = [
    "TRUSTED_NODES",
    "TRUSTED_TYPES",
    "check_sha256",
    "load_verified",
    "schema_types",
    "sha256_hex",
    "untrusted_parts",
]

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
        "sklearn.feature_extraction.text.HashingVectorizer",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.preprocessing._label.LabelEncoder",
        # identifier encodings (the folds are kept on the fitted target encoder)
        "sklearn.feature_extraction._hash.FeatureHasher",
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.preprocessing._target_encoder.TargetEncoder",
        # linear models
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn.linear_model._stochastic_gradient.SGDRegressor",
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
TRUSTED_NODES: frozenset[str] = frozenset(
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


def untrusted_parts(data: bytes) -> tuple[list[str], list[str]]:
    """(types, node kinds) in a skops file that are not trusted, each sorted; empty if safe.

    Raises:
        ValidationError: the bytes are not a readable skops file.
    """
    types, nodes = schema_types(data)
    return sorted(types - TRUSTED_TYPES), sorted(nodes - TRUSTED_NODES)


def check_sha256(data: bytes, expected_sha256: str, *, what: str = "model file") -> None:
    """Refuse bytes whose sha256 is not `expected_sha256` (an empty expectation never matches).

    Raises:
        ValidationError: naming `what`, both digests and the refusal.
    """
    actual = sha256_hex(data)
    if not expected_sha256 or actual != expected_sha256.lower():
        raise ValidationError(
            f"{what} does not match its card: sha256 {actual} != "
            f"{expected_sha256 or '(empty)'}, refusing to load"
        )


def load_verified(model_bytes: bytes, expected_sha256: str, *, what: str = "model file") -> Any:
    """The object in a skops file, built only after its hash and every type in it are checked.

    Args:
        model_bytes: the content of a ``model.skops`` file.
        expected_sha256: the hex digest recorded for it (the model card's `model_sha256`).
        what: how messages name the file, e.g. ``"model file (version v3)"``.

    Raises:
        ValidationError: hash mismatch, untrusted types or node kinds, or corrupted bytes.
    """
    check_sha256(model_bytes, expected_sha256, what=what)
    present, kinds = schema_types(model_bytes)  # read once: the checks and the load share it
    types, nodes = sorted(present - TRUSTED_TYPES), sorted(kinds - TRUSTED_NODES)
    if types or nodes:
        raise ValidationError(
            f"{what} contains types outside TRUSTED_TYPES, refusing to load",
            [f"untrusted type {t}" for t in types] + [f"untrusted skops node {n}" for n in nodes],
        )
    import skops.io as sio  # here, not at the top: importing skops imports scikit-learn (~1 s)

    try:
        # Every type present was checked against TRUSTED_TYPES above; skops checks again.
        return sio.loads(model_bytes, trusted=sorted(present))
    except Exception as err:  # skops raises many kinds on malformed content
        raise ValidationError(f"{what} could not be loaded: {type(err).__name__}: {err}") from None
