"""The model history page: a model's life on one page, drawn from what the loop recorded.

`build_history` turns the run records (``runs/<run_id>/<step>.json``), the monitor records
(``monitor/<time>.json``) and the registry's events and aliases into a `ModelHistory`, one row
per data window; `history_html` draws it. Both are pure: reading the store and writing the page
happen in the `retrain report` command.

The metric per window is prequential: the champion's metric on a window's held-out rows,
measured by evaluate before the window's challenger could replace it (the champion never
trained on them), beside the challenger's on the same rows and, where the monitor checked the
window once labels arrived, the monitor's measurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from retrain.reports._page import Raw, page, section, table
from retrain.reports._svg import COLORS, Marker, Series, esc, fmt, line_plot

__all__ = ["Canary", "ModelHistory", "WindowRow", "build_history", "history_html"]


@dataclass
class WindowRow:
    """What happened for one data window (its latest run of each step wins)."""

    window: str
    run_ids: list[str] = field(default_factory=list)
    champion_metric: float | None = None
    challenger_metric: float | None = None
    monitor_metric: float | None = None
    estimated_accuracy: float | None = None
    drift_share: float | None = None
    drift_threshold: float | None = None
    drift_fired: list[str] = field(default_factory=list)
    drifted_features: list[str] = field(default_factory=list)
    outcome: str | None = None  # evaluate: blessed, rejected, undecided
    refresh: bool = False  # blessed as a refresh: trained on newer data, no gain shown
    deployed: str | None = None  # deploy: the alias the version got (champion or canary)
    version: str | None = None
    failed: str | None = None  # "<step>: <message>" of a failed run
    events: list[str] = field(default_factory=list)


@dataclass
class Canary:
    """One rollout, as its latest record shows it."""

    rollout_id: str
    canary: str
    champion: str
    phase: str
    reason: str
    window: str | None
    run_id: str
    analyses: list[Mapping[str, Any]]


@dataclass
class ModelHistory:
    model: str
    metric: str | None
    windows: list[WindowRow]
    canaries: list[Canary]
    aliases: Mapping[str, str | None]
    events: list[Mapping[str, Any]]
    runs: list[tuple[str, str | None, Mapping[str, Mapping[str, Any]]]]  # run id, window, records


def _run_window(records: Mapping[str, Mapping[str, Any]]) -> str | None:
    ingest = (records.get("ingest") or {}).get("report") or {}
    window = ingest.get("window")
    if isinstance(window, Mapping) and window.get("id") is not None:
        return str(window["id"])
    resolved = ((records.get("resolve") or {}).get("report") or {}).get("window_id")
    return str(resolved) if resolved and resolved != "auto" else None


def _started(records: Mapping[str, Mapping[str, Any]]) -> str:
    return min((str(r.get("started_at") or "") for r in records.values()), default="")


def build_history(
    model: str,
    runs: Mapping[str, Mapping[str, Mapping[str, Any]]],
    monitor: Sequence[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
    aliases: Mapping[str, str | None] | None = None,
) -> ModelHistory:
    """Windows in the order their first run started; runs without a window (a rollout run
    on its own) are placed at the window whose run came last before them."""
    ordered = sorted(runs.items(), key=lambda kv: (_started(kv[1]), kv[0]))
    rows: dict[str, WindowRow] = {}
    placed: list[tuple[str, str | None, Mapping[str, Mapping[str, Any]]]] = []
    run_window: dict[str, str] = {}
    metric: str | None = None
    last: str | None = None
    for run_id, records in ordered:
        window = _run_window(records) or last
        placed.append((run_id, _run_window(records), records))
        if window is None:
            continue
        last = window
        run_window[run_id] = window
        row = rows.setdefault(window, WindowRow(window))
        row.run_ids.append(run_id)
        metric = _fill(row, records) or metric
    for doc in monitor:
        if doc.get("window") is None:  # a check that found no window to look at
            continue
        window = str(doc["window"])
        row = rows.setdefault(window, WindowRow(window))
        perf = doc.get("performance") or {}
        if isinstance(perf.get("current"), (int, float)):
            # Measured on the newest labelled window, which the block names.
            measured = str(perf.get("window") or window)
            rows.setdefault(measured, WindowRow(measured)).monitor_metric = float(perf["current"])
            metric = metric or perf.get("metric")
        drift = doc.get("drift") or {}
        if row.drift_share is None and isinstance(drift.get("share_drifted"), (int, float)):
            row.drift_share = float(drift["share_drifted"])
            row.drift_fired = [str(x) for x in drift.get("fired") or []]
            feats = drift.get("features") or []
            row.drifted_features = [str(f.get("name")) for f in feats if f.get("drifted")]
    canaries = _canaries(ordered, run_window)
    for ev in events:
        window = run_window.get(str(ev.get("run_id")))
        if window is None:
            window = _window_at(str(ev.get("time") or ""), ordered, run_window)
        if window is not None and window in rows:
            rows[window].events.append(str(ev.get("kind")))
    return ModelHistory(
        model, metric, list(rows.values()), canaries, dict(aliases or {}), list(events), placed
    )


def _window_at(
    time: str,
    ordered: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]],
    run_window: Mapping[str, str],
) -> str | None:
    """The window of the last run that started at or before `time` (ISO text sorts by time)."""
    window = None
    for run_id, records in ordered:
        if _started(records) <= time and run_id in run_window:
            window = run_window[run_id]
    return window


def _fill(row: WindowRow, records: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Copy one run's figures into its window's row; the primary metric's name, if known."""
    metric = None
    failed = [r for r in records.values() if r.get("status") == "failed"]
    # The window's latest run says whether it failed: a re-run that passed clears it.
    row.failed = f"{failed[0].get('step')}: {failed[0].get('message')}" if failed else None
    drift = ((records.get("ingest") or {}).get("report") or {}).get("drift") or {}
    feats = [f for f in drift.get("features") or [] if f.get("statistic") is not None]
    if feats:
        row.drift_share = sum(bool(f.get("drifted")) for f in feats) / len(feats)
        row.drifted_features = [str(f.get("feature")) for f in feats if f.get("drifted")]
        row.drift_fired = [str(x) for x in drift.get("fired") or []]
        share = next(
            (s for s in drift.get("signals") or [] if s.get("name") == "feature_share"), None
        )
        if share is not None and isinstance(share.get("threshold"), (int, float)):
            row.drift_threshold = float(share["threshold"])
        est = drift.get("estimated_performance") or {}
        if isinstance(est.get("value"), (int, float)):
            row.estimated_accuracy = float(est["value"])
    ev = (records.get("evaluate") or {}).get("report") or {}
    if ev:
        row.outcome = ev.get("outcome")
        row.version = ev.get("challenger")
        comparison = ev.get("comparison") or {}
        row.refresh = bool(comparison.get("refresh"))
        metric = comparison.get("metric")
        m = ev.get("metrics") or {}
        if metric:
            champ = ((m.get("champion") or {}).get("recent") or {}).get(metric)
            chall = ((m.get("challenger") or {}).get("recent") or {}).get(metric)
            row.champion_metric = float(champ) if isinstance(champ, (int, float)) else None
            row.challenger_metric = float(chall) if isinstance(chall, (int, float)) else None
    dep = (records.get("deploy") or {}).get("report") or {}
    if dep.get("alias"):
        row.deployed = str(dep["alias"])
    return str(metric) if metric else None


