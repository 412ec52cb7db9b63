"""What one monitor check measured and decided, in plain values: its Markdown and JSON report
and its Prometheus metrics (`retrain.triggers.monitor` makes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retrain.triggers._labelled_window import performance_text
from retrain.triggers.controller import Outcome
from retrain.triggers.metrics import MonitorMetrics

__all__ = ["CheckResult", "DriftSummary", "FeatureStat", "observe_result"]


@dataclass(frozen=True)
class FeatureStat:
    name: str
    method: str
    statistic: float
    drifted: bool


@dataclass(frozen=True)
class DriftSummary:
    """What the monitor needs from a drift report: plain values, no engine types.

    `dataset_drifted` is the engine's dataset-level decision (any of its signals fired, named
    in `fired`); `performance` holds the metric drop once labels arrived (metric, reference,
    current, drop, n), else None.
    """

    dataset_drifted: bool
    share_drifted: float
    features: tuple[FeatureStat, ...]
    fired: tuple[str, ...] = ()
    performance: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""


@dataclass
class CheckResult:
    """One check: the window, what was measured, and the decisions taken."""

    model: str
    window: str
    champion: str | None
    checked_at: datetime
    drift: DriftSummary | None
    drift_note: str
    performance: dict[str, Any]
    untrained_rows: int
    outcomes: list[Outcome]
    report_key: str | None = None
    #: The signals the drift trigger counted (`drift_verdict`; None: drift not measured): the
    #: engine's on the checked window, but its labelled one only from the window judged.
    drift_counted: tuple[str, ...] | None = None
    #: How the checked window was chosen (`retrain.triggers._checked_window.CheckedWindow`).
    window_choice: dict[str, Any] | None = None
    #: How many windows the checked window starts after the newest one the champion trained
    #: on (`champion_trained_on`); None: no champion, or its card names no window of this source.
    champion_age_windows: float | None = None
    champion_trained_on: str | None = None

    @property
    def drifted(self) -> bool:
        """Whether the checked window drifted as the drift trigger counts it."""
        return bool(self.drift_counted)

    @property
    def launched(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.decision.launch), None)

    def to_dict(self) -> dict[str, Any]:
        drift = None
        if self.drift is not None:
            drift = {
                "dataset_drifted": self.drift.dataset_drifted,
                "fired": list(self.drift.fired),
                "trigger_drifted": self.drifted,
                "trigger_signals": list(self.drift_counted or ()),
                "share_drifted": self.drift.share_drifted,
                "features": [f.__dict__ for f in self.drift.features],
                "report": self.drift.details,
            }
        return {
            "model": self.model,
            "window": self.window,
            "window_choice": self.window_choice,
            "champion": self.champion,
            "champion_trained_on": self.champion_trained_on,
            "champion_age_windows": self.champion_age_windows,
            "checked_at": self.checked_at.isoformat(),
            "drift": drift,
            "drift_note": self.drift_note,
            "performance": self.performance,
            "untrained_rows": self.untrained_rows,
            "decisions": [o.to_dict() for o in self.outcomes],
        }

    def markdown(self) -> str:
        lines = [
            f"# Monitor: {self.model}, window {self.window}",
            "",
            f"Checked at {self.checked_at.isoformat()} against champion "
            f"`{self.champion or 'none'}`.",
            "",
        ]
        if self.window_choice is not None:
            lines += [f"**Window:** {self.window_choice['reason']}.", ""]
        if self.champion_age_windows is not None:
            age = self.champion_age_windows
            where = f"{age:g} window(s) before" if age >= 0 else f"{-age:g} window(s) after"
            lines += [
                f"**Champion's data:** newest window trained on {self.champion_trained_on}, "
                f"{where} the checked one.",
                "",
            ]
        if self.drift is not None:
            d = self.drift
            counted = list(self.drift_counted or ())
            engine = ""
            if set(counted) != set(d.fired):
                # The engine judged its labelled signal on the checked window's few labels.
                engine = (
                    " The engine on the checked window alone: "
                    + (", ".join(d.fired) if d.fired else "no signal")
                    + "; its labelled signal counts only on a window whose labels reach"
                    " labels.min_coverage (the performance block's)."
                )
            lines += [
                f"**Drift:** {'DRIFTED' if self.drifted else 'no dataset drift'}, "
                f"{d.share_drifted:.0%} of features drifted"
                + (f"; signals counted: {', '.join(counted)}." if counted else ".")
                + engine,
                "",
                "| feature | method | statistic | drifted |",
                "|---|---|---|---|",
                *(
                    f"| {f.name} | {f.method} | {f.statistic:.4g} | {'yes' if f.drifted else ''} |"
                    for f in d.features
                ),
                "",
            ]
        else:
            lines += [f"**Drift:** not measured ({self.drift_note}).", ""]
        lines.append(f"**Performance:** {performance_text(self.performance)}")
        lines += [
            f"**Untrained rows:** {self.untrained_rows}.",
            "",
            "## Decisions",
            "",
        ]
        for o in self.outcomes:
            dec = o.decision
            verdict = "LAUNCH" if dec.launch else "no launch"
            run = f" (run `{o.launch.run_id}`: {o.launch.status})" if o.launch else ""
            lines.append(f"- {dec.signal.kind}: **{verdict}** [{dec.rule}] {dec.reason}{run}")
        if self.drift is not None and self.drift.markdown:
            lines += ["", "## Drift report", "", self.drift.markdown]
        return "\n".join(lines) + "\n"


def observe_result(metrics: MonitorMetrics, result: CheckResult, *, outcomes: bool = True) -> None:
    """Record a check's measurements (and with `outcomes`, its decisions) in `metrics`: what
    a monitor built without metrics (in a worker process) reports through its parent's."""
    if outcomes:
        for outcome in result.outcomes:
            metrics.observe_outcome(outcome)
    drift = result.drift
    if drift is not None:
        metrics.observe_drift(
            [(f.name, f.method, f.statistic, f.drifted) for f in drift.features],
            result.drifted,
            drift.share_drifted,
        )
    metrics.observe_check(
        result.checked_at.timestamp(),
        result.performance.get("drop"),
        champion_age=result.champion_age_windows,
    )
