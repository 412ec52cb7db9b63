"""The labelled history: one immutable Parquet object per window, ``datasets/<window>/``.

The label step commits each labelled window here (create-only); training, the monitor and
the backtest read it back.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.io import from_parquet_bytes, to_parquet_bytes
from retrain.data.windows import window_sort_key
from retrain.errors import AlreadyExists, ValidationError
from retrain.storage import Storage

__all__ = ["commit_history", "history_key", "load_history"]


def history_key(window_id: str) -> str:
    """Where the labelled rows of `window_id` are kept."""
    return f"datasets/{window_id}/labelled.parquet"


def commit_history(store: Storage, window_id: str, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Add a labelled window to history; a re-run with the same content is a no-op.

    Raises:
        ValidationError: the window is already in history with different content.
    """
    key = history_key(window_id)
    data = to_parquet_bytes(df, meta)
    try:
        store.create(key, data)
    except AlreadyExists:
        _, existing = from_parquet_bytes(store.read_bytes(key), store.uri(key))
        if existing.get("sha256") != meta["sha256"]:
            raise ValidationError(
                f"window {window_id} is already in history with different content "
                f"(sha256 {existing.get('sha256')} != {meta['sha256']}); history is immutable: "
                f"correct the source under a new window, or remove {store.uri(key)} deliberately"
            ) from None


def load_history(store: Storage, cfg: Config, before_window: str) -> pd.DataFrame | None:
    """All labelled windows strictly before `before_window`, oldest first."""
    cutoff = window_sort_key(cfg.data, before_window)
    frames = []
    for key in store.list("datasets"):
        if not key.endswith("/labelled.parquet"):
            continue
        wid = key.split("/")[1]
        if window_sort_key(cfg.data, wid) < cutoff:
            frames.append(
                (
                    window_sort_key(cfg.data, wid),
                    from_parquet_bytes(store.read_bytes(key), store.uri(key))[0],
                )
            )
    if not frames:
        return None
    frames.sort(key=lambda t: t[0])
    return pd.concat([f for _, f in frames], ignore_index=True)
