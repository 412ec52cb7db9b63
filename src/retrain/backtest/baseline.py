"""The ``full_refit`` baseline: what a plain scikit-learn user would do, for comparison.

At the end of each window the model (the config's preprocessing and estimator) is refit on
every labelled row of every window so far, with the labels known then, and serves the next
window: no ingest checks, no history/new mix, no evaluation rows held out, no gates, no canary.
It is scored exactly as the policies are (prequential, on all the labels that eventually
arrive), so a retraining policy that does not beat it is not earning its keep.

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
from retrain.labels.join import join_labels, without_coverage_floor
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
    # Scored on every row of a window, as the policies are; trained on `trainable` only.
    trainable = frames
    if train_rows_only:
        share, salt = cfg.training.evaluation_share, cfg.name  # the salt `build_training_set` uses
        trainable = [f.loc[~evaluation_mask(f[cfg.data.id_column], share, salt)] for f in frames]
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
        history = [f for f in trainable[: upto + 1] if len(f)]
        as_of = bounds[i].end if cfg.labels.time_column else None
        t0 = time.perf_counter()
        try:
            result = (
                join_labels(any_coverage, pd.concat(history), labels, as_of=as_of)
                if history
                else None
            )
            joined = None if result is None else result.labelled
            if result is None or joined is None or not len(joined):
                # A warning of an empty join is why: ids that match no label's, say.
                why = result.report["warnings"][:1] if result is not None else []
                rec.notes.append("; ".join(["no labels known yet", *why]))
            else:
                model = fit_model(cfg, joined)
                rec.train_seconds = time.perf_counter() - t0
                rec.retrained, rec.trained_on = True, window
                served = rec.deployed = rec.version = f"refit-{window}"
                consumed = len(joined)
                rec.notes.append(f"refit on {len(joined)} labelled rows of {len(history)} windows")
        except RetrainError as err:  # the data cannot train a model yet (one class, leakage)
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
