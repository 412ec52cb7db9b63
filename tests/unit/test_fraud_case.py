"""The generated fraud case: daily windows, a rare class, a new pattern at the change point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from retrain.cli import main
from retrain.config import load_config
from retrain.data.cases import FRAUD_BASE_RATE, fraud_new_pattern_rate, generate_fraud
from retrain.data.io import read_source
from retrain.data.windows import window_ids_in
from retrain.errors import ValidationError
from retrain.training.model import fit_model, predict_scores
from tests.unit.case_support import assert_same_seed_same_bytes, ingest_every_window, joined

SMALL = {"windows": 8, "rows_per_window": 3000, "drift_window": 4}


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_fraud(tmp_path_factory.mktemp("fraud"), **SMALL)


def _joined(path: Path) -> pd.DataFrame:
    return joined(path, "day", 1)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    assert_same_seed_same_bytes(
        generate_fraud, tmp_path, windows=3, rows_per_window=200, drift_window=1
    )


def test_daily_windows_with_a_rare_class(fraud: Path) -> None:
    cfg = load_config(fraud)
    assert cfg.data.window_size == "1d" and cfg.primary_metric == "average_precision"
    assert cfg.evaluation.min_positives > 0
    df = _joined(fraud)
    before = df[df["day"] < SMALL["drift_window"]]
    # Binomial(12,000 rows, 0.8%): the rate is within 0.3 points of it by a wide margin.
    assert abs(before["is_fraud"].mean() - FRAUD_BASE_RATE) < 0.003
    ids = read_source(cfg.data.uri, cfg.data.format)[cfg.data.time_column]
    assert len(window_ids_in(cfg.data, ids)) == SMALL["windows"]


def test_new_pattern_rises_after_the_change_point(fraud: Path) -> None:
    assert fraud_new_pattern_rate(3, 4) == 0.0
    assert fraud_new_pattern_rate(4, 4) == pytest.approx(0.003)
    assert fraud_new_pattern_rate(100, 4) == pytest.approx(0.024)
    df = _joined(fraud)
    testing = (df["merchant_category"] == "digital_goods") & (df["amount"] < 6) & df["is_fraud"]
    by_day = testing.groupby(df["day"]).sum()
    assert (by_day[: SMALL["drift_window"]] == 0).all()
    assert by_day.iloc[-1] > by_day.iloc[SMALL["drift_window"]] > 0


def test_a_model_of_the_old_pattern_misses_the_new_one(fraud: Path) -> None:
    cfg = load_config(fraud)
    df = _joined(fraud)
    old = fit_model(cfg, df[df["day"] < SMALL["drift_window"]])

    def ap(model: object, day: int) -> float:
        rows = df[df["day"] == day]
        return float(
            average_precision_score(rows["is_fraud"], predict_scores(model, rows, cfg)[:, 1])
        )  # type: ignore[arg-type]

    last = SMALL["windows"] - 1
    assert ap(old, 3) - ap(old, last) > 0.2
    new = fit_model(cfg, df[(df["day"] >= 5) & (df["day"] < last)])
    assert ap(new, last) - ap(old, last) > 0.2


def test_every_window_ingests_and_joins(fraud: Path) -> None:
    windows = ingest_every_window(fraud)
    assert len(windows) == SMALL["windows"]
    for _, labelled in windows:
        assert labelled.coverage > 0.9 and labelled.leakage == 0


def test_bad_settings_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        generate_fraud(tmp_path, windows=3, rows_per_window=10, drift_window=3)


def test_cli_generates_the_fraud_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--case", "fraud", "--out", str(tmp_path)]) == 0
    assert "fraud.yaml" in capsys.readouterr().out
    assert load_config(tmp_path / "fraud.yaml").name == "fraud"
    assert np.isclose(len(list((tmp_path / "events").iterdir())), 21)
