"""The HTML reports' plots carry the numbers they draw, and their text stays text.

Each SVG is parsed as XML and its geometry checked against values computed here independently
(numpy histograms of the data, the intervals' own end points), not read back from the code.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.config import Config, config_from_dict
from retrain.drift import Bar, DriftReport, FeatureDrift, Signal, build_profile, detect_drift
from retrain.reports import CSP, step_html
from retrain.reports._drift import MAX_HISTOGRAMS
from retrain.reports._svg import Interval, Series, interval_plot, line_plot

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG of a page, parsed (an SVG that is not well-formed XML fails here)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def bars(svg: ET.Element, group: str) -> list[float]:
    return [
        float(r.get("height", "nan"))
        for r in svg.iter(f"{SVG}rect")
        if r.get("class") == f"bar {group}"
    ]


def config() -> Config:
    return config_from_dict(
        {
            "name": "m",
            "task": "classification",
            "target": "y",
            "storage_root": "store",
            "data": {
                "uri": "e",
                "id_column": "id",
                "time_column": "t",
                "features": {"x": "numeric", "c": "categorical"},
            },
            "labels": {"uri": "l", "id_column": "id", "label_column": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "deploy": {"deployment_name": "m"},
        }
    )


def test_drift_bars_are_the_numpy_histograms_of_both_windows() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 5000), "c": rng.choice(["a", "b"], 5000)})
    cur = pd.DataFrame({"x": rng.normal(0.8, 1.3, 4000), "c": rng.choice(["a", "b"], 4000)})
    cfg = config()
    profile = build_profile(ref, cfg)
    report = detect_drift(profile, cur, cfg)
    assert "x" in report.drifted_features
    html = step_html("ingest", "s", {"drift": report.to_dict()}, "")
    plot = next(s for s in svgs(html) if (s.get("aria-label") or "").startswith("x:"))
    edges = profile.features["x"].edges
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    want_ref = np.histogram(ref["x"], bins=bins)[0] / len(ref)
    want_cur = np.histogram(cur["x"], bins=bins)[0] / len(cur)
    keep = (want_ref > 0) | (want_cur > 0)  # empty out-of-range buckets get no bar
    keep[1:-1] = True
    want_ref, want_cur = want_ref[keep], want_cur[keep]
    got_ref, got_cur = np.array(bars(plot, "reference")), np.array(bars(plot, "current"))
    scale = max(got_ref.max(), got_cur.max()) / max(want_ref.max(), want_cur.max())
    np.testing.assert_allclose(got_ref / scale, want_ref, atol=2e-4)
    np.testing.assert_allclose(got_cur / scale, want_cur, atol=2e-4)


def test_interval_plot_puts_interval_point_and_thresholds_on_one_linear_axis() -> None:
    svg = ET.fromstring(
        interval_plot(
            "gain",
            [Interval("recent", 0.12, 0.05, 0.2, thresholds=[(0.0, "required"), (-0.03, "min")])],
        )
    )
    (line,) = [e for e in svg.iter(f"{SVG}line") if e.get("class") == "interval"]
    (point,) = [e for e in svg.iter(f"{SVG}circle") if e.get("class") == "point"]
    lo_x, hi_x = float(line.get("x1", "nan")), float(line.get("x2", "nan"))
    thresholds = {
        (e.findtext(f"{SVG}title") or "").split(":")[0]: float(e.get("x1", "nan"))
        for e in svg.iter(f"{SVG}line")
        if e.get("class") == "threshold"
    }

    def x(v: float) -> float:  # the axis through the interval's ends
        return lo_x + (hi_x - lo_x) * (v - 0.05) / (0.2 - 0.05)

    assert float(point.get("cx", "nan")) == pytest.approx(x(0.12), abs=0.02)
    assert thresholds["required"] == pytest.approx(x(0.0), abs=0.02)
    assert thresholds["min"] == pytest.approx(x(-0.03), abs=0.02)


def test_line_plot_heights_are_linear_in_the_values_and_gaps_stay_gaps() -> None:
    values = [0.1, 0.25, None, 0.5, 1.0]
    svg = ET.fromstring(
        line_plot("t", ["a", "b", "c", "d", "e"], [Series("s", values)], y_range=(0.0, 1.0))
    )
    ys = [float(c.get("cy", "nan")) for c in svg.iter(f"{SVG}circle") if c.get("class") == "point"]
    shown = [v for v in values if v is not None]
    assert len(ys) == len(shown)
    slope = (ys[-1] - ys[0]) / (shown[-1] - shown[0])
    assert slope < 0  # larger values higher up
    for v, y in zip(shown, ys, strict=True):
        assert y == pytest.approx(ys[0] + slope * (v - shown[0]), abs=0.02)


def hostile_drift() -> dict[str, object]:
    feature = FeatureDrift(
        feature=HOSTILE,
        kind="categorical",
        method="jensenshannon",
        test="distance",
        statistic=0.4,
        threshold=0.1,
        drifted=True,
        histogram=[Bar(SCRIPT, 0.2, 0.7), Bar("b", 0.8, 0.3)],
        unseen_categories={SCRIPT: 3},
    )
    signal = Signal("feature_share", True, 1.0, 0.5, f"drifted: {HOSTILE}")
    return DriftReport([feature], [signal], 100, 100).to_dict()


def test_markup_in_names_and_categories_is_escaped_everywhere() -> None:
    html = step_html("ingest", f"summary {SCRIPT}", {"drift": hostile_drift()}, f"# {HOSTILE}")
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in html
    for svg in svgs(html):  # still well-formed: no markup leaked into the SVG
        texts = "".join(svg.itertext())
        assert "img" not in {e.tag.replace(SVG, "") for e in svg.iter()}
        assert HOSTILE in texts or SCRIPT in texts or "b" in texts


def test_pages_forbid_scripts_and_fetches_and_stay_small_at_100_features() -> None:
    rng = np.random.default_rng(0)
    features = [
        FeatureDrift(
            feature=f"feature_{i:03d}_with_a_long_name",
            kind="numeric",
            method="wasserstein",
            test="distance",
            statistic=float(rng.uniform(0.2, 1)),
            threshold=0.1,
            drifted=True,  # every feature drifted: the most a page draws
            histogram=[
                Bar(f"[{j}, {j + 1})", float(p), float(q))
                for j, (p, q) in enumerate(
                    zip(rng.dirichlet(np.ones(12)), rng.dirichlet(np.ones(12)), strict=True)
                )
            ],
        )
        for i in range(100)
    ]
    drift = DriftReport(features, [Signal("feature_share", True, 1.0, 0.5, "all")], 10, 10)
    html = step_html("ingest", "s", {"drift": drift.to_dict()}, "# text\n" * 200)
    assert len(svgs(html)) == MAX_HISTOGRAMS  # the strongest; the table lists every feature
    assert html.count("<tr><td>feature_0") == 100  # each in its row of the feature table
    assert len(html.encode()) < 400_000, len(html.encode())
    assert f'content="{CSP}"' in html and "default-src 'none'" in CSP
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


def test_evaluate_report_draws_both_intervals_with_their_gates() -> None:
    details = {
        "comparison": {
            "metric": "roc_auc",
            "confidence": 0.95,
            "recent_gain": 0.3,
            "recent_ci": [0.25, 0.36],
            "min_improvement": 0.0,
            "max_recent_regression": 0.0,
            "history_loss": 0.004,
            "history_loss_ci": [-0.001, 0.009],
            "max_history_loss": 0.02,
        },
        "gates": [
            {"name": "recent_improvement", "passed": True, "detail": "d"},
            {"name": "recent_non_regression", "passed": True, "detail": "d"},
            {"name": "history_bounded_loss", "passed": True, "detail": "d"},
        ],
        "metrics": {
            "challenger": {"recent": {"roc_auc": 0.8}},
            "champion": {"recent": {"roc_auc": 0.5}},
        },
    }
    (plot, metric_bars) = svgs(step_html("evaluate", "s", details, ""))
    intervals = [
        (float(e.get("x1", "nan")), float(e.get("x2", "nan")))
        for e in plot.iter(f"{SVG}line")
        if e.get("class") == "interval"
    ]
    assert len(intervals) == 2
    # History: the gain interval is the loss interval negated, [-0.009, 0.001].
    (r1, r2), (h1, h2) = intervals
    scale = (r2 - r1) / (0.36 - 0.25)
    assert (h2 - h1) / scale == pytest.approx(0.010, abs=1e-3)
    assert (r1 - h2) / scale == pytest.approx(0.25 - 0.001, abs=1e-3)
    champion, challenger = bars(metric_bars, "champion"), bars(metric_bars, "challenger")
    assert challenger[0] / champion[0] == pytest.approx(0.8 / 0.5, rel=1e-3)


def test_evaluate_report_draws_the_history_budget_the_gate_used() -> None:
    # rmse: the gate's budget is a share (0.05) of the champion's history rmse (40), i.e. 2.0
    # in rmse units; the chart must put the line there, not at the share read as units.
    details = {
        "comparison": {
            "metric": "rmse",
            "confidence": 0.95,
            "recent_gain": 3.0,
            "recent_ci": [1.0, 5.0],
            "min_improvement": 0.0,
            "max_recent_regression": 0.0,
            "history_loss": 0.5,
            "history_loss_ci": [-0.5, 1.5],
            "max_history_loss": 0.05,
            "history_loss_budget": 2.0,
        },
        "gates": [{"name": "history_bounded_loss", "passed": True, "detail": "d"}],
        "metrics": {},
    }
    (plot,) = svgs(step_html("evaluate", "s", details, ""))
    lines = [e for e in plot.iter(f"{SVG}line")]
    (r1, r2), _ = [
        (float(e.get("x1", "nan")), float(e.get("x2", "nan")))
        for e in lines
        if e.get("class") == "interval"
    ]
    scale = (r2 - r1) / (5.0 - 1.0)
    at = [
        1.0 + (float(e.get("x1", "nan")) - r1) / scale
        for e in lines
        if e.get("class") == "threshold"
    ]
    assert len(at) == 3  # required gain, allowed regression, history budget
    assert at[2] == pytest.approx(-2.0, abs=1e-2)


def _refresh_details(refresh: bool) -> dict[str, Any]:
    # An equal challenger (interval across 0) on newer data: with a refresh the improvement
    # gate is passed without the gain, and the report must not show that as a plain pass.
    return {
        "comparison": {
            "metric": "roc_auc",
            "confidence": 0.95,
            "recent_gain": 0.004,
            "recent_ci": [-0.02, 0.028],
            "min_improvement": 0.0,
            "max_recent_regression": 0.0,
            "refresh": refresh,
        },
        "gates": [
            {"name": "recent_non_regression", "passed": True, "detail": "d"},
            {
                "name": "recent_improvement",
                "passed": refresh,
                "detail": "lower bound of the interval -0.020 does not exceed the required +0.000",
            },
        ],
        "metrics": {},
    }


def test_evaluate_report_shows_the_improvement_gate_waived_by_a_refresh() -> None:
    html = step_html("evaluate", "s", _refresh_details(True), "")
    (plot,) = svgs(html)
    labels = [t.text or "" for t in plot.iter(f"{SVG}text")]
    assert "gain on recent rows: refresh" in labels
    assert "required gain (waived)" in labels
    row = re.search(r"<td>recent_improvement</td>\s*(<td[^>]*>[^<]*</td>)", html)
    assert row is not None and row.group(1) == '<td class="warn">waived (refresh)</td>'
    # Without a refresh the same row reads as before.
    plain = step_html("evaluate", "s", _refresh_details(False), "")
    (plot,) = svgs(plain)
    labels = [t.text or "" for t in plot.iter(f"{SVG}text")]
    assert "gain on recent rows" in labels and "required gain" in labels
    assert "waived" not in plain
