"""The HTML report of each step, drawn from the details the step records.

`step_html` takes what a step already writes (its summary, its details and its Markdown) and
returns one self-contained page: the step's plots, its figures as tables, and the Markdown text.
It reads only the details, so a report can be redrawn from ``runs/<run_id>/<step>.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from retrain.reports._page import Raw, details_table, markdown_block, page, section, table
from retrain.reports._svg import (
    COLORS,
    Interval,
    Marker,
    Series,
    esc,
    fmt,
    grouped_bars,
    interval_plot,
    line_plot,
)

__all__ = ["MAX_HISTOGRAMS", "drift_section", "rollout_plots", "step_html"]

#: Details each step's plots and tables show in full (not repeated under "Figures").
_DRAWN = {"ingest": ("drift", "features"), "evaluate": ("gates",), "rollout": ("rollouts",)}

#: Most distributions drawn: the strongest drifted features (the table lists them all), so a
#: page with hundreds of drifted features stays a few hundred kilobytes.
MAX_HISTOGRAMS = 30

#: Distributions drawn when no feature drifted: the ones closest to their threshold.
_CLOSEST_SHOWN = 3


def step_html(
    step: str,
    summary: str,
    details: Mapping[str, Any],
    markdown: str = "",
    *,
    run_id: str = "",
    status: str = "succeeded",
    error: str = "",
) -> str:
    """The step's report page. Unknown steps get the generic page (figures and text)."""
    body: list[str] = []
    meta = " · ".join(x for x in (f"run {run_id}" if run_id else "", f"status {status}") if x)
    body.append(f'<p class="meta">{esc(meta)}</p>')
    if error:
        body.append(f'<p class="bad">{esc(error)}</p>')
    drawer = _DRAWERS.get(step)
    if drawer is not None and details:
        body += drawer(details)
    # What the plots and their tables already show is left out of the figures.
    figures = details_table({k: v for k, v in details.items() if k not in _DRAWN.get(step, ())})
    if figures:
        body.append(section("Figures", figures))
    body.append(markdown_block(markdown))
    return page(f"{step.capitalize()} report", body, subtitle=summary)


# --- ingest: drift -----------------------------------------------------------------------------


def _strength(f: Mapping[str, Any]) -> float:
    """How far past its threshold a feature is (the drift report's ranking)."""
    stat = f.get("statistic")
    if stat is None:
        return 0.0
    if f.get("test") == "p_value":
        p, alpha = f.get("p_value"), f.get("alpha")
        if not p or not alpha or alpha <= 0 or alpha >= 1:
            return 0.0
        return math.log(max(float(p), 1e-300)) / math.log(float(alpha))
    bound = max(float(f.get("threshold") or 0.0), float(f.get("null_threshold") or 0.0))
    return float(stat) / bound if bound > 0 else 0.0


def drift_section(drift: Mapping[str, Any]) -> list[str]:
    """Signals, reference vs current distributions (drifted features) and the feature table."""
    out: list[str] = []
    if not drift.get("features"):
        note = drift.get("summary") or drift.get("note") or "drift not checked"
        return [section("Drift", f"<p>{esc(note)}</p>")]
    fired = drift.get("fired") or []
    verdict = (
        f'<p class="bad">Drift detected: {esc(", ".join(map(str, fired)))} fired.</p>'
        if drift.get("drift_detected")
        else '<p class="ok">No drift signal fired.</p>'
    )
    champion = drift.get("champion")
    head = f"Drift vs champion {champion}" if champion else "Drift"
    rows = [
        [s.get("name"), s.get("value"), s.get("threshold"), _yes(s.get("fired")), s.get("detail")]
        for s in drift.get("signals", [])
    ]
    out.append(
        section(
            head,
            f'<p>Reference {esc(drift.get("n_ref"))} rows; current window '
            f'{esc(drift.get("n_cur"))} rows.</p>',
            verdict,
            table(["signal", "value", "threshold", "fired", "detail"], rows),
        )
    )
    features = list(drift["features"])
    ranked = sorted(features, key=lambda f: (not f.get("drifted"), -_strength(f)))
    drawn = [f for f in ranked if f.get("drifted") and f.get("histogram")]
    title = "Reference vs current: the drifted features"
    if not drawn:
        drawn = [f for f in ranked if f.get("histogram")][:_CLOSEST_SHOWN]
        title = "Reference vs current: no feature drifted; the closest to their threshold"
    more = len(drawn) - MAX_HISTOGRAMS
    if more > 0:
        drawn = drawn[:MAX_HISTOGRAMS]
        title += f" (the {MAX_HISTOGRAMS} strongest; {more} more in the table below)"
    prediction = drift.get("prediction")
    if prediction and prediction.get("histogram"):
        drawn.append({**prediction, "feature": "model scores"})
    plots = [_histogram(f) for f in drawn]
    out.append(section(title, '<div class="plots">' + "\n".join(plots) + "</div>"))
    table_rows = [
        [
            f.get("feature"),
            f.get("kind"),
            f.get("method"),
            f.get("statistic"),
            f.get("threshold"),
            f.get("null_threshold"),
            f.get("p_value"),
            Raw(_verdict_cell(f)),
            f.get("n_ref"),
            f.get("n_cur"),
            "; ".join(
                part
                for part in (
                    ", ".join(f"{k} ({v})" for k, v in (f.get("unseen_categories") or {}).items()),
                    f.get("note") or "",
                )
                if part
            ),
        ]
        for f in ranked
    ]
    out.append(
        section(
            "Features",
            table(
                ["feature", "kind", "method", "statistic", "threshold", "null threshold",
                 "p-value", "verdict", "n ref", "n cur", "unseen"],
                table_rows,
            ),
        )
    )
    texts = [f for f in ranked if f.get("text")]
    if texts:
        out.append(section("Text features", table(_TEXT_COLUMNS, [_text_row(f) for f in texts])))
    return out


