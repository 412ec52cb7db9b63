"""``@provisional`` policies: the replay with `labels.provisional_windows` on.

At window ``i`` the newest labelled window ``j`` trains as usual, and the windows after it
that are not in history yet (``j+1`` to ``i``) add the labels known at window ``i``'s end, as
the label step gathers them in production (`retrain.steps` keeps them in the run's folder,
never in history). So a policy that retrains every window retrains even when no new window
has reached ``labels.min_coverage``: its data has grown by a day's partial labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from retrain.config import Config
from retrain.data.io import from_parquet_bytes
from retrain.data.windows import parse_window
from retrain.errors import ValidationError
from retrain.labels import ProvisionalLabels
from retrain.steps._provisional import gather_provisional
from retrain.storage import Storage

__all__ = ["keep_provisional", "labelling_config", "provisional_config"]


def provisional_config(cfg: Config, windows: int) -> Config:
    """`cfg` with provisional labels on: its own bound if it sets one, else every window of
    the replay (`windows`): all those not yet in history."""
    bound = cfg.labels.provisional_windows or max(1, windows)
    return cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"provisional_windows": bound})}
    )


def labelling_config(cfg: Config) -> Config:
    """`cfg` for the replay's label steps: each window is labelled in a run of its own, so
    the replay gathers a training run's provisional rows itself (`keep_provisional`)."""
    return cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"provisional_windows": 0})}
    )


def keep_provisional(
    cfg: Config,
    store: Storage,
    windows: Sequence[str],
    dataset: Callable[[int], Path],
    labels: pd.DataFrame,
    i: int,
    j: int,
) -> ProvisionalLabels:
    """Keep, for the training run of window `j` at window `i`'s end (run id
    ``bt-<i>-train``), the labels known then of the windows after `j` not in history; their
    events are the replay's ingested datasets (`dataset(k)`: window ``k``'s checked rows)."""
    index = {parse_window(cfg.data, w).id: k for k, w in enumerate(windows)}

    def events(window_id: str) -> pd.DataFrame:
        k = index.get(window_id)
        if k is None or not dataset(k).exists():
            raise ValidationError(f"window {window_id} was not ingested")
        return from_parquet_bytes(dataset(k).read_bytes())[0]

    as_of = parse_window(cfg.data, windows[i]).end if cfg.labels.time_column else None
    run_id = f"bt-{i:05d}-train"  # the replay's training run at window i
    return gather_provisional(
        cfg, store, run_id, windows[j], as_of, events_for=events, labels=labels
    )
