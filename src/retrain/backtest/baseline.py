"""The ``full_refit`` baseline: what a plain scikit-learn user would do, for comparison.

At the end of each window the model (the config's preprocessing and estimator) is refit on
every labelled row of every window so far, with the labels known then, and serves the next
window: no ingest checks, no history/new mix, no evaluation rows held out, no gates, no canary.
It is scored exactly as the policies are (prequential, on all the labels that eventually
arrive), so a retraining policy that does not beat it is not earning its keep.

Each window's labels are joined and checked on their own, as the label step does (the same
`join_labels`, with the labels known then, whatever their coverage): a window whose labels
the join refuses (infinite or huge regression labels, more than 1% of them dated before their
event) is left out of that refit, which says so in its notes, and the other windows still
train. Judged on all the labels at once, one such window would stop every later refit, or
its leakage would hide in the running total; the policies skip it and go on.

An error other than retrain's own (scikit-learn's, or a bug) in one window's refit or scoring
does not end the backtest: the window records it (`WindowRecord.failed`, with the exception's
type, message and where it was raised), a failed scoring counts as a skipped window, a failed
refit leaves the previous model serving, and the table lists every such error.

A window every retraining policy's ingest refused is left out of the baseline's scores too
(`skip_refused_windows`), so its row counts the windows the comparison covers; it still
trains on such a window's rows, as a plain refit with no checks would.

``full_refit@train_rows`` is the same refit on the training rows only: the rows whose id the
evaluation split (`training.evaluation_share`) keeps out of every model retrain trains. It
trains on what the policies may train on, so the two compare like with like; the plain
``full_refit`` also learns from the fifth of the labels retrain reserves for judging models.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.backtest.replay import PolicyResult, WindowRecord, score_model
from retrain.backtest.timing import ReplayOptions
from retrain.config import Config
from retrain.data.io import read_source
from retrain.data.schema import as_category_strings, numeric_values
from retrain.data.split import evaluation_mask
from retrain.data.windows import event_times, parse_window
from retrain.errors import RetrainError
from retrain.evaluation.metrics import GREATER_IS_BETTER
from retrain.labels.join import id_mismatch_hint, join_labels, without_coverage_floor
from retrain.training.model import fit_model

__all__ = ["FULL_REFIT", "REFUSED", "TRAIN_ROWS", "replay_full_refit", "skip_refused_windows"]

FULL_REFIT = "full_refit"
#: The variant (``full_refit@train_rows``) that leaves the evaluation rows out.
TRAIN_ROWS = "train_rows"
_DEFAULT_OPTIONS = ReplayOptions()
#: How the baseline's record names a window every retraining policy's ingest refused.
REFUSED = "refused by every retraining policy's ingest"


def _model_inputs(events: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Id, time and features with one type per feature kind (what any user's code does)."""
    out = events[[cfg.data.id_column, cfg.data.time_column]].copy()
    for name, kind in cfg.data.features.items():
        if kind == "numeric":
            values, _ = numeric_values(events[name])
            out[name] = values.where(np.isfinite(values))
        else:
            out[name] = as_category_strings(events[name])
    return out


def skip_refused_windows(results: list[PolicyResult]) -> None:
    """Mark the baselines' windows that every retraining policy's ingest refused as skipped.

    The baseline has no ingest checks, so it scores a window the pipeline refuses (duplicate
    ids, a broken schema): its score there is no comparison, as no policy has one. The window
    is recorded as skipped (`REFUSED`, with the policies' reason) and its score kept in a note,
    so each row's "scored (skipped)" counts the windows the means can compare. Nothing changes
    without a retraining policy among `results`.
    """
    policies = [r for r in results if not r.policy.startswith(FULL_REFIT)]
    if not policies:
        return
    for result in results:
        if not result.policy.startswith(FULL_REFIT):
            continue
        for rec in result.windows:
            reasons = [p.windows[rec.index].skipped or "" for p in policies]
            if rec.skipped or not all(r.startswith("ingest failed") for r in reasons):
                continue
            if rec.metric is not None:
                rec.notes.append(
                    f"scored {rec.metric:.4f} on {rec.rows_scored} rows, left out of the "
                    "comparison: every retraining policy's ingest refused the window"
                )
            rec.metric, rec.rows_scored = None, 0
            rec.skipped = f"{REFUSED}: {reasons[0].splitlines()[0]}"


def _labels_of(cfg: Config, frames: list[pd.DataFrame], labels: pd.DataFrame) -> list[pd.DataFrame]:
    """Each window's rows of `labels`: those whose id is one of the window's events' ids, as
    the label step reads them (so each window's join reads its own labels, not the source)."""
    if cfg.labels.id_column not in labels.columns:
        return [labels] * len(frames)  # the join says what is missing
    # Matched as the join matches ids (as text); by hash lookup, as the join does.
    keys = pd.Index(as_category_strings(labels[cfg.labels.id_column]))
    out: list[pd.DataFrame] = []
    for frame in frames:
        ids = pd.Index(as_category_strings(frame[cfg.data.id_column]).dropna().unique())
        out.append(labels[ids.get_indexer(keys) >= 0])
    return out


