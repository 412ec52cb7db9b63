"""A cache of trained model directories shared by the policies of one backtest.

`steps.train` is deterministic: the version id is a hash of the data (new window, history,
parent model in continuous mode), the model spec, the seed and the training mix. Two policies
that train on the same window with the same history therefore produce the same model, so the
second one reuses the first's model and holdout directories instead of fitting again.

The key is computed before training from the same inputs plus every config section that
shapes the artifacts (drift, for the reference profile saved beside the model); entries are
written to a temporary folder and renamed into place, so concurrent processes never see half
an entry and a lost race only wastes one training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from retrain.config import Config
from retrain.data.history import load_history
from retrain.data.io import content_sha256, from_parquet_bytes
from retrain.registry import MODEL_CARD_FILE, Registry
from retrain.training.artifact import ModelCard

__all__ = ["TrainingCache", "relink_card"]

#: Sections that say where things go or when they run; they never change a trained model.
_NOT_TRAINING = {"storage_root", "deploy", "triggers", "rollout"}


class TrainingCache:
    """Trained ``model/`` and ``holdout/`` directories by training-input hash, under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, cfg: Config, store: Any, window: str, labelled: Path) -> str:
        """The hash of everything `steps.train` reads for this window in this store."""
        _, meta = from_parquet_bytes(labelled.read_bytes())
        history = load_history(store, cfg, window)
        parent = None
        if cfg.continuous.enabled:
            reg = Registry(store, cfg.name)
            champion = reg.get_alias("champion").version
            if champion is not None:
                card = json.loads(reg.read_file(champion, MODEL_CARD_FILE))
                parent = card.get("model_sha256")
        basis = {
            "window": window,
            "new": meta.get("sha256"),
            "history": content_sha256(history) if history is not None else None,
            "parent": parent,
            "config": cfg.model_dump(mode="json", exclude=_NOT_TRAINING),
        }
        return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:24]

    def get(self, key: str, model_dir: Path, holdout_dir: Path) -> float | None:
        """Copy a cached training into place; return its training seconds, or None on a miss."""
        entry = self.root / key
        if not (entry / "entry.json").exists():
            return None
        shutil.copytree(entry / "model", model_dir, dirs_exist_ok=True)
        shutil.copytree(entry / "holdout", holdout_dir, dirs_exist_ok=True)
        return float(json.loads((entry / "entry.json").read_text())["train_seconds"])

    def put(self, key: str, model_dir: Path, holdout_dir: Path, train_seconds: float) -> None:
        """Store a training (first writer wins)."""
        entry = self.root / key
        if entry.exists():
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        shutil.copytree(model_dir, tmp / "model")
        shutil.copytree(holdout_dir, tmp / "holdout")
        (tmp / "entry.json").write_text(json.dumps({"train_seconds": train_seconds}))
        try:
            os.rename(tmp, entry)
        except OSError:  # another process stored the same training first
            shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            if tmp.exists():
                shutil.rmtree(tmp)


def relink_card(model_dir: Path, *, parent: str | None, run_id: str) -> None:
    """Make a cached model's card name this policy's parent and run (its lineage)."""
    path = model_dir / MODEL_CARD_FILE
    card = ModelCard.from_json(path.read_text())
    path.write_text(replace(card, parent=parent, run_id=run_id).to_json())