_TEXT_COLUMNS = [
    "feature",
    "out-of-vocabulary tokens",
    "tokens per text (ref → cur)",
    "empty texts (ref → cur)",
    "new terms",
    "vanished terms",
]


def _text_row(f: Mapping[str, Any]) -> list[Any]:
    t = f["text"]

    def pair(key: str) -> str:
        return f"{fmt(t.get(key + '_ref'))} → {fmt(t.get(key + '_cur'))}"

    def terms(key: str) -> str:
        return ", ".join(f"{k} ({v})" for k, v in (t.get(key) or {}).items())

    return [
        f.get("feature"),
        t.get("oov_rate"),
        pair("mean_length"),
        pair("empty_share"),
        terms("new_terms"),
        terms("vanished_terms"),
    ]


def _histogram(f: Mapping[str, Any]) -> str:
    bars = f.get("histogram") or []
    stat = f"{f.get('method')} {fmt(f.get('statistic'))}"
    limit = f.get("threshold") if f.get("test") != "p_value" else f.get("alpha")
    title = f"{f.get('feature')}: {stat} (threshold {fmt(limit)})"
    return grouped_bars(
        title,
        [str(b.get("label")) for b in bars],
        [
            ("reference", [float(b.get("reference") or 0.0) for b in bars]),
            ("current", [float(b.get("current") or 0.0) for b in bars]),
        ],
    )


def _verdict_cell(f: Mapping[str, Any]) -> str:
    if f.get("statistic") is None:
        return "<td>n/a</td>"
    if f.get("drifted"):
        return '<td class="bad">drift</td>'
    return '<td class="warn">warning</td>' if f.get("warning") else '<td class="ok">ok</td>'


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _ingest(details: Mapping[str, Any]) -> list[str]:
    out = drift_section(details.get("drift") or {})
    feats = details.get("features") or {}
    if isinstance(feats, Mapping) and feats:
        rows = [[name, f.get("kind"), f.get("nulls"), f.get("null_rate")]
                for name, f in feats.items() if isinstance(f, Mapping)]
        out.append(section("Window", table(["feature", "kind", "nulls", "null rate"], rows)))
    return out


# --- label, train, deploy --------------------------------------------------------------------


def _label(details: Mapping[str, Any]) -> list[str]:
    coverage, minimum = details.get("coverage"), details.get("min_coverage")
    if not isinstance(coverage, (int, float)):
        return []
    thresholds = [(float(minimum), "minimum coverage")] if isinstance(minimum, (int, float)) else []
    ok = None if not thresholds else coverage >= thresholds[0][0]
    plot = interval_plot(
        "Label coverage against its minimum",
        [Interval("coverage", float(coverage), thresholds=thresholds, passed=ok)],
        axis="share of the window's events with a label",
    )
    counts = [
        ("labelled", details.get("labelled")),
        ("queued for labelling", details.get("queue")),
        ("not arrived yet", details.get("not_yet_arrived")),
    ]
    shown = [(k, float(v)) for k, v in counts if isinstance(v, (int, float))]
    bars = grouped_bars(
        "Events by label state", [k for k, _ in shown], [("events", [v for _, v in shown])],
        percent=False,
    )
    return [section("Labels", '<div class="plots">' + plot + bars + "</div>")]


def _train(details: Mapping[str, Any]) -> list[str]:
    prov = details.get("provenance") or {}
    roles = [("history", prov.get("history_rows")), ("new window", prov.get("new_rows"))]
    shown = [(k, float(v)) for k, v in roles if isinstance(v, (int, float))]
    if not shown:
        return []
    plot = grouped_bars(
        "Training rows by source", [k for k, _ in shown], [("rows", [v for _, v in shown])],
        percent=False,
    )
    return [section("Training mix", plot)]


def _deploy(details: Mapping[str, Any]) -> list[str]:
    predictors = [p for p in details.get("predictors") or [] if isinstance(p, Mapping)]
    if not predictors:
        return []
    labels = [f"{p.get('name')} {p.get('version')}" for p in predictors]
    plot = grouped_bars(
        "Serving traffic after deploy", labels,
        [("traffic", [float(p.get("traffic") or 0) / 100 for p in predictors])],
    )
    rows = [[p.get("name"), p.get("version"), p.get("traffic"), p.get("model_uri")]
            for p in predictors]
    return [section("Serving split", plot, table(["predictor", "version", "traffic %", "model"],
                                                  rows))]


