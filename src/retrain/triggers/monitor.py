"""The monitor: check the latest window, report, and let the trigger policy decide.

One `Monitor.check` reads the newest window of the data source that is over (a window still
open is a partial sample: `retrain.triggers._checked_window`; while none is over, a normal
state for a new model, it judges nothing and hands the schedule, new-data and labels signals
only, a due schedule or enough new rows waiting for the open window to end), has the
champion score it, compares it with the champion's reference profile (``profile.json``
beside each registered version; with the labels that have arrived, the engine also measures
the metric drop), counts untrained rows, and turns each into a `Signal` for the
`TriggerController` (drift first, so a launch by another rule cannot reset the hysteresis
count of the same window). The performance
signal and block judge the champion on the newest labelled window, as the backtest's drift
policy does (`retrain.triggers._labelled_window`), and name it as their snapshot; the drift
signal carries the performance signal, and a drift launch gives way to it when it launches
(the policy's rule ``deferred``), so a labelled drop trains at once on the window measured
instead of on the newest window, whose labels are mostly still to come. It writes a
report to the store (``monitor/<time>.json`` and ``.md``) and updates the Prometheus metrics.
Labels count as of the monitor's clock (those dated later have not arrived), and a window
whose run failed for too few labels is launched again once they have (`retrain.triggers.relabel`).

The drift engine is reached through one function, `detect_with_engine`; the monitor takes any
function of that shape, and works (without drift signals) when the champion has no profile.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config, labelled_search_depth
from retrain.data.source import window_counts
from retrain.data.windows import (
    event_times,
    parse_as_of,
    parse_window,
    window_mask,
    window_sort_key,
    windows_between,
)
from retrain.drift import ReferenceProfile, detect_drift
from retrain.errors import NotFound, RetrainError, ValidationError
from retrain.registry import Registry
from retrain.storage import Storage, open_storage
from retrain.triggers._check import CheckResult, DriftSummary, FeatureStat, observe_result
from retrain.triggers._checked_window import checked_window
from retrain.triggers._known_labels import (
    LabelSourceMissing,
    LabelsRefused,
    known_labels,
    window_rows,
)
from retrain.triggers._labelled_window import (
    LABELLED_SIGNAL,
    champion_window,
    check_fields,
    drift_verdict,
    judged,
    performance_block,
    performance_signal,
    serving_launches,
)
from retrain.triggers._scores import ChampionScorer
from retrain.triggers.controller import TriggerController
from retrain.triggers.metrics import MonitorMetrics
from retrain.triggers.policy import Signal
from retrain.triggers.relabel import awaiting_labels, failed_on_coverage, labels_signal

__all__ = [
    "PROFILE_FILE",
    "CheckResult",
    "Detector",
    "DriftSummary",
    "FeatureStat",
    "Monitor",
    "detect_with_engine",
    "observe_result",
]

#: The reference profile's file name in each registered model version.
PROFILE_FILE = "profile.json"


#: (profile JSON, current window, config, champion scores, labels aligned with the rows)
Detector = Callable[[str, pd.DataFrame, Config, Any, Any], DriftSummary]


def detect_with_engine(
    profile_json: str, current: pd.DataFrame, cfg: Config, scores: Any, labels: Any
) -> DriftSummary:
    """The one place this package meets `retrain.drift`."""
    profile = ReferenceProfile.from_json(profile_json)
    report = detect_drift(profile, current, cfg, scores=scores, labels=labels)
    perf = report.performance
    return DriftSummary(
        dataset_drifted=bool(report.dataset_drifted),
        share_drifted=float(report.share_drifted),
        features=tuple(
            FeatureStat(f.name, f.method, float(f.statistic), bool(f.drifted))
            for f in report.features
            if f.statistic is not None
        ),
        fired=tuple(report.fired),
        performance=check_fields(perf) if perf is not None else None,
        details=report.to_dict(),
        markdown=report.markdown(title=f"Drift of window vs {cfg.name}'s champion"),
    )


class Monitor:
    """Checks windows for one model and feeds the trigger policy.

    Args:
        cfg: the use case's config.
        controller: applies the policy and launches runs.
        store: the store (default: the config's storage root).
        metrics: Prometheus metrics to update (optional).
        detector: computes drift from a profile (default: the drift engine).
        cache_scores: reuse the champion's stored scores of an unchanged window
            (`retrain.triggers._scores`).
        labelled_lookback: windows, the checked one included, searched newest first for
            the newest labelled window (`retrain.triggers._labelled_window`); None:
            ``triggers.labelled_lookback``, or one window past ``labels.delay`` if that is
            longer (`retrain.config.labelled_search_depth`).
    """

    def __init__(
        self,
        cfg: Config,
        controller: TriggerController,
        *,
        store: Storage | None = None,
        metrics: MonitorMetrics | None = None,
        detector: Detector = detect_with_engine,
        cache_scores: bool = True,
        labelled_lookback: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.controller = controller
        self.store = store if store is not None else open_storage(cfg.storage_root)
        self.metrics = metrics
        self.detector = detector
        self.registry = Registry(self.store, cfg.name)
        self.scorer = ChampionScorer(cfg, self.store, self.registry, cache=cache_scores)
        self.labelled_lookback = (
            labelled_search_depth(cfg) if labelled_lookback is None else labelled_lookback
        )
        self._labels_missing: str | None = None  # this check's: no label file yet (`_labels`)

    # -- one check --------------------------------------------------------------------------

    def check(self, window: str | None = None) -> CheckResult:
        """Check one window (default: the newest in the data source that is over, unless
        ``triggers.judge_open_window``; `retrain.triggers._checked_window`) and decide."""
        with self.scorer.one_check():  # each of the champion's files read once
            result, signals = self._measure(window)
        # Decided after the champion's files are let go: a launch may run a whole cycle here.
        # The drift hysteresis counts a window only if newer than the last counted one.
        order = functools.partial(window_sort_key, self.cfg.data)
        for signal in signals:
            outcome = self.controller.handle(signal, window_key=order)
            result.outcomes.append(outcome)
            if self.metrics is not None:
                self.metrics.observe_outcome(outcome)
        result.checked_at = self.controller.clock()
        if self.metrics is not None:
            observe_result(self.metrics, result, outcomes=False)  # outcomes: as they were taken
        result.report_key = self._write_report(result)
        return result

    def _measure(self, window: str | None) -> tuple[CheckResult, list[Signal]]:
        """The check's measurements (its result, no decision yet) and the signals to decide."""
        cfg = self.cfg
        self._labels_missing = None
        self.controller.reconcile()  # a finished cluster run frees the lease first
        time_col = cfg.data.time_column
        # Events per window find the newest (footers' statistics where they place a row group
        # in one window, else the time column); then only the checked window's rows are read.
        counts = window_counts(cfg.data.uri, cfg.data.format, cfg.data)
        if len(counts.unreadable):  # refused, naming examples, as a read of the column is
            event_times(counts.unreadable.rename(time_col), cfg.data.time_kind)
        ids = list(counts.rows)
        # Without --window: the newest window that is over (`retrain.triggers._checked_window`).
        chosen = checked_window(
            cfg.data,
            ids,
            self.controller.clock(),
            given=window,
            judge_open=cfg.triggers.judge_open_window,
            source=cfg.data.uri,
        )
        win = parse_window(cfg.data, chosen.id)
        source, current = window_rows(cfg, win.id)
        if current.empty:
            raise ValidationError(f"window {win.id} of {cfg.data.uri} holds no events")

        champion = self.registry.get_alias("champion").version
        if chosen.judged:
            drift, note, labels, refused = self._drift(champion, current)
            performance = self._performance(
                champion, drift, note, (current, labels), win.id, ids, refused
            )
        else:  # no window is over yet: a normal state; the schedule and new data wait for one
            drift, note = None, "no window is over yet: none judged"
            performance = {"note": note}
        untrained = self._untrained_rows(counts.rows, win.id)

        signals, pending, counted = [], self.controller.load_state()[0], None
        # The windows whose run failed on label coverage, of the source's (a labels re-run)
        # and of the pending drift launches (the back-off waits): each launch record read once.
        awaited = [*ids, *pending.drift_pending] if drift is not None else ids
        short = failed_on_coverage(self.store, cfg.name, pending.snapshots, awaited)
        labelled = None
        if cfg.triggers.performance_drop is not None and judged(performance, cfg):
            labelled = performance_signal(performance, win.id)
        if drift is not None:
            drifted, fired = drift_verdict(drift.fired, performance, cfg)
            counted = tuple(fired)
            signals.append(
                Signal(
                    "drift",
                    win.id,
                    drifted=drifted,
                    value=drift.share_drifted,
                    details={
                        "fired": fired,
                        "drifted": [f.name for f in drift.features if f.drifted],
                        "labelled_fired": LABELLED_SIGNAL in fired,
                        # The drift back-off's evidence: which launches serve, which wait.
                        **serving_launches(self.scorer, champion),
                        "awaiting_labels": awaiting_labels(self.store, cfg.name, pending, short),
                        "metric": performance.get("metric"),
                        "reference": performance.get("reference"),
                        # A drift launch gives way when this one launches (rule `deferred`).
                        "performance": None if labelled is None else labelled.to_dict(),
                    },
                )
            )
        if labelled is not None:
            signals.append(labelled)
        # With no window over yet, a due schedule or enough new rows wait for the newest
        # window, still open, to end (a window trains once: the policy's waits_for_window_end).
        still: dict[str, Any] = {}
        if not chosen.judged:
            still = {"window_open": True}
            if cfg.data.time_kind != "period":  # no clock relates periods to time
                still["window_end"] = win.as_dict()["end"]
        if cfg.triggers.new_data_rows is not None:
            signals.append(Signal("new_data", win.id, value=float(untrained), details=still))
        if cfg.triggers.schedules and cfg.triggers.schedule_engine == "monitor":
            signals.append(Signal("schedule", win.id, details=still))
        in_source = set(ids)
        signals += self._relabel_signals(source, {w: r for w, r in short.items() if w in in_source})

        result = CheckResult(
            model=cfg.name,
            window=win.id,
            champion=champion,
            checked_at=self.controller.clock(),  # set again once decided
            drift=drift,
            drift_note=note,
            performance=performance,
            untrained_rows=untrained,
            outcomes=[],
            drift_counted=counted,
            window_choice=chosen.as_dict(),
        )
        if champion is not None:  # its card: read once a check (the scorer keeps it)
            result.champion_trained_on = champion_window(cfg, self.scorer, champion)
            result.champion_age_windows = windows_between(
                cfg.data, result.champion_trained_on, win.id
            )
        return result, signals

    def run_every(
        self,
        interval_seconds: float,
        stop: threading.Event,
        *,
        window: str | None = None,
        on_result: Callable[[CheckResult], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Check every `interval_seconds` until `stop` is set; errors are reported, not fatal."""
        while not stop.is_set():
            try:
                result = self.check(window)
                if on_result is not None:
                    on_result(result)
            except Exception as err:  # one bad window must not end the monitor
                if on_error is None:
                    raise
                on_error(err)
            stop.wait(interval_seconds)

    # -- measurements -----------------------------------------------------------------------

    def _relabel_signals(self, source: pd.DataFrame, short: Mapping[str, str]) -> list[Signal]:
        """A ``labels`` signal for each window whose run failed on label coverage (`short`:
        window -> run id, `failed_on_coverage`), with its coverage as of the monitor's clock
        (`retrain.triggers.relabel`)."""
        cfg = self.cfg
        out = []
        for window, run_id in short.items():
            win = parse_window(cfg.data, window)
            mask = window_mask(source[cfg.data.time_column], win, cfg.data.time_kind)
            labels, refused = self._labels(source.loc[mask].reset_index(drop=True))
            coverage = 0.0 if labels is None else float(labels.notna().mean())
            out.append(
                labels_signal(window, coverage, cfg.labels.min_coverage, run_id, refused=refused)
            )
        return out

    def _as_of(self) -> Any:
        """The monitor's clock as the label join's "as of" cut (None for period windows, which
        no clock relates to time, as in the label step)."""
        if self.cfg.data.time_kind == "period":
            return None
        return parse_as_of(self.cfg.data, self.controller.clock().isoformat())

    def _labels(self, current: pd.DataFrame) -> tuple[pd.Series | None, str | None]:
        """Labels aligned with the window's rows (NaN where not arrived yet, or dated after
        the monitor's clock), or None; and why the label join refused them (None: it did not).
        A refusal is not "no labels yet": the report names it, and nothing is measured on it.
        """
        # Most labels of the newest window are still on their way: no coverage floor here.
        try:
            return known_labels(self.cfg, current, self._as_of()), None
        except LabelSourceMissing as err:
            if any(k.endswith("/labelled.parquet") for k in self.store.list("datasets")):
                # Labels were read before: a source gone since is a fault, not labels to come.
                return None, f"{err} (the model has labelled history: was it moved?)"
            self._labels_missing = str(err)  # a new deployment: none known yet, none refused
            return None, None
        except LabelsRefused as err:
            return None, str(err)

    def _drift(
        self, champion: str | None, current: pd.DataFrame
    ) -> tuple[DriftSummary | None, str, pd.Series | None, str | None]:
        """The engine's summary, a note, the window's labels (None: none known, refused, or
        not read: drift off, no champion or no profile) and why the label join refused them."""
        if not self.cfg.drift.enabled:
            return None, "drift detection is off (drift.enabled: false)", None, None
        if champion is None:
            return None, "no champion yet", None, None
        try:
            profile = self.scorer.read_file(champion, PROFILE_FILE).decode()
        except NotFound:
            return None, f"champion {champion} has no {PROFILE_FILE}", None, None
        notes = []
        try:
            scores = self.scorer.scores(champion, current)
        except RetrainError as err:
            scores = None
            notes.append(f"the champion could not score the window ({err})")
        # Read even when the champion could not score the window: the search for the newest
        # labelled window starts here. The engine measures from scores and labels together.
        # Refused labels are none to the engine: its other signals are measured as usual.
        labels, refused = self._labels(current)
        try:
            summary = self.detector(
                profile, current, self.cfg, scores, labels if scores is not None else None
            )
        except ImportError as err:
            return None, f"drift engine unavailable: {err}", None, None
        return summary, "; ".join(notes), labels, refused

    def _performance(
        self,
        champion: str | None,
        drift: DriftSummary | None,
        note: str,
        checked: tuple[pd.DataFrame, pd.Series | None],
        window: str,
        ids: list[str],
        refused: str | None = None,
    ) -> dict[str, Any]:
        """The performance block: the champion on the newest labelled window; when no window
        within the look-back is labelled, the checked window with the labels it has (none
        when the label join refused them: `refused` says why)."""
        if drift is None:
            return {"note": note}
        on_checked = dict(drift.performance) if drift.performance is not None else None
        if on_checked is None and note:  # the champion could not score the checked window
            on_checked = {"note": note}
        return performance_block(
            self.cfg,
            self.scorer,
            champion,
            on_checked,
            checked,
            window,
            ids,
            as_of=self._as_of(),
            lookback=self.labelled_lookback,
            refused=refused,
            missing=self._labels_missing,
        )

    def _untrained_rows(self, rows_by_window: dict[str, int], window: str) -> int:
        """Rows in windows after the newest one already in the history store, up to `window`."""
        cfg = self.cfg
        trained = [k.split("/")[1] for k in self.store.list("datasets") if k.count("/") >= 2]
        key = window_sort_key(cfg.data, window)
        newest = max((window_sort_key(cfg.data, w) for w in trained), default=None)
        rows = 0
        for wid, n in rows_by_window.items():
            start = window_sort_key(cfg.data, wid)
            if start <= key and (newest is None or start > newest):
                rows += n
        return rows

    def _write_report(self, result: CheckResult) -> str:
        stamp = result.checked_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        key = f"monitor/{stamp}"
        body = json.dumps(result.to_dict(), indent=2, default=_json_default) + "\n"
        self.store.write_text(f"{key}.md", result.markdown())
        self.store.write_text(f"{key}.json", body)
        return f"{key}.json"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
