"""Which labelled evaluation rows a replay step draws from (`retrain.rollout.providers`).

The population is the evaluation rows (the share of ids `retrain.data.split.evaluation_mask`
keeps out of every training set) of some labelled windows of the history store:

- ``rollout.replay.windows: auto`` (the default): the fewest newest windows whose evaluation
  rows reach ``rollout.min_labelled`` labels (and, when a ranking check judges a binary
  classifier, ``rollout.min_positives`` labels of the positive class,
  ``labels.positive_class`` or classes[1]), at most
  ``rollout.replay.max_windows``. Older windows' evaluation rows are still rows no model
  trained on; they may come from before a change of concept, which an int avoids.
- an int: exactly that many newest windows.
- `pinned` (the windows the step's first analysis used, kept in the rollout state): exactly
  those, so a window landing mid-step does not change the permutation the step's analyses
  take disjoint chunks of. A pinned window no longer in the store is named in `missing`
  (without it the population, and so the permutation, would change and later chunks
  overlap rows already pooled): the provider ends the step unjudged instead.
- nothing pinned in a step that has already pooled analyses (a state saved mid-step by a
  release that did not keep the windows): what that release drew from, the newest int
  windows, or the newest one under auto (its default was ``windows: 1``), so the step's
  later chunks do not overlap rows it pooled.

Under auto, windows older than the canary's training window (its model card's ``window``)
are named in the reason: their rows are of an earlier regime, which the champion may fit
better.

A label is the class it is by `retrain.data.targets.label_key` (text "1" and the integer 1
are one label), here and in the provider's scoring (`retrain.data.targets.class_positions`),
and the chosen windows' targets are made one dtype (`reconcile_targets`). Windows whose
labels cannot be (text "yes" beside 0/1) are named in `refused`, and the provider ends the
step unjudged instead of scoring rows whose labels may not be the models' classes: leaving a
window out would have to guess which windows hold the right labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from retrain._card import ModelCard
from retrain.config import Config
from retrain.data.io import from_parquet_bytes
from retrain.data.split import evaluation_mask
from retrain.data.targets import class_positions, reconcile_targets
from retrain.data.windows import window_sort_key
from retrain.errors import RetrainError, ValidationError
from retrain.evaluation.metrics import positive_position
from retrain.registry import MODEL_CARD_FILE, Registry
from retrain.settings.rollout import is_rank_check
from retrain.storage import Storage

__all__ = ["Population", "replay_population"]


@dataclass(frozen=True)
class Population:
    """The evaluation rows, the windows they come from (oldest first), and why those, in
    words (e.g. "3 windows to reach min_labelled 500"); `missing`: pinned windows no longer
    in the store; `older`: whether labelled windows older than those exist (more windows
    could bring more labels); `capped`: auto's windows are ``max_windows`` of them and short
    of what it needs (it stopped at the cap); `refused`: why the windows' labels cannot be
    compared as one target ("": they can)."""

    rows: pd.DataFrame
    windows: tuple[str, ...]
    why: str
    missing: tuple[str, ...] = ()
    older: bool = False
    capped: bool = False
    refused: str = ""


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
    """The positive class (``labels.positive_class``, else classes[1]) when a ranking check
    will judge a binary classifier, else None."""
    if cfg.task != "classification" or classes is None or len(classes) != 2:
        return None
    if not any(is_rank_check(c.name) for c in cfg.rollout.checks_for(cfg.task)):
        return None
    positive = cfg.labels.positive_class
    if positive is None:
        return classes[1]
    # Named but not among the model's classes: refused here, or the step would wait for ever
    # for positives it can never count.
    positive_position(positive, classes)
    return positive


def _counts(rows: pd.DataFrame, target: str, positive: object | None) -> tuple[int, int]:
    """The labels of `rows`, and those that are `positive` (by `label_key`; 0 if None)."""
    labels = rows[target]
    found = 0 if positive is None else int((class_positions(labels, [positive]) == 0).sum())
    return int(labels.notna().sum()), found


def _enough(cfg: Config, labelled: int, positives: int, positive: object | None) -> bool:
    rollout = cfg.rollout
    return labelled >= rollout.min_labelled and (
        positive is None or positives >= rollout.min_positives
    )


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
        more, found = _counts(rows, cfg.target, positive)
        labelled, positives = labelled + more, positives + found
        if _enough(cfg, labelled, positives, positive):
            n = len(taken)
            return taken, f"auto: {n} window{'s' if n > 1 else ''} to reach {need}"
    if len(windows) > cap:
        return taken, f"auto: rollout.replay.max_windows {cap} reached short of {need}"
    return taken, f"auto: all {len(taken)} labelled window(s), short of {need}"


def _training_window(store: Storage, cfg: Config, version: str) -> str | None:
    """The window `version` was trained for (its model card's ``window``; None: unknown)."""
    try:
        raw = Registry(store, cfg.name).read_file(version, MODEL_CARD_FILE)
        window = ModelCard.from_json(raw.decode()).window
    except (RetrainError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return None if window is None else str(window)


def _before(cfg: Config, windows: Sequence[str], trained: str | None) -> str:
    """Words naming the `windows` older than the canary's training window, or ""."""
    if trained is None:
        return ""
    try:
        start = window_sort_key(cfg.data, trained)
        older = [w for w in windows if window_sort_key(cfg.data, w) < start]
    except (RetrainError, ValueError, TypeError):
        return ""
    if not older:
        return ""
    return (
        f"; includes window(s) {', '.join(older)} before the canary's training window "
        f"{trained}: rows of an earlier regime, which the champion may fit better"
    )


def replay_population(
    store: Storage,
    cfg: Config,
    pinned: Sequence[str] = (),
    classes: Sequence[object] | None = None,
    pooled: int = 0,
    canary: str | None = None,
) -> Population:
    """The labelled evaluation rows a replay step draws from (see the module docstring).

    `classes` are the canary's classes (for the positives `auto` counts), `pooled` the step's
    analyses already pooled, `canary` its version (for its training window)."""
    windows = _labelled_windows(store, cfg)
    setting = cfg.rollout.replay.windows
    missing: tuple[str, ...] = ()
    positive = _positive_class(cfg, classes)
    if pinned:
        keep = set(pinned)
        chosen = [(w, _evaluation_rows(store, cfg, k)) for w, k in windows if w in keep]
        why = "kept from the step's first analysis"
        missing = tuple(w for w in pinned if w not in {w for w, _ in chosen})
    elif pooled:
        n = 1 if setting == "auto" else setting
        chosen = [(w, _evaluation_rows(store, cfg, k)) for w, k in windows[-n:]]
        was = "its default windows: 1" if setting == "auto" else "rollout.replay.windows"
        why = f"the newest {n} window(s), as drawn by the release that saved this step ({was})"
    elif setting == "auto":
        chosen, why = _auto(store, cfg, windows, positive)
    else:
        chosen = [(w, _evaluation_rows(store, cfg, k)) for w, k in windows[-setting:]]
        why = f"rollout.replay.windows {setting}"
    names = tuple(w for w, _ in chosen)
    if setting == "auto" and canary is not None:
        why += _before(cfg, names, _training_window(store, cfg, canary))
    older = bool(names) and names[0] != windows[0][0]
    capped = False
    if setting == "auto" and older and len(names) >= cfg.rollout.replay.max_windows:
        # At the cap: whether auto stopped there short (the same test for kept windows).
        counts = [_counts(rows, cfg.target, positive) for _, rows in chosen]
        got = (sum(n for n, _ in counts), sum(p for _, p in counts))
        capped = not _enough(cfg, *got, positive)
    chosen = [(w, rows) for w, rows in chosen if not rows.empty]
    if not chosen:
        return Population(pd.DataFrame(), (), why, missing, older, capped)
    try:
        frames = reconcile_targets(
            [rows for _, rows in chosen], [f"window {w}" for w, _ in chosen], cfg.target
        )
    except ValidationError as err:
        refused = str(err).replace("\n  - ", "; ")  # the fix, on the same line
        return Population(pd.DataFrame(), names, why, missing, older, capped, refused)
    rows = pd.concat(frames, ignore_index=True)
    return Population(rows, names, why, missing, older, capped)
