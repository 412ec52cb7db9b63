"""The generated concept case: a hyperplane that turns every week while its features stay put,
one feature drifting harmlessly, segment shares changing, an abrupt flip late, late labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from retrain.cli import main
from retrain.config import load_config
from retrain.data.case_concept import INFORMATIVE, SEGMENTS, generate_concept
from retrain.data.windows import window_ids_in
from retrain.errors import ValidationError
from retrain.training.model import fit_model, predict_scores
from tests.unit.case_support import assert_same_seed_same_bytes, ingest_every_window, joined

# Fourteen weeks of turning before the flip: enough for the loss to grow past the noise.
SMALL = {"windows": 16, "rows_per_window": 1500, "drift_window": 15}


@pytest.fixture(scope="module")
def concept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_concept(tmp_path_factory.mktemp("concept"), **SMALL)


@pytest.fixture(scope="module")
def rows(concept: Path) -> pd.DataFrame:
    return joined(concept, "week", 7)


def _auc(model: object, part: pd.DataFrame, concept: Path) -> float:
    scores = predict_scores(model, part, load_config(concept))[:, 1]  # type: ignore[arg-type]
    return float(roc_auc_score(part["outcome"], scores))


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    assert_same_seed_same_bytes(
        generate_concept, tmp_path, windows=3, rows_per_window=200, drift_window=2
    )


def test_weekly_windows_and_labels_one_to_three_weeks_late(
    concept: Path, rows: pd.DataFrame
) -> None:
    cfg = load_config(concept)
    assert cfg.data.window_size == "7d" and cfg.labels.time_column == "labelled_at"
    df = rows
    assert len(window_ids_in(cfg.data, df[cfg.data.time_column])) == SMALL["windows"]
    delay_days = (df["labelled_at"] - df["scored_at"]).dt.total_seconds() / 86400
    assert delay_days.min() >= 7 and delay_days.max() <= 21
    # Spread over the whole span, not bunched at one end.
    assert delay_days.quantile(0.1) < 9 and delay_days.quantile(0.9) > 19
    assert 0.95 < len(df) / (SMALL["windows"] * SMALL["rows_per_window"]) < 0.99


def test_a_model_of_week_0_loses_more_each_week_while_a_recent_one_does_not(
    concept: Path, rows: pd.DataFrame
) -> None:
    cfg = load_config(concept)
    first = fit_model(cfg, rows[rows["week"] == 0])
    auc = {w: _auc(first, rows[rows["week"] == w], concept) for w in range(1, 15)}
    # Turning by a few degrees a week: worse and worse with time, by no large step at once.
    weeks = np.arange(1, 15)
    assert spearmanr(weeks, [auc[w] for w in weeks]).statistic < -0.8
    assert auc[14] < auc[1] - 0.05  # about 0.09 at this seed
    assert max(auc[w] - auc[w + 1] for w in range(1, 14)) < 0.06
    # The concept moved, the data did not get noisier: a model of the two weeks before ranks
    # week 14 well.
    recent = fit_model(cfg, rows[rows["week"].isin([12, 13])])
    assert _auc(recent, rows[rows["week"] == 14], concept) > auc[14] + 0.06


def test_the_informative_features_stay_put(rows: pd.DataFrame) -> None:
    start, end = rows[rows["week"] < 3], rows[rows["week"] > 12]
    for name in INFORMATIVE:
        # About 4,400 rows a side: chance moves a mean by about 0.02 and a spread by 1.5% (one
        # standard error); the bounds are four of them.
        assert abs(start[name].mean() - end[name].mean()) < 0.08, name
        assert abs(start[name].std() / end[name].std() - 1) < 0.06, name


def test_x8_drifts_and_carries_no_weight(rows: pd.DataFrame) -> None:
    mean = rows.groupby("week")["x8"].mean()
    assert mean.iloc[-1] - mean.iloc[0] > 0.8
    assert (mean.diff().dropna() > -0.1).all()  # a steady move, not a jump back and forth
    # Within a week, x8 tells nothing of the outcome.
    centred = rows["x8"] - rows.groupby("week")["x8"].transform("mean")
    assert abs(np.corrcoef(centred, rows["outcome"])[0, 1]) < 0.03
    assert abs(np.corrcoef(rows["x1"], rows["outcome"])[0, 1]) > 0.2  # as an informative one does


def test_segment_shares_change_at_half_the_stream(rows: pd.DataFrame) -> None:
    half = SMALL["windows"] // 2
    share = pd.crosstab(rows["week"] >= half, rows["segment"], normalize="index")
    assert set(share.columns) == set(SEGMENTS)
    assert share.loc[True, "west"] > share.loc[False, "west"] + 0.1
    assert share.loc[True, "north"] < share.loc[False, "north"] - 0.1
    before = (
        rows[rows["week"] < half].groupby("week")["segment"].agg(lambda s: (s == "west").mean())
    )
    assert before.max() - before.min() < 0.05  # and not before


def test_the_concept_flips_at_the_change_point(concept: Path, rows: pd.DataFrame) -> None:
    cfg = load_config(concept)
    change = SMALL["drift_window"]
    last = fit_model(cfg, rows[rows["week"].isin([change - 2, change - 1])])
    # The weeks just before are ranked well; the change week worse than by chance.
    before = _auc(last, rows[rows["week"] == change - 1], concept)
    after = _auc(last, rows[rows["week"] == change], concept)
    assert before > 0.85 and after < 0.5 and after < before - 0.3


def test_every_window_ingests_and_joins(concept: Path) -> None:
    windows = ingest_every_window(concept)
    assert len(windows) == SMALL["windows"]
    for res, labelled in windows:
        assert res.report["quarantine"]["quarantined_rows"] == 0
        assert labelled.coverage > 0.9 and labelled.leakage == 0


def test_bad_settings_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        generate_concept(tmp_path, windows=3, rows_per_window=10, drift_window=3)


def test_cli_generates_the_concept_case(tmp_path: Path) -> None:
    assert main(["generate", "--case", "concept", "--out", str(tmp_path)]) == 0
    assert load_config(tmp_path / "concept.yaml").name == "concept"
    assert len(list((tmp_path / "events").iterdir())) == 30
