"""A fraud window without a single fraud: each decision says what it can and cannot judge.

The gate is undecided ("not enough positives"), the rollout's ranking check is not evaluated
(skipped, as the case sets it: `on_missing: skip`; log loss still judges the canary), and
drift, which reads features, not labels, sees an ordinary day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, load_config
from retrain.data.cases import generate_fraud
from retrain.data.io import read_source
from retrain.drift import build_profile, detect_drift
from retrain.evaluation.gates import evaluate_challenger
from retrain.rollout.checks import run_checks
from retrain.rollout.ranking import score_cells
from retrain.training.model import fit_model, predict_scores


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, pd.DataFrame, pd.DataFrame]:
    path = generate_fraud(
        tmp_path_factory.mktemp("fraud"), windows=3, rows_per_window=4000, drift_window=2
    )
    cfg = load_config(path)
    events = read_source(str(path.parent / "events"), "parquet")
    labels = read_source(str(path.parent / "labels"), "parquet")
    df = events.merge(labels.drop(columns=["charged_back_at"]), on="transaction_id")
    day = (df["transacted_at"] - df["transacted_at"].min()).dt.days
    train = df[day == 0].reset_index(drop=True)
    # The next day with its frauds removed: every label is negative.
    quiet = df[(day == 1) & (df["is_fraud"] == 0)].reset_index(drop=True)
    assert train["is_fraud"].sum() > 10 and len(quiet) > 3000
    return cfg, train, quiet


def test_all_negative_window_gate_rollout_and_drift(
    days: tuple[Config, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    cfg, train, quiet = days
    model = fit_model(cfg, train)
    challenger = fit_model(cfg, train.sample(frac=0.8, random_state=1))

    gate = evaluate_challenger(cfg, challenger, model, quiet, None, seed=0)
    assert gate.undecided and not gate.blessed
    assert "not enough positives" in gate.reason

    champion_scores = np.asarray(predict_scores(model, quiet, cfg))[:, 1]
    canary_scores = np.asarray(predict_scores(challenger, quiet, cfg))[:, 1]
    cells = score_cells(champion_scores, canary_scores, quiet["is_fraud"] == 1)
    checks = cfg.rollout.checks_for(cfg.task)
    assert "average_precision_drop" in [c.name for c in checks]
    results = {
        r.name: r
        for r in run_checks(
            checks,
            {"canary.error_rate": 0.0, "canary.latency_p95": 0.01, **cells},
            cfg.rollout.confidence,
            cfg.rollout.min_labelled,
            cfg.rollout.min_positives,
        )
    }
    ranking = results["average_precision_drop"]
    assert ranking.passed is None and not ranking.waiting
    assert "average_precision_drop skipped: not enough positives: 0" in ranking.reason
    assert results["error_rate"].passed

    profile = build_profile(train, cfg)
    report = detect_drift(profile, quiet, cfg)
    assert not report.drift_detected, [s for s in report.signals if s.fired]
