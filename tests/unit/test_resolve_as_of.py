"""Resolve outputs the run's time for the label join: a scheduled run's own instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import yaml

from retrain import steps
from retrain.config import config_from_text
from retrain.steps._label import label_as_of

UTC = timezone.utc
NOW = datetime(2024, 1, 22, 3, 0, tzinfo=UTC)
JOB = "8f0c1b0e-8f4b-4f57-9b37-0a5c3f1f7d21"


def config(tmp_path: Path, time_kind: str = "timestamp") -> str:
    (tmp_path / "events").mkdir()
    if time_kind == "period":
        times: list[object] = [0, 1, 2]
    else:
        times = list(pd.date_range("2024-01-01", periods=3, freq="7D", tz="UTC"))
    pd.DataFrame({"id": range(3), "t": times, "x": [0.5] * 3}).to_parquet(
        tmp_path / "events" / "e.parquet"
    )
    data = {"uri": str(tmp_path / "events"), "id_column": "id", "time_column": "t"}
    data |= {"time_kind": time_kind, "features": {"x": "numeric"}}
    cfg = {
        "name": "loans",
        "task": "classification",
        "target": "y",
        "storage_root": str(tmp_path / "store"),
        "data": data,
        "labels": {
            "uri": str(tmp_path / "labels"),
            "id_column": "id",
            "label_column": "y",
            "time_column": "labelled_at",
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
    }
    return yaml.safe_dump(cfg)


def test_a_scheduled_run_joins_labels_as_of_the_instant_resolve_chose_its_window(
    tmp_path: Path,
) -> None:
    text = config(tmp_path)
    out = steps.resolve_run(text, "auto", "auto", JOB, now=NOW)
    assert out.as_of == "2024-01-22T03:00:00Z"
    assert out.details["as_of"] == out.as_of
    # The label step reads it as the cut (not its own clock, which may be hours later).
    cfg = config_from_text(text)
    cut, how = label_as_of(cfg, out.as_of, NOW + timedelta(hours=5))
    assert cut == pd.Timestamp(NOW) and how == "as given (run parameter as_of)"


def test_a_retried_resolve_keeps_the_first_instant(tmp_path: Path) -> None:
    text = config(tmp_path)
    steps.resolve_run(text, "auto", "auto", JOB, now=NOW)
    again = steps.resolve_run(text, "auto", "auto", JOB, now=NOW + timedelta(minutes=20))
    assert again.as_of == "2024-01-22T03:00:00Z"


def test_a_given_as_of_and_explicit_ids_pass_through(tmp_path: Path) -> None:
    text = config(tmp_path)
    given = steps.resolve_run(text, "auto", "auto", JOB, now=NOW, as_of="2024-01-20")
    assert given.as_of == "2024-01-20"
    explicit = steps.resolve_run(text, "2024-01-08", "r1", JOB, now=NOW)
    assert explicit.as_of == ""  # the label task's own clock, as before


def test_period_sources_have_no_instant(tmp_path: Path) -> None:
    out = steps.resolve_run(config(tmp_path, "period"), "auto", "auto", JOB, now=NOW)
    assert out.as_of == ""
