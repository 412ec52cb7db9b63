"""Why a backtest compared nothing: each policy's unscored windows, their reasons grouped.

A backtest whose means cover no window (no window was scored by every policy) has nothing to
compare; `unscored_reasons` says, per policy, why its windows went unscored, from what the
replay recorded: the skip reason (ingest or scoring failed), or, for windows no model served
yet, what the window's end recorded (no labels arrived, a failed label join or training).
`labels_hint` adds why no label may ever have arrived: label ids written differently from the
event ids (of another type, or matching once case, zero padding or a prefix is ignored).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from retrain.backtest.records import PolicyResult, WindowRecord
from retrain.config import Config
from retrain.data.source import read_head
from retrain.data.windows import event_times, parse_window
from retrain.errors import RetrainError
from retrain.labels.join import id_mismatch_hint, label_columns

__all__ = ["labels_hint", "unscored_reasons"]

#: Windows named per reason, and distinct examples given; the rest are counted.
_MAX_WINDOWS = 4
_MAX_EXAMPLES = 2
_MAX_CHARS = 400
_NO_MODEL = "no model served yet"
#: Rows of each source `labels_hint` reads: a hint on a failure path must not run out of memory.
_HEAD_ROWS = 5000


def _scored(w: WindowRecord) -> bool:
    return w.metric is not None and not math.isnan(w.metric)


def _kind(w: WindowRecord) -> str:
    """The kind of reason: ingest failed, scoring failed, no model served yet, no labels."""
    if w.skipped:
        return w.skipped.split(":", 1)[0]
    if w.champion is None:
        return _NO_MODEL
    return "metric undefined" if w.rows_scored else "no labelled row"


def _detail(w: WindowRecord) -> str:
    """What the record says about the window, on one line (a multi-line error joined)."""
    if w.skipped:
        text = w.skipped.split(":", 1)[1] if ":" in w.skipped else w.skipped
    elif w.champion is None:
        text = "; ".join(w.notes) or "nothing recorded"
    elif w.rows_scored:
        text = f"model {w.champion} served, but the metric is undefined on the window's labels"
        text += f" ({w.rows_scored} rows; e.g. ROC AUC on labels of one class)"
    else:
        text = f"model {w.champion} served, but no row of the window has a label"
    lines = [line.strip().removeprefix("- ") for line in text.strip().splitlines()]
    text = "; ".join(line for line in lines if line)
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 3] + "..."


def _shape(detail: str) -> str:
    """`detail` without its numbers and quoted values, so the same failure in two windows
    counts as one example."""
    return re.sub(r"\d+|'[^']*'|\[[^\]]*\)", "#", detail)


def _names(names: list[str]) -> str:
    more = len(names) - _MAX_WINDOWS
    return ", ".join(names[:_MAX_WINDOWS]) + (f" and {more} more" if more > 0 else "")


def unscored_reasons(results: list[PolicyResult]) -> list[str]:
    """One line per policy and kind of reason: how many windows, which, and an example of
    what was recorded (at most two distinct ones)."""
    lines = []
    for result in results:
        groups: dict[str, list[WindowRecord]] = {}
        for w in result.windows:
            if not _scored(w):
                groups.setdefault(_kind(w), []).append(w)
        scored = len(result.windows) - sum(len(g) for g in groups.values())
        for kind, recs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            examples: dict[str, str] = {}
            if kind == _NO_MODEL:  # what the latest such window's end recorded
                examples = {"": f"at the end of window {recs[-1].window}: {_detail(recs[-1])}"}
            for w in recs if kind != _NO_MODEL else []:
                examples.setdefault(_shape(_detail(w)), f"window {w.window}: {_detail(w)}")
            shown = list(examples.values())[:_MAX_EXAMPLES]
            lines.append(
                f"{result.policy} ({scored} of {len(result.windows)} windows scored): "
                f"{kind} in {len(recs)} window(s) ({_names([w.window for w in recs])}); "
                + " | ".join(shown)
            )
    return lines


def labels_hint(cfg: Config, windows: list[str]) -> str | None:
    """`id_mismatch_hint` over the first rows of each source (`_HEAD_ROWS`; the events of
    `windows` among them), said only on evidence that the ids are written differently: labels
    that have not arrived, or a sample holding other events' ids, are no such evidence. None
    too when a source cannot be read: the hint must not hide the error it adds to."""
    try:
        id_and_time = [cfg.data.id_column, cfg.data.time_column]
        events = read_head(cfg.data.uri, cfg.data.format, id_and_time, _HEAD_ROWS)
        labels = read_head(cfg.labels.uri, cfg.labels.format, label_columns(cfg), _HEAD_ROWS)
    except (RetrainError, MemoryError):
        return None
    if cfg.data.time_column not in events.columns:
        return None
    first, last = parse_window(cfg.data, windows[0]), parse_window(cfg.data, windows[-1])
    times = event_times(events[cfg.data.time_column], cfg.data.time_kind, errors="coerce")
    inside: pd.Series = ((times >= first.start) & (times < last.end)).fillna(False)
    hint = id_mismatch_hint(cfg, events.loc[inside.to_numpy()], labels, evidence_only=True)
    return None if hint is None else f"{hint} (in the first {_HEAD_ROWS} rows of each source)"
