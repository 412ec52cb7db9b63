"""Which labelled evaluation rows a replay step draws from (`retrain.rollout.providers`).

The population is the evaluation rows (the share of ids `retrain.data.split.evaluation_mask`
keeps out of every training set) of some labelled windows of the history store:

- ``rollout.replay.windows: auto`` (the default): the fewest newest windows whose evaluation
  rows reach ``rollout.min_labelled`` labels (and, when a ranking check judges a binary
  classifier, ``rollout.min_positives`` labels of classes[1]), at most
  ``rollout.replay.max_windows``. Older windows' evaluation rows are still rows no model
  trained on; they may come from before a change of concept, which an int avoids.
- an int: exactly that many newest windows.
- `pinned` (the windows the step's first analysis used, kept in the rollout state): exactly
  those, so a window landing mid-step does not change the permutation the step's analyses
  take disjoint chunks of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from retrain.config import Config
from retrain.data.io import from_parquet_bytes
from retrain.data.split import evaluation_mask
from retrain.data.windows import window_sort_key
from retrain.errors import ValidationError
from retrain.settings.rollout import is_rank_check
from retrain.storage import Storage

__all__ = ["Population", "replay_population"]


@dataclass(frozen=True)
class Population:
    """The evaluation rows, the windows they come from (oldest first), and why those, in
    words (e.g. "3 windows to reach min_labelled 500")."""

    rows: pd.DataFrame
    windows: tuple[str, ...]
    why: str


def _labelled_windows(store: Storage, cfg: Config) -> list[tuple[str, str]]:
    """(window, key) of every labelled window in the store, oldest first."""
    keys = [k for k in store.list("datasets") if k.endswith("/labelled.parquet")]
    ordered = sorted(
        ((window_sort_key(cfg.data, k.split("/")[1]), k.split("/")[1], k) for k in keys),
        key=lambda t: t[0],
    )
    return [(w, k) for _, w, k in ordered]


def _evaluation_rows(store: Storage, cfg: Config, key: str) -> pd.DataFrame:
    rows = from_parquet_bytes(store.read_bytes(key))[0]
    if cfg.target not in rows.columns:
        raise ValidationError(
            f"history windows lack the target column '{cfg.target}': cannot replay them"
        )
    if cfg.data.id_column not in rows.columns:
        raise ValidationError(
            f"history windows lack the id column '{cfg.data.id_column}': cannot tell "
            "evaluation rows from training rows"
        )
    # Evaluation rows only: a row either model trained on would flatter it.
    share = cfg.training.evaluation_share
    return rows[evaluation_mask(rows[cfg.data.id_column], share, cfg.name)]


def _positive_class(cfg: Config, classes: Sequence[object] | None) -> object | None:
    """classes[1] when a ranking check will judge a binary classifier, else None."""
    if cfg.task != "classification" or classes is None or len(classes) != 2:
        return None
    if not any(is_rank_check(c.name) for c in cfg.rollout.checks_for(cfg.task)):
        return None
    return classes[1]


def _auto(
    store: Storage, cfg: Config, windows: list[tuple[str, str]], positive: object | None
) -> tuple[list[tuple[str, pd.DataFrame]], str]:
    """The fewest newest windows that bring the labels (and positives) a step needs."""
    rollout = cfg.rollout
    cap = rollout.replay.max_windows
    need = f"min_labelled {rollout.min_labelled}"
    if positive is not None:
        need += f" and min_positives {rollout.min_positives}"
    taken: list[tuple[str, pd.DataFrame]] = []
    labelled = positives = 0
    for window, key in reversed(windows[-cap:]):
        rows = _evaluation_rows(store, cfg, key)
        taken.insert(0, (window, rows))
        target = rows[cfg.target]
        labelled += int(target.notna().sum())
        if positive is not None:
            positives += int((target == positive).sum())
        enough = positive is None or positives >= rollout.min_positives
        if labelled >= rollout.min_labelled and enough:
            n = len(taken)
            return taken, f"auto: {n} window{'s' if n > 1 else ''} to reach {need}"
    if len(windows) > cap:
        return taken, f"auto: rollout.replay.max_windows {cap} reached short of {need}"
    return taken, f"auto: all {len(taken)} labelled window(s), short of {need}"


def replay_population(
    store: Storage,
    cfg: Config,
    pinned: Sequence[str] = (),
    classes: Sequence[object] | None = None,
) -> Population:
    """The labelled evaluation rows a replay step draws from (see the module docstring).

    `classes` are the canary's classes (for the positives `auto` counts)."""
    windows = _labelled_windows(store, cfg)
    setting = cfg.rollout.replay.windows
    if pinned:
        keep = set(pinned)
        chosen = [(w, _evaluation_rows(store, cfg, k)) for w, k in windows if w in keep]
        why = "kept from the step's first analysis"
    elif setting == "auto":
        chosen, why = _auto(store, cfg, windows, _positive_class(cfg, classes))
    else:
        chosen = [(w, _evaluation_rows(store, cfg, k)) for w, k in windows[-setting:]]
        why = f"rollout.replay.windows {setting}"
    frames = [rows for _, rows in chosen if not rows.empty]
    if not frames:
        return Population(pd.DataFrame(), (), why)
    rows = pd.concat(frames, ignore_index=True)
    return Population(rows, tuple(w for w, _ in chosen), why)
