"""The backtest's drift policy judges the champion on labels as the monitor's engine does:
against the metric its profile recorded at training, with only the labels known then."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retrain import steps
from retrain.backtest.scoring import labelled_check
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.data.io import from_parquet_bytes, read_source
from retrain.drift import PROFILE_FILE, ReferenceProfile, performance_fired
from retrain.registry import Registry
from retrain.storage import open_storage
from retrain.training.artifact import load_registered_model

Trained = tuple[Config, Registry, Any, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Week 0 of the loans stream trained and registered as `v0`; week 4, after the concept
    change at week 2, ingested. Loans' labels come one or two weeks after their week."""
    root = tmp_path_factory.mktemp("loans")
    cfg = load_config(generate_loans(root, windows=5, rows_per_window=1000, drift_window=2))
    text, work = cfg.to_yaml(), root / "run"
    steps.ingest(text, "0", "w0", str(work / "d0.parquet"))
    steps.label(text, "0", "w0", str(work / "d0.parquet"), str(work / "l0.parquet"))
    steps.train(text, "0", "w0", str(work / "l0.parquet"), str(work / "model"), str(work / "h"))
    registry = Registry(open_storage(cfg.storage_root), cfg.name)
    registry.register("v0", {p.name: p.read_bytes() for p in (work / "model").iterdir()})
    steps.ingest(text, "4", "w4", str(work / "d4.parquet"))
    events, _ = from_parquet_bytes((work / "d4.parquet").read_bytes())
    labels = read_source(cfg.labels.uri, cfg.labels.format)
    return cfg, registry, load_registered_model(registry, "v0"), events, labels


def _known(
    cfg: Config, events: pd.DataFrame, labels: pd.DataFrame, as_of: int | None
) -> pd.DataFrame:
    """Week 4's events with the labels dated at or before `as_of` (None: all)."""
    lab = labels if as_of is None else labels[labels[cfg.labels.time_column] <= as_of]
    key = cfg.labels.id_column
    return events.merge(
        lab[[key, cfg.labels.label_column]], left_on=cfg.data.id_column, right_on=key
    )


def test_the_reference_is_the_training_metric_and_only_labels_known_then_count(
    trained: Trained,
) -> None:
    cfg, registry, model, events, labels = trained
    profile = ReferenceProfile.from_json(registry.read_file("v0", PROFILE_FILE))
    # At week 4's end (as of week 5) only the labels one week late have come.
    then = labelled_check(cfg, registry, "v0", model, events, labels, 5)
    later = labelled_check(cfg, registry, "v0", model, events, labels, None)
    assert then is not None and later is not None
    known_then, known_later = _known(cfg, events, labels, 5), _known(cfg, events, labels, None)
    assert 0 < then.n == len(known_then) < later.n == len(known_later)
    for check, rows in ((then, known_then), (later, known_later)):
        assert check.metric == "roc_auc"
        assert check.reference == profile.metrics["roc_auc"]  # what training measured
        scores = model.predict_proba(rows[list(cfg.data.features)])[:, 1]
        assert check.current == pytest.approx(roc_auc_score(rows[cfg.target], scores))
        assert check.drop == pytest.approx(check.reference - check.current)


def test_a_concept_change_fires_and_no_labels_yet_is_not_measured(trained: Trained) -> None:
    cfg, registry, model, events, labels = trained
    later = labelled_check(cfg, registry, "v0", model, events, labels, None)
    assert later is not None and later.drop_lower > cfg.drift.max_performance_drop
    assert performance_fired(later, cfg.drift)
    # At week 4's start none of its labels exist: nothing to judge, not a zero drop.
    assert labelled_check(cfg, registry, "v0", model, events, labels, 4) is None


def test_a_model_without_a_profile_or_with_drift_off_is_not_measured(trained: Trained) -> None:
    cfg, registry, model, events, labels = trained
    files = {"model.json": registry.read_file("v0", "model.json")}
    registry.register("bare", files)
    assert labelled_check(cfg, registry, "bare", model, events, labels, None) is None
    off = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"enabled": False})})
    assert labelled_check(off, registry, "v0", model, events, labels, None) is None
