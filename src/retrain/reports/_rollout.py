"""The rollout step's report: each canary's traffic, verdicts and check values per analysis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retrain.reports._page import section, table
from retrain.reports._svg import COLORS, Marker, Series, esc, line_plot

__all__ = ["rollout_plots", "rollout_sections"]

_VERDICT_MARK = {
    "passed": ("✓", COLORS["good"]),
    "failed": ("✗", COLORS["bad"]),
    "waiting": ("…", COLORS["neutral"]),
    "not_ready": ("…", COLORS["neutral"]),
    "manual": ("✋", COLORS["warn"]),
}


def rollout_plots(state: Mapping[str, Any]) -> list[str]:
    """Traffic per analysis with its verdict, and each check's value as a share of its limit."""
    analyses = [a for a in state.get("analyses") or [] if isinstance(a, Mapping)]
    if not analyses:
        return [f"<p>No analysis yet for canary {esc(state.get('canary'))}.</p>"]
    labels = [str(i + 1) for i in range(len(analyses))]
    markers = []
    for i, a in enumerate(analyses):
        symbol, color = _VERDICT_MARK.get(str(a.get("verdict")), ("?", COLORS["neutral"]))
        markers.append(
            Marker(i, f"{a.get('at')}: {a.get('verdict')}: {a.get('reason')}", color, symbol)
        )
    traffic = line_plot(
        f"Canary {state.get('canary')}: traffic per analysis",
        labels,
        [
            Series(
                "canary traffic",
                [float(a.get("traffic") or 0) / 100 for a in analyses],
                COLORS["challenger"],
                step=True,
            )
        ],
        markers=markers,
        y_range=(0.0, 1.0),
        percent=True,
        y_label="traffic",
    )
    names: list[str] = []
    for a in analyses:
        names += [c["name"] for c in a.get("checks") or [] if c.get("name") not in names]
    palette = [COLORS["current"], COLORS["challenger"], COLORS["good"], COLORS["warn"], "#9467bd"]
    series = []
    for k, name in enumerate(names):
        values: list[float | None] = []
        for a in analyses:
            check = next((c for c in a.get("checks") or [] if c.get("name") == name), None)
            v, limit = (check or {}).get("value"), (check or {}).get("max")
            values.append(float(v) / float(limit) if v is not None and limit else None)
        series.append(Series(name, values, palette[k % len(palette)]))
    plots = [traffic]
    if series:
        plots.append(
            line_plot(
                "Check values as a share of their limit (above 1: the check fails)",
                labels,
                series,
                hlines=[(1.0, "limit")],
                y_label="value ÷ max",
            )
        )
    return plots


def rollout_sections(details: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for state in details.get("rollouts") or []:
        if not isinstance(state, Mapping):
            continue
        analyses = [a for a in state.get("analyses") or [] if isinstance(a, Mapping)]
        rows = [
            [a.get("at"), a.get("traffic"), a.get("verdict"), a.get("reason")] for a in analyses
        ]
        out.append(
            section(
                f"Canary {state.get('canary')} vs champion {state.get('champion')}: "
                f"{state.get('phase')}",
                f"<p>{esc(state.get('reason'))}</p>",
                '<div class="plots">' + "\n".join(rollout_plots(state)) + "</div>",
                table(["time", "traffic %", "verdict", "reason"], rows),
            )
        )
    decisions = [d for d in details.get("decisions") or [] if isinstance(d, str)]
    if decisions:
        out.append(
            section(
                "Decisions", "<ul>" + "".join(f"<li>{esc(d)}</li>" for d in decisions) + "</ul>"
            )
        )
    return out
