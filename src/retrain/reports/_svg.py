"""Plots as inline SVG text: grouped bars, intervals against thresholds, lines with events.

Every plot is a string of SVG with its own width and height, drawn from plain numbers: no
library, no JavaScript, no external resource. All text goes through `esc`, so a label holding
markup is drawn as its characters. Shapes carry a ``class`` that says what they stand for
(``bar ref``, ``bar cur``, ``point``, ``threshold`` ...) and a ``<title>`` with the exact value,
shown as a tooltip and read by the tests.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "COLORS",
    "Interval",
    "Marker",
    "Series",
    "esc",
    "fmt",
    "grouped_bars",
    "interval_plot",
    "line_plot",
]

#: One palette for every report: reference grey, current blue, and verdict colours.
COLORS = {
    "reference": "#9e9e9e",
    "current": "#1f77b4",
    "champion": "#1f77b4",
    "challenger": "#ff7f0e",
    "good": "#2ca02c",
    "bad": "#d62728",
    "neutral": "#7f7f7f",
    "warn": "#e6a700",
    "threshold": "#d62728",
}

_FONT = 'font-family="sans-serif" font-size="11"'


def esc(value: object) -> str:
    """Text safe in HTML and SVG, in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def fmt(value: float | None) -> str:
    """A number short enough for a label: 3 significant digits, '–' for none."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e9:
        return f"{value:.2e}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open(width: float, height: float, label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-label="{esc(label)}">',
        f"<title>{esc(label)}</title>",
    ]


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return out


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for name, color in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" {_FONT}>{esc(name)}</text>')
        x += 24 + 7 * len(name)
    return out


# --- grouped bars ----------------------------------------------------------------------------


def grouped_bars(
    title: str,
    labels: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float]]],
    *,
    percent: bool = True,
    height: float = 220,
) -> str:
    """Bars side by side per label, one colour per group (e.g. reference and current shares).

    Bar heights are proportional to the values, on an axis from 0 to the largest value; the
    class of each bar is ``bar`` plus the group's name lowercased (``bar reference``).
    """
    n, k = len(labels), max(len(groups), 1)
    slot = max(18.0, min(60.0, 520.0 / max(n, 1)))
    left, right, top, bottom = 48.0, 12.0, 44.0, 70.0
    legend_w = sum(24 + 7 * len(g) for g, _ in groups)
    width = max(left + right + slot * max(n, 1), 16 + 6.5 * len(title), left + legend_w)
    plot_h = height - top - bottom
    values = [v for _, vs in groups for v in vs if math.isfinite(v)]
    vmax = max([*values, 0.0]) or 1.0
    out = _open(width, height, title)
    out.append(f'<text x="8" y="14" {_FONT} font-weight="bold">{esc(title)}</text>')
    palette = [COLORS["reference"], COLORS["current"], COLORS["challenger"], COLORS["good"]]
    out += _legend(left, 30, [(g, palette[i % 4]) for i, (g, _) in enumerate(groups)])
    for t in _ticks(0.0, vmax, 4):
        y = top + plot_h * (1 - t / vmax)
        label = f"{t:.0%}" if percent else fmt(t)
        out.append(
            f'<line x1="{left:.1f}" x2="{width - right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{left - 4:.1f}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{label}</text>'
        )
    bar_w = (slot - 6) / k
    for i, label in enumerate(labels):
        x0 = left + slot * i + 3
        for j, (group, vs) in enumerate(groups):
            v = vs[i] if i < len(vs) and math.isfinite(vs[i]) else 0.0
            h = plot_h * v / vmax
            shown = f"{v:.1%}" if percent else fmt(v)
            out.append(
                f'<rect class="bar {esc(group.lower())}" x="{x0 + bar_w * j:.2f}" '
                f'y="{top + plot_h - h:.2f}" width="{bar_w:.2f}" height="{h:.3f}" '
                f'fill="{palette[j % 4]}"><title>{esc(label)}: {esc(group)} {shown}</title></rect>'
            )
        cx, cy = x0 + (slot - 6) / 2, top + plot_h + 10
        out.append(
            f'<text x="{cx:.1f}" y="{cy:.1f}" {_FONT} text-anchor="end" '
            f'transform="rotate(-35 {cx:.1f} {cy:.1f})">{esc(_short(label, 16))}'
            f"<title>{esc(label)}</title></text>"
        )
    out.append(
        f'<line x1="{left:.1f}" x2="{width - right:.1f}" y1="{top + plot_h:.1f}" '
        f'y2="{top + plot_h:.1f}" stroke="#333"/>'
    )
    out.append("</svg>")
    return "\n".join(out)


# --- intervals against thresholds ------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """One row of an interval plot: a point estimate, its interval, and the lines it is judged
    against (value, what the line means)."""

    label: str
    point: float | None
    lower: float | None = None
    upper: float | None = None
    thresholds: Sequence[tuple[float, str]] = ()
    passed: bool | None = None


def interval_plot(title: str, rows: Sequence[Interval], *, axis: str = "") -> str:
    """Each row's interval as a whisker and its point as a dot, with dashed threshold lines.

    The x axis spans every value shown and zero; ``class="interval"`` lines run from lower to
    upper, ``class="point"`` circles sit at the point, ``class="threshold"`` lines at each
    threshold of the row.
    """
    row_h, left, right, top = 56.0, 170.0, 110.0, 34.0
    width, height = 720.0, top + row_h * max(len(rows), 1) + 34
    xs = [0.0]
    for r in rows:
        xs += [v for v in (r.point, r.lower, r.upper) if v is not None and math.isfinite(v)]
        xs += [t for t, _ in r.thresholds if math.isfinite(t)]
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad
    plot_w = width - left - right

    def x_of(v: float) -> float:
        return left + plot_w * (v - lo) / (hi - lo)

    out = _open(width, height, title)
    out.append(f'<text x="8" y="16" {_FONT} font-weight="bold">{esc(title)}</text>')
    axis_y = top + row_h * max(len(rows), 1)
    for t in _ticks(lo, hi, 6):
        x = x_of(t)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{axis_y:.1f}" '
            f'stroke="{"#999" if t == 0 else "#eee"}"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{axis_y + 14:.1f}" text-anchor="middle" {_FONT}>{fmt(t)}</text>'
        )
    if axis:
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 28:.1f}" '
            f'text-anchor="middle" {_FONT}>{esc(axis)}</text>'
        )
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = {True: COLORS["good"], False: COLORS["bad"], None: COLORS["neutral"]}[r.passed]
        out.append(f'<text x="8" y="{y + 4:.1f}" {_FONT}>{esc(_short(r.label, 28))}</text>')
        for j, (t, meaning) in enumerate(r.thresholds):
            x = x_of(t)
            out.append(
                f'<line class="threshold" x1="{x:.2f}" x2="{x:.2f}" y1="{y - row_h / 2 + 4:.1f}" '
                f'y2="{y + row_h / 2 - 4:.1f}" stroke="{COLORS["threshold"]}" '
                f'stroke-dasharray="4 3"><title>{esc(meaning)}: {fmt(t)}</title></line>'
            )
            # One line per threshold: two at the same place (0 and -0) stay readable.
            out.append(
                f'<text x="{x + 3:.1f}" y="{y - row_h / 2 + 12 + 11 * j:.1f}" {_FONT} '
                f'fill="{COLORS["threshold"]}">{esc(_short(meaning, 22))}</text>'
            )
        if r.lower is not None and r.upper is not None:
            x1, x2 = x_of(r.lower), x_of(r.upper)
            out.append(
                f'<line class="interval" x1="{x1:.2f}" x2="{x2:.2f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="3"><title>interval [{fmt(r.lower)}, '
                f"{fmt(r.upper)}]</title></line>"
            )
            for x in (x1, x2):
                out.append(
                    f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{y - 6:.1f}" y2="{y + 6:.1f}" '
                    f'stroke="{color}" stroke-width="2"/>'
                )
        if r.point is not None and math.isfinite(r.point):
            out.append(
                f'<circle class="point" cx="{x_of(r.point):.2f}" cy="{y:.1f}" r="5" '
                f'fill="{color}"><title>{esc(r.label)}: {fmt(r.point)}</title></circle>'
            )
    out.append("</svg>")
    return "\n".join(out)


# --- lines over a categorical x axis, with event markers -------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: a value per x position (None: no point there)."""

    name: str
    values: Sequence[float | None]
    color: str = COLORS["current"]
    step: bool = False  # drawn as steps (traffic), not straight segments


