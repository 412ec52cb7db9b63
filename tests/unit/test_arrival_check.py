"""The arrival check: provisional labels are used only where a label's arrival does not depend
on its value, judged on the run's own labelled window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from retrain.backtest import PolicySpec
from retrain.backtest.replay import replay_policy
from retrain.data.io import from_parquet_bytes
from retrain.labels import ArrivalSample, check_arrival
from retrain.labels._arrival import ALPHA, CLASS_TOLERANCE
from retrain.steps._provisional import provisional_key
from retrain.storage import open_storage
from tests.unit.test_provisional_labels import ROWS, WEEKS, config, run_label, write_stream

#: Provisional windows 1..6 windows after a reference window [0, 1), judged as of 7.
AGES = [(str(k), 7.0 - k) for k in range(1, 7)]


def sample(delays: np.ndarray, values: np.ndarray, seed: int = 0) -> ArrivalSample:
    offsets = np.random.default_rng(seed).uniform(0, 1, len(delays))
    return ArrivalSample("0", offsets, delays, pd.Series(values))


def classes(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(size=n) < rate).astype(int)


def test_a_fair_source_passes_and_one_class_first_is_refused() -> None:
    rng = np.random.default_rng(3)
    y = classes(4000, 0.05, 1)
    fair = check_arrival("classification", sample(rng.uniform(0, 6, len(y)), y), AGES)
    assert fair.fair and fair.p_value is not None and fair.p_value > ALPHA
    # Positives within two windows, negatives from four to six: early labels are all positive.
    late = np.where(y == 1, rng.uniform(0, 2, len(y)), rng.uniform(4, 6, len(y)))
    biased = check_arrival("classification", sample(late, y), AGES)
    assert not biased.fair
    assert biased.p_value is not None and biased.p_value < ALPHA
    assert biased.effect > CLASS_TOLERANCE
    assert "'1' is" in biased.detail and "no provisional window is used" in biased.detail


def test_regression_labels_that_come_later_the_higher_they_are_are_refused() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(100.0, 20.0, 3000)
    fair = check_arrival("regression", sample(rng.uniform(0, 6, len(y)), y), AGES)
    assert fair.fair
    # Expensive houses sell later: the delay grows with the price.
    ranks = pd.Series(y).rank(pct=True).to_numpy()
    biased = check_arrival("regression", sample(6 * ranks * rng.uniform(0.8, 1.0, len(y)), y), AGES)
    assert not biased.fair and "standard deviations" in biased.detail


def test_a_dependence_too_small_to_bias_the_early_labels_passes() -> None:
    # Positives come 0.05 windows sooner on average: shown on 200,000 rows, but the share of
    # positives among the early labels moves by a few percent, under the tolerance.
    rng = np.random.default_rng(7)
    y = classes(200_000, 0.3, 2)
    delays = rng.uniform(0, 6, len(y)) - 0.05 * y
    check = check_arrival("classification", sample(delays, y), AGES)
    assert check.p_value is not None and check.p_value < ALPHA
    assert check.fair and check.effect < CLASS_TOLERANCE


def test_undated_labels_are_left_out_and_one_class_has_nothing_to_test() -> None:
    y = np.zeros(100, dtype=int)
    delays = np.linspace(0, 6, 100)
    delays[:10] = np.nan
    check = check_arrival("classification", sample(delays, y), AGES)
    assert check.fair and check.p_value is None and check.rows == 90


# --- in the label step ----------------------------------------------------------------------------


def write_biased_stream(tmp: Path) -> None:
    """`write_stream`'s events and labels, with each positive label known one week after its
    event and each negative three weeks after: the labels known early are all positive."""
    write_stream(tmp)
    labels = pd.read_parquet(tmp / "labels.parquet")
    week = labels["id"].str.extract(r"w(\d+)-")[0].astype(int)
    labels["known_week"] = week + np.where(labels["y"] == 1, 1, 3)
    labels.to_parquet(tmp / "labels.parquet")


def test_the_label_step_refuses_provisional_windows_on_a_biased_source(tmp_path: Path) -> None:
    write_biased_stream(tmp_path)
    cfg = config(tmp_path, provisional_windows=3)
    outcome = run_label(tmp_path, cfg, "0", "r1", "3")
    kept = outcome.details["provisional"]
    assert kept["rows"] == 0 and kept["arrival"]["fair"] is False
    assert "not a fair sample (arrival check)" in outcome.summary
    assert kept["arrival"]["reference_window"] == "0" and kept["arrival"]["rows"] == ROWS
    assert all("arrival check" in w["skipped"] for w in kept["windows"])
    rows, _ = from_parquet_bytes(open_storage(cfg.storage_root).read_bytes(provisional_key("r1")))
    assert rows.empty
    # Trusting the source (check_arrival off) uses them: week 1 and 2's positives.
    trusted = config(tmp_path / "t", provisional_windows=3, check_arrival=False)
    for name in ("events.parquet", "labels.parquet"):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / name).write_bytes((tmp_path / name).read_bytes())
    used = run_label(tmp_path / "t", trusted, "0", "r1", "3").details["provisional"]
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    week = labels["id"].str.extract(r"w(\d+)-")[0].astype(int)
    assert used["rows"] == int(((week.isin([1, 2])) & (labels["y"] == 1)).sum()) > 0
    assert used["arrival"] is None


def test_the_label_step_uses_provisional_windows_on_a_fair_source(tmp_path: Path) -> None:
    write_stream(tmp_path)  # half of each week's labels a week late, half three: not by value
    cfg = config(tmp_path, provisional_windows=3)
    kept = run_label(tmp_path, cfg, "0", "r1", "3").details["provisional"]
    assert kept["rows"] == ROWS and kept["arrival"]["fair"] is True
    assert "arrival looks fair" in kept["arrival"]["detail"]


def test_a_provisional_replay_on_a_biased_source_uses_none_and_says_why(tmp_path: Path) -> None:
    write_biased_stream(tmp_path)
    cfg = config(tmp_path)
    windows = [str(w) for w in range(WEEKS)]
    prov = replay_policy(cfg, PolicySpec("always", mix="provisional"), windows, tmp_path / "out")
    trained = [r for r in prov.windows if r.trained_on is not None]
    assert trained and all(r.provisional_rows == 0 for r in prov.windows)
    for rec in trained:
        assert any(
            n.startswith("provisional windows not used: a label's arrival") for n in rec.notes
        )