def _canaries(
    ordered: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]], run_window: Mapping[str, str]
) -> list[Canary]:
    found: dict[str, Canary] = {}
    for run_id, records in ordered:
        report = (records.get("rollout") or {}).get("report") or {}
        for state in report.get("rollouts") or []:
            rid = str(state.get("rollout_id"))
            found[rid] = Canary(
                rid,
                str(state.get("canary")),
                str(state.get("champion")),
                str(state.get("phase")),
                str(state.get("reason") or ""),
                run_window.get(run_id),
                run_id,
                [a for a in state.get("analyses") or [] if isinstance(a, Mapping)],
            )
    return list(found.values())


# --- drawing ---------------------------------------------------------------------------------

_OUTCOME_MARK = {
    "blessed": ("●", COLORS["good"], "retrained: challenger blessed"),
    "rejected": ("✗", COLORS["bad"], "retrained: challenger rejected"),
    "undecided": ("○", COLORS["neutral"], "retrained: undecided"),
}


def _markers(rows: Sequence[WindowRow], canaries: Sequence[Canary]) -> list[Marker]:
    index = {r.window: i for i, r in enumerate(rows)}
    out: list[Marker] = []
    for i, r in enumerate(rows):
        if r.drift_fired:
            out.append(
                Marker(
                    i,
                    f"window {r.window}: drift fired ({', '.join(r.drift_fired)})",
                    COLORS["warn"],
                    "⚠",
                )
            )
        if r.outcome in _OUTCOME_MARK:
            symbol, color, words = _OUTCOME_MARK[r.outcome]
            words += " (refresh)" if r.refresh else ""
            out.append(Marker(i, f"window {r.window}: {words} ({r.version})", color, symbol))
        if r.deployed:
            symbol = "▲" if r.deployed == "champion" else "◆"
            out.append(
                Marker(
                    i,
                    f"window {r.window}: deployed {r.version} as {r.deployed}",
                    COLORS["champion"],
                    symbol,
                )
            )
        if r.failed:
            out.append(
                Marker(i, f"window {r.window}: run failed at {r.failed}", COLORS["bad"], "!")
            )
    for c in canaries:
        if c.window in index and c.phase in ("promoted", "rolled_back"):
            good = c.phase == "promoted"
            out.append(
                Marker(
                    index[c.window],
                    f"canary {c.canary} {c.phase.replace('_', ' ')}",
                    COLORS["good"] if good else COLORS["bad"],
                    "★" if good else "↩",
                )
            )
    return out


