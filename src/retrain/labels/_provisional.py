"""Provisional labels: what is known so far of recent windows not yet in history.

A window enters history (immutable) only once its labels reach ``labels.min_coverage``. With
``labels.provisional_windows`` set, a run also uses the labels already known, as of its time,
for the newest windows after its own that ended by then and are not in history yet. Their
rows are the run's alone: they train and judge this run's challenger and are recorded in its
reports, never committed; each window is labelled and committed by its own run once its
coverage is reached.

Valid only when a label's arrival does not depend on its value: the labels known early must
be a fair sample of the window's. Where one class is confirmed sooner (frauds charged back
within days, legitimate transactions confirmed only at maturity), early labels over-represent
it, and both the challenger and the gate see a biased window. So, unless
``labels.check_arrival`` is off, the early labels are re-enacted on a window of history whose
labels have arrived first (`retrain.labels._arrival`): where they show such a bias, no
provisional window is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from retrain.config import Config
from retrain.data.windows import as_of_text, next_window_id, parse_window
from retrain.errors import ValidationError
from retrain.labels._arrival import ArrivalCheck
from retrain.labels.join import join_labels, without_coverage_floor

__all__ = ["ProvisionalLabels", "join_provisional", "provisional_window_ids"]


def provisional_window_ids(
    cfg: Config, window_id: str, as_of: Any, in_history: set[str]
) -> list[str]:
    """The windows a run of `window_id` as of `as_of` may use provisionally, oldest first.

    Those after `window_id` that ended at or before `as_of` and are not `in_history`, the
    newest ``labels.provisional_windows`` of them. None without an `as_of` (no label time
    column, or a period run given none): what has arrived is then unknown.
    """
    limit = cfg.labels.provisional_windows
    if limit == 0 or as_of is None or not cfg.labels.time_column:
        return []
    found: list[str] = []
    current = parse_window(cfg.data, window_id)
    while True:
        current = parse_window(cfg.data, next_window_id(cfg.data, current.id))
        if current.end > as_of:
            break
        if current.id not in in_history:
            found.append(current.id)
    return found[-limit:]


@dataclass(frozen=True)
class ProvisionalLabels:
    """The labelled rows of the provisional windows, and per window what was known."""

    rows: pd.DataFrame
    windows: list[dict[str, Any]]  # window, events, labelled, coverage (or skipped: why)
    as_of: str
    arrival: ArrivalCheck | None = None  # the arrival check (None: not made)

    @property
    def labelled(self) -> int:
        return len(self.rows)

    def report(self) -> dict[str, Any]:
        """JSON-able: for the run's label and train reports and the model card."""
        return {
            "as_of": self.as_of,
            "rows": len(self.rows),
            "windows": self.windows,
            "arrival": None if self.arrival is None else self.arrival.report(),
            "note": "provisional: labels known so far of windows not in history; never "
            "committed (each window is committed by its own run at labels.min_coverage)",
        }

    def markdown(self) -> str:
        """A section for the run's reports: each window with its coverage, or why not used."""
        lines = [
            "## Provisional windows (not in history)",
            "",
            f"Labels known as of {self.as_of} for recent windows whose coverage is short of "
            f"labels.min_coverage: {len(self.rows)} labelled rows, used by this run only.",
            "",
        ]
        if self.arrival is not None:
            lines += [f"Arrival check: {self.arrival.detail}.", ""]
        lines += [
            "| window | events | labelled | coverage | note |",
            "|---|---:|---:|---:|---|",
        ]
        for w in self.windows:
            coverage = "" if w.get("coverage") is None else f"{w['coverage']:.1%}"
            lines.append(
                f"| {w['window']} | {w.get('events', '')} | {w.get('labelled', '')} | "
                f"{coverage} | {w.get('skipped', '')} |"
            )
        return "\n".join(lines) + "\n"


def join_provisional(
    cfg: Config,
    events: Sequence[tuple[str, pd.DataFrame | str]],
    labels: pd.DataFrame,
    as_of: Any,
    *,
    arrival: ArrivalCheck | None = None,
) -> ProvisionalLabels:
    """Join the labels known as of `as_of` to each window's events, whatever the coverage.

    `events` pairs each window id with its checked events, or with why there are none (the
    window is then recorded as skipped). A window whose join fails for another reason than
    coverage (leakage, non-numeric regression labels) is skipped and says why; its own run
    will fail on it by name. An `arrival` check that found the early labels unfair skips
    every window.
    """
    anyhow = without_coverage_floor(cfg)
    frames: list[pd.DataFrame] = []
    windows: list[dict[str, Any]] = []
    unfair = arrival is not None and not arrival.fair
    for window_id, frame in events:
        if unfair or isinstance(frame, str) or frame.empty:
            why = (
                "not used: the early labels are not a fair sample (arrival check)"
                if unfair
                else (frame if isinstance(frame, str) else "no events")
            )
            windows.append({"window": window_id, "skipped": why})
            continue
        try:
            result = join_labels(anyhow, frame, labels, as_of=as_of)
        except ValidationError as err:
            windows.append({"window": window_id, "events": len(frame), "skipped": str(err)})
            continue
        windows.append(
            {
                "window": window_id,
                "events": len(frame),
                "labelled": len(result.labelled),
                "coverage": result.coverage,
            }
        )
        if len(result.labelled):
            frames.append(result.labelled)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return ProvisionalLabels(rows, windows, as_of_text(as_of), arrival)
