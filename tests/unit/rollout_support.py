"""Shared helpers for the rollout tests: config, clock, registered models, scripted metrics.

Not a test module (no ``test_`` prefix); the rollout test files import it by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config, config_from_dict
from retrain.deploy import ApplyResult, to_yaml
from retrain.registry import Registry
from retrain.rollout.machine import Observations, RolloutState, advance, start_rollout
from retrain.rollout.providers import ObserveRequest
from retrain.storage import Storage

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
FEATURES = {"x1": "numeric", "x2": "numeric", "colour": "categorical"}


def make_cfg(root: Path, task: str = "classification", **rollout: Any) -> Config:
    """A small use case stored under `root`; `rollout` sets keys of the rollout section."""
    raw: dict[str, Any] = {
        "name": "loans",
        "task": task,
        "target": "label",
        "storage_root": str(root / "store"),
        "seed": 3,
        "data": {
            "uri": str(root / "events"),
            "id_column": "id",
            "time_column": "week",
            "time_kind": "period",
            "features": FEATURES,
        },
        "labels": {"uri": str(root / "labels"), "id_column": "id", "label_column": "label"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "deploy": {
            "deployment_name": "loans",
            "namespace": "models",
            "gitops_repo": str(root / "gitops"),
        },
        "rollout": {"interval_seconds": 60, "progress_deadline_seconds": 600, **rollout},
    }
    if task == "regression":
        raw["model"] = {"estimator": "sklearn.linear_model.Ridge"}
    return config_from_dict(raw)


class FakeClock:
    """A clock the test moves; `sleep` moves it too, so loops run instantly."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    sleep = advance


class RecordingApplier:
    """Stands in for the GitOps applier: keeps each applied object, changed only if it differs.

    Keeps the applier contract (idempotent: the same object twice is one change) without git.
    """

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.messages: list[str] = []

    def apply(self, obj: dict[str, Any], cfg: Config, message: str | None = None) -> ApplyResult:
        changed = self.current is None or to_yaml(self.current) != to_yaml(obj)
        if changed:
            self.current = obj
            self.history.append(obj)
            self.messages.append(message or "")
        return ApplyResult(changed, f"rev-{len(self.history)}", "recorded")

    def split(self) -> dict[str, int]:
        """Predictor name -> traffic of the current object."""
        assert self.current is not None
        return {p["name"]: p["traffic"] for p in self.current["spec"]["predictors"]}

    def versions(self) -> dict[str, str]:
        assert self.current is not None
        return {
            p["name"]: p["labels"]["retrain.dev/model-version"]
            for p in self.current["spec"]["predictors"]
        }


@dataclass
class ScriptedProvider:
    """Returns scripted observations in order (the last one repeats); records each request."""

    script: list[Observations]
    requests: list[ObserveRequest] = field(default_factory=list)
    name: str = "scripted"

    def observe(self, request: ObserveRequest) -> Observations:
        self.requests.append(request)
        index = min(len(self.requests) - 1, len(self.script) - 1)
        return self.script[index]


def healthy(**overrides: float | None) -> Observations:
    """Metrics of a canary as good as its champion, with enough labels to judge it."""
    metrics: dict[str, float | None] = {
        "canary.requests": 200.0,
        "canary.error_rate": 0.0,
        "canary.latency_p95": 0.02,
        "canary.accuracy": 0.91,
        "canary.loss": 0.25,
        "champion.requests": 1800.0,
        "champion.error_rate": 0.0,
        "champion.latency_p95": 0.02,
        "champion.accuracy": 0.90,
        "champion.loss": 0.26,
        "canary.loss_std": 0.5,
        "champion.loss_std": 0.5,
        "canary.labelled": 2000.0,
        "champion.labelled": 18000.0,
        "prediction_shift": 0.05,
    }
    metrics.update(overrides)
    return Observations(ready=True, metrics=metrics, source="scripted")


def register_dummy(store: Storage, cfg: Config, versions: Iterable[str]) -> Registry:
    """Register placeholder versions (for tests that never load the models)."""
    reg = Registry(store, cfg.name)
    for v in versions:
        reg.register(v, {"model.skops": f"model {v}".encode(), "model.json": b"{}"})
    return reg


def serve(reg: Registry, champion: str, canary: str | None = None) -> None:
    """Point the aliases as the deploy step would."""
    current = reg.get_alias("champion")
    if current.version != champion:
        reg.set_alias("champion", champion, current.generation)
    cur = reg.get_alias("canary")
    if cur.version != canary:
        reg.set_alias("canary", canary, cur.generation)


# -- real models for the replay provider ----------------------------------------------------


def labelled_frame(seed: int, n: int = 600, week: int = 0) -> pd.DataFrame:
    """Rows whose label follows x1 + x2 > 0 with 5% noise."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = (x1 + x2 > 0) ^ (rng.random(n) < 0.05)
    return pd.DataFrame(
        {
            "id": [f"r{seed}-{i}" for i in range(n)],
            "week": week,
            "x1": x1,
            "x2": x2,
            "colour": rng.choice(["red", "blue"], size=n),
            "label": label.astype(int),
        }
    )


def write_history(store: Storage, window: str, df: pd.DataFrame) -> None:
    from retrain.data.io import to_parquet_bytes

    store.write_bytes(f"datasets/{window}/labelled.parquet", to_parquet_bytes(df, {}))


def register_model(
    store: Storage, cfg: Config, version: str, train: pd.DataFrame, flip: bool = False
) -> None:
    """Fit the config's model on `train` (labels inverted if `flip`) and register it."""
    from retrain.training.artifact import card_from_config, model_files
    from retrain.training.model import fit_model

    data = train.assign(label=1 - train["label"]) if flip else train
    model = fit_model(cfg, data)
    card = card_from_config(cfg, version=version, parent=None, created_at=T0)
    Registry(store, cfg.name).register(version, model_files(model, card))


def events_of(reg: Registry, kind: str) -> list[Mapping[str, Any]]:
    return [e for e in reg.events() if e["kind"] == kind]


def run_script(
    policy: Any, script: list[Observations]
) -> tuple[RolloutState, list[tuple[int, tuple[object, ...]]]]:
    """Step a rollout of v2 against v1 one analysis a minute through `script`; the ticks at
    which it decided something, and its final state (stops at a terminal phase)."""
    state, _ = start_rollout("loans", "v1", "v2", policy, T0)
    decided = []
    now = T0
    for tick, obs in enumerate(script, start=1):
        now += timedelta(seconds=60)
        state, actions = advance(state, obs, now)
        if actions:
            decided.append((tick, actions))
        if state.terminal:
            break
    return state, decided
