"""The generated reviews case: weekly windows, late labels, new slang from the change point."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retrain.cli import main
from retrain.config import load_config
from retrain.data.case_reviews import OLD_WORDS, SLANG_WORDS, generate_reviews, slang_share
from retrain.data.io import read_source
from retrain.data.windows import window_ids_in
from retrain.training.model import fit_model, predict_scores
from tests.unit.case_support import assert_same_seed_same_bytes


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_reviews(
        tmp_path_factory.mktemp("reviews"), windows=6, rows_per_window=800, drift_window=3
    )


def _joined(path: Path) -> pd.DataFrame:
    cfg = load_config(path)
    events = read_source(cfg.data.uri, cfg.data.format)
    labels = read_source(cfg.labels.uri, cfg.labels.format)
    df = events.merge(labels, on="review_id")
    df["week"] = (df["posted_at"] - pd.Timestamp("2024-01-01", tz="UTC")).dt.days // 7
    return df


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    assert_same_seed_same_bytes(
        generate_reviews, tmp_path, windows=3, rows_per_window=150, drift_window=1
    )


def test_weekly_windows_late_labels_and_a_text_feature(reviews: Path) -> None:
    cfg = load_config(reviews)
    assert cfg.data.features["review"] == "text"
    events = read_source(cfg.data.uri, cfg.data.format)
    assert len(window_ids_in(cfg.data, events[cfg.data.time_column])) == 6
    df = _joined(reviews)
    delay = (df["labelled_at"] - df["posted_at"]).dt.total_seconds() / 86400
    assert delay.min() >= 2 and delay.max() <= 10
    assert 0.95 < len(df) / len(events) < 0.99  # about 3% never labelled


def test_slang_replaces_the_old_words_from_the_change_point(reviews: Path) -> None:
    assert [slang_share(w, 3) for w in (2, 3, 4, 9)] == [0.0, 0.5, 0.65, 0.9]
    df = _joined(reviews)
    old = set(OLD_WORDS[0] + OLD_WORDS[1]) - {"sick"}
    slang = set(SLANG_WORDS[0] + SLANG_WORDS[1]) - {"sick"}

    def share(week: int, words: set[str]) -> float:
        texts = df.loc[df["week"] == week, "review"].str.split()
        return float(texts.map(lambda t: any(w in words for w in t)).mean())

    assert share(2, slang) == 0.0 and share(2, old) > 0.9
    assert share(3, slang) > 0.5 and share(5, slang) > share(3, slang)
    # A model of the old words loses most of its ranking power after the change.
    cfg = load_config(reviews)
    model = fit_model(cfg, df[df["week"] < 3])

    def auc(week: int) -> float:
        part = df[df["week"] == week]
        return float(roc_auc_score(part["positive"], predict_scores(model, part, cfg)[:, 1]))

    assert auc(2) > 0.85 and auc(5) < auc(2) - 0.15


def test_cli_generates_the_reviews_case(tmp_path: Path) -> None:
    assert main(["generate", "--case", "reviews", "--out", str(tmp_path)]) == 0
    assert load_config(tmp_path / "reviews.yaml").name == "reviews"
