"""One validated configuration object per use case.

The YAML file is loaded explicitly with `load_config` (never at import time) and validated by
typed models that reject unknown keys and wrong types with a message naming the key, e.g.
``config error at training.historical_share: Input should be less than 1``.

Relative paths in the file are resolved against the file's own directory, so a config can be
run from anywhere; `Config.to_yaml` gives back a self-contained, normalised text that the
pipeline carries as a run parameter (what ran is recorded with the run).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from retrain.continuous.settings import ContinuousConfig
from retrain.drift.settings import DriftConfig
from retrain.errors import ValidationError
from retrain.rollout.settings import RolloutConfig
from retrain.triggers.settings import TriggerConfig

__all__ = [
    "Config",
    "DataSource",
    "DeployConfig",
    "EvaluationConfig",
    "LabelSource",
    "ModelSpec",
    "TrainingConfig",
    "config_from_text",
    "load_config",
]

FeatureType = Literal["numeric", "categorical"]
TimeKind = Literal["timestamp", "date", "period"]
Task = Literal["classification", "regression"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """Where new events come from and what they look like."""

    uri: str = Field(description="File or directory of Parquet/CSV files (local path or gs://).")
    format: Literal["parquet", "csv"] = "parquet"
    id_column: str
    time_column: str
    time_kind: TimeKind = "timestamp"
    features: dict[str, FeatureType]
    prediction_column: str | None = Field(
        default=None, description="The serving model's logged prediction, if the logs carry it."
    )
    window_size: str | int = Field(
        default=1,
        description=(
            "Window length: an integer number of periods (default 1), or a duration like"
            " '7d' (default) for timestamps and dates."
        ),
    )
    min_rows: int = Field(default=100, ge=1, description="Fewer rows in a window is an error.")
    max_null_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    range_tolerance: float = Field(
        default=0.5,
        ge=0.0,
        description="Numeric values may exceed the reference range by this fraction of its width.",
    )

    @field_validator("features")
    @classmethod
    def _features_not_empty(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one feature is required")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_window(cls, raw: Any) -> Any:
        # One period for period columns, one week for timestamps and dates.
        if isinstance(raw, dict) and "window_size" not in raw:
            kind = raw.get("time_kind", "timestamp")
            return {**raw, "window_size": 1 if kind == "period" else "7d"}
        return raw

    @model_validator(mode="after")
    def _window_matches_time_kind(self) -> DataSource:
        if (
            self.time_kind == "date"
            and isinstance(self.window_size, str)
            and parse_duration(self.window_size) % 86400
        ):
            raise ValueError("window_size must be whole days when time_kind is 'date'")
        if self.time_kind == "period":
            if not isinstance(self.window_size, int) or self.window_size < 1:
                raise ValueError(
                    "window_size must be a positive integer when time_kind is 'period'"
                )
        else:
            parse_duration(self.window_size)
        return self


class LabelSource(_Strict):
    """Ground truth that arrives separately (and late), joined to events by id."""

    uri: str
    format: Literal["parquet", "csv"] = "parquet"
    id_column: str
    label_column: str
    time_column: str | None = Field(
        default=None, description="When the label became known; used by the leakage check."
    )
    min_coverage: float = Field(default=0.8, ge=0.0, le=1.0)
    delay: str | int = Field(
        default=0,
        description=(
            "How long labels take to arrive: a duration like '7d' for timestamp and date"
            " sources, an integer number of periods for period sources; 0 (default) for none."
            " A scheduled run (window 'auto') trains the newest window that ended at least"
            " this long before the run's time, so its labels can pass min_coverage."
        ),
    )

    @field_validator("delay", mode="before")
    @classmethod
    def _delay_shape(cls, v: Any) -> Any:
        # `true` would pass as the integer 1; say what is meant instead.
        if isinstance(v, bool) or (isinstance(v, int) and v < 0):
            raise ValueError(f"{v!r} is not a delay: use 0, a whole number of periods or '7d'")
        if isinstance(v, str):
            parse_duration(v)  # ValueError names the value; pydantic names the key
        return v

    @staticmethod
    def delay_units(delay: str | int, time_kind: str) -> int:
        """`delay` in the units windows of `time_kind` use: seconds, or periods.

        Raises:
            ValueError: the delay does not fit the time kind (a duration for periods, a bare
                number other than 0 for timestamps and dates); the message names the key.
        """
        if time_kind == "period":
            if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
                raise ValueError(
                    f"labels.delay {delay!r} must be a whole number of periods (e.g. 2) when "
                    "data.time_kind is 'period'"
                )
            return delay
        if isinstance(delay, int) and not isinstance(delay, bool):
            if delay == 0:
                return 0
            raise ValueError(
                f"labels.delay {delay!r} needs a unit (e.g. '{delay}d') when data.time_kind "
                f"is {time_kind!r}"
            )
        try:
            return parse_duration(delay)
        except ValueError as err:
            raise ValueError(f"labels.delay: {err}") from None


class TrainingConfig(_Strict):
    historical_share: float = Field(default=0.8, ge=0.0, lt=1.0)
    max_history_rows: int | None = Field(default=None, ge=1)
    recent_holdout: float = Field(default=0.25, gt=0.0, lt=1.0)
    history_holdout_rows: int = Field(default=2000, ge=10)


class ModelSpec(_Strict):
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
        return v


class EvaluationConfig(_Strict):
    metric: str | None = Field(
        default=None, description="Primary metric; defaults to roc_auc (classification) or rmse."
    )
    floor: float | None = Field(default=None, description="Absolute minimum of the metric.")
    max_recent_regression: float = Field(
        default=0.0,
        ge=0.0,
        description="Largest allowed drop vs the champion on recent data (metric units).",
    )
    max_history_loss: float = Field(
        default=0.02, ge=0.0, description="Largest allowed drop vs the champion on history."
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "A challenger replaces the champion only if the lower bound of the confidence interval"
            " of its gain on recent data exceeds this (metric units): better, not merely equal."
        ),
    )
    bootstrap_samples: int = Field(default=200, ge=20, le=10000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class DeployConfig(_Strict):
    backend: Literal["seldon", "kserve"] = "seldon"
    mode: Literal["gitops", "kubernetes"] = "gitops"
    deployment_name: str
    namespace: str = "models"
    gitops_repo: str | None = Field(
        default=None, description="Local git repository for GitOps mode."
    )
    gitops_path: str = "deployments"
    canary_traffic: int = Field(default=10, ge=1, le=50)
    kubeconfig: str | None = Field(
        default=None,
        description="kubernetes mode: kubeconfig file (default: in-cluster, else ~/.kube/config)",
    )
    kube_context: str | None = Field(default=None, description="kubernetes mode: context name")
    image: str = "ghcr.io/retrain-project/retrain-serving:0.1.0"

    @field_validator("deployment_name", "namespace")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"'{v}' is not a valid Kubernetes name (lowercase letters, digits, '-')"
            )
        return v

    @field_validator("image")
    @classmethod
    def _pinned(cls, v: str) -> str:
        tail = v.rsplit("/", 1)[-1]
        if "@sha256:" not in v and (":" not in tail or tail.endswith(":latest")):
            raise ValueError(f"image '{v}' must carry a pinned tag or digest (not ':latest')")
        return v


class Config(_Strict):
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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"'{v}' must be lowercase letters, digits and '-'")
        return v

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

    def to_yaml(self) -> str:
        """The normalised config (every default spelled out) as YAML text."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int) -> int:
    """Seconds in a duration like '7d', '12h', '30m'. Raises ValueError on anything else."""
    if isinstance(value, int):
        raise ValueError(
            f"window_size {value!r} needs a unit (e.g. '7d') for a timestamp or date column"
        )
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"'{value}' is not a duration like '7d', '12h' or '30m'")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def _is_uri(value: str) -> bool:
    return "://" in value


def _resolve(value: str | None, base: Path) -> str | None:
    if value is None or _is_uri(value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _format_errors(err: PydanticValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see examples/ for every key)"
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
        update={"gitops_repo": _resolve(cfg.deploy.gitops_repo, base_dir)}
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
