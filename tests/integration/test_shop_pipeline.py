"""The shop case (user and item ids) through the real pipeline: kfp.local, deploy, rollout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from required import require
from retrain.config import load_config
from retrain.data.case_shop import generate_shop
from retrain.data.io import read_source
from retrain.data.windows import window_ids_in
from retrain.registry import Registry
from retrain.runner import run_cycle
from retrain.storage import open_storage

require("kfp", "the pipeline runs under kfp.local (extra 'kfp')")

pytestmark = pytest.mark.integration


def test_shop_weeks_run_end_to_end(tmp_path: Path) -> None:
    """Week 0 on kfp.local becomes the champion (its ids target-encoded in the saved model);
    after preferences shift, a retrained model is blessed, rolled out and promoted; no new id
    is ever quarantined (later weeks run direct: the same steps, faster)."""
    path = generate_shop(tmp_path, windows=3, rows_per_window=2000, drift_window=1)
    # The canary is judged on its model quality here: a p95 latency bound of 0.5 s fails on a
    # machine shared by many test runs, whatever the model.
    raw = yaml.safe_load(path.read_text())
    for check in raw["rollout"]["checks"]:
        if check["name"] == "latency_p95":
            check["max"] = 10.0
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(path)
    events = read_source(cfg.data.uri, cfg.data.format)
    weeks = window_ids_in(cfg.data, events[cfg.data.time_column])
    assert len(weeks) == 3

    first = run_cycle(cfg, weeks[0], engine="kfp-local", log_path=str(tmp_path / "w0.log"))
    assert first.exit_code == 0, first.lines()
    first_version = first.records["deploy"]["report"]["version"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    assert reg.get_alias("champion").version == first_version

    results = [run_cycle(cfg, week, engine="direct") for week in weeks[1:]]
    assert all(r.exit_code == 0 for r in results), [r.lines() for r in results]
    for r in results:
        quarantine = r.records["ingest"]["report"]["quarantine"]
        assert quarantine["quarantined_rows"] == 0
    blessed = [r for r in results if r.records["evaluate"]["report"]["outcome"] == "blessed"]
    assert blessed, [r.records["evaluate"]["report"]["reason"] for r in results]
    rollout = blessed[0].records["rollout"]
    assert rollout["status"] == "succeeded" and "promoted" in rollout["summary"]
    assert reg.get_alias("champion").version != first_version
