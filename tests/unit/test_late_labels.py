"""Late labels: labels that arrive after a window was committed reach its history on a later
run (append-only, each id once, only labels known at that run's time), training reads them
with the window, and a late row keeps the role its id hash gives it; off by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain import steps
from retrain.backtest import parse_policies
from retrain.backtest.replay import policy_config
from retrain.config import Config, config_from_dict
from retrain.data.history import history_windows, late_key, read_history
from retrain.data.io import from_parquet_bytes
from retrain.data.split import evaluation_mask
from retrain.errors import ValidationError
from retrain.registry import MODEL_CARD_FILE
from retrain.storage import open_storage
from retrain.training.mix import build_training_set

ROWS = 200
WEEKS = 6
POSITIVES = 30  # per week: 15% of the labels, the slow ones


def config(tmp: Path, **labels: Any) -> Config:
    return config_from_dict(
        {
            "name": "fraud",
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
                "min_coverage": 0.8,
                **labels,
            },
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "evaluation": {"min_rows": 10, "min_positives": 2},
            "deploy": {"deployment_name": "fraud"},
        }
    )


def write_stream(tmp: Path) -> None:
    """Weekly windows of `ROWS` events. Lateness depends on the label: a negative's label is
    known one week after its event, a positive's (the `POSITIVES` highest x) two or three
    weeks after, alternately. So a window reaches min_coverage (85% >= 80%) with no positive."""
    rng = np.random.default_rng(5)
    frames = []
    for week in range(WEEKS):
        x = rng.normal(size=ROWS).round(4)
        y = np.zeros(ROWS, dtype=int)
        y[np.argsort(-x)[:POSITIVES]] = 1
        delay = np.where(y == 1, 2 + (np.cumsum(y) % 2), 1)
        frames.append(
            pd.DataFrame(
                {"id": [f"w{week}-{i}" for i in range(ROWS)], "week": week, "x": x, "y": y,
                 "known_week": week + delay}
            )
        )  # fmt: skip
    stream = pd.concat(frames, ignore_index=True)
    stream[["id", "week", "x"]].to_parquet(tmp / "events.parquet")
    stream[["id", "y", "known_week"]].to_parquet(tmp / "labels.parquet")


def arrived(tmp: Path, week: int, after: int, by: int) -> pd.DataFrame:
    """Independently of the code: week `week`'s labels dated in (`after`, `by`]."""
    labels = pd.read_parquet(tmp / "labels.parquet")
    of_week = labels["id"].str.startswith(f"w{week}-")
    when = labels["known_week"]
    return labels[of_week & (when > after) & (when <= by)]


def run_label(tmp: Path, cfg: Config, window: int, run_id: str) -> steps.StepOutcome:
    """Label `window` as of one week after it, as a daily pipeline would."""
    text = cfg.to_yaml()
    dataset = tmp / f"{run_id}-dataset.parquet"
    steps.ingest(text, str(window), run_id, str(dataset))
    return steps.label(
        text,
        str(window),
        run_id,
        str(dataset),
        str(tmp / f"{run_id}-labelled.parquet"),
        as_of=str(window + 1),
    )


def late_parts(cfg: Config, window: int) -> list[str]:
    store = open_storage(cfg.storage_root)
    return [k for k in store.list(f"datasets/{window}") if "/late-" in k]


def window_rows(cfg: Config, window: int) -> pd.DataFrame:
    """Every row of `window` in history, read part by part (not through the code's reader)."""
    store = open_storage(cfg.storage_root)
    keys = [k for k in store.list(f"datasets/{window}") if k.endswith(".parquet")]
    return pd.concat([from_parquet_bytes(store.read_bytes(k))[0] for k in keys])


# --- the label step -------------------------------------------------------------------------------