def _join_each(
    cfg: Config,
    history: list[tuple[str, pd.DataFrame, pd.DataFrame]],
    as_of: Any,
    notes: list[str],
) -> tuple[list[pd.DataFrame], list[str]]:
    """Join each (window, events, labels) of `history` on its own, as the label step does: the
    labelled rows of the windows the join accepts, and the join's warnings. The windows it
    refuses are left out, with a note saying why (one for the windows refused alike)."""
    joined: list[pd.DataFrame] = []
    warnings: list[str] = []
    refused: dict[str, list[str]] = {}
    for window, events, labels in history:
        try:
            result = join_labels(cfg, events, labels, as_of=as_of, events_ids_only=True)
        except RetrainError as err:
            refused.setdefault(str(err), []).append(window)
            continue
        joined.append(result.labelled)
        warnings += result.report["warnings"]
    for why, names in refused.items():
        which = f"window {names[0]}" if len(names) == 1 else f"windows {', '.join(names)}"
        notes.append(f"labels of {which} left out: {why}")
    return joined, warnings


def _nothing_joined(
    cfg: Config,
    history: list[tuple[str, pd.DataFrame, pd.DataFrame]],
    accepted: int,
    warnings: list[str],
    labels: pd.DataFrame,
) -> str:
    """Why a refit found no labelled row in the `accepted` windows of `history` the join took:
    none known yet, and the join's own hint (ids that match no label's) or first warning."""
    events = [e for _, e, _ in history]
    hint = id_mismatch_hint(cfg, pd.concat(events), labels) if events else None
    none = "no labels known yet"
    if accepted < len(history):
        none = "no labels of the other windows known yet"
    return "; ".join([none, *([hint] if hint else warnings[:1])])


def unexpected_error(step: str, err: Exception) -> str:
    """How the table names an error that is not one of retrain's own: the step, the exception's
    type and message, and where it was raised (a library or this code: a bug to report)."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (raised at {'/'.join(Path(frames[-1].filename).parts[-2:])}:{frames[-1].lineno})"
    return f"{step} failed: {type(err).__name__}: {err}" + (where if frames else "")


def replay_full_refit(
    cfg: Config,
    windows: list[str],
    *,
    options: ReplayOptions = _DEFAULT_OPTIONS,
    on_window: Callable[[str, int], None] | None = None,
    train_rows_only: bool = False,
) -> PolicyResult:
    """Replay `windows` with a refit on all labelled history at each window's end (with
    `train_rows_only`, on its training rows: the evaluation rows left out)."""
    name = f"{FULL_REFIT}@{TRAIN_ROWS}" if train_rows_only else FULL_REFIT
    cfg, options = options.resolve(cfg)
    t_start = time.perf_counter()
    events = read_source(cfg.data.uri, cfg.data.format)
    labels = read_source(cfg.labels.uri, cfg.labels.format)
    times = event_times(events[cfg.data.time_column], cfg.data.time_kind, errors="coerce")
    bounds = [parse_window(cfg.data, w) for w in windows]
    frames = [
        _model_inputs(events.loc[((times >= b.start) & (times < b.end)).fillna(False)], cfg)
        for b in bounds
    ]
    window_labels = _labels_of(cfg, frames, labels)
    # Every label known, whatever its coverage: a plain refit takes what there is.
    any_coverage = without_coverage_floor(cfg)
    model: Any = None
    served: str | None = None
    records: list[WindowRecord] = []
    consumed = 0
    for i, window in enumerate(windows):
        rec = WindowRecord(index=i, window=window, champion=served)
        records.append(rec)
        if model is not None and len(frames[i]):
            try:
                rec.metric, rec.rows_scored = score_model(cfg, model, frames[i], labels)
            except RetrainError as err:
                rec.skipped = f"scoring failed: {err}"
            except Exception as err:  # a baseline's error spoils one window only
                rec.skipped = rec.failed = unexpected_error("scoring", err)
        upto = i if cfg.labels.time_column else i - (options.label_delay or 0)
        history = [
            (windows[k], frames[k], window_labels[k]) for k in range(upto + 1) if len(frames[k])
        ]
        as_of = bounds[i].end if cfg.labels.time_column else None
        t0 = time.perf_counter()
        try:
            parts, warnings = _join_each(any_coverage, history, as_of, rec.notes)
            joined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            if train_rows_only and len(joined):
                # Judged on the whole window, as the label step does; trained on its train rows.
                share, salt = cfg.training.evaluation_share, cfg.name  # as `build_training_set`
                joined = joined.loc[~evaluation_mask(joined[cfg.data.id_column], share, salt)]
            if not len(joined):
                if parts or not history:  # else every window's refusal is noted already
                    rec.notes.append(_nothing_joined(cfg, history, len(parts), warnings, labels))
            else:
                model = fit_model(cfg, joined)
                rec.train_seconds = time.perf_counter() - t0
                rec.retrained, rec.trained_on = True, window
                served = rec.deployed = rec.version = f"refit-{window}"
                consumed = len(joined)
                n = len(parts)
                rec.notes.append(
                    f"refit on {len(joined)} labelled rows of {n} window{'s' if n > 1 else ''}"
                )
        except RetrainError as err:  # the data cannot train a model yet (one class)
            rec.notes.append(f"refit failed: {err}")
        except Exception as err:  # the previous model keeps serving
            rec.failed = unexpected_error("refit", err)
            rec.notes.append(rec.failed)
        if on_window is not None:
            on_window(name, i)
    metric = cfg.primary_metric
    return PolicyResult(
        policy=name,
        metric=metric,
        greater_is_better=GREATER_IS_BETTER[metric],
        windows=records,
        labels_consumed=consumed,
        seconds=time.perf_counter() - t_start,
    )
