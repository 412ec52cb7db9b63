"""The drift engine inside the steps: train stores a profile, deploy registers it, ingest
compares each window with the champion's profile and never fails because of drift."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from retrain import steps
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.drift import (
    PROFILE_FILE,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    detect_drift,
)
from retrain.drift._reference import reference_from_profile
from retrain.errors import EXIT_TRANSIENT, Terminated
from retrain.registry import Registry
from retrain.settings.drift import DriftConfig
from retrain.storage import open_storage


@pytest.fixture
def loans(tmp_path: Path) -> Config:
    """Three weeks of 400 loan applications; the population shifts at week 2."""
    return load_config(generate_loans(tmp_path, windows=3, rows_per_window=400, drift_window=2))


def first_champion(cfg: Config, work: Path, *, corrupt_profile: bool = False) -> str:
    """Week 0 through ingest, label, train and deploy: the first champion. Returns its version."""
    text, run = cfg.to_yaml(), "w0"
    steps.ingest(text, "0", run, str(work / "d.parquet"))
    steps.label(text, "0", run, str(work / "d.parquet"), str(work / "l.parquet"))
    steps.train(text, "0", run, str(work / "l.parquet"), str(work / "model"), str(work / "hold"))
    if corrupt_profile and (work / "model" / PROFILE_FILE).exists():
        (work / "model" / PROFILE_FILE).write_text('{"format": 1}')
    return steps.deploy(text, run, str(work / "model")).version


@pytest.mark.integration  # deploys a champion: commits to a real git repository
def test_train_writes_a_profile_that_deploy_registers(loans: Config, tmp_path: Path) -> None:
    version = first_champion(loans, tmp_path / "run")
    local = (tmp_path / "run" / "model" / PROFILE_FILE).read_text()
    profile = ReferenceProfile.from_json(local)
    assert list(profile.features) == list(loans.data.features)
    assert profile.scores is not None and profile.classes == [0, 1]
    assert profile.metric == "roc_auc" and 0.5 < profile.metrics["roc_auc"] <= 1.0
    assert profile.importances and sum(profile.importances.values()) == pytest.approx(1.0)
    registry = Registry(open_storage(loans.storage_root), loans.name)
    assert registry.read_file(version, PROFILE_FILE).decode() == local


@pytest.mark.integration  # deploys a champion: commits to a real git repository
def test_ingest_reports_drift_against_the_champion(loans: Config, tmp_path: Path) -> None:
    version = first_champion(loans, tmp_path / "run")
    report_path = tmp_path / "run" / "ingest2.md"
    outcome = steps.ingest(
        loans.to_yaml(), "2", "w2", str(tmp_path / "run" / "d2.parquet"), str(report_path)
    )
    drift = outcome.details["drift"]
    assert drift["champion"] == version
    assert [f["feature"] for f in drift["features"]] == list(loans.data.features)
    # The demo's applicants ask for bigger loans from week 2 on; 400 rows: KS for numbers,
    # Jensen-Shannon against its null threshold for categories.
    assert [f["feature"] for f in drift["features"] if f["drifted"]] == ["loan"]
    assert {f["method"] for f in drift["features"]} == {"ks", "jensenshannon"}
    assert drift["prediction"] is not None  # the champion scored the window
    assert drift["estimated_performance"]["n"] == 400
    assert outcome.summary.endswith("1/9 features drifted (loan)")
    # The readable report and the run record (whose details the launcher writes to the
    # step's `details` artifact) carry the same section.
    md = report_path.read_text()
    assert md.startswith("# Ingest: window `2`")
    assert f"## Drift vs champion `{version}`" in md
    store = open_storage(loans.storage_root)
    assert json.loads(store.read_text("runs/w2/ingest.json"))["report"]["drift"] == drift
    assert f"Drift vs champion `{version}`" in store.read_text("runs/w2/ingest.md")


def test_the_first_window_has_nothing_to_compare_with(loans: Config, tmp_path: Path) -> None:
    outcome = steps.ingest(loans.to_yaml(), "0", "w0", str(tmp_path / "d.parquet"))
    drift = outcome.details["drift"]
    assert drift["champion"] is None and drift["drift_detected"] is None
    assert "no champion yet" in drift["note"]
    assert "drift" not in outcome.summary  # the first run's summary stays as it was


@pytest.mark.integration  # deploys a champion: commits to a real git repository
def test_a_champion_without_a_profile_is_a_note_not_a_failure(
    loans: Config, tmp_path: Path
) -> None:
    off = loans.model_copy(update={"drift": DriftConfig(enabled=False)})
    version = first_champion(off, tmp_path / "run")
    assert not (tmp_path / "run" / "model" / PROFILE_FILE).exists()
    outcome = steps.ingest(loans.to_yaml(), "1", "w1", str(tmp_path / "run" / "d1.parquet"))
    drift = outcome.details["drift"]
    assert drift["champion"] == version
    assert drift["note"] == f"the champion was registered without a {PROFILE_FILE}"


@pytest.mark.integration  # deploys a champion: commits to a real git repository
def test_a_broken_profile_does_not_fail_ingest(loans: Config, tmp_path: Path) -> None:
    version = first_champion(loans, tmp_path / "run", corrupt_profile=True)
    outcome = steps.ingest(loans.to_yaml(), "1", "w1", str(tmp_path / "run" / "d1.parquet"))
    drift = outcome.details["drift"]
    assert drift["champion"] == version
    assert drift["note"].startswith("comparison failed: ValidationError: reference profile")
    assert (tmp_path / "run" / "d1.parquet").exists()  # the window itself was ingested


def test_the_profile_describes_the_newest_window_and_the_values_of_all_training(
    tmp_path: Path,
) -> None:
    # The demo's applicants ask for bigger loans from week 2 on. A model trained at week 2 on
    # history (weeks 0 and 1) plus week 2 serves the new population: week 3, from the same
    # population as week 2, is no drift for it, although against the training mix (two
    # thirds of it the old population) its loans look drifted.
    cfg = load_config(generate_loans(tmp_path, windows=4, rows_per_window=400, drift_window=2))
    text, work = cfg.to_yaml(), tmp_path / "run"
    for w in ("0", "1", "2"):
        steps.ingest(text, w, f"w{w}", str(work / f"d{w}.parquet"))
        steps.label(text, w, f"w{w}", str(work / f"d{w}.parquet"), str(work / f"l{w}.parquet"))
    steps.train(text, "2", "w2", str(work / "l2.parquet"), str(work / "model"), str(work / "hold"))
    profile = ReferenceProfile.from_json((work / "model" / PROFILE_FILE).read_text())
    week2 = pd.read_parquet(work / "l2.parquet")
    assert profile.rows == len(week2)
    assert profile.seen_rows is not None and profile.seen_rows > len(week2)
    loan = profile.features["loan"]
    assert isinstance(loan, NumericProfile)
    assert loan.mean == pytest.approx(week2["loan"].mean())
    # Ingest's value reference holds the values of every training row, not only week 2's.
    assert reference_from_profile(profile, "champion").source == "champion"
    assert profile.seen is not None and set(profile.seen) == {
        n for n, kind in cfg.data.features.items() if kind in ("numeric", "categorical")
    }
    steps.ingest(text, "3", "w3", str(work / "d3.parquet"))
    week3 = pd.read_parquet(work / "d3.parquet")
    report = detect_drift(profile, week3, cfg)
    assert "loan" not in report.drifted_features
    # Against the training mix, as profiles were built before, the same week is drifted.
    weeks = pd.concat(pd.read_parquet(work / f"l{w}.parquet") for w in "012")
    assert "loan" in detect_drift(build_profile(weeks, cfg), week3, cfg).drifted_features


@pytest.mark.integration  # deploys a champion: commits to a real git repository
def test_a_sigterm_during_the_champion_comparison_stops_ingest(
    loans: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The comparison turns any error into a note: a stop there must not become one.
    first_champion(loans, tmp_path / "run")

    def stopped(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("retrain.drift._champion.detect_drift", stopped)
    with pytest.raises(Terminated):
        steps.ingest(loans.to_yaml(), "1", "w1", str(tmp_path / "run" / "d1.parquet"))
    record = json.loads(open_storage(loans.storage_root).read_text("runs/w1/ingest.json"))
    assert record["status"] == "failed" and record["exit_code"] == EXIT_TRANSIENT
