"""The model history: windows, prequential metric, drift, events and canaries from records."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from retrain.reports import build_history, history_html

SVG = "{http://www.w3.org/2000/svg}"


def run(window: str | None, start: str, **steps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    if window is not None:
        records["ingest"] = {
            "step": "ingest",
            "status": "succeeded",
            "started_at": start,
            "report": {"window": {"id": window}},
        }
    for name, rec in steps.items():
        records[name] = {"step": name, "status": "succeeded", "started_at": start, **rec}
    return records


def evaluate(champion: float | None, challenger: float, outcome: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {"challenger": {"recent": {"auc": challenger}}}
    if champion is not None:
        metrics["champion"] = {"recent": {"auc": champion}}
    return {
        "report": {
            "outcome": outcome,
            "challenger": f"v{challenger}",
            "comparison": {"metric": "auc"},
            "metrics": metrics,
        }
    }


def drift(fired: list[str], drifted: int, of: int) -> dict[str, Any]:
    feats = [{"feature": f"f{i}", "statistic": 0.5, "drifted": i < drifted} for i in range(of)]
    return {
        "fired": fired,
        "features": feats,
        "signals": [{"name": "feature_share", "threshold": 0.5}],
    }


def rollout(phase: str, traffic: list[int]) -> dict[str, Any]:
    analyses = [
        {"at": f"2026-01-0{i + 1}T00:00:00", "traffic": t, "verdict": "passed"}
        for i, t in enumerate(traffic)
    ]
    return {
        "report": {
            "rollouts": [
                {
                    "rollout_id": f"r-{phase}",
                    "canary": "c",
                    "champion": "a",
                    "phase": phase,
                    "analyses": analyses,
                }
            ]
        }
    }


def test_windows_metric_drift_and_canaries_come_from_the_records() -> None:
    failed_first = run("0", "2026-01-01T00:00:00")
    failed_first["label"] = {
        "step": "label",
        "status": "failed",
        "message": "coverage",
        "started_at": "2026-01-01T00:00:01",
    }
    changed = run(
        "2",
        "2026-01-04T00:00:00",
        evaluate=evaluate(0.55, 0.8, "blessed"),
        deploy={"report": {"alias": "canary"}},
        rollout=rollout("promoted", [10, 50]),
    )
    changed["ingest"]["report"]["drift"] = drift(["feature_share"], 3, 4)
    runs = {
        "r0a": failed_first,
        "r0b": run(
            "0",
            "2026-01-02T00:00:00",
            evaluate=evaluate(None, 0.9, "blessed"),
            deploy={"report": {"alias": "champion"}},
        ),
        "r1": run("1", "2026-01-03T00:00:00", evaluate=evaluate(0.91, 0.9, "undecided")),
        "r2": changed,
        # A rollout run of its own (no window) after window 2's run: it belongs to window 2.
        "drill": run(None, "2026-01-05T00:00:00", rollout=rollout("rolled_back", [10])),
    }
    events = [
        {"kind": "promoted", "time": "2026-01-04T01:00:00", "run_id": None},
        {"kind": "deployed", "time": "2026-01-02T01:00:00", "run_id": "r0b"},
    ]
    monitor = [
        {
            "window": "1",
            "performance": {"metric": "auc", "current": 0.7},
            "drift": {"share_drifted": 0.25},
        },
        {"window": None},
    ]
    history = build_history("m", runs, monitor, events, {"champion": "v0.8", "canary": None})
    rows = {r.window: r for r in history.windows}
    assert list(rows) == ["0", "1", "2"]
    assert history.metric == "auc"
    assert rows["0"].failed is None  # the re-run of window 0 passed
    assert rows["0"].run_ids == ["r0a", "r0b"]
    assert (rows["1"].champion_metric, rows["1"].challenger_metric) == (0.91, 0.9)
    assert (rows["1"].monitor_metric, rows["1"].drift_share) == (0.7, 0.25)
    assert (rows["2"].champion_metric, rows["2"].outcome, rows["2"].deployed) == (
        0.55,
        "blessed",
        "canary",
    )
    assert rows["2"].drift_share == 3 / 4 and rows["2"].drift_fired == ["feature_share"]
    assert rows["2"].events == ["promoted"] and rows["0"].events == ["deployed"]
    assert [(c.phase, c.window) for c in history.canaries] == [
        ("promoted", "2"),
        ("rolled_back", "2"),
    ]

    html = history_html(history, {"r2": {"evaluate": "runs/r2/evaluate.html"}})
    plots = [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]
    points = [
        (c.findtext(f"{SVG}title") or "")
        for p in plots
        for c in p.iter(f"{SVG}circle")
        if c.get("class") == "point"
    ]
    assert "champion auc (before retraining) at 2: 0.55" in points
    assert "monitor: champion auc at 1: 0.7" in points
    markers = [
        (t.findtext(f"{SVG}title") or "")
        for p in plots
        for t in p.iter(f"{SVG}text")
        if t.get("class") == "marker"
    ]
    assert any("drift fired" in m for m in markers)
    assert any(m.startswith("canary c promoted") for m in markers)
    assert any(m.startswith("canary c rolled back") for m in markers)
    assert 'href="runs/r2/evaluate.html"' in html


def test_the_monitor_metric_is_placed_at_the_window_it_was_measured_on() -> None:
    runs = {"r0": run("0", "2026-01-01T00:00:00"), "r1": run("1", "2026-01-02T00:00:00")}
    monitor = [{"window": "1", "performance": {"metric": "auc", "current": 0.6, "window": "0"}}]
    rows = {r.window: r for r in build_history("m", runs, monitor).windows}
    assert (rows["0"].monitor_metric, rows["1"].monitor_metric) == (0.6, None)


def test_a_window_only_the_monitor_checked_shows_the_signals_it_fired() -> None:
    # As `retrain monitor` writes it: the drift block names fired signals and each feature.
    runs = {"r0": run("0", "2026-01-01T00:00:00")}
    drift = {
        "share_drifted": 0.5,
        "fired": ["feature_share"],
        "features": [{"name": "a", "drifted": True}, {"name": "b", "drifted": False}],
    }
    history = build_history("m", runs, [{"window": "1", "drift": drift}])
    rows = {r.window: r for r in history.windows}
    assert rows["1"].drift_share == 0.5
    assert rows["1"].drift_fired == ["feature_share"]
    assert rows["1"].drifted_features == ["a"]


def test_a_blessing_by_refresh_is_drawn_and_listed_as_one() -> None:
    refreshed = evaluate(0.8, 0.804, "blessed")
    refreshed["report"]["comparison"]["refresh"] = True
    runs = {
        "r0": run("0", "2026-01-01T00:00:00", evaluate=evaluate(0.7, 0.8, "blessed")),
        "r1": run("1", "2026-01-02T00:00:00", evaluate=refreshed),
    }
    html = history_html(build_history("m", runs))
    plots = [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]
    markers = [
        (t.findtext(f"{SVG}title") or "")
        for p in plots
        for t in p.iter(f"{SVG}text")
        if t.get("class") == "marker"
    ]
    assert "window 0: retrained: challenger blessed (v0.8)" in markers
    assert "window 1: retrained: challenger blessed (refresh) (v0.804)" in markers
    # The windows table: the evaluate column of each row.
    assert "<td>blessed (refresh)</td>" in html and "<td>blessed</td>" in html
