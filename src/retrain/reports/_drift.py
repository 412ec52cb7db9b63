"""The ingest step's report: drift signals, reference vs current distributions, the window.

`drift_section` draws what the drift check records (its signals, a histogram of each drifted
feature, one table row per feature); `ingest_sections` adds the window's null counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from retrain.reports._page import Raw, section, table
from retrain.reports._svg import esc, fmt, grouped_bars

__all__ = ["MAX_HISTOGRAMS", "drift_section", "ingest_sections"]

#: Most distributions drawn: the strongest drifted features (the table lists them all), so a
#: page with hundreds of drifted features stays a few hundred kilobytes.
MAX_HISTOGRAMS = 30

#: Distributions drawn when no feature drifted: the ones closest to their threshold.
_CLOSEST_SHOWN = 3


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
            f"<p>Reference {esc(drift.get('n_ref'))} rows; current window "
            f"{esc(drift.get('n_cur'))} rows.</p>",
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
                [
                    "feature",
                    "kind",
                    "method",
                    "statistic",
                    "threshold",
                    "null threshold",
                    "p-value",
                    "verdict",
                    "n ref",
                    "n cur",
                    "unseen",
                ],
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


def ingest_sections(details: Mapping[str, Any]) -> list[str]:
    out = drift_section(details.get("drift") or {})
    feats = details.get("features") or {}
    if isinstance(feats, Mapping) and feats:
        rows = [
            [name, f.get("kind"), f.get("nulls"), f.get("null_rate")]
            for name, f in feats.items()
            if isinstance(f, Mapping)
        ]
        out.append(section("Window", table(["feature", "kind", "nulls", "null rate"], rows)))
    return out