_LEGEND = (
    "Events under the plot: ⚠ drift fired · ● challenger blessed · ✗ rejected · ○ undecided · "
    "▲ deployed as champion · ◆ canary started · ★ canary promoted · ↩ canary rolled back · "
    "! run failed. Hover a symbol for details."
)


def _traffic_plot(canaries: Sequence[Canary]) -> str:
    """Every canary's traffic at each of its analyses, in the order they happened."""
    points = sorted(
        ((str(a.get("at")), k, a) for k, c in enumerate(canaries) for a in c.analyses),
        key=lambda t: t[0],
    )
    if not points:
        return "<p>No canary analysis recorded.</p>"
    labels = [f"w{canaries[k].window}" if canaries[k].window else "–" for _, k, _ in points]
    palette = [COLORS["challenger"], COLORS["current"], COLORS["good"], "#9467bd", COLORS["bad"]]
    series = []
    for k, c in enumerate(canaries):
        values = [float(a.get("traffic") or 0) / 100 if j == k else None for _, j, a in points]
        series.append(Series(f"canary {c.canary}", values, palette[k % len(palette)], step=True))
    markers = []
    for i, (_, k, a) in enumerate(points):
        verdict = str(a.get("verdict"))
        symbol, color = {"passed": ("✓", COLORS["good"]), "failed": ("✗", COLORS["bad"])}.get(
            verdict, ("…", COLORS["neutral"])
        )
        markers.append(
            Marker(
                i,
                f"{a.get('at')}: canary {canaries[k].canary} {verdict}: {a.get('reason')}",
                color,
                symbol,
            )
        )
    return line_plot(
        "Canary traffic at each analysis (x: analyses in time order, by window)",
        labels,
        series,
        markers=markers,
        y_range=(0.0, 1.0),
        percent=True,
        y_label="traffic",
    )


