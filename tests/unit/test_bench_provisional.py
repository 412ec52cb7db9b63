"""The provisional-labels benchmark's biased stream: legitimate labels re-dated, frauds kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench_script import load_script
from retrain.data.cases import generate_fraud


def _labels(case: Path) -> pd.DataFrame:
    labels = pd.concat(
        [pd.read_parquet(p) for p in sorted((case / "labels").glob("*.parquet"))],
        ignore_index=True,
    )
    events = pd.concat(
        [pd.read_parquet(p) for p in sorted((case / "events").glob("*.parquet"))],
        ignore_index=True,
    )
    joined = labels.merge(events[["transaction_id", "transacted_at"]], on="transaction_id")
    joined["delay_days"] = (joined["charged_back_at"] - joined["transacted_at"]) / pd.Timedelta(
        days=1
    )
    return joined.set_index("transaction_id").sort_index()


def test_only_legitimate_labels_are_redated_four_to_six_days_late(tmp_path: Path) -> None:
    bench = load_script("bench_provisional")
    generate_fraud(tmp_path, windows=3, rows_per_window=400, drift_window=1)
    before = _labels(tmp_path)
    moved = bench.delay_legitimate_labels(tmp_path)
    after = _labels(tmp_path)
    legit = before["is_fraud"] == 0
    assert moved == int(legit.sum()) > 0
    assert after["delay_days"][legit].between(4, 6).all()
    assert before["delay_days"][legit].lt(4).any()  # some did arrive earlier before
    pd.testing.assert_series_equal(after["delay_days"][~legit], before["delay_days"][~legit])
    assert (after["is_fraud"] == before["is_fraud"]).all()
