"""The baseline judges each window's labels as the label step does: a window the label join
refuses (infinite or huge regression labels, more than 1% of them dated before their event) is
left out of its refits, with a note, and the other windows still train it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.backtest import parse_policies
from retrain.backtest.baseline import replay_full_refit
from retrain.backtest.run import run_backtest
from retrain.config import Config, config_from_dict

WEEKS, ROWS = 5, 200
WINDOWS = [str(w) for w in range(WEEKS)]


def config(tmp: Path, task: str) -> Config:
    estimator = "LinearRegression" if task == "regression" else "LogisticRegression"
    return config_from_dict(
        {
            "name": "shop",
            "task": task,
            "target": "y",
            "storage_root": str(tmp / "store"),
            "data": {
                "uri": str(tmp / "events.parquet"),
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"x": "numeric"},
                "min_rows": 10,
            },
            "labels": {
                "uri": str(tmp / "labels.parquet"),
                "id_column": "id",
                "label_column": "y",
                "time_column": "known",
            },
            "model": {"estimator": f"sklearn.linear_model.{estimator}"},
            "deploy": {"deployment_name": "shop"},
        }
    )


def stream(tmp: Path, task: str) -> pd.DataFrame:
    """Weekly events (y = 3x + noise, or x > 0); each week's labels dated two weeks on, so at
    week w's end the labels of weeks up to w - 1 are known. Returns the labels to write."""
    rng = np.random.default_rng(7)
    frames = []
    for w in range(WEEKS):
        x = rng.normal(size=ROWS)
        y = 3 * x + rng.normal(scale=0.1, size=ROWS) if task == "regression" else x > 0
        frames.append(
            pd.DataFrame({"id": [f"{w}-{i}" for i in range(ROWS)], "week": w, "x": x, "y": y})
        )
    events = pd.concat(frames, ignore_index=True)
    events.drop(columns=["y"]).to_parquet(tmp / "events.parquet")
    return events[["id", "y"]].assign(known=events["week"] + 2, y=events["y"].astype(float))


def week(labels: pd.DataFrame, w: int) -> pd.Index:
    return labels.index[labels["id"].str.startswith(f"{w}-")]


@pytest.mark.parametrize("bad", [np.inf, -1e120])
def test_regression_labels_refused_in_one_window_leave_that_window_out(
    tmp_path: Path, bad: float
) -> None:
    labels = stream(tmp_path, "regression")
    labels.loc[week(labels, 1)[::50], "y"] = bad  # 4 of week 1's labels
    labels.to_parquet(tmp_path / "labels.parquet")
    cfg = config(tmp_path, "regression")
    result = run_backtest(cfg, parse_policies("always,full_refit"), tmp_path / "out", jobs=1)
    always, refit = result.results
    recs = refit.windows
    # Week 1's labels are known from week 2's end on: each refit then leaves them out and
    # says why, as the policy's label step refuses them, and still refits on the others.
    for i in (2, 3, 4):
        assert recs[i].retrained and recs[i].version == f"refit-{i}"
        left_out = [n for n in recs[i].notes if n.startswith("labels of window 1 left out")]
        assert len(left_out) == 1 and "label join failed" in left_out[0]
    for i in (3, 4):  # the policy's retrains (none at week 2's end: week 1 is not labelled)
        assert any(n.startswith("label of window 1 failed") for n in always.windows[i].notes)
    assert recs[4].notes[-1] == "refit on 600 labelled rows of 4 windows"  # weeks 0, 2, 3
    # Each window is served by the refit at the previous one's end, and it fits y = 3x.
    for rec in recs[3:]:
        assert rec.champion == f"refit-{int(rec.window) - 1}"
        assert rec.metric is not None and rec.metric < 0.2 and not rec.failed
    # Both took the same labels into history: the comparison is like with like.
    assert refit.labels_consumed == always.labels_consumed == 3 * ROWS


def test_labels_leaking_in_one_window_do_not_stop_every_later_refit(tmp_path: Path) -> None:
    labels = stream(tmp_path, "classification")
    labels.loc[week(labels, 1)[:10], "known"] = 0  # 5% of week 1's labels dated before it
    labels.to_parquet(tmp_path / "labels.parquet")
    cfg = config(tmp_path, "classification")
    result = run_backtest(cfg, parse_policies("always,full_refit"), tmp_path / "out", jobs=1)
    always, refit = result.results
    for i in (1, 2, 3, 4):
        rec = refit.windows[i]
        assert rec.retrained, rec.notes
        assert any(n.startswith("labels of window 1 left out") for n in rec.notes)
        assert any("dated before their event" in n for n in rec.notes)
    for rec in refit.windows[2:]:
        assert rec.champion == f"refit-{int(rec.window) - 1}" and rec.metric is not None
    assert [s.windows_scored for s in result.summaries] == [3, 3]
    assert refit.labels_consumed == always.labels_consumed == 3 * ROWS


def test_a_window_leaking_labels_is_judged_on_its_own_labels(tmp_path: Path) -> None:
    # 4 of week 3's 200 labels (2%) dated before it: refused, as the label step refuses it,
    # though with week 2's one such label they are 0.6% of all labels known at week 4's end.
    # Week 2's one (0.5% of its labels) is a warning for the label step: week 2 stays in.
    labels = stream(tmp_path, "classification")
    labels.loc[week(labels, 3)[:4], "known"] = 0
    labels.loc[week(labels, 2)[:1], "known"] = 0
    labels.to_parquet(tmp_path / "labels.parquet")
    result = replay_full_refit(config(tmp_path, "classification"), WINDOWS)
    week3, week4 = result.windows[3:]
    # At week 3's end only the 4 are known: 100% of them.
    assert week3.retrained and any(n.startswith("labels of window 3 left out") for n in week3.notes)
    assert week3.notes[-1] == "refit on 600 labelled rows of 3 windows"  # weeks 0, 1, 2
    assert week4.retrained and week4.notes == [
        "labels of window 3 left out: label join failed\n  - 4 labels (2.00% of labelled rows) "
        "are dated before their event ('known' < 'week'): check for leakage; more than 1% is "
        "an error",
        "refit on 600 labelled rows of 4 windows",
    ]
    assert result.labels_consumed == 3 * ROWS