def test_late_labels_reach_history_on_a_later_run_only_as_known_then(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, late_windows=2)
    run_label(tmp_path, cfg, 0, "r0")  # as of week 1: the negatives only
    committed = window_rows(cfg, 0)
    assert len(committed) == ROWS - POSITIVES and committed["y"].sum() == 0
    outcome = run_label(tmp_path, cfg, 1, "r1")  # as of week 2
    store = open_storage(cfg.storage_root)
    rows, meta = from_parquet_bytes(store.read_bytes(late_key("0", "r1")))
    expected = arrived(tmp_path, 0, after=1, by=2)  # the positives known two weeks late
    assert len(expected) == POSITIVES // 2
    assert sorted(rows["id"]) == sorted(expected["id"])
    assert rows.set_index("id")["y"].sort_index().tolist() == (
        expected.set_index("id")["y"].sort_index().tolist()
    )
    assert meta["labels_as_of"] == "2" and meta["rows"] == len(expected)
    # The committed part is untouched; window 1's own commit has no late part yet.
    assert len(from_parquet_bytes(store.read_bytes("datasets/0/labelled.parquet"))[0]) == (
        ROWS - POSITIVES
    )
    assert late_parts(cfg, 1) == []
    late = outcome.details["late"]
    assert [(w["window"], w["added"], w["coverage"]) for w in late["windows"]] == [
        ("0", POSITIVES // 2, (ROWS - POSITIVES // 2) / ROWS)
    ]
    assert f"{POSITIVES // 2} late-labelled rows added to 1 of 1 earlier windows" in (
        outcome.summary
    )
    report = store.read_text("runs/r1/label.md")
    assert "## Late labels of earlier windows" in report and "| 0 | 200 | 170 | 15 | 92.5% |" in (
        report
    )
    assert json.loads(store.read_text("runs/r1/label.json"))["report"]["late"]["rows"] == 15


def test_a_row_enters_history_once_over_several_runs(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, late_windows=2)
    for week in range(5):  # windows 0..4, each as of the week after
        outcome = run_label(tmp_path, cfg, week, f"r{week}")
    # The last run looked at windows 3 and 2 only (late_windows=2), newest first.
    assert [w["window"] for w in outcome.details["late"]["windows"]] == ["3", "2"]
    for week in range(3):  # every label of weeks 0..2 has arrived by week 5
        rows = window_rows(cfg, week)
        assert rows["id"].is_unique
        assert sorted(rows["id"]) == sorted(arrived(tmp_path, week, after=-1, by=week + 3)["id"])
        assert int(rows["y"].sum()) == POSITIVES
    # Window 0: its positives came in two parts, by the runs of weeks 1 and 2; none after.
    assert late_parts(cfg, 0) == [late_key("0", "r1"), late_key("0", "r2")]
    windows = history_windows(open_storage(cfg.storage_root), cfg, "5")
    assert [(w.id, w.rows, w.late_rows) for w in windows][:3] == [
        ("0", ROWS, POSITIVES),
        ("1", ROWS, POSITIVES),
        ("2", ROWS, POSITIVES),
    ]


def test_a_rerun_is_a_no_op_and_a_crash_between_windows_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, late_windows=2)
    for week in range(2):
        run_label(tmp_path, cfg, week, f"r{week}")
    store = open_storage(cfg.storage_root)
    # The run of week 2 crashes after committing window 1's late rows, before window 0's.
    import retrain.steps._late as late_module

    real = late_module.commit_late

    def crash_after_first(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise RuntimeError("killed")

    monkeypatch.setattr(late_module, "commit_late", crash_after_first)
    with pytest.raises(RuntimeError, match="killed"):
        run_label(tmp_path, cfg, 2, "r2")
    assert late_parts(cfg, 1) == [late_key("1", "r2")] and late_parts(cfg, 0) == [
        late_key("0", "r1")
    ]
    first = store.read_bytes(late_key("1", "r2"))
    monkeypatch.setattr(late_module, "commit_late", real)
    again = run_label(tmp_path, cfg, 2, "r2")  # the re-run recomputes the same rows
    assert store.read_bytes(late_key("1", "r2")) == first
    assert [(w["window"], w["added"]) for w in again.details["late"]["windows"]] == [
        ("1", POSITIVES // 2),
        ("0", POSITIVES // 2),
    ]
    parts = {k: store.read_bytes(k) for k in store.list("datasets")}
    run_label(tmp_path, cfg, 2, "r2")  # a re-run of a finished run changes nothing
    assert {k: store.read_bytes(k) for k in store.list("datasets")} == parts
    for week in range(2):
        assert window_rows(cfg, week)["id"].is_unique
    # A re-run that would commit other rows (a later cut) is refused: history is immutable.
    text = cfg.to_yaml()
    with pytest.raises(ValidationError, match="already in history with different content"):
        steps.label(
            text, "2", "r2", str(tmp_path / "r2-dataset.parquet"),
            str(tmp_path / "r2-labelled.parquet"), as_of="4",
        )  # fmt: skip


def test_off_writes_no_late_part(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, late_windows=0)
    for week in range(3):
        outcome = run_label(tmp_path, cfg, week, f"r{week}")
        assert "late" not in outcome.details
    assert not arrived(tmp_path, 0, after=1, by=3).empty  # there were late labels to add
    store = open_storage(cfg.storage_root)
    assert [k for k in store.list("datasets") if "/late-" in k] == []
    assert len(window_rows(cfg, 0)) == ROWS - POSITIVES


# --- training -------------------------------------------------------------------------------------


def test_training_of_a_later_run_counts_the_late_rows(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, late_windows=3)
    for week in range(4):
        run_label(tmp_path, cfg, week, f"r{week}")
    outcome = steps.train(
        cfg.to_yaml(),
        "3",
        "r3",
        str(tmp_path / "r3-labelled.parquet"),
        str(tmp_path / "model"),
        str(tmp_path / "holdout"),
    )
    # As of week 4: windows 0 and 1 have all their positives, window 2 the first half.
    late = POSITIVES + POSITIVES + POSITIVES // 2
    prov = outcome.details["provenance"]
    assert prov["history_late_rows"] == late
    stored = read_history(open_storage(cfg.storage_root), cfg, "3")
    assert stored.stored_rows == 3 * (ROWS - POSITIVES) + late
    assert int(stored.frame["y"].sum()) == late  # the slow class is in history now
    card = json.loads((tmp_path / "model" / MODEL_CARD_FILE).read_text())
    assert card["provenance"]["history_late_rows"] == late


def test_late_rows_keep_the_role_their_id_hash_gives_them(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path, late_windows=3)
    for week in range(4):
        run_label(tmp_path, cfg, week, f"r{week}")
    store = open_storage(cfg.storage_root)
    late_ids = pd.concat(
        [from_parquet_bytes(store.read_bytes(k))[0]["id"] for k in store.list("datasets")
         if "/late-" in k]
    )  # fmt: skip
    held_out = evaluation_mask(late_ids, cfg.training.evaluation_share, cfg.name)
    assert held_out.any() and (~held_out).any()  # both roles among the late rows
    # All of history trains (the weighted mix, no cap): a late row trains iff its role says.
    weighted = cfg.model_copy(
        update={"training": cfg.training.model_copy(update={"mix": "weighted"})}
    )
    new, _ = from_parquet_bytes((tmp_path / "r3-labelled.parquet").read_bytes())
    history = read_history(store, weighted, "3").frame
    ts = build_training_set(new, history, weighted, weighted.seed)
    trained = set(ts.train["id"])
    assert trained.isdisjoint(late_ids[held_out])
    assert set(late_ids[~held_out]) <= trained


# --- the backtest ---------------------------------------------------------------------------------


def test_always_at_late_is_always_with_late_labels_over_every_window(tmp_path: Path) -> None:
    (spec,) = parse_policies("always@late")
    assert (spec.kind, spec.mix, spec.name) == ("always", "late", "always@late")
    cfg = config(tmp_path)
    late = policy_config(cfg, spec, tmp_path / "bt", windows=21)
    assert late.labels.late_windows == 21 and late.training == cfg.training
    assert policy_config(cfg, parse_policies("always")[0], tmp_path / "bt").labels == cfg.labels
    with pytest.raises(ValidationError, match="--policies"):
        parse_policies("never@late")
