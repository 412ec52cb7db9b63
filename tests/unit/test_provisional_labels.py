"""Provisional labels: recent windows' labels known so far train and judge a run's challenger,
never enter history, and are recorded; off by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain import steps
from retrain.backtest import PolicySpec, parse_policies
from retrain.backtest.replay import policy_config, replay_policy
from retrain.config import Config, config_from_dict
from retrain.data.history import history_key
from retrain.data.io import from_parquet_bytes
from retrain.data.split import evaluation_mask
from retrain.errors import ValidationError
from retrain.labels import provisional_window_ids
from retrain.steps._provisional import provisional_key
from retrain.storage import open_storage

ROWS = 200
WEEKS = 5


def config(tmp: Path, **labels: Any) -> Config:
    return config_from_dict(
        {
            "name": "loans",
            "task": "classification",
            "target": "y",
            "storage_root": str(tmp / "store"),
            "data": {
                "uri": str(tmp / "events.parquet"),
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "window_size": 1,
                "features": {"x": "numeric"},
            },
            "labels": {
                "uri": str(tmp / "labels.parquet"),
                "id_column": "id",
                "label_column": "y",
                "time_column": "known_week",
                "min_coverage": 0.9,
                **labels,
            },
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "evaluation": {"min_rows": 10, "min_positives": 5},
            "deploy": {"deployment_name": "loans"},
        }
    )


def write_stream(tmp: Path, late_week: int | None = None) -> None:
    """Weekly windows 0..4 of `ROWS` events; half of each week's labels are known one week
    after the event, half three weeks after (arrival independent of the label's value), and
    for `late_week` four weeks after."""
    rng = np.random.default_rng(11)
    frames = []
    for week in range(WEEKS):
        x = rng.normal(size=ROWS).round(4)
        ids = [f"w{week}-{i}" for i in range(ROWS)]
        frames.append(pd.DataFrame({"id": ids, "week": week, "x": x}))
    events = pd.concat(frames, ignore_index=True)
    events.to_parquet(tmp / "events.parquet")
    second_half = np.arange(len(events)) % 2 == 1
    delay = np.where(second_half, 3, 1) + (second_half & (events["week"] == late_week))
    labels = pd.DataFrame(
        {
            "id": events["id"],
            "y": (events["x"] + rng.normal(scale=0.5, size=len(events)) > 0).astype(int),
            "known_week": events["week"] + delay,
        }
    )
    labels.to_parquet(tmp / "labels.parquet")


def run_label(tmp: Path, cfg: Config, window: str, run_id: str, as_of: str) -> steps.StepOutcome:
    text = cfg.to_yaml()
    dataset = tmp / f"{run_id}-dataset.parquet"
    steps.ingest(text, window, run_id, str(dataset))
    return steps.label(
        text, window, run_id, str(dataset), str(tmp / f"{run_id}-labelled.parquet"), as_of=as_of
    )


def run_train(tmp: Path, cfg: Config, window: str, run_id: str) -> tuple[dict[str, Any], Path]:
    holdout = tmp / f"{run_id}-holdout"
    outcome = steps.train(
        cfg.to_yaml(),
        window,
        run_id,
        str(tmp / f"{run_id}-labelled.parquet"),
        str(tmp / f"{run_id}-model"),
        str(holdout),
    )
    return dict(outcome.details), holdout


def known_rows(tmp: Path, weeks: list[int], as_of: int) -> pd.DataFrame:
    """Independently of the code: the events of `weeks` whose label is dated by `as_of`."""
    labels = pd.read_parquet(tmp / "labels.parquet")
    week = labels["id"].str.extract(r"w(\d+)-")[0].astype(int)
    return labels[week.isin(weeks) & (labels["known_week"] <= as_of)]


# --- the label step -------------------------------------------------------------------------------


def test_provisional_windows_are_recorded_and_kept_out_of_history(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, provisional_windows=3)
    # As of week 3: week 0's labels are all in (committed); weeks 1 and 2 have half; week 3
    # ends at 4, after the run's time.
    outcome = run_label(tmp_path, cfg, "0", "r1", "3")
    kept = outcome.details["provisional"]
    assert [(w["window"], w["labelled"], w["coverage"]) for w in kept["windows"]] == [
        ("1", ROWS // 2, 0.5),
        ("2", ROWS // 2, 0.5),
    ]
    assert "provisional rows from 2 recent windows (not in history)" in outcome.summary
    store = open_storage(cfg.storage_root)
    assert store.exists(history_key("0"))
    assert not store.exists(history_key("1")) and not store.exists(history_key("2"))
    assert not any(k.startswith("datasets/1") or k.startswith("datasets/2") for k in store.list(""))
    rows, meta = from_parquet_bytes(store.read_bytes(provisional_key("r1")))
    expected = known_rows(tmp_path, [1, 2], 3)
    assert sorted(rows["id"]) == sorted(expected["id"])
    joined = rows.set_index("id")["y"].sort_index()
    assert joined.tolist() == expected.set_index("id")["y"].sort_index().tolist()
    record = json.loads(store.read_text("runs/r1/label.json"))
    assert record["report"]["provisional"]["rows"] == ROWS and meta["rows"] == ROWS


def test_a_provisional_window_is_committed_by_its_own_run_at_min_coverage(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, provisional_windows=3)
    run_label(tmp_path, cfg, "0", "r1", "3")
    store = open_storage(cfg.storage_root)
    # Week 1's own run as of week 3 fails on coverage (50% < 90%) and commits nothing ...
    with pytest.raises(ValidationError, match=r"below labels\.min_coverage"):
        run_label(tmp_path, cfg, "1", "r2", "3")
    assert not store.exists(history_key("1"))
    # ... and as of week 4 (all its labels in) it is committed with every label, not with the
    # half a provisional use saw.
    run_label(tmp_path, cfg, "1", "r3", "4")
    committed, _ = from_parquet_bytes(store.read_bytes(history_key("1")))
    assert len(committed) == ROWS


def test_a_rerun_of_the_label_step_converges(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, provisional_windows=3)
    store = open_storage(cfg.storage_root)
    run_label(tmp_path, cfg, "0", "r1", "3")
    first = store.read_bytes(provisional_key("r1"))
    history = store.read_bytes(history_key("0"))
    run_label(tmp_path, cfg, "0", "r1", "3")  # e.g. after a crash before train
    assert (
        from_parquet_bytes(store.read_bytes(provisional_key("r1")))[1]["sha256"]
        == (from_parquet_bytes(first)[1]["sha256"])
    )
    assert store.read_bytes(history_key("0")) == history


# --- the train step -------------------------------------------------------------------------------


def test_provisional_rows_train_as_new_data_and_join_the_recent_evaluation_set(
    tmp_path: Path,
) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, provisional_windows=3)
    run_label(tmp_path, cfg, "0", "r1", "3")
    details, holdout = run_train(tmp_path, cfg, "0", "r1")
    # Roles by the id hash the code uses, computed here from the rows known by week 3.
    known = known_rows(tmp_path, [0, 1, 2], 3)
    evaluation = evaluation_mask(known["id"], cfg.training.evaluation_share, cfg.name)
    recent = pd.read_parquet(holdout / "recent.parquet")
    assert sorted(recent["id"]) == sorted(known["id"][evaluation])
    prov = details["provenance"]
    assert prov["new_rows"] == int((~evaluation).sum())
    assert prov["provisional"]["rows"] == ROWS
    assert details["data_hashes"]["provisional"] == prov["provisional"]["sha256"]
    judged = steps.evaluate(cfg.to_yaml(), "r1", str(tmp_path / "r1-model"), str(holdout))
    assert f"provisional windows ({ROWS} rows labelled as of 3, not in history)" in judged.summary


def test_off_by_default_a_run_uses_its_own_window_only(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path)
    assert cfg.labels.provisional_windows == 0
    outcome = run_label(tmp_path, cfg, "0", "r1", "3")
    store = open_storage(cfg.storage_root)
    assert "provisional" not in outcome.details and not store.exists(provisional_key("r1"))
    # A provisional file left in the run's folder (the option on in an earlier attempt) is
    # not read while the option is off.
    on = config(tmp_path, provisional_windows=3)
    run_label(tmp_path, on, "0", "r1", "3")
    details, holdout = run_train(tmp_path, cfg, "0", "r1")
    week0 = known_rows(tmp_path, [0], 3)
    evaluation = evaluation_mask(week0["id"], cfg.training.evaluation_share, cfg.name)
    recent = pd.read_parquet(holdout / "recent.parquet")
    assert sorted(recent["id"]) == sorted(week0["id"][evaluation])
    assert "provisional" not in details["provenance"]
    assert "provisional" not in details["data_hashes"]


# --- which windows --------------------------------------------------------------------------------


def test_which_windows_are_provisional(tmp_path: Path) -> None:
    cfg = config(tmp_path, provisional_windows=3)
    # Window 2 ends at 3: in by as_of 3 (inclusive); window 3 ends at 4: not.
    assert provisional_window_ids(cfg, "0", 3, set()) == ["1", "2"]
    assert provisional_window_ids(cfg, "0", 2, set()) == ["1"]
    assert provisional_window_ids(cfg, "0", 1, set()) == []
    # Windows already in history are not provisional.
    assert provisional_window_ids(cfg, "0", 3, {"1"}) == ["2"]
    # The bound keeps the newest.
    assert provisional_window_ids(cfg, "0", 6, set()) == ["3", "4", "5"]
    one = config(tmp_path, provisional_windows=1)
    assert provisional_window_ids(one, "0", 3, set()) == ["2"]
    # Off, or no time to judge arrival by: none.
    assert provisional_window_ids(config(tmp_path), "0", 3, set()) == []
    assert provisional_window_ids(cfg, "0", None, set()) == []
    with pytest.raises(ValidationError, match=r"labels\.provisional_windows"):
        config(tmp_path, provisional_windows=-1)


# --- the backtest ---------------------------------------------------------------------------------


def test_the_provisional_policy_suffix(tmp_path: Path) -> None:
    got = parse_policies("always,always@provisional")
    assert got[1] == PolicySpec("always", mix="provisional")
    assert got[1].name == "always@provisional"
    for bad in ("never@provisional", "full_refit@provisional"):
        with pytest.raises(ValidationError, match="--policies"):
            parse_policies(bad)
    cfg = config(tmp_path)
    on = policy_config(cfg, got[1], tmp_path, windows=7)
    assert on.labels.provisional_windows == 7 and on.training.mix == cfg.training.mix
    assert policy_config(cfg, got[0], tmp_path, windows=7).labels.provisional_windows == 0
    bounded = config(tmp_path, provisional_windows=2)
    assert policy_config(bounded, got[1], tmp_path, windows=7).labels.provisional_windows == 2


def test_a_provisional_replay_retrains_every_window_and_commits_only_covered_ones(
    tmp_path: Path,
) -> None:
    write_stream(tmp_path, late_week=1)
    cfg = config(tmp_path)
    windows = [str(w) for w in range(WEEKS)]
    plain = replay_policy(cfg, PolicySpec("always"), windows, tmp_path / "out")
    prov = replay_policy(cfg, PolicySpec("always", mix="provisional"), windows, tmp_path / "out")
    # Week k's labels are all in at week k+3 (window index k+2), week 1's at week 5: window
    # 0 is ready at index 2, windows 1 and 2 at index 4. `always` waits at index 3; the
    # provisional policy trains on window 0 again, with what is known of weeks 1 to 3.
    assert [r.trained_on for r in plain.windows] == [None, None, "0", None, "2"]
    assert [r.trained_on for r in prov.windows] == [None, None, "0", "0", "2"]
    # Each provisional training used the halves known of the windows after its own.
    assert [r.provisional_rows for r in prov.windows] == [0, 0, ROWS, 3 * ROWS // 2, ROWS]
    assert [r.provisional_rows for r in plain.windows] == [0] * WEEKS
    for result in (plain, prov):
        store = open_storage(str(tmp_path / "out" / result.policy / "store"))
        stored = sorted(k.split("/")[1] for k in store.list("datasets"))
        assert stored == ["0", "1", "2"]
    assert prov.labels_consumed == plain.labels_consumed == 3 * ROWS
