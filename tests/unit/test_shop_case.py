"""The generated shop case: weekly windows, user and item ids, a shift in category
preferences at the change point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retrain.cli import main
from retrain.config import load_config
from retrain.data.case_shop import SHOP_CATEGORIES, category_appeal, generate_shop
from retrain.data.windows import window_ids_in
from retrain.errors import ValidationError
from retrain.training.model import fit_model, predict_scores
from tests.unit.case_support import assert_same_seed_same_bytes, ingest_every_window, joined

SMALL = {"windows": 6, "rows_per_window": 2500, "drift_window": 3}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_shop(tmp_path_factory.mktemp("shop"), **SMALL)


def _joined(path: Path) -> pd.DataFrame:
    return joined(path, "week", 7)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    assert_same_seed_same_bytes(
        generate_shop, tmp_path, windows=3, rows_per_window=200, drift_window=1
    )


def test_weekly_windows_with_identifier_features_and_new_ids_every_week(shop: Path) -> None:
    cfg = load_config(shop)
    assert cfg.data.window_size == "7d"
    assert cfg.data.features["user_id"] == "identifier"
    assert cfg.data.features["item_id"] == "identifier"
    df = _joined(shop)
    assert len(window_ids_in(cfg.data, df[cfg.data.time_column])) == SMALL["windows"]
    seen: set[str] = set()
    for week in range(SMALL["windows"]):
        users = set(df.loc[df["week"] == week, "user_id"])
        if week:
            assert users - seen  # users who sign up during the week
        seen |= users
    assert df["user_id"].nunique() > 1000


def test_category_preferences_shift_at_the_change_point(shop: Path) -> None:
    before, after = category_appeal(0, 3), category_appeal(3, 3)
    assert np.array_equal(category_appeal(2, 3), before)
    garden = SHOP_CATEGORIES.index("garden")
    electronics = SHOP_CATEGORIES.index("electronics")
    assert after[garden] > before[garden] and after[electronics] < before[electronics]
    df = _joined(shop)
    rate = df.groupby([df["week"] >= SMALL["drift_window"], "item_category"])["purchased"].mean()
    assert rate[(True, "garden")] > rate[(False, "garden")] + 0.1
    assert rate[(True, "electronics")] < rate[(False, "electronics")] - 0.1


def test_a_model_of_the_old_preferences_ranks_worse_than_a_retrained_one(shop: Path) -> None:
    cfg = load_config(shop)
    df = _joined(shop)
    old = fit_model(cfg, df[df["week"] < SMALL["drift_window"]])
    new = fit_model(cfg, df[df["week"] == SMALL["drift_window"]])
    last = df[df["week"] == SMALL["windows"] - 1]

    def auc(model: object) -> float:
        return float(roc_auc_score(last["purchased"], predict_scores(model, last, cfg)[:, 1]))  # type: ignore[arg-type]

    assert auc(new) - auc(old) > 0.08


def test_every_window_ingests_and_joins_without_quarantining_new_ids(shop: Path) -> None:
    windows = ingest_every_window(shop)
    assert len(windows) == SMALL["windows"]
    for res, labelled in windows:
        assert res.report["quarantine"]["quarantined_rows"] == 0
        assert labelled.coverage > 0.9 and labelled.leakage == 0


def test_bad_settings_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        generate_shop(tmp_path, windows=3, rows_per_window=10, drift_window=3)


def test_cli_generates_the_shop_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--case", "shop", "--out", str(tmp_path)]) == 0
    assert "shop.yaml" in capsys.readouterr().out
    assert load_config(tmp_path / "shop.yaml").name == "shop"
    assert len(list((tmp_path / "events").iterdir())) == 12
