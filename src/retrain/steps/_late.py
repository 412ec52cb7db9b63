"""Late labels of committed windows: gathered by `label`, added to history append-only.

A window enters history once its labels reach ``labels.min_coverage``; the labels that arrive
after that are the slow ones, and where lateness depends on the label (frauds confirmed by
chargebacks weeks later) they are a biased subset. With ``labels.late_windows`` set, the label
step, after committing its own window, looks at up to that many committed windows before it
(newest first) and, for each, joins the labels known as of the run's time (the same cut as the
main join) to the window's events that are not in history yet. Those rows are committed as
``datasets/<window>/late-<run_id>.parquet`` (`retrain.data.history.commit_late`, create-only):
nothing existing is rewritten, and an id already in the window's history (its committed part
or an earlier run's late part) is never added again.

A re-run of the same run leaves its own late part out of "already in history", so it
recomputes the same rows: the commit is then a no-op, and a crash at any point converges. The
window's id column is read first (from the source, with its time column to cut the window);
its full rows are read and checked as ingest checks them (`source_events`) only when labels
have arrived for ids not yet in history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.history import commit_late, history_ids, history_windows, late_key
from retrain.data.ingest import EmptyWindow
from retrain.data.io import content_sha256
from retrain.data.schema import as_category_strings
from retrain.data.source import read_matching, read_window
from retrain.data.windows import as_of_text, event_times, parse_window
from retrain.errors import ValidationError
from retrain.labels.join import join_labels, label_columns, without_coverage_floor
from retrain.steps._provisional import EventsFor, source_events
from retrain.steps.records import check_run_id
from retrain.storage import Storage

__all__ = ["LateLabels", "gather_late"]


@dataclass(frozen=True)
class LateLabels:
    """What a run added to earlier windows' history, window by window (newest first)."""

    windows: list[dict[str, Any]]  # window, events, in_history, added, coverage (or skipped)
    as_of: str | None

    @property
    def added(self) -> int:
        return sum(int(w.get("added", 0)) for w in self.windows)

    def report(self) -> dict[str, Any]:
        """JSON-able: for the run's label report."""
        return {
            "as_of": self.as_of,
            "rows": self.added,
            "windows": self.windows,
            "note": "late labels: rows of committed windows whose labels arrived after the "
            "commit, added as datasets/<window>/late-<run_id>.parquet (each id once)",
        }

    def markdown(self) -> str:
        """A section for the label report: each earlier window looked at, and its coverage."""
        lines = [
            "## Late labels of earlier windows (added to history)",
            "",
            f"Labels known as of {self.as_of or 'any time (no cut)'} for events of committed "
            f"windows not yet in history: {self.added} rows added.",
            "",
            "| window | events | in history before | added | coverage now | note |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for w in self.windows:
            coverage = "" if w.get("coverage") is None else f"{w['coverage']:.1%}"
            lines.append(
                f"| {w['window']} | {w.get('events', '')} | {w.get('in_history', '')} | "
                f"{w.get('added', '')} | {coverage} | {w.get('skipped', '')} |"
            )
        return "\n".join(lines) + "\n"


def gather_late(
    cfg: Config,
    store: Storage,
    run_id: str,
    window_id: str,
    as_of: Any,
    *,
    events_for: EventsFor | None = None,
) -> LateLabels:
    """Add to history the rows of up to ``labels.late_windows`` committed windows before
    `window_id` whose labels are known as of `as_of` and that history lacks. `events_for`
    defaults to the source read with ingest's checks."""
    check_run_id(run_id)
    limit = cfg.labels.late_windows
    earlier = history_windows(store, cfg, window_id)[::-1][:limit]
    read = events_for if events_for is not None else source_events(cfg, store)
    windows = [_one_window(cfg, store, run_id, w.id, as_of, read) for w in earlier]
    cut = as_of if cfg.labels.time_column else None
    return LateLabels(windows, None if cut is None else as_of_text(cut))


def _one_window(
    cfg: Config, store: Storage, run_id: str, window_id: str, as_of: Any, read: EventsFor
) -> dict[str, Any]:
    """Commit one window's late rows (if any); what was found, for the report."""
    ids = cfg.data.id_column
    # The run's own late part does not count as "in history": a re-run recomputes it.
    known = pd.Index(
        as_category_strings(history_ids(store, window_id, ids, skip=late_key(window_id, run_id)))
        .dropna()
        .unique()
    )
    out: dict[str, Any] = {"window": window_id, "in_history": len(known)}
    try:
        source_ids = _window_ids(cfg, window_id)
    except ValidationError as err:
        return {**out, "skipped": f"source read failed: {err}"}
    keys = as_category_strings(source_ids[ids])
    events = int(keys.dropna().nunique())
    out["events"] = events
    fresh = keys.notna().to_numpy() & (known.get_indexer(pd.Index(keys)) < 0)
    candidates = source_ids.loc[fresh].reset_index(drop=True)

    def done(added: int, **extra: Any) -> dict[str, Any]:
        coverage = (len(known) + added) / events if events else None
        return {**out, "added": added, "coverage": coverage, **extra}

    if candidates.empty:
        return done(0)
    labels, _ = read_matching(
        cfg.labels.uri, cfg.labels.format, cfg.labels.id_column, candidates[ids], label_columns(cfg)
    )
    anyhow = without_coverage_floor(cfg)
    try:
        probe = join_labels(anyhow, candidates, labels, as_of=as_of, events_ids_only=True)
    except ValidationError as err:
        return done(0, skipped=str(err))
    if probe.labelled.empty:
        return done(0)  # no label arrived for them: the full rows are not read
    try:
        rows = read(window_id)
    except EmptyWindow:
        return done(0, skipped="no events")
    except ValidationError as err:
        return done(0, skipped=f"ingest checks failed: {err}")
    row_keys = as_category_strings(rows[ids])
    rows = rows.loc[row_keys.notna().to_numpy() & (known.get_indexer(pd.Index(row_keys)) < 0)]
    if rows.empty:
        return done(0)
    try:
        result = join_labels(anyhow, rows.reset_index(drop=True), labels, as_of=as_of)
    except ValidationError as err:
        return done(0, skipped=str(err))
    if result.labelled.empty:
        return done(0)
    meta = {
        "window": window_id,
        "run_id": run_id,
        "rows": len(result.labelled),
        "labels_as_of": result.report["as_of"],
        "sha256": content_sha256(result.labelled),
    }
    commit_late(store, window_id, run_id, result.labelled, meta)
    return done(len(result.labelled), key=late_key(window_id, run_id))


def _window_ids(cfg: Config, window_id: str) -> pd.DataFrame:
    """The id and time columns of the source's events in the window (no other column read)."""
    window = parse_window(cfg.data, window_id)
    source, _ = read_window(
        cfg.data.uri, cfg.data.format, cfg.data, window, columns=[cfg.data.id_column]
    )
    time_col = cfg.data.time_column
    missing = [c for c in (cfg.data.id_column, time_col) if c not in source.columns]
    if missing:
        raise ValidationError(f"the source has no column {', '.join(map(repr, missing))}")
    times = event_times(source[time_col], cfg.data.time_kind, errors="coerce")
    inside = ((times >= window.start) & (times < window.end)).fillna(False)
    kept: pd.DataFrame = source.loc[inside.to_numpy(dtype=bool), [cfg.data.id_column, time_col]]
    return kept.reset_index(drop=True)
