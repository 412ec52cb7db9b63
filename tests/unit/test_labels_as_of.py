"""Labels as of the run's time: a run never joins a label dated after it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from required import require
from retrain import steps
from retrain.config import Config, config_from_dict
from retrain.data.history import history_key
from retrain.data.windows import as_of_text, parse_as_of
from retrain.errors import ValidationError
from retrain.labels.join import join_labels
from retrain.steps.records import read_dataset, write_dataset
from retrain.storage import open_storage


def config(time_kind: str = "period", **labels: Any) -> Config:
    raw = {
        "name": "loans",
        "task": "classification",
        "target": "defaulted",
        "storage_root": "store",
        "data": {
            "uri": "events",
            "id_column": "app",
            "time_column": "week",
            "time_kind": time_kind,
            "window_size": 1 if time_kind == "period" else "7d",
            "features": {"x": "numeric"},
        },
        "labels": {
            "uri": "labels",
            "id_column": "application",
            "label_column": "outcome",
            "time_column": "known_week",
            "min_coverage": 0.5,
            **labels,
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans"},
    }
    return config_from_dict(raw)


def events(n: int = 100, week: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"app": [f"a{i:03d}" for i in range(n)], "week": week, "x": rng.normal(size=n).round(3)}
    )


def late_labels(ev: pd.DataFrame, first_delay: int, second_delay: int, split: int) -> pd.DataFrame:
    """Labels for every event: the first `split` known `first_delay` weeks after the event,
    the rest `second_delay` weeks after."""
    delay = np.where(np.arange(len(ev)) < split, first_delay, second_delay)
    return pd.DataFrame(
        {
            "application": ev["app"].to_numpy(),
            "outcome": np.arange(len(ev)) % 2,
            "known_week": ev["week"].to_numpy() + delay,
        }
    )


def test_a_join_as_of_t_leaves_out_labels_dated_after_t() -> None:
    ev = events()
    lab = late_labels(ev, 1, 3, split=60)  # 60 known at week 6, 40 at week 8
    res = join_labels(config(), ev, lab, as_of=6)
    assert res.coverage == pytest.approx(0.6)
    assert res.labelled["app"].tolist() == ev["app"][:60].tolist()
    assert res.queue["app"].tolist() == ev["app"][60:].tolist()
    assert res.report["as_of"] == "6"
    assert res.report["not_yet_arrived"] == 40
    assert "labels as of: 6; 40 events have a label dated later" in res.markdown
    later = join_labels(config(), ev, lab, as_of=8)  # at or before: week 8 counts
    assert later.coverage == 1.0 and later.report["not_yet_arrived"] == 0


def test_without_as_of_every_label_counts() -> None:
    ev = events()
    res = join_labels(config(), ev, late_labels(ev, 1, 3, split=60))
    assert res.coverage == 1.0
    assert res.report["as_of"] is None and res.report["not_yet_arrived"] == 0


def test_without_a_label_time_column_as_of_cannot_cut() -> None:
    ev = events()
    lab = late_labels(ev, 1, 3, split=60).drop(columns="known_week")
    res = join_labels(config(time_column=None), ev, lab, as_of=6)
    assert res.coverage == 1.0 and res.report["as_of"] is None


def test_a_relabelling_after_as_of_does_not_replace_the_label_known_then() -> None:
    ev = events(n=4)
    lab = pd.DataFrame(
        {
            "application": ["a000", "a000", "a001", "a002", "a003"],
            "outcome": [0, 1, 1, 0, 1],
            "known_week": [6, 8, 6, 6, 6],
        }
    )
    res = join_labels(config(), ev, lab, as_of=7)
    assert res.labelled.set_index("app")["defaulted"].to_dict() == {
        "a000": 0,
        "a001": 1,
        "a002": 0,
        "a003": 1,
    }
    # An id with a label by then is not waiting for one.
    assert res.report["not_yet_arrived"] == 0
    assert join_labels(config(), ev, lab, as_of=8).labelled["defaulted"].iloc[0] == 1


def test_coverage_below_the_minimum_names_the_labels_still_to_come() -> None:
    ev = events()
    lab = late_labels(ev, 1, 2, split=30)
    with pytest.raises(ValidationError) as err:
        join_labels(config(min_coverage=0.9), ev, lab, as_of=6)
    text = str(err.value)
    assert "label coverage 30.0%" in text
    assert "as of 6, 70 more events have labels dated later" in text


def test_undated_labels_are_kept_as_old() -> None:
    ev = events(n=2)
    lab = pd.DataFrame(
        {"application": ["a000", "a001"], "outcome": [1, 0], "known_week": [None, 9]}
    )
    res = join_labels(config(), ev, lab, as_of=6)
    assert res.labelled["app"].tolist() == ["a000"]
    assert res.report["not_yet_arrived"] == 1


def test_timestamp_as_of_compares_utc_instants_inclusively() -> None:
    cfg = config("timestamp")
    ev = pd.DataFrame(
        {"app": ["a", "b", "c"], "week": pd.to_datetime(["2024-01-01"] * 3, utc=True), "x": 0.0}
    )
    lab = pd.DataFrame(
        {
            "application": ["a", "b", "c"],
            "outcome": [0, 1, 0],
            # b is labelled exactly at the cut; c one second after it (in another offset).
            "known_week": [
                "2024-01-08T00:00:00Z",
                "2024-01-08T01:00:00+01:00",
                "2024-01-08T01:00:01+01:00",
            ],
        }
    )
    as_of = parse_as_of(cfg.data, "2024-01-08")
    res = join_labels(cfg, ev, lab, as_of=as_of)
    assert res.labelled["app"].tolist() == ["a", "b"]
    assert res.report["as_of"] == "2024-01-08T00:00:00Z"


@pytest.mark.parametrize(
    ("time_kind", "value"),
    [("period", "2024-01-08"), ("period", "6.5"), ("timestamp", "6"), ("date", "next week")],
)
def test_an_as_of_that_does_not_fit_the_time_kind_is_refused(time_kind: str, value: str) -> None:
    with pytest.raises(ValidationError, match="as_of"):
        parse_as_of(config(time_kind).data, value)


def test_as_of_spellings_round_trip() -> None:
    assert as_of_text(parse_as_of(config().data, " 12 ")) == "12"
    ts = parse_as_of(config("timestamp").data, "2024-01-08T02:00:00+02:00")
    assert as_of_text(ts) == "2024-01-08T00:00:00Z"


# --- the label step ---------------------------------------------------------------------------


def step_inputs(tmp_path: Path, time_kind: str = "period") -> tuple[str, Path]:
    """A config whose sources live under `tmp_path`, and the ingested dataset of week 5."""
    cfg = config(time_kind)
    cfg = cfg.model_copy(
        update={
            "storage_root": str(tmp_path / "store"),
            "labels": cfg.labels.model_copy(update={"uri": str(tmp_path / "labels.parquet")}),
        }
    )
    ev = events()
    lab = late_labels(ev, 1, 3, split=60)
    if time_kind != "period":
        ev["week"] = pd.Timestamp("2024-01-01", tz="UTC")
        lab["known_week"] = pd.Timestamp("2024-01-08", tz="UTC") + pd.to_timedelta(
            np.where(np.arange(len(ev)) < 60, 0, 14), unit="D"
        )
    lab.to_parquet(tmp_path / "labels.parquet")
    dataset = tmp_path / "dataset.parquet"
    write_dataset(str(dataset), ev, {"window": "5"})
    return cfg.to_yaml(), dataset


def test_the_label_step_records_as_of_and_what_had_not_arrived(tmp_path: Path) -> None:
    text, dataset = step_inputs(tmp_path)
    outcome = steps.label(
        text, "5", "r1", str(dataset), str(tmp_path / "l.parquet"), None, None, "6"
    )
    assert outcome.details["as_of"] == "6"
    assert outcome.details["not_yet_arrived"] == 40
    assert outcome.details["as_of_rule"] == "as given (run parameter as_of)"
    assert "labels as of 6; 40 not arrived yet" in outcome.summary
    record = json.loads(open_storage(str(tmp_path / "store")).read_text("runs/r1/label.json"))
    assert record["report"]["as_of"] == "6" and record["report"]["coverage"] == 0.6
    history = read_dataset(str(tmp_path / "l.parquet"))[1]
    assert history["labels_as_of"] == "6" and history["rows"] == 60


def test_a_failed_label_step_records_the_as_of_it_used(tmp_path: Path) -> None:
    text, dataset = step_inputs(tmp_path)
    with pytest.raises(ValidationError, match="labels dated later"):
        steps.label(text, "5", "r1", str(dataset), str(tmp_path / "l.parquet"), None, None, "5")
    record = json.loads(open_storage(str(tmp_path / "store")).read_text("runs/r1/label.json"))
    assert record["status"] == "failed" and record["report"]["as_of"] == "5"
    assert not (tmp_path / "l.parquet").exists()


def test_without_as_of_a_timestamp_run_is_as_of_the_label_steps_clock(tmp_path: Path) -> None:
    text, dataset = step_inputs(tmp_path, "timestamp")
    now = datetime(2024, 1, 10, tzinfo=timezone.utc)  # the later 40 labels come on 2024-01-22
    outcome = steps.label(
        text, "2024-01-01", "r1", str(dataset), str(tmp_path / "l.parquet"), now=now
    )
    assert outcome.details["as_of"] == "2024-01-10T00:00:00Z"
    assert outcome.details["as_of_rule"] == "the label step's clock (no as_of was given)"
    assert outcome.details["coverage"] == 0.6


@pytest.mark.parametrize("as_of", [None, ""])  # "" is what the pipeline passes by default
def test_a_period_run_without_as_of_uses_every_label(tmp_path: Path, as_of: str | None) -> None:
    text, dataset = step_inputs(tmp_path)
    outcome = steps.label(
        text, "5", "r1", str(dataset), str(tmp_path / "l.parquet"), None, None, as_of
    )
    assert outcome.details["as_of"] is None and outcome.details["coverage"] == 1.0
    assert outcome.details["as_of_rule"].startswith("none: period windows have no clock")


# --- retrain run --as-of -------------------------------------------------------------------------


def test_retrain_run_as_of_a_windows_end_sees_only_the_labels_in_by_then(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.cli import main
    from retrain.config import load_config
    from retrain.data.demo import generate_loans

    # Demo labels arrive one or two weeks after the event: at week 0's end (period 1) about
    # half are in, below min_coverage 0.9; a week later all are.
    path = generate_loans(tmp_path, windows=3, rows_per_window=300, drift_window=2)
    args = ["run", "--config", str(path), "--window", "0", "--engine", "direct"]
    assert main([*args, "--run-id", "early", "--as-of", "1"]) == 2
    out = capsys.readouterr().out
    assert "labels as of 1" in out.splitlines()[0]
    assert "more events have labels dated later, not arrived yet" in out
    store = open_storage(load_config(path).storage_root)
    assert not store.exists(history_key("0"))  # nothing half-written
    assert main([*args, "--run-id", "later", "--as-of", "2"]) == 0
    assert store.exists(history_key("0"))
    label = json.loads(store.read_text("runs/later/label.json"))["report"]
    assert label["as_of"] == "2" and label["not_yet_arrived"] == 0


def test_retrain_run_refuses_an_as_of_of_the_wrong_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.cli import main
    from retrain.config import load_config
    from retrain.data.demo import generate_loans

    path = generate_loans(tmp_path, windows=3, rows_per_window=100, drift_window=2)
    args = ["run", "--config", str(path), "--window", "0", "--engine", "direct"]
    assert main([*args, "--as-of", "2024-01-08"]) == 2
    assert "as_of '2024-01-08' is not a period number" in capsys.readouterr().err
    assert not Path(load_config(path).storage_root).exists() or not any(
        Path(load_config(path).storage_root).rglob("*.json")
    )


def test_a_scheduled_run_joins_labels_as_of_the_time_it_resolved_its_window(
    tmp_path: Path,
) -> None:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.config import load_config
    from retrain.data.demo import generate_housing
    from retrain.runner import run_cycle

    # Housing sales come 3 to 60 days after the listing (weekly windows from 2024-01-01).
    cfg = load_config(generate_housing(tmp_path, windows=6, rows_per_window=300, drift_window=5))
    now = datetime(2024, 1, 15, tzinfo=timezone.utc)
    early = run_cycle(cfg, "auto", engine="direct", now=now)
    assert early.window_id == "2024-01-08" and early.exit_code == 2
    label = early.records["label"]
    assert label["report"]["as_of"] == "2024-01-15T00:00:00Z"
    assert "labels dated later, not arrived yet" in label["message"]
    assert early.records["resolve"]["report"]["now"] == "2024-01-15T00:00:00+00:00"

    # labels.delay makes a scheduled run choose a window whose sales have come in by now.
    waiting = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"delay": "63d"})})
    later = run_cycle(
        waiting, "auto", engine="direct", now=datetime(2024, 4, 1, tzinfo=timezone.utc)
    )
    assert later.window_id == "2024-01-22" and later.exit_code == 0
    report = later.records["label"]["report"]
    assert report["as_of"] == "2024-04-01T00:00:00Z" and report["not_yet_arrived"] == 0


def test_a_rerun_on_the_clock_keeps_the_time_its_first_attempt_committed_as_of(
    tmp_path: Path,
) -> None:
    """A run without as_of (a scheduled pipeline run) whose label step committed the window and
    then died before its record is retried later, when more labels have arrived: the retry
    joins as of the first attempt's time, so the commit is the same and the step succeeds."""
    text, dataset = step_inputs(tmp_path, "timestamp")
    store = open_storage(str(tmp_path / "store"))
    first = datetime(2024, 1, 10, tzinfo=timezone.utc)  # the later 40 labels come on 01-22
    steps.label(text, "2024-01-01", "r1", str(dataset), str(tmp_path / "l.parquet"), now=first)
    committed = store.read_bytes(history_key("2024-01-01"))
    (tmp_path / "store" / "runs" / "r1" / "label.json").unlink()  # died after its commit
    retry = datetime(2024, 1, 30, tzinfo=timezone.utc)  # every label has arrived by now
    outcome = steps.label(
        text, "2024-01-01", "r1", str(dataset), str(tmp_path / "l2.parquet"), now=retry
    )
    assert outcome.details["as_of"] == "2024-01-10T00:00:00Z"
    assert outcome.details["coverage"] == 0.6
    assert "first attempt" in outcome.details["as_of_rule"]
    assert store.read_bytes(history_key("2024-01-01")) == committed
    # Another run of the same window on the clock is not pinned to r1's time.
    with pytest.raises(ValidationError, match="already in history with different content"):
        steps.label(text, "2024-01-01", "r2", str(dataset), str(tmp_path / "l3.parquet"), now=retry)


def test_committed_metadata_that_is_not_an_object_is_refused_by_name(tmp_path: Path) -> None:
    """A history object whose ``retrain`` metadata is JSON but not an object was not written
    by this package: reading its commit's metadata says so, naming the object, rather than
    reading as a window with no commit record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from retrain.data.history import committed_meta

    store = open_storage(str(tmp_path / "store"))
    table = pa.table({"x": [1, 2]}).replace_schema_metadata({b"retrain": b"[1, 2]"})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    store.write_bytes(history_key("w1"), sink.getvalue().to_pybytes())
    with pytest.raises(ValidationError, match=r"w1.*not a JSON object"):
        committed_meta(store, "w1")
