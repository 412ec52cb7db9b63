"""Windows whose run failed for too few labels, re-run once the labels have arrived.

A run joins only the labels dated at or before its time, so a window run early can fail its
label step on coverage (``labels.min_coverage``) while the labels are still on their way. The
monitor (`retrain.triggers.monitor`) asks `failed_on_coverage` which windows' latest launched
run failed that way, measures each window's coverage as of its own clock, and hands a
``labels`` signal to the trigger policy (`retrain.triggers.policy`): it launches the window
again once the coverage is reached, under the usual lease, cooldown and budget rules. Labels
the label join refuses (leakage, infinite regression labels) are not labels still on their
way: the signal names the refusal, and the window waits for labels that pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from retrain.labels.join import COVERAGE_SHORTFALL
from retrain.storage import Storage
from retrain.triggers.controller import launches_prefix
from retrain.triggers.policy import PolicyState, Signal

__all__ = ["awaiting_labels", "failed_on_coverage", "labels_signal"]


def _latest_runs(store: Storage, model: str, snapshots: set[str]) -> dict[str, str]:
    """The run id of the newest launch of each of `snapshots` (launch records sort by time)."""
    runs: dict[str, str] = {}
    for key in sorted(store.list(launches_prefix(model))):
        if not key.endswith(".json"):
            continue
        doc = json.loads(store.read_text(key))
        snapshot = doc.get("signal", {}).get("snapshot")
        run = doc.get("run") or {}
        if snapshot in snapshots and run.get("run_id"):
            runs[snapshot] = str(run["run_id"])
    return runs


def failed_on_coverage(
    store: Storage, model: str, statuses: Mapping[str, str], windows: Iterable[str]
) -> dict[str, str]:
    """Which of `windows` have a failed run whose label step found too few labels.

    `statuses` is the trigger state's snapshot -> run status. Returns window -> run id.
    """
    failed = {w for w in windows if statuses.get(w) == "failed"}
    if not failed:
        return {}
    out = {}
    for window, run_id in _latest_runs(store, model, failed).items():
        key = f"runs/{run_id}/label.json"  # the label step's record (`retrain.steps.records`)
        if not store.exists(key):
            continue  # failed before its label step
        record = json.loads(store.read_text(key))
        if record.get("status") == "failed" and COVERAGE_SHORTFALL in str(record.get("message")):
            out[window] = run_id
    return out


def awaiting_labels(
    store: Storage, model: str, state: PolicyState, short: Mapping[str, str] | None = None
) -> list[str]:
    """The pending drift launches (`PolicyState.drift_pending`) whose runs failed on label
    coverage: a ``labels`` re-run will judge them, so the drift back-off waits for it.
    `short`: what `failed_on_coverage` found over windows the pending ones are among (the
    launch records are then not read again)."""
    if short is None:
        short = failed_on_coverage(store, model, state.snapshots, state.drift_pending)
    return sorted(w for w in short if w in state.drift_pending)


def labels_signal(
    window: str, coverage: float, min_coverage: float, run_id: str, *, refused: str | None = None
) -> Signal:
    """The signal for a window whose run `run_id` failed on coverage, now at `coverage`; or,
    when the label join now refuses the window's labels, no coverage and `refused`, its reason
    (a re-run would fail on them: the policy waits, and says why)."""
    details: dict[str, Any] = {"min_coverage": min_coverage, "failed_run": run_id}
    if refused is not None:
        return Signal("labels", window, value=None, details=details | {"refused": refused})
    return Signal("labels", window, value=coverage, details=details)
