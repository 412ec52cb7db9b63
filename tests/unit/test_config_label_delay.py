"""`labels.delay`: how long labels take to arrive, checked against `data.time_kind`."""

from __future__ import annotations

from typing import Any

import pytest

from retrain.config import Config, config_from_dict
from retrain.errors import ValidationError


def raw(time_kind: str, delay: Any = None) -> dict[str, Any]:
    labels: dict[str, Any] = {"uri": "labels", "id_column": "id", "label_column": "y"}
    if delay is not None:
        labels["delay"] = delay
    return {
        "name": "loans",
        "task": "classification",
        "target": "y",
        "storage_root": "/tmp/store",
        "data": {
            "uri": "events",
            "id_column": "id",
            "time_column": "t",
            "time_kind": time_kind,
            "features": {"x": "numeric"},
        },
        "labels": labels,
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
    }


@pytest.mark.parametrize("time_kind", ["timestamp", "date", "period"])
def test_the_default_is_no_delay(time_kind: str) -> None:
    cfg = config_from_dict(raw(time_kind))
    assert cfg.labels.delay == 0
    assert cfg.labels.delay_units(cfg.labels.delay, time_kind) == 0


@pytest.mark.parametrize(
    ("time_kind", "delay", "units"),
    [
        ("timestamp", "7d", 7 * 86400),
        ("timestamp", "36h", 36 * 3600),
        ("date", "2d", 2 * 86400),
        ("timestamp", 0, 0),
        ("period", 3, 3),
        ("period", 0, 0),
    ],
)
def test_delays_that_fit_the_time_kind(time_kind: str, delay: Any, units: int) -> None:
    cfg = config_from_dict(raw(time_kind, delay))
    assert cfg.labels.delay == delay
    assert cfg.labels.delay_units(cfg.labels.delay, time_kind) == units
    # It survives the normalised text the pipeline carries.
    again = Config.model_validate(cfg.model_dump(mode="json"))
    assert again.labels.delay == delay


@pytest.mark.parametrize(
    ("time_kind", "delay", "message"),
    [
        ("period", "7d", "labels.delay '7d' must be a whole number of periods"),
        ("timestamp", 7, "labels.delay 7 needs a unit (e.g. '7d')"),
        ("date", 2, "when data.time_kind is 'date'"),
        ("timestamp", "a week", "labels.delay: Value error, 'a week' is not a duration"),
        ("period", -1, "labels.delay: Value error, -1 is not a delay"),
        ("period", True, "labels.delay: Value error, True is not a delay"),
    ],
)
def test_delays_that_do_not_fit_are_refused_naming_the_key(
    time_kind: str, delay: Any, message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        config_from_dict(raw(time_kind, delay), source="loans.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("loans.yaml is invalid")
