"""A run's provisional windows: gathered by `label`, used by `train`, never in history.

With ``labels.provisional_windows`` set, the label step, after committing its own window,
joins the labels known as of the run's time to the newest windows after it that are not in
history (`retrain.labels.provisional_window_ids`), each read from the source and checked as
ingest checks it, and writes their labelled rows to ``runs/<run_id>/provisional.parquet``:
the run's own folder, beside its step records, rewritten whole by a re-run of the run, so a
crash at any point converges. History (``datasets/``) is never written here. The train step
reads the rows back and adds them to the new window's (`with_provisional`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.history import history_key, history_windows
from retrain.data.ingest import EmptyWindow, ingest_window
from retrain.data.io import content_sha256, from_parquet_bytes, to_parquet_bytes
from retrain.data.schema import Schema, known_columns
from retrain.data.source import read_matching, read_window
from retrain.data.targets import reconcile_targets
from retrain.data.windows import parse_window
from retrain.drift import champion_reference
from retrain.errors import ValidationError
from retrain.labels import (
    ArrivalCheck,
    ProvisionalLabels,
    check_arrival,
    find_reference,
    join_provisional,
    provisional_window_ids,
    search_depth,
)
from retrain.labels.join import label_columns
from retrain.steps._state import SCHEMA_KEY
from retrain.steps.records import check_run_id
from retrain.storage import Storage

__all__ = [
    "EventsFor",
    "gather_provisional",
    "provisional_key",
    "read_provisional",
    "source_events",
    "with_provisional",
]

#: A window's checked events by window id (raises EmptyWindow or ValidationError).
EventsFor = Callable[[str], pd.DataFrame]


def provisional_key(run_id: str) -> str:
    """Where a run keeps its provisional rows: its own folder, not history."""
    return f"runs/{check_run_id(run_id)}/provisional.parquet"


def source_events(cfg: Config, store: Storage) -> EventsFor:
    """Read a window from the data source and check it as ingest does (schema, champion's
    value reference), so provisional rows are the rows the window's own run will label."""
    schema = Schema.from_json(store.read_text(SCHEMA_KEY)) if store.exists(SCHEMA_KEY) else None
    reference = champion_reference(cfg, store) if schema is not None else None

    def read(window_id: str) -> pd.DataFrame:
        window = parse_window(cfg.data, window_id)
        source, facts = read_window(
            cfg.data.uri, cfg.data.format, cfg.data, window, columns=known_columns(cfg)
        )
        return ingest_window(cfg, source, window, schema, reference, facts=facts).data

    return read


def _history_ids(store: Storage) -> set[str]:
    ids = set()
    for key in store.list("datasets"):
        parts = key.split("/")
        if len(parts) > 1 and key == history_key(parts[1]):
            ids.add(parts[1])
    return ids


def gather_provisional(
    cfg: Config,
    store: Storage,
    run_id: str,
    window_id: str,
    as_of: Any,
    *,
    events_for: EventsFor | None = None,
    labels: pd.DataFrame | None = None,
) -> ProvisionalLabels:
    """Join the labels known as of `as_of` to the run's provisional windows and keep the rows
    under `provisional_key` (replacing a previous attempt's). `events_for` defaults to the
    source read with ingest's checks; `labels` to the label source (only the windows' ids)."""
    ids = provisional_window_ids(cfg, window_id, as_of, _history_ids(store))
    read = events_for if events_for is not None else source_events(cfg, store)
    events: list[tuple[str, pd.DataFrame | str]] = []
    for wid in ids:
        try:
            events.append((wid, read(wid)))
        except EmptyWindow:
            events.append((wid, "no events"))
        except ValidationError as err:
            events.append((wid, f"ingest checks failed: {err}"))
    given = labels
    if labels is None:
        frames = [f for _, f in events if isinstance(f, pd.DataFrame)]
        labels = _labels_of(cfg, frames)
    arrival = None
    if ids and cfg.labels.check_arrival:
        arrival = _arrival(cfg, store, window_id, ids, as_of, events_for, given)
    result = join_provisional(cfg, events, labels, as_of, arrival=arrival)
    meta = {**result.report(), "sha256": content_sha256(result.rows)}
    store.write_bytes(provisional_key(run_id), to_parquet_bytes(result.rows, meta))
    return result


def _labels_of(cfg: Config, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The label source's labels of the events in `frames` (a filtered read)."""
    wanted = (
        pd.concat([f[cfg.data.id_column] for f in frames], ignore_index=True)
        if frames
        else pd.Series(dtype=object)
    )
    labels, _ = read_matching(
        cfg.labels.uri, cfg.labels.format, cfg.labels.id_column, wanted, label_columns(cfg)
    )
    return labels


def _arrival(
    cfg: Config,
    store: Storage,
    window_id: str,
    ids: list[str],
    as_of: Any,
    read: EventsFor | None,
    labels: pd.DataFrame | None,
) -> ArrivalCheck:
    """The arrival check on the newest settled of the run's own window and those before it
    (`retrain.labels._arrival`). A candidate's events are read by `read` (the backtest's
    datasets) or, by default, as their ids and times from the source; its labels are `labels`
    or the label source's for those ids."""
    depth = search_depth(len(ids))
    older = [w.id for w in reversed(history_windows(store, cfg, window_id))][:depth]
    reference, why = find_reference(
        cfg,
        [window_id, *older],
        read if read is not None else _ids_and_times(cfg),
        (lambda _: labels) if labels is not None else (lambda events: _labels_of(cfg, [events])),
        as_of,
        ids,
    )
    return check_arrival(cfg.task, reference, why)


def _ids_and_times(cfg: Config) -> EventsFor:
    """A window's event ids and times from the source: all the arrival check reads of them."""
    columns = [cfg.data.id_column, cfg.data.time_column]

    def read(window_id: str) -> pd.DataFrame:
        window = parse_window(cfg.data, window_id)
        source, _ = read_window(cfg.data.uri, cfg.data.format, cfg.data, window, columns=columns)
        return source

    return read


def read_provisional(store: Storage, run_id: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The rows and report `gather_provisional` kept for this run, or None (none gathered)."""
    key = provisional_key(run_id)
    if not store.exists(key):
        return None
    return from_parquet_bytes(store.read_bytes(key), store.uri(key))


def with_provisional(
    cfg: Config, store: Storage, run_id: str, new: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The new window's rows plus the run's provisional rows (when the option is on and the
    label step kept some), and the provisional report with its rows' sha256 (None: none)."""
    if cfg.labels.provisional_windows == 0:
        return new, None
    kept = read_provisional(store, run_id)
    if kept is None:
        return new, None
    rows, report = kept
    if not len(rows):
        return new, report
    both = reconcile_targets([new, rows], ["the new window", "provisional rows"], cfg.target)
    return pd.concat(both, ignore_index=True), report