# --- evaluate --------------------------------------------------------------------------------


def _evaluate(details: Mapping[str, Any]) -> list[str]:
    comp = details.get("comparison") or {}
    gates = {g.get("name"): g for g in details.get("gates") or [] if isinstance(g, Mapping)}
    # A refresh passed the improvement gate without a shown gain: said so, not a plain pass.
    refreshed = bool(comp.get("refresh"))
    out: list[str] = []
    rows: list[Interval] = []
    gain = comp.get("recent_gain")
    if isinstance(gain, (int, float)):
        ci = comp.get("recent_ci") or [None, None]
        improve = gates.get("recent_improvement", {}).get("passed")
        rows.append(
            Interval(
                "gain on recent rows: refresh" if refreshed else "gain on recent rows",
                float(gain),
                ci[0],
                ci[1],
                thresholds=[
                    (
                        float(comp.get("min_improvement") or 0.0),
                        "required gain (waived)" if refreshed else "required gain",
                    ),
                    (-float(comp.get("max_recent_regression") or 0.0), "allowed regression"),
                ],
                passed=improve and gates.get("recent_non_regression", {}).get("passed"),
            )
        )
    loss = comp.get("history_loss")
    if isinstance(loss, (int, float)):
        lci = comp.get("history_loss_ci")
        lower, upper = (-lci[1], -lci[0]) if lci else (None, None)
        # The budget in metric units the gate applied (for rmse/mae a share of the champion's
        # history value); records written before it was recorded only hold max_history_loss.
        budget = comp.get("history_loss_budget")
        if not isinstance(budget, (int, float)):
            budget = comp.get("max_history_loss")
        rows.append(
            Interval(
                "gain on history rows",
                -float(loss),
                lower,
                upper,
                thresholds=[(-float(budget or 0.0), "history loss budget")],
                passed=gates.get("history_bounded_loss", {}).get("passed"),
            )
        )
    if rows:
        conf = comp.get("confidence")
        level = f"{conf:.0%} " if isinstance(conf, float) else ""
        out.append(
            section(
                "Challenger vs champion",
                interval_plot(
                    f"Gain of the challenger, {level}bootstrap intervals, against the gates",
                    rows,
                    axis=f"{comp.get('metric', 'metric')} gain (positive: challenger better)",
                ),
            )
        )
    metrics = details.get("metrics") or {}
    metric = comp.get("metric")
    holdouts = [h for h in ("recent", "history")
                if any(h in (metrics.get(m) or {}) for m in ("challenger", "champion"))]
    if metric and holdouts:
        groups = [
            (m, [float(((metrics.get(m) or {}).get(h) or {}).get(metric, float("nan")))
                 for h in holdouts])
            for m in ("champion", "challenger") if metrics.get(m)
        ]
        out.append(grouped_bars(f"{metric} by evaluation set", holdouts, groups, percent=False))
    gate_rows = [
        [g.get("name"), Raw(_gate_cell(g, refreshed)), g.get("detail")] for g in gates.values()
    ]
    if gate_rows:
        out.append(section("Gates", table(["gate", "result", "detail"], gate_rows)))
    return out


def _gate_cell(g: Mapping[str, Any], refreshed: bool = False) -> str:
    if refreshed and g.get("name") == "recent_improvement" and g.get("passed"):
        return '<td class="warn">waived (refresh)</td>'
    if g.get("passed"):
        return '<td class="ok">pass</td>'
    return '<td class="bad">FAIL</td>' if g.get("decided", True) else "<td>undecided</td>"


# --- rollout ---------------------------------------------------------------------------------

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
        markers.append(Marker(i, f"{a.get('at')}: {a.get('verdict')}: {a.get('reason')}",
                              color, symbol))
    traffic = line_plot(
        f"Canary {state.get('canary')}: traffic per analysis",
        labels,
        [Series("canary traffic", [float(a.get("traffic") or 0) / 100 for a in analyses],
                COLORS["challenger"], step=True)],
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


def _rollout(details: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for state in details.get("rollouts") or []:
        if not isinstance(state, Mapping):
            continue
        analyses = [a for a in state.get("analyses") or [] if isinstance(a, Mapping)]
        rows = [[a.get("at"), a.get("traffic"), a.get("verdict"), a.get("reason")]
                for a in analyses]
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
        out.append(section("Decisions", "<ul>" + "".join(f"<li>{esc(d)}</li>" for d in decisions)
                           + "</ul>"))
    return out


_DRAWERS: dict[str, Callable[[Mapping[str, Any]], Sequence[str]]] = {
    "ingest": _ingest,
    "label": _label,
    "train": _train,
    "evaluate": _evaluate,
    "deploy": _deploy,
    "rollout": _rollout,
}
