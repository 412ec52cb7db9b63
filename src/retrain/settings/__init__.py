"""Every config section as a typed model: the layer below every domain package.

Each module here depends on pydantic, the `Section` base, the value parsers beside it
(durations, cron) and `retrain.errors` only, so `retrain.config` (the whole file) and every
package that reads a section import it without importing each other.
"""

from __future__ import annotations

from retrain.settings._base import K8S_NAME, Section
from retrain.settings.continuous import ContinuousConfig
from retrain.settings.data import DataSource, FeatureType, LabelSource, TimeKind
from retrain.settings.deploy import DeployConfig
from retrain.settings.drift import DriftConfig, FeatureOverride
from retrain.settings.durations import duration_delta, parse_duration
from retrain.settings.evaluation import EvaluationConfig
from retrain.settings.rollout import (
    CheckSpec,
    PrometheusSettings,
    ReplaySettings,
    RolloutConfig,
    default_checks,
)
from retrain.settings.training import ModelSpec, TrainingConfig
from retrain.settings.triggers import KfpSettings, ScheduleSpec, TriggerConfig

__all__ = [
    "K8S_NAME",
    "CheckSpec",
    "ContinuousConfig",
    "DataSource",
    "DeployConfig",
    "DriftConfig",
    "EvaluationConfig",
    "FeatureOverride",
    "FeatureType",
    "KfpSettings",
    "LabelSource",
    "ModelSpec",
    "PrometheusSettings",
    "ReplaySettings",
    "RolloutConfig",
    "ScheduleSpec",
    "Section",
    "TimeKind",
    "TrainingConfig",
    "TriggerConfig",
    "default_checks",
    "duration_delta",
    "parse_duration",
]
