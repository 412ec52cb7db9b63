"""Replayed labels compared with the models' classes by `retrain.data.targets.label_key`:
windows stored with text "0"/"1" labels beside windows of 0/1 integers, and windows whose
labels cannot be one target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rollout_support import T0, labelled_frame, make_cfg, register_model, serve, write_history

from retrain.config import Config
from retrain.data.split import evaluation_mask
from retrain.registry import Registry
from retrain.rollout.machine import Observations
from retrain.rollout.providers import ObserveRequest, ReplayProvider
from retrain.storage import LocalStorage
from retrain.training.artifact import load_registered_model

SMALL = 600  # rows per window: ~120 evaluation rows


def windows(root: Path, frames: list[pd.DataFrame]) -> LocalStorage:
    store = LocalStorage(str(root))
    for w, frame in enumerate(frames):
        write_history(store, str(w), frame)
    return store


def observe(cfg: Config, store: LocalStorage, models: dict[str, Any]) -> Observations:
    provider = ReplayProvider(cfg.rollout.replay, loader=lambda s, c, v: models[v])
    request = ObserveRequest(cfg, store, "good-1", "good-2", 10, 0, T0, "r@1", 0, 0)
    return provider.observe(request)


def models(cfg: Config) -> dict[str, Any]:
    """Two registered models, loaded once, so both stores are scored by the same objects."""
    store = LocalStorage(cfg.storage_root)
    register_model(store, cfg, "good-1", labelled_frame(seed=1, n=400))
    register_model(store, cfg, "good-2", labelled_frame(seed=2, n=400))
    serve(Registry(store, cfg.name), "good-1", "good-2")
    reg = Registry(store, cfg.name)
    return {v: load_registered_model(reg, v) for v in ("good-1", "good-2")}


def positives(frames: list[pd.DataFrame]) -> int:
    """Evaluation rows labelled 1 (the integer or the text), counted from the data."""
    rows = pd.concat(frames)
    rows = rows[evaluation_mask(rows["id"], 0.2, "loans")]
    return int(rows["label"].astype(str).eq("1").sum())


def test_text_labels_beside_integer_labels_score_like_integers(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, replay={"windows": 2, "rows": 5000})
    loaded = models(cfg)
    ints = [labelled_frame(seed=20 + w, n=SMALL, week=w) for w in range(2)]
    mixed = [ints[0], ints[1].assign(label=ints[1]["label"].astype(str))]
    assert set(mixed[1]["label"]) == {"0", "1"}
    expected = observe(cfg, windows(tmp_path / "ints", ints), loaded)
    got = observe(cfg, windows(tmp_path / "mixed", mixed), loaded)
    # Text "1" used to be no class of the models: probability 0 (loss ~34.5) on those rows.
    for name in ("canary.loss", "champion.loss", "canary.accuracy", "loss_diff_std"):
        assert got.metrics[name] == pytest.approx(expected.metrics[name]), name
    assert got.metrics["canary.loss"] is not None and got.metrics["canary.loss"] < 0.5
    cells = {k: v for k, v in got.metrics.items() if k.startswith("cells.")}
    labelled_positive = sum(v for k, v in cells.items() if k.endswith(".1") and v is not None)
    assert labelled_positive == positives(ints) > 0
    assert cells == {k: v for k, v in expected.metrics.items() if k.startswith("cells.")}


def test_auto_counts_text_positives_toward_min_positives(tmp_path: Path) -> None:
    # The newest window alone brings min_positives when its text "1" labels count as
    # classes[1]; counted as no positive, auto reached back to the cap.
    checks = [{"name": "error_rate", "max": 0.01}, {"name": "average_precision_drop", "max": 0.02}]
    frames = [labelled_frame(seed=20 + w, n=SMALL, week=w) for w in range(4)]
    newest = frames[3]
    need = positives([newest])
    cfg = make_cfg(tmp_path, min_labelled=50, min_positives=need, checks=checks)
    loaded = models(cfg)
    frames[3] = newest.assign(label=newest["label"].astype(str))
    obs = observe(cfg, windows(tmp_path / "mixed", frames), loaded)
    assert obs.population == ("3",), obs.source
    assert f"to reach min_labelled 50 and min_positives {need})" in obs.source


def test_labels_that_cannot_be_one_target_end_the_step_unjudged(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, replay={"windows": 2})
    loaded = models(cfg)
    ints = [labelled_frame(seed=20 + w, n=SMALL, week=w) for w in range(2)]
    words = ints[1].assign(label=ints[1]["label"].map({0: "no", 1: "yes"}))
    obs = observe(cfg, windows(tmp_path / "words", [ints[0], words]), loaded)
    # Scored, every "yes"/"no" row would count as a class neither model knows.
    assert obs.metrics == {}
    assert "the replay cannot score these windows' labels as one target" in obs.lost
    assert "window 0: " in obs.lost and "window 1: " in obs.lost
