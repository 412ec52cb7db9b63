"""The champion's scores kept per (champion, window): a check of an unchanged window with an
unchanged champion neither loads the champion nor scores, and decides exactly as without the
cache; a changed window, a new champion or a damaged entry scores again."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import retrain.triggers._scores as scores_module
from retrain import steps
from retrain.config import Config, load_config
from retrain.data.demo import generate_loans
from retrain.launchers import NoLauncher
from retrain.registry import Registry
from retrain.storage import open_storage
from retrain.triggers._scores import scores_cache_key
from retrain.triggers.controller import TriggerController
from retrain.triggers.monitor import CheckResult, Monitor


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three weeks of 300 loan applications (the population shifts at week 2) and a champion
    trained on week 0, registered with its profile (no deploy: no git)."""
    root = tmp_path_factory.mktemp("loans")
    cfg = load_config(generate_loans(root, windows=3, rows_per_window=300, drift_window=2))
    register_champion(cfg, root / "w0", "0")
    return root


@pytest.fixture
def loans(trained: Path, tmp_path: Path) -> Config:
    """A copy of the trained case for one test (its paths are relative to its config)."""
    shutil.copytree(trained, tmp_path / "case")
    return load_config(tmp_path / "case" / "loans.yaml")


def register_champion(cfg: Config, work: Path, window: str) -> str:
    """Train on `window` and make the trained version the champion; its version."""
    text, run = cfg.to_yaml(), f"r{window}"
    steps.ingest(text, window, run, str(work / "d.parquet"))
    steps.label(text, window, run, str(work / "d.parquet"), str(work / "l.parquet"))
    steps.train(text, window, run, str(work / "l.parquet"), str(work / "model"), str(work / "h"))
    files = {p.name: p.read_bytes() for p in (work / "model").iterdir() if p.is_file()}
    version = json.loads(files["model.json"])["version"]
    reg = Registry(open_storage(cfg.storage_root), cfg.name)
    reg.register(version, files)
    reg.set_alias("champion", version, reg.get_alias("champion").generation)
    return str(version)


class Calls:
    """Counts the real loads and predictions the scorer makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loads = 0
        self.predictions = 0
        load, predict = scores_module.load_model, scores_module.predict_scores

        def counted_load(*args: Any) -> Any:
            self.loads += 1
            return load(*args)

        def counted_predict(*args: Any) -> Any:
            self.predictions += 1
            return predict(*args)

        monkeypatch.setattr(scores_module, "load_model", counted_load)
        monkeypatch.setattr(scores_module, "predict_scores", counted_predict)


def check(cfg: Config, window: str, *, cache: bool = True) -> CheckResult:
    """One check by a fresh monitor, as each `--once` pass (a CronJob) makes."""
    store = open_storage(cfg.storage_root)
    controller = TriggerController(store, cfg.name, cfg.triggers, NoLauncher())
    return Monitor(cfg, controller, cache_scores=cache).check(window)


def verdict(result: CheckResult) -> dict[str, Any]:
    """Everything a check measured and the signals it sent the policy (whose decisions also
    depend on what earlier checks sent), without its clock."""
    doc = result.to_dict()
    signals = [(o.decision.signal.kind, o.decision.signal.drifted, o.decision.signal.value,
                o.decision.signal.details) for o in result.outcomes]  # fmt: skip
    return {k: doc[k] for k in ("champion", "window", "drift", "drift_note", "performance")} | {
        "signals": signals
    }


def test_an_unchanged_window_is_not_scored_again_and_decides_the_same(
    loans: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    first = check(loans, "2")
    assert (calls.loads, calls.predictions) == (1, 1)
    assert first.drift is not None and first.drift.dataset_drifted  # the shifted week
    second = check(loans, "2")
    assert (calls.loads, calls.predictions) == (1, 1)  # neither loaded nor scored again
    uncached = check(loans, "2", cache=False)
    assert (calls.loads, calls.predictions) == (2, 2)
    assert verdict(second) == verdict(first) == verdict(uncached)


def test_the_stored_scores_are_the_champions_scores_bit_for_bit(loans: Config) -> None:
    check(loans, "1")
    store = open_storage(loans.storage_root)
    reg = Registry(store, loans.name)
    champion = reg.get_alias("champion").version
    assert champion is not None
    current = pd.read_parquet(loans.data.uri)
    current = current[current[loans.data.time_column] == 1].reset_index(drop=True)
    scorer = scores_module.ChampionScorer(loans, store, reg, cache=False)
    fresh = scorer.scores(champion, current)
    entry = json.loads(store.read_bytes(scores_cache_key(loans.name)))
    stored = np.frombuffer(base64.b64decode(entry["scores"]), dtype=entry["dtype"])
    assert entry["shape"] == list(fresh.shape) == [300, 2]
    np.testing.assert_array_equal(stored.reshape(entry["shape"]), fresh)


def test_a_changed_window_is_scored_again(loans: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    check(loans, "1")
    check(loans, "0")  # another window: scored (one entry is kept: the last window)
    check(loans, "1")
    assert calls.predictions == 3
    # Window 1's rows rewritten in place (a late correction of the source): scored again.
    for path in sorted(Path(loans.data.uri).rglob("*.parquet")):
        events = pd.read_parquet(path)
        rows = events[loans.data.time_column] == 1
        if rows.any():
            column = next(c for c in loans.data.features if c != "zipcode")
            events.loc[rows, column] = events.loc[rows, column] * 2
            events.to_parquet(path)
    before = calls.predictions
    changed = check(loans, "1")
    assert calls.predictions == before + 1
    assert verdict(changed) == verdict(check(loans, "1", cache=False))


def test_a_new_champion_is_loaded_and_scores_again(
    loans: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    old = check(loans, "2")
    register_champion(loans, tmp_path / "w1", "1")
    new = check(loans, "2")
    assert (calls.loads, calls.predictions) == (2, 2)
    assert new.champion != old.champion
    assert verdict(new) == verdict(check(loans, "2", cache=False))


def test_a_damaged_entry_is_a_miss_and_is_replaced(
    loans: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    first = check(loans, "2")
    store = open_storage(loans.storage_root)
    key = scores_cache_key(loans.name)
    entry = json.loads(store.read_bytes(key))
    raw = bytearray(base64.b64decode(entry["scores"]))
    raw[0] ^= 0xFF  # one flipped bit in the stored scores
    entry["scores"] = base64.b64encode(bytes(raw)).decode()
    store.write_bytes(key, json.dumps(entry).encode())
    assert verdict(check(loans, "2")) == verdict(first)
    store.write_bytes(key, b"not json")
    assert verdict(check(loans, "2")) == verdict(first)
    assert calls.predictions == 3
    assert verdict(check(loans, "2")) == verdict(first) and calls.predictions == 3


def test_scores_above_the_bound_are_not_stored(
    loans: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scores_module, "MAX_CACHED_BYTES", 100)
    calls = Calls(monkeypatch)
    check(loans, "2")
    assert not open_storage(loans.storage_root).exists(scores_cache_key(loans.name))
    check(loans, "2")
    assert calls.predictions == 2
