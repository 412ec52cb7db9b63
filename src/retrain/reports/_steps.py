"""The HTML report of each step, drawn from the details the step records.

`step_html` takes what a step already writes (its summary, its details and its Markdown) and
returns one self-contained page: the step's plots, its figures as tables, and the Markdown text.
It reads only the details, so a report can be redrawn from ``runs/<run_id>/<step>.json``.
The label, train, deploy and evaluate sections are drawn here; ingest's in `_drift`, rollout's
in `_rollout`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from retrain.reports._drift import ingest_sections
from retrain.reports._page import Raw, details_table, markdown_block, page, section, table
from retrain.reports._rollout import rollout_sections
from retrain.reports._svg import Interval, esc, grouped_bars, interval_plot

__all__ = ["step_html"]

#: Details each step's plots and tables show in full (not repeated under "Figures").
_DRAWN = {"ingest": ("drift", "features"), "evaluate": ("gates",), "rollout": ("rollouts",)}


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
        "Events by label state",
        [k for k, _ in shown],
        [("events", [v for _, v in shown])],
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
        "Training rows by source",
        [k for k, _ in shown],
        [("rows", [v for _, v in shown])],
        percent=False,
    )
    return [section("Training mix", plot)]


def _deploy(details: Mapping[str, Any]) -> list[str]:
    predictors = [p for p in details.get("predictors") or [] if isinstance(p, Mapping)]
    if not predictors:
        return []
    labels = [f"{p.get('name')} {p.get('version')}" for p in predictors]
    plot = grouped_bars(
        "Serving traffic after deploy",
        labels,
        [("traffic", [float(p.get("traffic") or 0) / 100 for p in predictors])],
    )
    rows = [
        [p.get("name"), p.get("version"), p.get("traffic"), p.get("model_uri")] for p in predictors
    ]
    return [
        section("Serving split", plot, table(["predictor", "version", "traffic %", "model"], rows))
    ]


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
    holdouts = [
        h
        for h in ("recent", "history")
        if any(h in (metrics.get(m) or {}) for m in ("challenger", "champion"))
    ]
    if metric and holdouts:
        groups = [
            (
                m,
                [
                    float(((metrics.get(m) or {}).get(h) or {}).get(metric, float("nan")))
                    for h in holdouts
                ],
            )
            for m in ("champion", "challenger")
            if metrics.get(m)
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


_DRAWERS: dict[str, Callable[[Mapping[str, Any]], Sequence[str]]] = {
    "ingest": ingest_sections,
    "label": _label,
    "train": _train,
    "evaluate": _evaluate,
    "deploy": _deploy,
    "rollout": rollout_sections,
}
