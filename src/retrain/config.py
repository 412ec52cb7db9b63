"""One validated configuration object per use case.

The YAML file is loaded explicitly with `load_config` (never at import time) and validated by
typed models that reject unknown keys and wrong types with a message naming the key, e.g.
``config error at training.historical_share: Input should be less than 1``.

Relative paths in the file are resolved against the file's own directory, so a config can be
run from anywhere; `Config.to_yaml` gives back a self-contained, normalised text that the
pipeline carries as a run parameter (what ran is recorded with the run).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from retrain.errors import ValidationError
from retrain.settings import (
    ContinuousConfig,
    DataSource,
    DeployConfig,
    DriftConfig,
    EvaluationConfig,
    LabelSource,
    ModelSpec,
    RolloutConfig,
    Section,
    TrainingConfig,
    TriggerConfig,
)
from retrain.settings._base import check_name
from retrain.settings.durations import parse_duration
from retrain.settings.evaluation import (
    check_fits_classes,
    check_history_budget,
    check_metric,
    check_performance_drop,
)
from retrain.settings.training import check_takes_sparse

__all__ = [
    "DEFAULT_ESTIMATORS",
    "Config",
    "DataSource",
    "DeployConfig",
    "EvaluationConfig",
    "LabelSource",
    "ModelSpec",
    "TrainingConfig",
    "config_from_dict",
    "config_from_text",
    "labelled_search_depth",
    "load_config",
    "parse_duration",
]

Task = Literal["classification", "regression"]


#: The estimator a config without `model` trains, by task: gradient-boosted trees take numeric,
#: one-hot and encoded inputs with missing values and need no scaling.
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


def implied_keys(raw: Any) -> Any:
    """`raw` with the keys another key already implies filled in, where they are absent.

    - ``labels.id_column``: ``data.id_column`` (labels join the events on the same id);
    - ``labels.label_column``: ``target`` (the label's own name);
    - ``model``: ``DEFAULT_ESTIMATORS[task]`` with its default parameters;
    - ``deploy`` and ``deploy.deployment_name``: ``name`` (the model name is already a valid
      Kubernetes name), so a backtest or a first try needs no deploy section.

    A key given explicitly always wins. Anything but a mapping is returned as is, for the
    typed validation to refuse.
    """
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    labels, data = out.get("labels"), out.get("data")
    if isinstance(labels, dict):
        labels = dict(labels)
        if "id_column" not in labels and isinstance(data, dict) and "id_column" in data:
            labels["id_column"] = data["id_column"]
        if "label_column" not in labels and "target" in out:
            labels["label_column"] = out["target"]
        out["labels"] = labels
    if "model" not in out and out.get("task") in DEFAULT_ESTIMATORS:
        out["model"] = {"estimator": DEFAULT_ESTIMATORS[out["task"]]}
    deploy = out.get("deploy", {})
    if isinstance(deploy, dict) and "deployment_name" not in deploy and "name" in out:
        out["deploy"] = {**deploy, "deployment_name": out["name"]}
    return out


class Config(Section):
    """A use case: data, labels, training, model, gates, deploy and where to keep it all."""

    name: str
    task: Task
    target: str = Field(description="Name of the label column after the join.")
    storage_root: str
    seed: int = 42
    data: DataSource
    labels: LabelSource
    training: TrainingConfig = TrainingConfig()
    model: ModelSpec
    evaluation: EvaluationConfig = EvaluationConfig()
    deploy: DeployConfig
    drift: DriftConfig = DriftConfig()
    triggers: TriggerConfig = TriggerConfig()
    rollout: RolloutConfig = RolloutConfig()
    continuous: ContinuousConfig = ContinuousConfig()

    @model_validator(mode="before")
    @classmethod
    def _implied_keys(cls, raw: Any) -> Any:
        """Fill the keys whose value another key already says (see `implied_keys`)."""
        return implied_keys(raw)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _columns_distinct(self) -> Config:
        reserved = {self.data.id_column, self.data.time_column, self.target}
        clash = reserved & set(self.data.features)
        if clash:
            raise ValueError(
                f"features may not include id, time or target columns: {sorted(clash)}"
            )
        return self

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Config:
        check_metric(self.evaluation.metric, self.task)
        check_history_budget(self.primary_metric, self.evaluation.max_history_loss)
        metric = self.primary_metric
        check_performance_drop(
            metric, "drift.max_performance_drop", self.drift.max_performance_drop
        )
        check_performance_drop(metric, "triggers.performance_drop", self.triggers.performance_drop)
        return self

    @model_validator(mode="after")
    def _metric_fits_classes(self) -> Config:
        classes = self.labels.classes
        if self.task == "classification" and classes is not None:
            checks = [c.name for c in self.rollout.checks or ()]
            n = len(set(classes))
            found = f"labels.classes lists {n} classes"
            check_fits_classes(n, self.primary_metric, checks, found=found)
        return self

    @model_validator(mode="after")
    def _positive_class_fits_task(self) -> Config:
        if self.labels.positive_class is not None and self.task != "classification":
            raise ValueError(
                "labels.positive_class names the class a binary classifier's rare-event"
                f" metrics judge; task is {self.task}: remove it"
            )
        classes = self.labels.classes
        if self.labels.positive_class is not None and classes is not None and len(classes) != 2:
            raise ValueError(
                f"labels.positive_class is for two classes; labels.classes lists {len(classes)}:"
                " remove it (multiclass metrics judge every class)"
            )
        return self

    @model_validator(mode="after")
    def _text_fits_estimator(self) -> Config:
        if self.text_features:
            check_takes_sparse(self.model.estimator, self.model.params)
        return self

    @model_validator(mode="after")
    def _label_delay_fits_time_kind(self) -> Config:
        LabelSource.delay_units(self.labels.delay, self.data.time_kind)
        return self

    @property
    def primary_metric(self) -> str:
        if self.evaluation.metric:
            return self.evaluation.metric
        return "roc_auc" if self.task == "classification" else "rmse"

    @property
    def numeric_features(self) -> list[str]:
        return [c for c, t in self.data.features.items() if t == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [c for c, t in self.data.features.items() if t == "categorical"]

    @property
    def text_features(self) -> list[str]:
        return [c for c, t in self.data.features.items() if t == "text"]

    def to_yaml(self) -> str:
        """The normalised config (every default spelled out) as YAML text."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _is_uri(value: str) -> bool:
    return "://" in value


def _resolve(value: str | None, base: Path) -> str | None:
    if value is None or _is_uri(value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


# An scp-style git address (``git@host:org/repo.git``): not a path to resolve.
_SCP_ADDRESS = re.compile(r"^[\w.-]+@[\w.-]+:")


def _resolve_remote(value: str | None, base: Path) -> str | None:
    """A git remote: URLs and scp-style addresses as given, a local path made absolute."""
    if value is None or _SCP_ADDRESS.match(value):
        return value
    return _resolve(value, base)


def _format_errors(err: PydanticValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = (
                "unknown key (check the spelling; `retrain generate --out DIR` writes a working"
                " example config, and README.md's Configuration section lists every key)"
            )
        elif e["type"] == "missing":
            msg = "required key is missing"
        out.append(f"{loc}: {msg}")
    return out


def config_from_dict(raw: Any, base_dir: Path | None = None, source: str = "config") -> Config:
    """Validate a parsed mapping. Relative paths are resolved against `base_dir`."""
    if not isinstance(raw, dict):
        raise ValidationError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    try:
        cfg = Config.model_validate(raw)
    except PydanticValidationError as err:
        raise ValidationError(f"{source} is invalid", _format_errors(err)) from None
    if base_dir is None:
        return cfg
    data = cfg.data.model_copy(update={"uri": _resolve(cfg.data.uri, base_dir)})
    labels = cfg.labels.model_copy(update={"uri": _resolve(cfg.labels.uri, base_dir)})
    deploy = cfg.deploy.model_copy(
        update={
            "gitops_repo": _resolve(cfg.deploy.gitops_repo, base_dir),
            "gitops_remote": _resolve_remote(cfg.deploy.gitops_remote, base_dir),
            "gitops_credentials": _resolve(cfg.deploy.gitops_credentials, base_dir),
        }
    )
    return cfg.model_copy(
        update={
            "storage_root": _resolve(cfg.storage_root, base_dir),
            "data": data,
            "labels": labels,
            "deploy": deploy,
        }
    )


def config_from_text(text: str, base_dir: Path | None = None, source: str = "config") -> Config:
    """Parse and validate YAML text (as carried by a pipeline parameter)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValidationError(f"{source} is not valid YAML: {err}") from None
    return config_from_dict(raw, base_dir, source)


def load_config(path: str | Path) -> Config:
    """Load a config file; relative paths inside it are taken from the file's directory."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ValidationError(f"config file not found: {p}") from None
    return config_from_text(text, p.resolve().parent, source=str(p))


def labelled_search_depth(cfg: Config) -> int:
    """How many windows, the newest included, a search for the newest labelled window looks
    at: ``triggers.labelled_lookback``, or one more than ``labels.delay`` in windows if that is
    longer (the window that ended ``labels.delay`` ago is the newest whose labels can be in).
    The monitor and the backtest search alike."""
    delay = LabelSource.delay_units(cfg.labels.delay, cfg.data.time_kind)
    if cfg.data.time_kind == "period":
        span = int(cfg.data.window_size)
    else:
        span = parse_duration(cfg.data.window_size)
    return max(cfg.triggers.labelled_lookback, math.ceil(delay / span) + 1)
