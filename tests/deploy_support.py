"""Shared helpers for the deploy tests: the "fraud" use case config and two model versions.

Not a test module (no ``test_`` prefix); the deploy test files import it by name.
"""

from __future__ import annotations

from typing import Any

from retrain.config import Config, config_from_dict
from retrain.deploy import ModelRef

__all__ = ["IMAGE", "V1", "V2", "make_cfg"]

IMAGE = "ghcr.io/example/serving:1.2.3"
V1 = ModelRef("20240101-abc", "gs://bucket/models/fraud/20240101-abc")
V2 = ModelRef("20240108-def", "gs://bucket/models/fraud/20240108-def")


def make_cfg(storage_root: str = "/tmp/retrain-store", **deploy: Any) -> Config:
    """The use case deploying ``models/fraud-model`` with `IMAGE`; `deploy` adds or overrides
    keys of the deploy section."""
    return config_from_dict(
        {
            "name": "fraud",
            "task": "classification",
            "target": "label",
            "storage_root": storage_root,
            "data": {
                "uri": "/tmp/events",
                "id_column": "id",
                "time_column": "ts",
                "window_size": "7d",
                "features": {"amount": "numeric"},
            },
            "labels": {"uri": "/tmp/labels", "id_column": "id", "label_column": "label"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "fraud-model", "namespace": "models", "image": IMAGE}
            | deploy,
        }
    )
