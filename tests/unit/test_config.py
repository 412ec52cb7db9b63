"""Config validation: unknown keys and wrong types name the key; paths resolve from the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrain.config import config_from_dict, config_from_text, load_config, parse_duration
from retrain.errors import ValidationError

BASE = {
    "name": "loans",
    "task": "classification",
    "target": "defaulted",
    "storage_root": "store",
    "data": {
        "uri": "events",
        "id_column": "id",
        "time_column": "week",
        "time_kind": "period",
        "features": {"salary": "numeric", "car": "categorical"},
    },
    "labels": {"uri": "labels", "id_column": "id", "label_column": "defaulted"},
    "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
    "deploy": {"deployment_name": "loans", "gitops_repo": "gitops"},
}


def _with(path: str, value: object) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return raw


def test_defaults_are_spelled_out() -> None:
    cfg = config_from_dict(BASE)
    assert cfg.training.historical_share == 0.8
    assert cfg.primary_metric == "roc_auc"
    assert cfg.numeric_features == ["salary"]
    assert cfg.categorical_features == ["car"]
    again = config_from_text(cfg.to_yaml())
    assert again == cfg


def test_a_config_written_with_its_defaults_loads_again_whatever_drift_windows() -> None:
    # Every run receives its config as written back with every default spelled out.
    cfg = config_from_dict(_with("triggers", {"drift_windows": 6}))
    again = config_from_text(cfg.to_yaml())
    assert again == cfg and again.triggers.backoff_limit == 12


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("data.colour", "red", "data.colour: unknown key"),
        ("trainng", {}, "trainng: unknown key"),
        ("training", {"historical_share": 1.5}, "training.historical_share"),
        ("training", {"historical_share": "lots"}, "training.historical_share"),
        ("task", "ranking", "task"),
        ("data.features", {}, "data.features"),
        ("data.features", {"salary": "float"}, "data.features.salary"),
        ("data.window_size", "a week", "data"),
        ("model.estimator", "xgboost.XGBClassifier", "model.estimator"),
        ("deploy.image", "ghcr.io/x/serving:latest", "deploy.image"),
        ("deploy.deployment_name", "Loans_Model", "deploy.deployment_name"),
        ("deploy.canary_traffic", 80, "deploy.canary_traffic"),
    ],
)
def test_bad_values_name_the_key(path: str, value: object, expected: str) -> None:
    with pytest.raises(ValidationError) as err:
        config_from_dict(_with(path, value))
    assert expected in str(err.value)


def test_missing_key_is_named() -> None:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    del raw["data"]["id_column"]
    with pytest.raises(ValidationError, match=r"data.id_column: required key is missing"):
        config_from_dict(raw)


def test_keys_another_key_implies_may_be_left_out() -> None:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for section, key in (("labels", "id_column"), ("labels", "label_column")):
        del raw[section][key]
    del raw["model"], raw["deploy"]
    raw["name"] = "shop-recs"
    cfg = config_from_dict(raw)
    assert cfg.labels.id_column == BASE["data"]["id_column"]
    assert cfg.labels.label_column == BASE["target"]
    assert cfg.model.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert cfg.deploy.deployment_name == "shop-recs"
    regression = config_from_dict({**raw, "task": "regression", "evaluation": {"metric": "rmse"}})
    assert regression.model.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"


def test_keys_given_win_over_the_keys_they_would_be_implied_from() -> None:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["labels"]["id_column"] = "label_id"
    raw["deploy"] = {"deployment_name": "loans-serving"}
    cfg = config_from_dict(raw)
    assert (cfg.labels.id_column, cfg.deploy.deployment_name) == ("label_id", "loans-serving")


def test_feature_may_not_be_the_target() -> None:
    with pytest.raises(ValidationError, match="defaulted"):
        config_from_dict(_with("data.features", {"defaulted": "numeric"}))


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "c.yaml").write_text(yaml.safe_dump(BASE))
    cfg = load_config(sub / "c.yaml")
    assert cfg.storage_root == str(sub / "store")
    assert cfg.data.uri == str(sub / "events")
    assert cfg.deploy.gitops_repo == str(sub / "gitops")


def test_uris_are_left_alone() -> None:
    cfg = config_from_dict(_with("storage_root", "gs://bucket/prefix"), base_dir=Path("/x"))
    assert cfg.storage_root == "gs://bucket/prefix"


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not valid YAML"):
        config_from_text("a: [b")
    with pytest.raises(ValidationError, match="expected a mapping"):
        config_from_text("- a\n- b\n")
    with pytest.raises(ValidationError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_durations() -> None:
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("12h") == 12 * 3600
    with pytest.raises(ValueError):
        parse_duration("7 days")


def test_the_id_may_not_be_the_time_column() -> None:
    # Ingest parses the time column into times, so as an id it would match no label's id
    # (every window 0% labelled) and the full_refit baseline would select the column twice.
    raw = _with("data.id_column", "week")
    with pytest.raises(ValidationError, match=r"data: .*id_column and time_column are both 'week'"):
        config_from_dict(raw)