def history_html(
    history: ModelHistory, links: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """The page. `links[run_id][step]` is the relative address of that step's HTML report."""
    links = links or {}
    rows = history.windows
    labels = [r.window for r in rows]
    metric = history.metric or "metric"
    series = [
        Series(
            f"champion {metric} (before retraining)",
            [r.champion_metric for r in rows],
            COLORS["champion"],
        ),
        Series(f"challenger {metric}", [r.challenger_metric for r in rows], COLORS["challenger"]),
    ]
    if any(r.monitor_metric is not None for r in rows):
        series.append(
            Series(f"monitor: champion {metric}", [r.monitor_metric for r in rows], COLORS["good"])
        )
    if any(r.estimated_accuracy is not None for r in rows):
        series.append(
            Series(
                "estimated accuracy (no labels)",
                [r.estimated_accuracy for r in rows],
                COLORS["neutral"],
            )
        )
    markers = _markers(rows, history.canaries)
    metric_plot = line_plot(
        f"{metric} per window, prequential (champion on each window's held-out rows)",
        labels,
        series,
        markers=markers,
        y_label=metric,
    )
    threshold = next((r.drift_threshold for r in rows if r.drift_threshold is not None), None)
    drift_plot = line_plot(
        "Share of features drifted per window (vs the champion's reference)",
        labels,
        [Series("features drifted", [r.drift_share for r in rows], COLORS["warn"])],
        markers=[m for m in markers if m.symbol == "⚠"],
        hlines=[(threshold, "drift_share threshold")] if threshold is not None else [],
        y_range=(0.0, 1.0),
        percent=True,
        y_label="share drifted",
    )
    a = history.aliases
    now = (
        f"<p>Champion <b>{esc(a.get('champion') or 'none')}</b> · canary "
        f"<b>{esc(a.get('canary') or 'none')}</b></p>"
    )
    body = [
        now,
        section(
            "Model metric, drift and events per window",
            f'<p class="meta">{esc(_LEGEND)}</p>',
            metric_plot,
            drift_plot,
        ),
        section("Canaries", _traffic_plot(history.canaries), _canary_table(history.canaries)),
        section("Windows", _window_table(rows)),
        section("Runs and their step reports", _runs_table(history, links)),
        section("Registry events", _events_table(history.events)),
    ]
    return page(
        f"Model history: {history.model}",
        body,
        subtitle=f"{len(rows)} windows, {len(history.runs)} runs, {len(history.canaries)} canaries",
    )


def _canary_table(canaries: Sequence[Canary]) -> str:
    rows = [
        [
            c.canary,
            c.champion,
            c.window,
            c.phase,
            len(c.analyses),
            max((int(x.get("traffic") or 0) for x in c.analyses), default=0),
            c.reason,
        ]
        for c in canaries
    ]
    return table(
        ["canary", "champion at start", "window", "phase", "analyses", "peak traffic %", "reason"],
        rows,
    )


def _window_table(rows: Sequence[WindowRow]) -> str:
    body = [
        [
            r.window,
            fmt(r.champion_metric),
            fmt(r.challenger_metric),
            "–" if r.drift_share is None else f"{r.drift_share:.0%}",
            ", ".join(r.drift_fired) or "–",
            ", ".join(r.drifted_features[:5]) or "–",
            _outcome(r),
            r.deployed or "–",
            ", ".join(r.events) or "–",
            r.failed or "",
        ]
        for r in rows
    ]
    return table(
        [
            "window",
            "champion",
            "challenger",
            "drifted",
            "signals fired",
            "drifted features",
            "evaluate",
            "deployed as",
            "events",
            "failed",
        ],
        body,
    )


def _outcome(row: WindowRow) -> str:
    if row.outcome is None:
        return "–"
    return f"{row.outcome} (refresh)" if row.refresh else row.outcome


def _runs_table(history: ModelHistory, links: Mapping[str, Mapping[str, str]]) -> str:
    body = []
    for run_id, window, records in history.runs:
        cells = []
        for step, rec in records.items():
            href = links.get(run_id, {}).get(step)
            cls = "bad" if rec.get("status") == "failed" else "ok"
            name = esc(step)
            cells.append(
                f'<a class="{cls}" href="{esc(href)}">{name}</a>'
                if href
                else f'<span class="{cls}">{name}</span>'
            )
        body.append([run_id, window or "–", Raw("<td>" + " · ".join(cells) + "</td>")])
    return table(["run", "window", "steps (report)"], body)


def _events_table(events: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for ev in events:
        extra = {k: v for k, v in ev.items() if k not in ("kind", "time", "id", "model")}
        rows.append(
            [ev.get("time"), ev.get("kind"), " ".join(f"{k}={v}" for k, v in extra.items())]
        )
    return table(["time", "event", "fields"], rows)
