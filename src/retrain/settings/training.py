"""The `training:` and `model:` config sections: the history/new mix and the estimator."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from retrain._safety import TRUSTED_TYPES
from retrain.settings._base import Section
from retrain.settings.text import TextConfig

__all__ = [
    "MAX_IDENTIFIER_HASH_FEATURES",
    "ModelSpec",
    "TrainingConfig",
    "check_estimator_path",
    "check_takes_sparse",
]

#: Widest hash per identifier column: the encoded matrix is dense, 8 bytes per input and row.
MAX_IDENTIFIER_HASH_FEATURES = 1024


class TrainingConfig(Section):
    historical_share: float = Field(
        default=0.8,
        ge=0.0,
        lt=1.0,
        description="Share of the training set that is history: of the rows (mix 'sample') or"
        " of the total sample weight (mix 'weighted').",
    )
    mix: Literal["sample", "weighted"] = Field(
        default="sample",
        description=(
            "'sample': a sample of history sized so it is historical_share of the rows (history"
            " beyond that is left out). 'weighted': all of history (up to max_history_rows),"
            " with sample weights that give history historical_share of the total weight; the"
            " estimator must accept sample_weight."
        ),
    )
    min_train_rows: int = Field(
        default=0,
        ge=0,
        description=(
            "With mix 'sample', draw more history when the mix would train on fewer rows than"
            " this (a small window would otherwise cap the training set at about"
            " new rows / (1 - historical_share)); the realised share is recorded."
        ),
    )
    max_history_rows: int | None = Field(default=None, ge=1)
    max_train_rows: int | None = Field(
        default=1_000_000,
        ge=1,
        description=(
            "Cap on the rows one training fits on, history and new rows together. Beyond it"
            " both sides are sampled down (stratified, seeded) so history keeps"
            " historical_share of the rows (either side fills what the other lacks): the fit"
            " holds at most this many rows (about 1 KiB per row with 20 features) however much"
            " history is kept; the step also reads the new window and one stored window at a"
            " time. null: no cap."
        ),
    )
    evaluation_share: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description=(
            "Share of labelled rows that only ever judge models and never train one: each row's"
            " role is fixed by a hash of its id (salted with the model name), so no champion or"
            " challenger is scored on rows it trained on. 0.2 keeps 80% of the labels for"
            " training; changing it reassigns rows, so change it together with a full retrain."
        ),
    )
    history_holdout_rows: int = Field(
        default=20_000,
        ge=10,
        description=(
            "Cap on the history evaluation rows the forgetting gate scores (sampled beyond it)."
            " The gate's power grows with them: the half-width of the loss interval between two"
            " models of AUC about 0.8 is about 0.027 at 500 rows, 0.013 at 2,000 and 0.006 at"
            " 10,000 (benchmarks/decisions/gates.py), so every available row is used up to a"
            " cap that bounds the bootstrap's cost."
        ),
    )
    identifier_encoding: Literal["target", "hashing"] = Field(
        default="target",
        description=(
            "How identifier features (and categorical ones above max_onehot_categories) are"
            " encoded: 'target' (cross-fitted target encoding; refitted on each window under"
            " continuous learning) or 'hashing' (identifier_hash_features inputs per column;"
            " stateless, so partial_fit updates learn new ids)."
        ),
    )
    identifier_hash_features: int = Field(
        default=64,
        ge=2,
        # The hashed inputs join the dense matrix the estimator gets (dense unless there is
        # text; HistGradientBoosting takes no sparse input): 1,024 columns of float64 are 8 KB
        # a row, 1 << 20 would be 8 MB a row.
        le=MAX_IDENTIFIER_HASH_FEATURES,
        description=(
            "Inputs per column under 'hashing', at most 1024: the encoded matrix is dense (8"
            " bytes per input and row), so a wider hash would not fit in memory."
        ),
    )
    max_onehot_categories: int = Field(
        default=100,
        ge=1,
        description=(
            "A categorical feature with more distinct values than this in the training data"
            " is encoded by identifier_encoding instead of one-hot (a warning in the train"
            " report)."
        ),
    )
    text: TextConfig = Field(
        default_factory=TextConfig, description="How `text` features are vectorised."
    )

    @model_validator(mode="after")
    def _cap_above_minimum(self) -> TrainingConfig:
        if self.max_train_rows is not None and self.max_train_rows < self.min_train_rows:
            raise ValueError(
                f"training.max_train_rows ({self.max_train_rows}) is below"
                f" training.min_train_rows ({self.min_train_rows}): raise max_train_rows or"
                " lower min_train_rows"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "recent_holdout" in data:
            raise ValueError(
                "training.recent_holdout was replaced by training.evaluation_share: evaluation"
                " rows are now fixed per row id for all windows; remove recent_holdout and set"
                " evaluation_share (default 0.2) instead"
            )
        return data


class ModelSpec(Section):
    estimator: str = Field(description="Dotted path of a scikit-learn estimator class.")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if "." not in v or not v.startswith("sklearn."):
            raise ValueError(
                f"'{v}' is not a scikit-learn estimator path"
                " like sklearn.linear_model.LogisticRegression"
            )
        check_estimator_path(v)
        return v


def _supported_in(module: Any) -> list[str]:
    """Public names of `module` that are supported (trusted) estimators."""
    out = []
    for name in dir(module):
        obj = getattr(module, name, None)
        if (
            inspect.isclass(obj)
            and not name.startswith("_")
            and hasattr(obj, "predict")
            and f"{obj.__module__}.{obj.__qualname__}" in TRUSTED_TYPES
        ):
            out.append(f"{module.__name__}.{name}")
    return sorted(out)


def check_estimator_path(path: str) -> None:
    """A ValueError naming the supported choices if `path` is not a supported estimator.

    Checked when the config loads, so a typo fails at once rather than at the train step.
    """
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ValueError(f"'{path}': there is no module '{module_name}'") from None
    obj = getattr(module, attr, None)
    supported = _supported_in(module)
    if (
        inspect.isclass(obj)
        and f"{obj.__module__}.{obj.__qualname__}" in TRUSTED_TYPES
        and hasattr(obj, "predict")
    ):
        return
    close = difflib.get_close_matches(path, supported, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = f" Supported in {module_name}: {', '.join(supported)}." if supported else ""
    what = "is not a supported estimator" if obj is not None else "does not exist"
    raise ValueError(f"'{path}' {what}{hint}{listed}")


def check_takes_sparse(path: str, params: Mapping[str, Any]) -> None:
    """A ValueError if the estimator at `path` (a supported one) with `params` cannot take
    sparse input, which text features produce.

    Checked when a config with text features loads, so the run stops before ingest and
    label rather than at the train step. An estimator that cannot be built here is left to
    the train step, which reports why.
    """
    module_name, _, attr = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), attr)
    try:
        estimator = cls()
    except TypeError:
        return
    # Bad params are reported against model.params when the estimator is built.
    with contextlib.suppress(TypeError, ValueError):
        estimator.set_params(**params)
    if not estimator.__sklearn_tags__().input_tags.sparse:
        raise ValueError(
            f"model.estimator: {path} does not accept sparse input, which text features "
            "produce; use e.g. sklearn.linear_model.LogisticRegression or "
            "sklearn.linear_model.SGDClassifier"
        )
