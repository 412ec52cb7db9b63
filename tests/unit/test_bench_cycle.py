"""The cycle benchmark's own logic: data generation, config, summary and report.

The measurement itself is never timed in tests; one small end-to-end run of the script (direct
engine only) checks the plumbing and is marked `integration` because it starts processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench_script import BENCHMARKS, load_script
from retrain.config import config_from_dict

SCRIPT = BENCHMARKS / "bench_cycle.py"


bench = load_script("bench_cycle")


def _case(rows: int = 3000, history_rows: int = 4000, features: int = 20) -> Any:
    numeric, categorical = bench.feature_layout(features)
    return bench.Case(
        rows=rows, history_rows=history_rows, numeric=numeric, categorical=categorical
    )


def test_feature_layout_is_four_in_five_numeric() -> None:
    numeric, categorical = bench.feature_layout(20)
    assert numeric == tuple(f"num_{i:02d}" for i in range(16))
    assert {k: len(v) for k, v in categorical.items()} == {
        "cat_0": 5,
        "cat_1": 8,
        "cat_2": 12,
        "cat_3": 3,
    }
    assert bench.feature_layout(2) == (
        ("num_00",),
        {"cat_0": ("c0_0", "c0_1", "c0_2", "c0_3", "c0_4")},
    )
    with pytest.raises(ValueError, match="at least 2"):
        bench.feature_layout(1)


def test_default_history_fills_the_80_20_mix() -> None:
    # 1M rows: 750,000 train after the 25% recent holdout, 4 history rows for each, plus the
    # 2,000-row history holdout.
    assert bench.default_history_rows(1_000_000) == 3_002_000
    assert bench.default_history_rows(20_000) == 62_000


def test_make_window_is_seeded_and_shaped_like_production_logs() -> None:
    case = _case()
    events, labels = bench.make_window(case, 1, 3000)
    again_events, again_labels = bench.make_window(case, 1, 3000)
    pd.testing.assert_frame_equal(events, again_events)
    pd.testing.assert_frame_equal(labels, again_labels)

    assert list(events.columns) == ["event_id", "period", *case.numeric, *case.categorical]
    assert len(events) == 3000 and events["event_id"].is_unique
    assert events["event_id"].iloc[0] == "e1-00000000"
    assert (events["period"] == 1).all()
    for name, levels in case.categorical.items():
        assert set(events[name]) == set(levels)  # every level present: no unseen categories
    # About 3% of labels never arrive; the rest arrive one period later, as 0/1.
    assert 0.95 < len(labels) / len(events) < 0.99
    assert set(labels["event_id"]) <= set(events["event_id"])
    assert set(labels["label"].unique()) == {0, 1}
    assert (labels["labelled_at"] == 2).all()


def test_new_window_drifts_from_history() -> None:
    case = _case(rows=20_000, history_rows=20_000)
    old, _ = bench.make_window(case, bench.HISTORY_PERIOD, 20_000)
    new, _ = bench.make_window(case, bench.NEW_PERIOD, 20_000)
    assert not old["event_id"].isin(new["event_id"]).any()
    # num_00 moves by half a standard deviation; num_02 does not move.
    for name, shift in (("num_00", 0.5), ("num_02", 0.0)):
        moved = (new[name].mean() - old[name].mean()) / old[name].std()
        assert moved == pytest.approx(shift, abs=0.05)


def test_case_config_is_a_valid_retrain_config(tmp_path: Path) -> None:
    case = _case()
    raw = bench.case_config(case, str(tmp_path / "store"), str(tmp_path / "gitops"), tmp_path)
    cfg = config_from_dict(raw)
    assert cfg.numeric_features == list(case.numeric)
    assert cfg.categorical_features == list(case.categorical)
    assert cfg.data.uri == str(tmp_path / "events")
    assert cfg.training.historical_share == 0.8
    assert cfg.model.params["early_stopping"] is False


def test_write_case_writes_one_file_per_period(tmp_path: Path) -> None:
    case = _case(rows=1500, history_rows=2500, features=5)
    written = bench.write_case(case, tmp_path)
    assert written["events/period-000.parquet"] == 2500
    assert written["events/period-001.parquet"] == 1500
    back = pd.read_parquet(tmp_path / "events" / "period-001.parquet")
    expected, _ = bench.make_window(case, 1, 1500)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


def _measured(deployed: bool = True) -> dict[str, Any]:
    seconds = {
        "ingest": 1.5,
        "label": 2.0,
        "train": 10.0,
        "evaluate": 3.0,
        "deploy": 0.5,
        "rollout": 1.0,
    }
    if not deployed:
        del seconds["deploy"], seconds["rollout"]
    records = {
        name: {"step": name, "status": "succeeded", "seconds": s} for name, s in seconds.items()
    }
    records["train"]["report"] = {"fit_seconds": 8.0, "version": "w1-abc", "provenance": {}}
    records["evaluate"].update(summary="BLESSED: because", blessed=True)
    return {
        "wall_seconds": 20.0,
        "exit_code": 0,
        "records": records,
        "lines": ["  ingest ok"],
        "maxrss_self_kib": 2048,
        "maxrss_children_kib": 4096,
        "cpu_self_seconds": 1.25,
        "cpu_children_seconds": 30.0,
        "thread_pools": [{"api": "openmp", "threads": 2}],
    }


def test_summarise_engine_computes_overhead_from_step_records() -> None:
    s = bench.summarise_engine(_measured())
    assert s["step_sum_seconds"] == pytest.approx(18.0)
    assert s["overhead_seconds"] == pytest.approx(2.0)
    assert s["overhead_share"] == pytest.approx(0.10)
    assert s["peak_rss_self_mib"] == 2.0 and s["peak_rss_largest_child_mib"] == 4.0
    assert s["cpu_seconds"] == pytest.approx(31.25)
    assert s["fit_seconds"] == 8.0 and s["challenger"] == "w1-abc"

    skipped = bench.summarise_engine(_measured(deployed=False))
    assert skipped["steps"]["deploy"] is None and skipped["steps"]["rollout"] is None
    assert skipped["overhead_seconds"] == pytest.approx(3.5)


def _report(overhead_wall: float) -> dict[str, Any]:
    kfp = _measured()
    kfp["wall_seconds"] = overhead_wall
    return {
        "date": "2026-01-01T00:00:00+00:00",
        "command": "python benchmarks/bench_cycle.py --rows 1000 --features 20",
        "setup": {
            "rows": 1000,
            "history_rows": 2000,
            "features": 20,
            "numeric": ["num_00"] * 16,
            "categorical": {"cat_0": 5, "cat_1": 8, "cat_2": 12, "cat_3": 3},
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 100},
            "seed_seconds": 4.0,
            "threads": None,
        },
        "engines": {
            "kfp-local": {**bench.summarise_engine(kfp), "load_before": 0.1, "load_after": 0.2},
            "direct": {
                **bench.summarise_engine(_measured()),
                "load_before": 0.3,
                "load_after": 1.5,
            },
        },
        "machine": {
            "cores": 2,
            "usable_cores": 2,
            "cpu_model": "Test CPU",
            "memory_gib": 8.0,
            "os": "Linux",
            "python": "3.11.7",
            "versions": {"numpy": "2.0"},
        },
    }


def test_markdown_puts_engines_side_by_side_and_judges_the_goal() -> None:
    text = bench.render_markdown(_report(overhead_wall=19.0))
    assert "| | `kfp-local` | `direct` |" in text
    assert "| train (s) | 10.0 | 10.0 |" in text
    assert "| rollout (s) | 1.0 | 1.0 |" in text
    assert "| **total wall time (s)** | **19.0** | **20.0** |" in text
    assert "| orchestration overhead | 1.0 s (5.3%) | 2.0 s (10.0%) |" in text
    assert "goal ≤ 10%: met." in text
    assert "Test CPU, 2 cores" in text
    assert "| 1-min load average before → after | 0.1 → 0.2 | 0.3 → 1.5 |" in text
    assert "the same content-addressed challenger" in text

    slow = bench.render_markdown(_report(overhead_wall=25.0))
    assert "| orchestration overhead | 7.0 s (28.0%) |" in slow
    assert "goal ≤ 10%: NOT met." in slow


def test_machine_facts_name_the_libraries() -> None:
    facts = bench.machine_facts()
    assert facts["cores"] >= 1
    assert set(facts["versions"]) == {
        "retrain",
        "numpy",
        "pandas",
        "pyarrow",
        "scikit-learn",
        "kfp",
    }
    assert facts["versions"]["numpy"] == np.__version__


def test_bad_arguments_are_refused_with_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--rows", "10", "--features", "1", "--engines", "direct,airflow"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--rows must be at least 1000" in err
    assert "--features must be at least 2" in err
    assert "--engines must name" in err


@pytest.mark.integration
def test_small_run_writes_markdown_and_json(tmp_path: Path) -> None:
    out = tmp_path / "cycle.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rows=2000",
            "--history-rows=6000",
            "--features=5",
            "--engines=direct",
            "--threads=1",
            "--max-wait-idle=0",
            f"--output={out}",
            f"--workdir={tmp_path / 'work'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    direct = report["engines"]["direct"]
    assert direct["exit_code"] == 0
    statuses = direct["step_status"]
    assert [statuses.get(s) for s in ("ingest", "label", "train", "evaluate")] == ["succeeded"] * 4
    # Deploy runs exactly when the challenger is blessed (the gate decides, not the benchmark).
    assert ("deploy" in statuses) == direct["blessed"] == ("rollout" in statuses)
    prov = direct["provenance"]
    assert prov["new_available_rows"] == 1937  # 2,000 events, 63 labels never arrived
    # Every labelled row of the window either trains or judges (never both); about
    # evaluation_share (0.2) of the ids judge: a binomial bound, 4 standard deviations.
    assert prov["new_rows"] + prov["recent_holdout_rows"] == 1937
    assert abs(prov["recent_holdout_rows"] / 1937 - 0.2) < 4 * (0.2 * 0.8 / 1937) ** 0.5
    assert direct["wall_seconds"] >= direct["step_sum_seconds"] > 0
    assert {"api": "openmp", "threads": 1} in direct["thread_pools"]
    assert "| deploy (s) |" in out.read_text()
