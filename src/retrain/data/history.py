"""The labelled history: one immutable Parquet object per window, ``datasets/<window>/``.

The label step commits each labelled window here (create-only); training, the monitor and
the backtest read it back. Training reads it window by window and keeps a sample no larger
than the mix can use (`history_row_budget`), so its memory does not grow with the history.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrain.config import Config
from retrain.data.io import from_parquet_bytes, schema_meta, to_parquet_bytes
from retrain.data.quotas import proportional_quotas
from retrain.data.targets import (
    label_key,
    plain_values,
    reconcile_fix,
    select_joinable,
    split_reconcilable,
    target_kind,
)
from retrain.data.windows import window_sort_key
from retrain.errors import AlreadyExists, ValidationError
from retrain.storage import Storage

__all__ = [
    "HistoryWindow",
    "LoadedHistory",
    "check_joins_history",
    "commit_history",
    "committed_meta",
    "history_key",
    "history_row_budget",
    "history_windows",
    "load_history",
    "read_history",
]

# The sampling stream of `load_history` (the training mix uses streams 1-3 of the same seed).
_STREAM_HISTORY_LOAD = 4

_Label = tuple[str, Any]  # a label as `retrain.data.targets.label_key` compares it


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


@dataclass(frozen=True)
class HistoryWindow:
    """One labelled window of history: its id, where it is kept and how many rows it holds."""

    id: str
    key: str
    rows: int


def history_windows(store: Storage, cfg: Config, before_window: str) -> list[HistoryWindow]:
    """The labelled windows strictly before `before_window`, oldest first (footers read only)."""
    cutoff = window_sort_key(cfg.data, before_window)
    found = []
    for key in store.list("datasets"):
        if not key.endswith("/labelled.parquet"):
            continue
        wid = key.split("/")[1]
        order = window_sort_key(cfg.data, wid)
        if order < cutoff:
            found.append((order, HistoryWindow(wid, key, _row_count(store, key))))
    found.sort(key=lambda t: t[0])
    return [w for _, w in found]


def committed_meta(store: Storage, window_id: str) -> dict[str, Any] | None:
    """The metadata the window's commit to history recorded (its run, its labels' as-of time),
    from the footer only; None if the window is not in history.

    Raises:
        ValidationError: the committed object is not a dataset this package wrote.
    """
    key = history_key(window_id)
    if not store.exists(key):
        return None
    with store.open_read(key) as reader:
        try:
            kv = pq.ParquetFile(reader).schema_arrow.metadata
        except pa.ArrowException as err:
            raise ValidationError(
                f"{store.uri(key)} is not a readable Parquet dataset: {err}"
            ) from None
    return schema_meta(kv, store.uri(key))


def _row_count(store: Storage, key: str) -> int:
    with store.open_read(key) as reader:
        try:
            return int(pq.ParquetFile(reader).metadata.num_rows)
        except pa.ArrowException as err:
            raise ValidationError(
                f"{store.uri(key)} is not a readable Parquet dataset: {err}"
            ) from None


def history_row_budget(cfg: Config, new_rows: int) -> int | None:
    """How many history rows the training mix can use when the new window has `new_rows`.

    None: no bound (the ``weighted`` mix trains on all of history when ``max_history_rows`` and
    ``max_train_rows`` are unset). The ``sample`` mix may also need enough rows for
    ``min_train_rows``.

    The mix draws ``historical_share`` of its training rows from history's training rows
    (capped by ``max_history_rows`` and ``max_train_rows``; the continuous replay share and cap
    too when continuous training is on), the forgetting gate ``history_holdout_rows`` from its
    evaluation rows, and pooling up to ``evaluation.min_rows`` evaluation rows. Each role is a
    fixed share of the rows (``evaluation_share``), so the budget is the largest need divided
    by its role's share, with a margin of a tenth for the spread of roles and labels between
    windows.
    """
    t = cfg.training
    e = t.evaluation_share
    new_training = new_rows * (1.0 - e)
    # Neither the training mix nor a continuous replay (a mix under its own share and cap)
    # takes more history than max_train_rows.
    caps = [x for x in (t.max_history_rows, t.max_train_rows) if x is not None]
    mixes = [(t.historical_share, min(caps) if caps else None)]
    c = cfg.continuous
    if c.enabled:
        share = t.historical_share if c.replay_share is None else c.replay_share
        cap = t.max_history_rows if c.replay_max_rows is None else c.replay_max_rows
        replay_caps = [x for x in (cap, t.max_train_rows) if x is not None]
        mixes.append((share, min(replay_caps) if replay_caps else None))
    wanted = 0.0
    for share, cap in mixes:
        rows = new_training * share / (1.0 - share)
        wanted = max(wanted, rows if cap is None else min(rows, cap))
    if t.mix == "weighted":
        if not caps:
            return None
        wanted = max(wanted, min(caps))
    wanted = max(wanted, t.min_train_rows - new_training)
    pooled = cfg.evaluation.min_rows if cfg.evaluation.pool_windows else 0
    need = max(wanted / (1.0 - e), t.history_holdout_rows / e, pooled / e)
    return math.ceil(need * 1.1)


@dataclass(frozen=True)
class LoadedHistory:
    """The history rows read for training, and how they were chosen (for the provenance)."""

    frame: pd.DataFrame | None
    windows: int
    stored_rows: int
    max_rows: int | None
    sampled: bool
    #: Windows left out because their labels cannot be one type with the others, and why.
    left_out: dict[str, str] = field(default_factory=dict)

    def notes(self) -> dict[str, Any]:
        """JSON-able provenance of the load."""
        return {
            "windows": self.windows,
            "stored_rows": self.stored_rows,
            "row_budget": self.max_rows,
            "sampled": self.sampled,
            "loaded_rows": 0 if self.frame is None else len(self.frame),
        }


def read_history(
    store: Storage, cfg: Config, before_window: str, *, max_rows: int | None = None
) -> LoadedHistory:
    """The labelled windows strictly before `before_window`, oldest first.

    With `max_rows` set and more rows stored than that, each window is read in turn and
    sampled down to its share of `max_rows` (largest remainders over the windows' sizes),
    stratified by label for classification (each label keeping a row when the window's share
    has room for one of each: `proportional_quotas`) and seeded by ``cfg.seed`` and the window
    id, so memory holds one window plus the sample however many windows exist, and the same
    seed and history give the same rows. Otherwise every row is returned, as stored.

    A window's share may round to fewer rows than it has labels (3 rows among 50,000 at 1,000
    rows). For classification every label of every window keeps a row all the same when
    `max_rows` has room for one row of each window's each label; else each label of the
    history keeps a row somewhere when `max_rows` has room for one of each label; else (fewer
    rows than labels) shares alone decide (`_needed_labels`). The rows this needs come from
    the windows furthest above their share; a sample that keeps those rows already is
    unchanged by the rule.

    Windows whose labels cannot be one type with the others are left out first, decided on
    every window's distinct labels (`select_joinable`: the most windows that can be one type,
    a tie going to the newest; a window with a non-finite label or one label written two ways
    on its own), each named with its own reason in `LoadedHistory.left_out`; the row budget is
    shared among the windows kept.
    """
    windows = history_windows(store, cfg, before_window)
    total = sum(w.rows for w in windows)
    # Windows labelled from sources of different types (0/1 and "0"/"1"): one target dtype.
    # A stored window that cannot join the others (the label step refuses such a window
    # before it is committed; one committed before that check) is left out and named, not
    # allowed to stop every later training: history is immutable. Decided on every window's
    # distinct labels, before any sampling, so the windows kept do not depend on `max_rows`.
    # A sample also counts each window's rows per label from the same read.
    sampled = max_rows is not None and total > max_rows
    counted = sampled and cfg.task == "classification"
    targets: list[pd.DataFrame | None] = []
    strata: list[_Strata] = []
    for w in windows:
        column = _stored_target_column(store, cfg, w)
        targets.append(None if column is None else column.to_frame().drop_duplicates())
        strata.append(_Strata.of(column) if column is not None and counted else _Strata([], []))
    kept_at, reasons = select_joinable(targets, [f"window {w.id}" for w in windows], cfg.target)
    left_out = {f"window {windows[i].id}": why for i, why in sorted(reasons.items())}
    use_at = [i for i in range(len(windows)) if i in kept_at or targets[i] is None]
    use = [windows[i] for i in use_at]
    used_rows: list[int] = [w.rows for w in use]
    needed = [set[_Label]() for _ in use]
    quotas = None
    if sampled and max_rows is not None:
        needed = _needed_labels(used_rows, [strata[i] for i in use_at], max_rows)
        # A window is not a class: its share may round to no row, unless it holds a label the
        # sample needs from it. Ties go to the older window.
        quotas = proportional_quotas(
            used_rows,
            max_rows,
            one_each=False,
            larger_first=False,
            least=[len(labels) for labels in needed],
        )
    frames: list[pd.DataFrame | None] = []
    for i, w in enumerate(use):
        frame = from_parquet_bytes(store.read_bytes(w.key), store.uri(w.key))[0]
        if quotas is not None and quotas[i] < len(frame):
            frame = _sample_window(frame, int(quotas[i]), cfg, w.id, needed[i])
        frames.append(frame)
    frames, more = split_reconcilable(frames, [f"window {w.id}" for w in use], cfg.target)
    left_out.update(more)  # none: the same distinct values were decided on
    kept = [f for f in frames if f is not None]
    if not kept:
        combined = None
    else:
        combined = kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)
    return LoadedHistory(combined, len(windows), total, max_rows, sampled, left_out)


def _stored_target_column(store: Storage, cfg: Config, w: HistoryWindow) -> pd.Series | None:
    """The target column of a stored window (None: no target)."""
    with store.open_read(w.key) as reader:
        try:
            table = pq.ParquetFile(reader).read(columns=[cfg.target])
        except KeyError:
            return None
        except pa.ArrowException as err:
            raise ValidationError(
                f"{store.uri(w.key)} is not a readable Parquet dataset: {err}"
            ) from None
    column: pd.Series = table.to_pandas()[cfg.target]
    return column


def _stored_target(store: Storage, cfg: Config, w: HistoryWindow) -> pd.DataFrame | None:
    """The target column of a stored window, its distinct values only (None: no target)."""
    column = _stored_target_column(store, cfg, w)
    return None if column is None else column.to_frame().drop_duplicates()


@dataclass(frozen=True)
class _Strata:
    """A window's labels (`label_key`; None: no label) and rows of each, in the order
    `_sample_window` stratifies them."""

    labels: list[_Label | None]
    rows: list[int]

    @classmethod
    def of(cls, column: pd.Series) -> _Strata:
        codes, labels = _label_codes(column)
        return cls(labels, np.bincount(codes, minlength=len(labels)).tolist())


def _label_codes(column: pd.Series) -> tuple[np.ndarray, list[_Label | None]]:
    """Each row's stratum, and each stratum's label (`label_key`; None: no label)."""
    codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=False)
    return codes, [None if pd.isna(v) else label_key(v) for v in plain_values(uniques)]


def _label_quotas(strata: _Strata, n: int, needed: set[_Label]) -> np.ndarray:
    """Rows of each label in a sample of `n` of the window's rows (`needed`: as many of those
    labels as `n` has room for keep a row)."""
    least = [int(label is not None and label in needed) for label in strata.labels]
    return proportional_quotas(strata.rows, n, larger_first=False, least=least)


def _needed_labels(window_rows: list[int], strata: list[_Strata], n: int) -> list[set[_Label]]:
    """The labels each window keeps a row of in a sample of `n` rows of history, whatever the
    window's share of `n`.

    Every label of every window when `n` has room for a row of each. Else, when `n` has room
    for a row of each label the history holds, each label from one window: one whose share
    keeps a row of it already if any (so a sample that holds every label is unchanged), else
    the window holding most of its rows, ties going to the older window. Else none: no
    sample of `n` rows holds every label.
    """
    labelled = [
        {x for x, r in zip(s.labels, s.rows, strict=True) if x is not None and r} for s in strata
    ]
    if n >= sum(len(labels) for labels in labelled):
        return labelled
    shares = proportional_quotas(window_rows, n, one_each=False, larger_first=False)
    holder: dict[_Label, tuple[tuple[bool, int], int]] = {}  # label -> (rank, window)
    for at, s in enumerate(strata):
        kept = s.rows if shares[at] >= sum(s.rows) else _label_quotas(s, int(shares[at]), set())
        for label, rows, got in zip(s.labels, s.rows, list(kept), strict=True):
            rank = (bool(got), rows)
            if label is not None and (label not in holder or rank > holder[label][0]):
                holder[label] = (rank, at)
    needed: list[set[_Label]] = [set() for _ in strata]
    if n >= len(holder):
        for label, (_, at) in holder.items():
            needed[at].add(label)
    return needed


def check_joins_history(store: Storage, cfg: Config, window_id: str, frame: pd.DataFrame) -> str:
    """Refuse a labelled window whose own labels are unusable (a non-finite label, one label
    written two ways) or that the windows history keeps could not keep with it, reading the
    stored windows' target columns only.

    Which windows are kept is decided over the stored windows and this one together as
    `read_history` decides it (`retrain.data.targets.select_joinable`: the most windows that
    can be one type, a tie going to the newest), so a stored window that is the odd one
    neither refuses this window nor keeps the good history out: it is left out.

    Returns:
        A note naming the stored windows history leaves out with this one ("": none).

    Raises:
        ValidationError: naming the window and the types, before the window is committed.
    """
    if cfg.target not in frame.columns:
        return ""
    windows = [w for w in history_windows(store, cfg, window_id) if w.id != window_id]
    targets = [_readable_target(store, cfg, w) for w in windows]
    targets.append(frame[[cfg.target]].drop_duplicates())
    names = [f"window {w.id}" for w in windows] + [f"window {window_id}"]
    kept, reasons = select_joinable(targets, names, cfg.target)
    new = len(windows)
    if new in reasons:
        types = sorted({_kind_of(t, cfg.target) for i, t in enumerate(targets) if i in kept})
        raise ValidationError(
            f"window {window_id} is not committed to history: {reasons[new].splitlines()[0]}",
            [
                "history is immutable: correct the label source's type for this window"
                + (f" (the stored windows kept are of {', '.join(types)})" if types else "")
                + " and run it again",
                reconcile_fix(),
            ],
        )
    odd = [(windows[i], why) for i, why in sorted(reasons.items())]
    return "; ".join(
        f"window {w.id} is left out of history ({why}); to remove it deliberately, delete"
        f" {store.uri(w.key)}"
        for w, why in odd
    )


def _readable_target(store: Storage, cfg: Config, w: HistoryWindow) -> pd.DataFrame | None:
    try:
        return _stored_target(store, cfg, w)
    except ValidationError:
        return None  # unreadable: read_history names it


def _kind_of(target: pd.DataFrame | None, column: str) -> str:
    return "no target" if target is None else target_kind(target[column])


def load_history(store: Storage, cfg: Config, before_window: str) -> pd.DataFrame | None:
    """All labelled windows strictly before `before_window`, oldest first."""
    return read_history(store, cfg, before_window).frame


def _sample_window(
    frame: pd.DataFrame, n: int, cfg: Config, window_id: str, needed: set[_Label]
) -> pd.DataFrame:
    """`n` rows of one window, in their stored order, proportionally per label (each label
    keeping at least one row when `n` is at least the number of labels, and each of `needed`
    when `n` has room for those)."""
    digest = hashlib.sha256(window_id.encode()).digest()
    rng = np.random.default_rng([cfg.seed, _STREAM_HISTORY_LOAD, int.from_bytes(digest[:8])])
    if cfg.task == "classification" and cfg.target in frame.columns:
        strata, labels = _label_codes(frame[cfg.target])
    else:
        strata, labels = np.zeros(len(frame), dtype=np.int64), [None]
    # Every label keeps a row when `n` has room for one of each, as in the training mix;
    # ties go to the lower label.
    counts = np.bincount(strata, minlength=len(labels)).tolist()
    quota = _label_quotas(_Strata(labels, counts), n, needed)
    chosen = [
        rng.choice(np.flatnonzero(strata == k), size=int(q), replace=False)
        for k, q in enumerate(quota)
        if q
    ]
    positions = np.sort(np.concatenate(chosen)) if chosen else np.arange(0)
    return frame.iloc[positions].reset_index(drop=True)
