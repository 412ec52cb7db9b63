"""How each estimator may learn from a new window: the table, the lookup and the model's size.

See `retrain.continuous.update` for how the methods are used (and why the preprocessing stays
frozen during incremental updates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)

from retrain.config import Config
from retrain.errors import ValidationError

__all__ = [
    "UPDATE_STRATEGIES",
    "Method",
    "UpdateStrategy",
    "model_size",
    "pipeline_parts",
    "update_strategy",
]

Method = Literal["partial_fit", "add_trees", "refit"]

_SEEDS_ONLY = (
    "warm_start only seeds a solver that converges to the optimum of the rows it is given, so "
    "on a new window alone it forgets history"
)
_FITS_ON_ITS_DATA = "it is fitted in one piece on the rows it is given"

#: How each estimator class learns from a new window, and why that is valid for it. Looked up
#: by exact class (a subclass may change what is valid); a class not listed is refitted.
UPDATE_STRATEGIES: Mapping[type[BaseEstimator], tuple[Method, str]] = {
    SGDClassifier: ("partial_fit", "each pass continues stochastic gradient descent"),
    SGDRegressor: ("partial_fit", "each pass continues stochastic gradient descent"),
    MLPClassifier: ("partial_fit", "each pass continues the stochastic solver ('adam', 'sgd')"),
    MLPRegressor: ("partial_fit", "each pass continues the stochastic solver ('adam', 'sgd')"),
    GaussianNB: ("partial_fit", "the new rows are added to its per-class means and variances"),
    RandomForestClassifier: ("add_trees", "its trees are fitted independently"),
    RandomForestRegressor: ("add_trees", "its trees are fitted independently"),
    ExtraTreesClassifier: ("add_trees", "its trees are fitted independently"),
    ExtraTreesRegressor: ("add_trees", "its trees are fitted independently"),
    HistGradientBoostingClassifier: (
        "refit",
        "scikit-learn documents warm_start as valid on the same data only; the bin thresholds "
        "are fixed at the first fit",
    ),
    HistGradientBoostingRegressor: (
        "refit",
        "scikit-learn documents warm_start as valid on the same data only; the bin thresholds "
        "are fixed at the first fit",
    ),
    GradientBoostingClassifier: (
        "refit",
        "warm_start adds boosting stages to the first fit (its initial estimator stays), a "
        "continuation scikit-learn documents for the same data",
    ),
    GradientBoostingRegressor: (
        "refit",
        "warm_start adds boosting stages to the first fit (its initial estimator stays), a "
        "continuation scikit-learn documents for the same data",
    ),
    LogisticRegression: ("refit", _SEEDS_ONLY),
    Lasso: ("refit", _SEEDS_ONLY),
    ElasticNet: ("refit", _SEEDS_ONLY),
    LinearRegression: ("refit", _FITS_ON_ITS_DATA),
    Ridge: ("refit", _FITS_ON_ITS_DATA),
    DecisionTreeClassifier: ("refit", "a single tree cannot grow on new data"),
    DecisionTreeRegressor: ("refit", "a single tree cannot grow on new data"),
    ExtraTreeClassifier: ("refit", "a single tree cannot grow on new data"),
    ExtraTreeRegressor: ("refit", "a single tree cannot grow on new data"),
    KNeighborsClassifier: ("refit", "the model is its training set"),
    KNeighborsRegressor: ("refit", "the model is its training set"),
    DummyClassifier: ("refit", _FITS_ON_ITS_DATA),
    DummyRegressor: ("refit", _FITS_ON_ITS_DATA),
}


@dataclass(frozen=True)
class UpdateStrategy:
    """How an estimator learns from a new window under `continuous.method`, and why."""

    method: Method
    reason: str


def update_strategy(cfg: Config, estimator: BaseEstimator) -> UpdateStrategy:
    """How `estimator` learns from a window: its `UPDATE_STRATEGIES` entry, or `continuous.method`.

    ``auto`` takes the table's entry; an estimator the table does not list, or a
    ``partial_fit`` entry whose parameters hide it (an MLP with solver 'lbfgs'), is refitted.
    ``refit`` is valid for any estimator; ``partial_fit`` and ``add_trees`` only where the table
    says so.

    Raises:
        ValidationError: naming `continuous.method` when it asks for a method the estimator
            has no valid use of.
    """
    name = type(estimator).__name__
    method, why = UPDATE_STRATEGIES.get(
        type(estimator), ("refit", "it is not listed in retrain.continuous.UPDATE_STRATEGIES")
    )
    # available_if hides partial_fit where it does not apply (e.g. MLP with solver 'lbfgs').
    if method == "partial_fit" and not hasattr(estimator, "partial_fit"):
        method, why = "refit", "it has no partial_fit with these model.params"
    wanted = cfg.continuous.method
    if wanted == "refit":
        return UpdateStrategy("refit", "full refit on the replay mix (continuous.method 'refit')")
    if wanted not in ("auto", method):
        raise ValidationError(
            f"continuous.method: '{wanted}' is not a valid update for {name} ({why}; its "
            f"method is '{method}'); set continuous.method to 'auto' or 'refit', or "
            "continuous.enabled: false"
        )
    if method == "refit":
        return UpdateStrategy(
            "refit", f"full refit on the replay mix (no valid incremental path for {name}: {why})"
        )
    return UpdateStrategy(method, f"{method} for {name}: {why}")


def model_size(model: Pipeline) -> dict[str, Any] | None:
    """The ensemble size of a fitted model, read from the fitted estimator; None if not one.

    Forests count ``estimators_``; gradient boosting counts the stages or iterations it kept,
    which early stopping can make fewer than its ``n_estimators`` or ``max_iter``.
    """
    _, est = pipeline_parts(model)
    if isinstance(est, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return {"unit": "iterations", "count": int(est.n_iter_)}
    if isinstance(est, (GradientBoostingClassifier, GradientBoostingRegressor)):
        return {"unit": "stages", "count": int(est.n_estimators_)}
    trees = getattr(est, "estimators_", None)
    if isinstance(trees, list):
        return {"unit": "trees", "count": len(trees)}
    return None


def pipeline_parts(model: Pipeline) -> tuple[Any, Any]:
    """The preprocessing and the estimator of a retrain pipeline."""
    steps = getattr(model, "named_steps", None)
    if (
        not isinstance(model, Pipeline)
        or steps is None
        or not {"preprocess", "estimator"} <= set(steps)
    ):
        raise ValidationError(
            "the model to update is not a retrain pipeline (steps 'preprocess' and 'estimator')"
        )
    return steps["preprocess"], steps["estimator"]
