"""A drifting-stream use case for the trigger integration tests (imported, not collected).

River's SEA stream (x0 + x1 <= threshold) in windows of 1000 rows, its concept changed at
chosen windows with `ConceptDriftStream`, written as events and labels with a config.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import yaml

from retrain.config import Config, load_config

__all__ = ["ROWS", "sea", "write_case"]

ROWS = 1000


def sea(
    drift_windows: list[int], seed: int, windows: int = 51
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and labels of a SEA stream whose concept changes at the given windows."""
    from river.datasets import synth

    variants = [0, 3, 2]  # class boundary x0 + x1 at 8, 9.5, 7
    stream = synth.SEA(variant=variants[len(drift_windows)], seed=seed + 10)
    starts = [0, *drift_windows]
    for i, window in reversed(list(enumerate(drift_windows))):
        # A nested stream counts only the rows drawn from it, which start at the previous
        # drift point. Width 200: the change completes inside its window.
        stream = synth.ConceptDriftStream(
            stream=synth.SEA(variant=variants[i], seed=seed + i),
            drift_stream=stream,
            position=(window - starts[i]) * ROWS,
            width=200,
            seed=seed + 100 + i,
        )
    xs, ys = [], []
    for x, y in itertools.islice(stream, windows * ROWS):
        xs.append(x)
        ys.append(int(y))
    events = pd.DataFrame(xs).rename(columns=lambda c: f"x{c}")
    events.insert(0, "id", range(len(events)))
    events.insert(1, "t", events["id"] // ROWS)
    return events, pd.DataFrame({"id": events["id"], "y": ys})


def write_case(root: Path, events: pd.DataFrame, labels: pd.DataFrame) -> Config:
    (root / "events").mkdir(parents=True)
    (root / "labels").mkdir()
    events.to_parquet(root / "events" / "events.parquet")
    labels.to_parquet(root / "labels" / "labels.parquet")
    cfg = {
        "name": "sea",
        "task": "classification",
        "target": "y",
        "storage_root": "store",
        "seed": 3,
        "data": {
            "uri": "events",
            "id_column": "id",
            "time_column": "t",
            "time_kind": "period",
            "features": {"x0": "numeric", "x1": "numeric", "x2": "numeric"},
        },
        "labels": {"uri": "labels", "id_column": "id", "label_column": "y"},
        # After a concept change history is obsolete: train on the new window alone, and do
        # not hold the challenger to the old concept.
        "training": {"historical_share": 0.0},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 100}},
        # AUC cannot see a moved class boundary (the ranking stays perfect); accuracy can.
        "evaluation": {"metric": "accuracy", "max_history_loss": 1.0, "bootstrap_samples": 50},
        "drift": {"bootstrap_samples": 50},
        "deploy": {"deployment_name": "sea", "gitops_repo": "gitops"},
        "triggers": {"drift_windows": 2, "cooldown": "3h", "budget_runs": 20},
        # The canary rollout after deploy waits `interval_seconds` between analyses: none here.
        # A window of 1,000 rows holds about 210 evaluation rows, fewer than the default
        # min_labelled (500): the replay would end each rollout 'inconclusive' (as the case
        # configs, the test judges the canary on the rows a window has).
        "rollout": {"interval_seconds": 0, "min_labelled": 150},
    }
    (root / "sea.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(root / "sea.yaml")
