"""The champion's scores of a window, computed once per (champion, window) pair.

Scoring a window means loading the champion (a skops file checked against its card and the
trusted-type list: most of a monitor check's CPU for a gradient-boosted model) and predicting.
A monitor checks the newest window again and again until the next one arrives, so the scores
are kept in the model's store (``triggers/<model>/champion-scores.json``, beside the trigger
state) under two digests:

- the champion's: its version, the sha256 of its model and card files, the library versions
  that load and run it, and the task and data settings the scoring reads;
- the window's: `content_sha256` of the window's rows (every column, in row order).

A check whose two digests match the stored ones reuses the stored scores (the same bytes
scored by the same libraries give the same scores); any other check loads the champion,
scores, and replaces the entry. One entry per model and slot (the last window scored in that
role: the checked window, and ``labelled`` for the newest labelled window the monitor judges
the champion on, ``champion-scores-labelled.json``; each at most `MAX_CACHED_BYTES`), written
atomically; an entry that cannot be read back intact is a miss.
A `--once` monitor (a CronJob) keeps the scores across passes; one with `--every` also keeps
the loaded champion in memory while its files' bytes are unchanged.

Within one check (`ChampionScorer.one_check`) each registered file is read from the registry
once: the champion's card serves its scores of two windows, its training window and the
launches that serve, and its model and profile serve both windows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from retrain._card import ModelCard
from retrain._safety import sha256_hex
from retrain.config import Config
from retrain.data.io import content_sha256
from retrain.errors import RetrainError
from retrain.registry import MODEL_CARD_FILE, MODEL_FILE, Registry
from retrain.storage import Storage
from retrain.training.artifact import library_versions, load_model
from retrain.training.model import predict_scores

__all__ = ["MAX_CACHED_BYTES", "ChampionScorer", "scores_cache_key"]

#: Scores larger than this are not stored (recomputed at every check instead).
MAX_CACHED_BYTES = 64 * 1024 * 1024
_FORMAT = 1


def scores_cache_key(model: str, slot: str = "") -> str:
    """Where a model's cached champion scores (of one slot: "" for the checked window) live."""
    return f"triggers/{model}/champion-scores{'-' + slot if slot else ''}.json"


class ChampionScorer:
    """Scores windows with a model's champion, from the cache when neither changed.

    Args:
        cfg: the use case's config.
        store: the model's store (the cache lives there).
        registry: the model's registry.
        cache: keep and reuse scores in the store (off: load and score at every call, still
            keeping the loaded champion while its files are unchanged).
    """

    def __init__(
        self, cfg: Config, store: Storage, registry: Registry, *, cache: bool = True
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = registry
        self.cache = cache
        # The champion loaded by an earlier call, keyed by its version and the sha256 of its
        # model and card files: a monitor checking every few minutes loads it once.
        self._loaded: tuple[tuple[str, str, str], Any] | None = None
        # The registered files read during the check in progress (None: no check is).
        self._check_reads: dict[tuple[str, str], bytes] | None = None

    @contextmanager
    def one_check(self) -> Iterator[None]:
        """Within, `read_file` reads each registered file once; the next check reads it again
        (a file rewritten since is then seen, and refused)."""
        self._check_reads = {}
        try:
            yield
        finally:
            self._check_reads = None

    def read_file(self, version: str, name: str) -> bytes:
        """A registered file of `version` (`Registry.read_file`), read once per check.

        Raises:
            RetrainError: as `Registry.read_file` (a failed read is not kept).
        """
        if self._check_reads is None:
            return self.registry.read_file(version, name)
        key = (version, name)
        if key not in self._check_reads:
            self._check_reads[key] = self.registry.read_file(version, name)
        return self._check_reads[key]

    def scores(self, champion: str, current: pd.DataFrame, *, slot: str = "") -> np.ndarray:
        """The champion's scores of `current` (as `predict_scores` returns them), kept in the
        cache entry `slot` (one window each, so two windows scored by turns both stay cached).

        Both files are read at every call, or once in a check (`one_check`); the registry
        refuses one changed since its registration, so a rewritten model or card is a new
        digest: loaded, verified and scored again.

        Raises:
            RetrainError: the champion cannot be loaded or cannot score the window.
        """
        identity, data, card_bytes = self._files(champion)
        digests = (self._champion_digest(identity), content_sha256(current))
        key = scores_cache_key(self.cfg.name, slot)
        if self.cache:
            cached = self._read(key, digests, len(current))
            if cached is not None:
                return cached
        model = self._model(identity, data, card_bytes)
        scores = predict_scores(model, current, self.cfg)
        if self.cache:
            self._write(key, digests, scores)
        return scores

    def model(self, champion: str) -> Any:
        """The champion's model, loaded and verified against its card when the model's or the
        card's bytes are new to this scorer (the same bytes of both are the same verified model).

        Raises:
            RetrainError: the files changed since registration, or the model is refused.
        """
        return self._model(*self._files(champion))

    def _files(self, champion: str) -> tuple[tuple[str, str, str], bytes, bytes]:
        data = self.read_file(champion, MODEL_FILE)
        card_bytes = self.read_file(champion, MODEL_CARD_FILE)
        return (champion, sha256_hex(data), sha256_hex(card_bytes)), data, card_bytes

    def _model(self, identity: tuple[str, str, str], data: bytes, card_bytes: bytes) -> Any:
        if self._loaded is not None and self._loaded[0] == identity:
            return self._loaded[1]
        model = load_model(data, ModelCard.from_json(card_bytes.decode()))
        self._loaded = (identity, model)
        return model

    def _champion_digest(self, identity: tuple[str, str, str]) -> str:
        cfg = self.cfg
        what = {
            "champion": list(identity),
            "libraries": library_versions(),
            "task": cfg.task,
            "data": cfg.data.model_dump(mode="json"),
        }
        return sha256_hex(json.dumps(what, sort_keys=True).encode())

    def _read(self, key: str, digests: tuple[str, str], rows: int) -> np.ndarray | None:
        """The stored scores if the entry is for these digests and reads back intact."""
        try:
            entry = json.loads(self.store.read_bytes(key))
            if entry.get("format") != _FORMAT or (entry["champion"], entry["window"]) != digests:
                return None
            raw = base64.b64decode(entry["scores"], validate=True)
            if sha256_hex(raw) != entry["sha256"]:
                return None
            scores = np.frombuffer(raw, dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])
        except (RetrainError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, unreadable or damaged: score again
        if scores.shape[:1] != (rows,):
            return None
        return scores.copy()  # writable, like a fresh prediction

    def _write(self, key: str, digests: tuple[str, str], scores: np.ndarray) -> None:
        raw = np.ascontiguousarray(scores).tobytes()
        if len(raw) > MAX_CACHED_BYTES:
            return
        entry = {
            "format": _FORMAT,
            "champion": digests[0],
            "window": digests[1],
            "dtype": scores.dtype.str,
            "shape": list(scores.shape),
            "sha256": sha256_hex(raw),
            "scores": base64.b64encode(raw).decode("ascii"),
        }
        try:
            self.store.write_bytes(key, json.dumps(entry).encode())
        except RetrainError:  # a cache: the check has its scores, the next one scores again
            return
