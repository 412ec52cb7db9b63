"""Faults at the edges: OS errors classified with a fix, input caps, truncated samples, and
the smaller holes (empty windows, unseen label classes, library versions, lease by hand)."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from required import require
from retrain.cli import main
from retrain.config import Config, config_from_dict, load_config
from retrain.data.history import commit_history, history_key, load_history
from retrain.data.io import dataset_metadata
from retrain.data.limits import check_source
from retrain.data.windows import event_times
from retrain.errors import (
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VALIDATION,
    TransientError,
    ValidationError,
    classify_os_error,
    sample_text,
)
from retrain.labels.classes import check_label_classes, without_unknown_classes
from retrain.registry import Registry
from retrain.runner import run_cycle
from retrain.settings.limits import InputLimits
from retrain.steps._train import _check_classes as check_classes
from retrain.storage import LocalStorage, open_storage
from retrain.training.artifact import (
    LibraryVersionWarning,
    card_from_config,
    load_model,
    model_files,
)
from retrain.training.model import fit_model
from retrain.triggers.lease import acquire_lease, read_lease

NOW = datetime(2030, 1, 7, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def loans(tmp_path: Path) -> Config:
    require("river", "the demo data generator uses river (extra 'demo')")
    from retrain.data.demo import generate_loans

    return load_config(generate_loans(tmp_path, windows=4, rows_per_window=300, drift_window=3))


# --- errors classified at the edge ---------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "code", "fix"),
    [
        (OSError(errno.EACCES, "Permission denied", "/s/x"), EXIT_VALIDATION, "write access"),
        (OSError(errno.EROFS, "Read-only file system", "/s/x"), EXIT_VALIDATION, "writable"),
        (OSError(errno.ENOSPC, "No space left on device", "/s/x"), EXIT_TRANSIENT, "free space"),
        (OSError(errno.EIO, "Input/output error", "/s/x"), EXIT_TRANSIENT, "safe to retry"),
    ],
    ids=["permission", "read-only", "full", "io"],
)
def test_os_errors_map_to_2_or_75_with_a_one_line_fix(err: OSError, code: int, fix: str) -> None:
    known = classify_os_error(err)
    assert known.exit_code == code
    assert "/s/x" in str(known) and fix in str(known)
    assert "\n" not in str(known)


def test_a_full_disk_under_a_local_store_is_a_transient_error_naming_the_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStorage(tmp_path / "store")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TransientError, match="no space left on the device holding"):
        store.write_bytes("a/b.json", b"{}")
    assert not list((tmp_path / "store").rglob("*.tmp"))  # nothing half-written stays


def test_a_step_whose_failure_cannot_be_recorded_still_says_why(
    loans: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store mid-run: not exit 1 in silence, but exit 2 with the fix."""
    real_stage = LocalStorage._stage

    def stage(self: LocalStorage, path: Path, data: bytes) -> Path:
        if "/runs/" in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_stage(self, path, data)

    monkeypatch.setattr(LocalStorage, "_stage", stage)
    result = run_cycle(loans, "1", engine="direct", run_id="ro", now=NOW)
    assert result.exit_code == EXIT_VALIDATION, result.lines()
    failed = result.failed_step
    assert failed is not None and failed["step"] == "ingest" and failed["recorded"] is False
    assert "read-only file system at" in str(failed["message"])
    assert "writable volume" in result.lines()[0]


