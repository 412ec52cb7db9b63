"""The generated use cases through the real pipeline (kfp.local and direct), deploy included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from required import require
from retrain.config import load_config
from retrain.data.case_reviews import generate_reviews
from retrain.data.cases import generate_fraud
from retrain.data.io import read_source
from retrain.data.windows import window_ids_in
from retrain.registry import Registry
from retrain.runner import run_cycle
from retrain.storage import open_storage

require("kfp", "the pipeline runs under kfp.local (extra 'kfp')")

pytestmark = pytest.mark.integration


def test_fraud_days_run_end_to_end(tmp_path: Path) -> None:
    """Day 0 on kfp.local becomes the champion; quiet days hold too few frauds to judge
    ('not enough positives'); after the new pattern appears a retrained model is blessed,
    rolled out as a canary and promoted (later days run direct: the same steps, faster)."""
    cfg = load_config(generate_fraud(tmp_path, windows=5, rows_per_window=8000, drift_window=2))
    events = read_source(cfg.data.uri, cfg.data.format)
    days = window_ids_in(cfg.data, events[cfg.data.time_column])
    assert len(days) == 5

    first = run_cycle(cfg, days[0], engine="kfp-local", log_path=str(tmp_path / "d0.log"))
    assert first.exit_code == 0, first.lines()
    first_version = first.records["deploy"]["report"]["version"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    assert reg.get_alias("champion").version == first_version

    quiet = run_cycle(cfg, days[1], engine="direct")
    assert quiet.exit_code == 0, quiet.lines()
    verdict = quiet.records["evaluate"]["report"]
    # 1,600 evaluation rows at a 0.8% fraud rate: about 13 frauds, fewer than min_positives 20.
    assert verdict["outcome"] == "undecided", verdict["reason"]
    assert "not enough positives" in verdict["reason"]
    assert "deploy" not in quiet.records

    results = [run_cycle(cfg, day, engine="direct") for day in days[2:]]
    assert all(r.exit_code == 0 for r in results), [r.lines() for r in results]
    evaluations = [r.records["evaluate"]["report"] for r in results]
    assert all(e["comparison"]["metric"] == "average_precision" for e in evaluations)
    blessed = [r for r in results if r.records["evaluate"]["report"]["outcome"] == "blessed"]
    assert blessed, [e["reason"] for e in evaluations]
    rollout = blessed[0].records["rollout"]
    assert rollout["status"] == "succeeded" and "promoted" in rollout["summary"]
    assert reg.get_alias("champion").version != first_version
    kinds = [e["kind"] for e in reg.events()]
    assert kinds.count("promoted") >= 1


def test_reviews_weeks_run_end_to_end(tmp_path: Path) -> None:
    """Week 0 on kfp.local trains the first text model (hashed words in the saved pipeline)
    and deploys it; from the change point, new slang carries the sentiment: text drift names
    the new words, and a retrained model is blessed, rolled out and promoted."""
    cfg = load_config(generate_reviews(tmp_path, windows=4, rows_per_window=500, drift_window=2))
    assert cfg.data.features["review"] == "text"
    events = read_source(cfg.data.uri, cfg.data.format)
    weeks = window_ids_in(cfg.data, events[cfg.data.time_column])
    assert len(weeks) == 4

    first = run_cycle(cfg, weeks[0], engine="kfp-local", log_path=str(tmp_path / "w0.log"))
    assert first.exit_code == 0, first.lines()
    first_version = first.records["deploy"]["report"]["version"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    assert reg.get_alias("champion").version == first_version

    results = [run_cycle(cfg, week, engine="direct") for week in weeks[1:]]
    assert all(r.exit_code == 0 for r in results), [r.lines() for r in results]
    after = results[1]  # the change point
    drift = json.dumps(after.records["ingest"]["report"])
    assert any(word in drift for word in ("bussin", "goated", "cringe", "slaps"))
    blessed = [r for r in results[1:] if r.records["evaluate"]["report"]["outcome"] == "blessed"]
    assert blessed, [r.records["evaluate"]["report"]["reason"] for r in results]
    rollout = blessed[0].records["rollout"]
    assert rollout["status"] == "succeeded" and "promoted" in rollout["summary"]
    assert reg.get_alias("champion").version != first_version
