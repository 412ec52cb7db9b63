"""Labels kept in the events' own file (one CSV, the label a column of each row, known at once).

The label column is listed in ``data.ignore_columns`` so that ingest drops it, and
``labels.uri`` names the same file. The monitor reads the source's rows itself (with every
column, the label among them) and must still find the labels of a window.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from retrain.config import Config, load_config
from retrain.errors import ValidationError
from retrain.launchers import NoLauncher
from retrain.storage import open_storage
from retrain.triggers._known_labels import known_labels, window_rows
from retrain.triggers.controller import TriggerController
from retrain.triggers.monitor import Monitor
from tests.unit.test_monitor_scores import register_champion

DAY0 = pd.Timestamp("2024-03-04", tz="UTC")  # a Monday
ROWS = 300  # per day, on average
NOW = datetime(2024, 4, 1, tzinfo=timezone.utc)


def _one_file_case(root: Path) -> Config:
    rng = np.random.default_rng(11)
    n = ROWS * 21  # three weekly windows
    t = DAY0 + pd.to_timedelta(np.sort(rng.uniform(0, 21 * 24, n)), unit="h")
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = np.where(a + 0.5 * b + rng.normal(0, 0.3, n) > 0, "UP", "DOWN")
    frame = pd.DataFrame(
        {"id": np.arange(n), "t": t.strftime("%Y-%m-%dT%H:%M:%S"), "a": a, "b": b, "y": y}
    )
    frame.to_csv(root / "events.csv", index=False)
    cfg = {
        "name": "onefile",
        "task": "classification",
        "target": "y",
        "storage_root": "store",
        "seed": 3,
        "data": {
            "uri": "events.csv",
            "format": "csv",
            "id_column": "id",
            "time_column": "t",
            "time_kind": "timestamp",
            "window_size": "7d",
            "ignore_columns": ["y"],
            "features": {"a": "numeric", "b": "numeric"},
        },
        "labels": {"uri": "events.csv", "format": "csv", "id_column": "id", "label_column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "onefile", "gitops_repo": "gitops"},
    }
    (root / "onefile.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(root / "onefile.yaml")


def test_a_window_read_from_the_events_file_gets_the_labels_of_that_file(
    tmp_path: Path,
) -> None:
    cfg = _one_file_case(tmp_path)
    _, rows = window_rows(cfg, "2024-03-11")
    assert "y" in rows.columns  # the monitor's read keeps every column of the file
    labels = known_labels(cfg, rows, None)
    assert labels is not None
    assert labels.tolist() == rows["y"].tolist()


def test_the_monitor_judges_the_champion_on_labels_kept_in_the_events_file(
    tmp_path: Path,
) -> None:
    cfg = _one_file_case(tmp_path)
    register_champion(cfg, tmp_path / "w0", "2024-03-04")
    store = open_storage(cfg.storage_root)
    ctl = TriggerController(store, cfg.name, cfg.triggers, NoLauncher(), clock=lambda: NOW)
    perf = Monitor(cfg, ctl).check("2024-03-18").performance
    # Every row of every window is labelled: the checked window is measured on all of them.
    assert perf["window"] == "2024-03-18"
    assert perf["coverage"] == 1.0
    t = pd.to_datetime(pd.read_csv(tmp_path / "events.csv")["t"], utc=True)
    start = pd.Timestamp("2024-03-18", tz="UTC")
    in_window = (t >= start) & (t < start + pd.Timedelta(days=7))
    assert perf["rows"] == int(in_window.sum()) > 0


def test_the_label_columns_of_the_events_file_are_dropped_without_being_listed(
    tmp_path: Path,
) -> None:
    """Labels in the events' own file, with the time each became known: neither column is a
    model input, and the config already names both, so ingest drops them unasked."""
    from retrain import steps

    cfg = _one_file_case(tmp_path)
    frame = pd.read_csv(tmp_path / "events.csv")
    frame["y_known_at"] = (pd.to_datetime(frame["t"]) + pd.Timedelta(hours=2)).dt.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    frame.to_csv(tmp_path / "events.csv", index=False)
    raw = yaml.safe_load((tmp_path / "onefile.yaml").read_text())
    del raw["data"]["ignore_columns"]
    raw["labels"]["time_column"] = "y_known_at"
    raw["labels"]["uri"] = "./events.csv"  # the same file, spelled otherwise
    (tmp_path / "onefile.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "onefile.yaml")
    text, run = cfg.to_yaml(), "r0"
    out = steps.ingest(text, "2024-03-04", run, str(tmp_path / "d.parquet"))
    assert out.details["ignored_columns"] == ["y", "y_known_at"]
    dataset = pd.read_parquet(tmp_path / "d.parquet")
    assert {"y", "y_known_at"}.isdisjoint(dataset.columns)
    labelled = steps.label(
        text, "2024-03-04", run, str(tmp_path / "d.parquet"), str(tmp_path / "l.parquet")
    )
    assert labelled.details["coverage"] == 1.0
    # Another file of labels: its columns in the events' file are not dropped unasked.
    raw["labels"]["uri"] = "labels.csv"
    frame[["id", "y", "y_known_at"]].to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "onefile.yaml").write_text(yaml.safe_dump(raw))
    other = load_config(tmp_path / "onefile.yaml")
    with pytest.raises(ValidationError, match="unexpected columns: 'y', 'y_known_at'"):
        steps.ingest(other.to_yaml(), "2024-03-04", "r1", str(tmp_path / "e.parquet"))