def test_gs_without_credentials_is_exit_2_with_a_one_line_fix(
    loans: Config, tmp_path: Path
) -> None:
    raw = yaml.safe_load(loans.to_yaml())
    raw["storage_root"] = "gs://no-such-bucket/retrain"
    cfg_path = tmp_path / "gs.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "True",  # no metadata server probe: this machine is no GCE VM
    }
    done = subprocess.run(
        [sys.executable, "-m", "retrain.cli", "status", "--config", str(cfg_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == EXIT_VALIDATION, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Google Cloud credentials found" in lines[0], done.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in lines[0]


def test_a_truncated_history_dataset_names_the_file(loans: Config) -> None:
    store = open_storage(loans.storage_root)
    df = pd.DataFrame({"id": [1, 2], "week": [0, 0], "defaulted": ["0", "1"]})
    meta = dataset_metadata(df, time_column="week", source_snapshot="s", schema_fingerprint="f")
    commit_history(store, "0", df, meta)
    path = Path(store.uri(history_key("0")))
    path.write_bytes(path.read_bytes()[:40])
    named = re.escape(f"{path} is not a readable Parquet dataset")
    with pytest.raises(ValidationError, match=named):
        load_history(store, loans, "1")


@pytest.mark.parametrize("path", ["../elsewhere", "/etc/flux", "a/../../b", "~/x"])
def test_a_gitops_path_outside_the_repo_is_refused_at_load(path: str) -> None:
    raw = {
        "name": "loans",
        "task": "classification",
        "target": "defaulted",
        "storage_root": "store",
        "data": {"uri": "e", "id_column": "id", "time_column": "w", "features": {"a": "numeric"}},
        "labels": {"uri": "l", "id_column": "id", "label_column": "defaulted"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {"deployment_name": "loans", "gitops_repo": "gitops", "gitops_path": path},
    }
    with pytest.raises(ValidationError, match=r"deploy\.gitops_path"):
        config_from_dict(raw)


# --- caps and truncated samples ------------------------------------------------------------


def test_sample_lists_cut_every_value() -> None:
    text = sample_text(["x" * 1_000_000, "b", "c", "d"])
    assert len(text) < 120 and "more chars" in text and "'d'" not in text


def test_a_huge_unreadable_value_is_not_echoed_whole() -> None:
    times = pd.Series(["1", "y" * 5_000_000], name="week")
    with pytest.raises(ValidationError) as caught:
        event_times(times, "period")
    assert len(str(caught.value)) < 500


def _csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("limits", "rows", "limit"),
    [
        (InputLimits(max_rows=3), [["a", "b"]] + [["1", "2"]] * 4, "max_rows = 3"),
        (InputLimits(max_columns=2), [["a", "b", "c"], ["1", "2", "3"]], "max_columns = 2"),
        (InputLimits(max_value_bytes=8), [["a", "b"], ["1", "z" * 9]], "max_value_bytes = 8"),
        (InputLimits(max_file_bytes=10), [["a", "b"], ["1", "2"] * 5], "max_file_bytes = 10"),
    ],
    ids=["rows", "columns", "value", "bytes"],
)
def test_a_csv_past_a_limit_is_refused_naming_it(
    tmp_path: Path, limits: InputLimits, rows: list[list[str]], limit: str
) -> None:
    src = _csv(tmp_path / "events.csv", rows)
    with pytest.raises(ValidationError, match=re.escape(f"data.limits.{limit}")):
        check_source(str(src), "csv", limits)


def test_a_csv_within_the_limits_passes_and_a_parquet_is_counted_from_its_footer(
    tmp_path: Path,
) -> None:
    src = _csv(tmp_path / "events.csv", [["a", "b"], ["1", '"x,y"'], ["2", '"q,\n"'], ["3"]])
    check_source(str(src), "csv", InputLimits(max_rows=2, max_value_bytes=4))
    pd.DataFrame({"a": range(10)}).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(ValidationError, match="max_rows = 9"):
        check_source(str(tmp_path / "e.parquet"), "parquet", InputLimits(max_rows=9))


# --- smaller holes -------------------------------------------------------------------------


def test_an_empty_window_is_no_new_data_and_skips_the_rest(loans: Config) -> None:
    result = run_cycle(loans, "9", engine="direct", run_id="empty", now=NOW)
    assert result.exit_code == EXIT_OK, result.lines()
    assert "no new data" in result.records["ingest"]["summary"]
    for step in ("label", "train", "evaluate"):
        assert result.records[step]["status"] == "skipped", step
    assert "deploy" not in result.records and not result.blessed
    assert Registry(open_storage(loans.storage_root), loans.name).versions() == []


def test_an_unseen_label_class_is_an_error_naming_it() -> None:
    labels = pd.Series(["0", "1", "1", "maybe", "0"])
    with pytest.raises(ValidationError, match=r"'maybe' \(1 rows\)") as caught:
        check_label_classes(labels, ["0", "1"], where="window 3", known_from="champion v1")
    assert "labels.classes" in str(caught.value)
    check_label_classes(labels, ["0", "1", "maybe"], where="w", known_from="labels.classes")


@pytest.mark.integration  # two cycles: the first trains and deploys a binary champion
def test_a_run_whose_labels_bring_a_third_class_stops_before_training(loans: Config) -> None:
    assert run_cycle(loans, "0", engine="direct", run_id="first", now=NOW).exit_code == EXIT_OK
    week_1 = Path(loans.labels.uri) / "week-001.parquet"  # the demo's labels of week 1
    labels = pd.read_parquet(week_1)
    column = loans.labels.label_column
    labels.loc[labels.index[:5], column] = 2
    labels.to_parquet(week_1)
    result = run_cycle(loans, "1", engine="direct", run_id="second", now=NOW)
    assert result.exit_code == EXIT_VALIDATION, result.lines()
    failed = result.failed_step
    assert failed is not None and failed["step"] == "train"
    assert "'2' (5 rows)" in str(failed["message"])
    # Week 1 is in history now (the label step committed it before train refused it). Week
    # 2's challenger trains, without the refused class's rows, and says so.
    third = run_cycle(loans, "2", engine="direct", run_id="third", now=NOW)
    train = third.records["train"]
    assert train["status"] == "succeeded", third.lines()
    assert train["report"]["provenance"]["history_unknown_classes"] == {"2": 5}
    assert "left out 5 history rows" in str(train["summary"])
    balance = train["report"]["provenance"]["class_balance"]
    assert set(balance["train"]) == {"0", "1"} and set(balance["history_holdout"]) == {"0", "1"}


def test_history_rows_of_a_class_not_known_are_left_out_and_counted() -> None:
    history = pd.DataFrame({"id": range(6), "y": [0, 1, 2, 1, 2, None]})
    kept, dropped = without_unknown_classes(history, "y", ["0", "1"])
    assert dropped == {"2": 2}
    assert kept["id"].tolist() == [0, 1, 3, 5]  # a missing label is not a class
    same, none = without_unknown_classes(history, "y", ["0", "1", "2"])
    assert none == {} and same is history


def test_a_model_trained_under_another_scikit_learn_warns_when_loaded() -> None:
    cfg = config_from_dict(
        {
            "name": "demo",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "u",
                "id_column": "id",
                "time_column": "ts",
                "features": {"x": "numeric"},
            },
            "labels": {"uri": "u", "id_column": "id", "label_column": "label"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "demo"},
        }
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": range(60), "ts": 0, "x": rng.normal(size=60)})
    frame["label"] = np.where(frame["x"] > 0, "a", "b")
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    card = card_from_config(cfg, version="v1", parent=None, created_at=when)
    files = model_files(fit_model(cfg, frame), card)
    from retrain._card import ModelCard

    signed = ModelCard.from_json(files["model.json"])
    with pytest.warns(LibraryVersionWarning, match="scikit-learn 0.24.2"):
        old = dataclasses.replace(signed, library_versions={"sklearn": "0.24.2"})
        load_model(files["model.skops"], old)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", LibraryVersionWarning)
        load_model(files["model.skops"], signed)  # the same version: silent


def test_lease_status_and_break_by_hand_record_an_event(
    loans: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_storage(loans.storage_root)
    now = datetime.now(timezone.utc)
    taken = acquire_lease(
        store, loans.name, owner="pipeline:gone", run_id="w2-dead", snapshot="2",
        ttl=timedelta(hours=6), now=now,
    )  # fmt: skip
    assert taken is not None
    config = str(Path(loans.storage_root).parent / "loans.yaml")
    assert main(["lease", "status", "--config", config, "--json"]) == EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert status["held"] is True and status["lease"]["run_id"] == "w2-dead"
    assert main(["lease", "break", "--config", config, "--reason", "node lost"]) == EXIT_OK
    lease, _ = read_lease(store, loans.name)
    assert lease is not None and lease.released_at is not None
    events = Registry(store, loans.name).events()
    assert [(e["kind"], e["run_id"], e["reason"]) for e in events] == [
        ("lease_broken", "w2-dead", "node lost")
    ]
    # Nothing left to break: said so, exit 2.
    assert main(["lease", "break", "--config", config, "--reason", "again"]) == EXIT_VALIDATION


def test_a_champion_of_float_classes_keeps_history_of_the_same_classes() -> None:
    # One missing label makes an integer label column float, and the model's classes 0.0 and
    # 1.0: history labelled 0 and 1 (ints, or floats with a missing one) is of those classes.
    cfg = config_from_dict(
        {
            "name": "demo",
            "task": "classification",
            "target": "label",
            "storage_root": "/tmp/unused",
            "data": {
                "uri": "u",
                "id_column": "id",
                "time_column": "ts",
                "features": {"a": "numeric"},
            },
            "labels": {"uri": "u"},
        }
    )
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    champion = LogisticRegression().fit(x, pd.Series([0.0, 1.0, 0.0, 1.0]))
    new = pd.DataFrame({"label": [0, 1, 1]})
    known = check_classes(cfg, None, "v1", champion, new, "3")  # type: ignore[arg-type]
    assert known is not None
    for labels in ([0, 1, 1, 0], [0.0, 1.0, None, 0.0]):
        history = pd.DataFrame({"id": range(4), "label": labels})
        kept, dropped = without_unknown_classes(history, "label", known)
        assert dropped == {} and len(kept) == 4