@dataclass(frozen=True)
class Marker:
    """An event at an x position, drawn in the lane under the plot (and as a faint rule)."""

    index: int
    label: str
    color: str = COLORS["neutral"]
    symbol: str = "●"


@dataclass(frozen=True)
class _Lane:
    markers: list[Marker] = field(default_factory=list)


def line_plot(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    markers: Sequence[Marker] = (),
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    hlines: Sequence[tuple[float, str]] = (),
    percent: bool = False,
) -> str:
    """Lines over evenly spaced x positions, horizontal reference lines, events in a lane.

    Points are ``class="point"`` circles with the series name and value as their title; each
    marker is a ``class="marker"`` text symbol under the plot at its x position.
    """
    n = max(len(x_labels), 1)
    left, right, top = 56.0, 270.0, 30.0
    slot = max(26.0, min(70.0, 700.0 / n))
    plot_w, plot_h = slot * n, 170.0
    lanes = _marker_rows(markers)
    lane_h = 16.0
    width = left + plot_w + right
    height = top + plot_h + 40 + lane_h * len(lanes) + (14 if y_label else 0)
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    values += [v for v, _ in hlines]
    lo, hi = (
        y_range if y_range is not None else (min(values, default=0.0), max(values, default=1.0))
    )
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if y_range is None:
        pad = (hi - lo) * 0.08
        lo, hi = lo - pad, hi + pad

    def x_of(i: int) -> float:
        return left + slot * i + slot / 2

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    out = _open(width, height, title)
    out.append(f'<text x="{left:.1f}" y="14" {_FONT} font-weight="bold">{esc(title)}</text>')
    for t in _ticks(lo, hi, 5):
        y = y_of(t)
        out.append(
            f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#eee"/>'
        )
        label = f"{t:.0%}" if percent else fmt(t)
        out.append(
            f'<text x="{left - 4:.1f}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{label}</text>'
        )
    if y_label:
        out.append(
            f'<text x="12" y="{top + plot_h / 2:.1f}" {_FONT} text-anchor="middle" '
            f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{esc(y_label)}</text>'
        )
    for m in markers:  # a faint rule through the plot at each event
        x = x_of(m.index)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{top + plot_h:.1f}" '
            f'stroke="{m.color}" stroke-opacity="0.25"/>'
        )
    for v, meaning in hlines:
        y = y_of(v)
        out.append(
            f'<line class="threshold" x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.2f}" '
            f'y2="{y:.2f}" stroke="{COLORS["threshold"]}" stroke-dasharray="5 3">'
            f"<title>{esc(meaning)}: {fmt(v)}</title></line>"
        )
    legend_y = top + 6
    for s in series:
        pts = [
            (x_of(i), y_of(v)) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)
        ]
        path = _path(pts, s.step)
        if path:
            out.append(
                f'<path class="line" d="{path}" fill="none" stroke="{s.color}" '
                f'stroke-width="2"><title>{esc(s.name)}</title></path>'
            )
        for i, value in enumerate(s.values):
            if value is None or not math.isfinite(value):
                continue
            v = value
            shown = f"{v:.0%}" if percent else fmt(v)
            out.append(
                f'<circle class="point" cx="{x_of(i):.2f}" cy="{y_of(v):.2f}" r="3.5" '
                f'fill="{s.color}"><title>{esc(s.name)} at {esc(x_labels[i])}: {shown}'
                "</title></circle>"
            )
        out.append(
            f'<rect x="{left + plot_w + 10:.1f}" y="{legend_y - 9:.1f}" width="10" '
            f'height="10" fill="{s.color}"/>'
        )
        out.append(
            f'<text x="{left + plot_w + 24:.1f}" y="{legend_y:.1f}" {_FONT}>'
            f"{esc(_short(s.name, 40))}</text>"
        )
        legend_y += 16
    axis_y = top + plot_h
    out.append(
        f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{axis_y:.1f}" '
        f'y2="{axis_y:.1f}" stroke="#333"/>'
    )
    every = max(1, math.ceil(n * 40 / plot_w))  # keep x labels from overlapping
    for i, label in enumerate(x_labels):
        if i % every == 0:
            out.append(
                f'<text x="{x_of(i):.1f}" y="{axis_y + 14:.1f}" text-anchor="middle" '
                f"{_FONT}>{esc(_short(label, 10))}</text>"
            )
    for r, lane in enumerate(lanes):
        y = axis_y + 34 + lane_h * r
        for m in lane.markers:
            out.append(
                f'<text class="marker" x="{x_of(m.index):.1f}" y="{y:.1f}" text-anchor="middle" '
                f'font-size="13" fill="{m.color}">{esc(m.symbol)}<title>{esc(m.label)}</title>'
                "</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _marker_rows(markers: Sequence[Marker]) -> list[_Lane]:
    """Markers stacked so two at one x position never overlap."""
    lanes: list[_Lane] = []
    for m in markers:
        for lane in lanes:
            if all(o.index != m.index for o in lane.markers):
                lane.markers.append(m)
                break
        else:
            lanes.append(_Lane([m]))
    return lanes


def _path(points: Sequence[tuple[float, float]], step: bool) -> str:
    if not points:
        return ""
    parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for x1, y1 in points[1:]:
        parts.append(f"H{x1:.1f}V{y1:.1f}" if step else f"L{x1:.1f},{y1:.1f}")
    return " ".join(parts)
