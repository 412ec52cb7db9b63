"""Backtests count what they skip, compare means over the same windows, and run a plain
full-history refit beside the policies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrain.backtest import PolicySpec, parse_policies
from retrain.backtest.baseline import replay_full_refit
from retrain.backtest.replay import PolicyResult, WindowRecord, policy_config
from retrain.backtest.report import common_windows, markdown, summarise, write_outputs
from retrain.config import Config, config_from_dict
from retrain.data.split import evaluation_mask
from retrain.errors import ValidationError


def test_parse_policies_takes_the_baseline_and_a_training_mix() -> None:
    got = parse_policies("always@weighted,every:3@sample,full_refit")
    assert [p.name for p in got] == ["always@weighted", "every-3@sample", "full_refit"]
    assert got[0] == PolicySpec("always", mix="weighted")
    assert parse_policies("full_refit@train_rows")[0].name == "full_refit@train_rows"
    for bad in (
        "never@weighted",
        "full_refit@weighted",
        "always@train_rows",
        "always@mixed",
        "always,always@",
    ):
        with pytest.raises(ValidationError, match="--policies"):
            parse_policies(bad)


def test_a_policys_mix_reaches_its_config(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert policy_config(cfg, PolicySpec("always", mix="weighted"), tmp_path).training.mix == (
        "weighted"
    )
    assert policy_config(cfg, PolicySpec("always"), tmp_path).training.mix == "sample"


def _result(name: str, metrics: list[float | None], skipped: dict[int, str]) -> PolicyResult:
    windows = [
        WindowRecord(index=i, window=str(i), metric=m, skipped=skipped.get(i))
        for i, m in enumerate(metrics)
    ]
    return PolicyResult(name, "roc_auc", True, windows, 0, 0.0)


def test_means_are_over_the_windows_every_policy_scored_and_skips_are_counted() -> None:
    # `never` could not ingest window 2 (the drifted one) and so never scored it; `always` did.
    never = _result("never", [None, 0.9, None, 0.5], {2: "ingest failed: out of range"})
    always = _result("always", [None, 0.9, 0.4, 0.8], {})
    common = common_windows([never, always])
    assert common == {1, 3}
    s_never, s_always = (summarise(r, common=common) for r in (never, always))
    assert (s_never.windows_scored, s_never.windows_skipped) == (2, 1)
    assert (s_always.windows_scored, s_always.windows_skipped) == (3, 0)
    assert s_never.mean == pytest.approx(0.7) and s_always.mean == pytest.approx(0.85)
    assert s_always.mean_own == pytest.approx(0.7)  # its own three windows, 0.4 included
    assert s_never.skipped == {"2": "ingest failed: out of range"}
    table = markdown([s_never, s_always], {"config": "t"})
    assert "| never | 0.7000 | 2 (1) |" in table and "| always | 0.8500 | 3 (0) |" in table
    assert "over the 2 windows every policy scored" in table


def config(tmp: Path, **labels: object) -> Config:
    return config_from_dict(
        {
            "name": "shop",
            "task": "classification",
            "target": "y",
            "storage_root": str(tmp / "store"),
            "data": {
                "uri": str(tmp / "events.parquet"),
                "id_column": "id",
                "time_column": "week",
                "time_kind": "period",
                "features": {"x": "numeric", "c": "categorical"},
                "min_rows": 10,
            },
            "labels": {
                "uri": str(tmp / "labels.parquet"),
                "id_column": "id",
                "label_column": "y",
                "time_column": "known",
                **labels,
            },
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "shop"},
        }
    )


def write_stream(tmp: Path, weeks: int = 5, rows: int = 200) -> None:
    """Weekly events with y = 1 when x > 0; each label known one week after its week ends."""
    rng = np.random.default_rng(4)
    frames = []
    for w in range(weeks):
        x = rng.normal(size=rows)
        frames.append(
            pd.DataFrame(
                {
                    "id": [f"{w}-{i}" for i in range(rows)],
                    "week": w,
                    "x": x,
                    "c": rng.choice(["a", "b"], size=rows),
                    "y": (x > 0).astype(int),
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    events.drop(columns=["y"]).to_parquet(tmp / "events.parquet")
    labels = events[["id", "y"]].assign(known=events["week"] + 2)
    labels.to_parquet(tmp / "labels.parquet")


def test_full_refit_uses_every_label_known_at_each_windows_end(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path)
    result = replay_full_refit(cfg, [str(w) for w in range(5)])
    assert result.policy == "full_refit"
    recs = result.windows
    # Labels of week w are known at the end of week w + 1: nothing to fit at week 0's end.
    assert not recs[0].retrained and recs[0].notes == ["no labels known yet"]
    assert recs[1].notes == ["refit on 200 labelled rows of 2 windows"]
    assert recs[4].notes == ["refit on 800 labelled rows of 5 windows"]
    assert recs[1].metric is None  # nothing served week 1 yet
    for rec in recs[2:]:
        assert rec.champion == f"refit-{int(rec.window) - 1}"
        assert rec.metric is not None and rec.metric > 0.98 and rec.rows_scored == 200
    assert result.labels_consumed == 800 and not any(r.skipped for r in recs)


def test_full_refit_on_train_rows_leaves_the_evaluation_rows_out(tmp_path: Path) -> None:
    write_stream(tmp_path)
    cfg = config(tmp_path)
    result = replay_full_refit(cfg, [str(w) for w in range(5)], train_rows_only=True)
    assert result.policy == "full_refit@train_rows"
    events = pd.read_parquet(tmp_path / "events.parquet")
    known = events[events["week"] <= 3]  # labels known by week 4's end (as the test above)
    evaluation = evaluation_mask(known["id"], cfg.training.evaluation_share, cfg.name)
    train_ids = int((~evaluation).sum())
    assert 0 < len(known) - train_ids < len(known) // 2
    assert result.labels_consumed == train_ids
    assert result.windows[4].notes == [f"refit on {train_ids} labelled rows of 5 windows"]
    # Still scored on every row of a window, as the policies are.
    assert all(r.rows_scored == 200 for r in result.windows[2:])


def test_the_results_name_the_commit_they_were_measured_on(tmp_path: Path) -> None:
    # Published tables are quoted long after they were run: the JSON says on which code.
    never = _result("never", [None, 0.9, 0.5], {})
    write_outputs([never], tmp_path, settings={"config": "t"})
    doc = json.loads((tmp_path / "backtest.json").read_text())
    head = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not head:  # not run from a git checkout (an unpacked sdist): nothing to name
        assert doc["code"] == "unknown"
    else:
        assert doc["code"] in (head, f"{head} + uncommitted changes")
