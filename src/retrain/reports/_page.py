"""The HTML page around the plots: one self-contained document, readable without JavaScript.

The page carries its style inline and a Content-Security-Policy that allows no script and no
fetch at all (only inline styles and ``data:`` images): everything it shows is in the file, and
even text that slipped past escaping could neither run nor load anything. It renders the same
in a browser, in the Kubeflow UI's HTML visualization (an iframe) and from a plain directory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from retrain.reports._svg import esc, fmt

__all__ = ["CSP", "details_table", "markdown_block", "page", "section", "table"]

#: No scripts, no network: inline styles and data: images only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:18px 0 6px}.summary{font-size:15px;margin:6px 0 16px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2ca02c}.bad{color:#d62728;font-weight:bold}.warn{color:#b08000}
.meta{color:#666;font-size:12px}svg.plot{display:block;margin:8px 0;max-width:100%;height:auto}
.plots{display:flex;flex-wrap:wrap;gap:12px}
pre.md{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:10px;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:12px}
"""


def page(title: str, body: Sequence[str], *, subtitle: str = "") -> str:
    """A whole HTML document: `title` (escaped) and `body` parts (already HTML)."""
    sub = f'<p class="summary">{esc(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{sub}\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def section(heading: str, *parts: str) -> str:
    """An ``<h2>`` and its content (`parts` are HTML)."""
    return f"<h2>{esc(heading)}</h2>\n" + "\n".join(p for p in parts if p)


def cell(value: Any) -> str:
    """A table cell for any JSON value: numbers right-aligned, the rest escaped text."""
    if isinstance(value, bool) or value is None:
        return f"<td>{esc('–' if value is None else value)}</td>"
    if isinstance(value, (int, float)):
        shown = str(value) if isinstance(value, int) else fmt(value)
        if isinstance(value, float) and not math.isfinite(value):
            shown = "–"
        return f'<td class="num">{esc(shown)}</td>'
    return f"<td>{esc(value)}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, cls: str = "") -> str:
    """An HTML table; each value through `cell` unless it is a `Raw` piece of HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "\n".join(
        "<tr>" + "".join(v.html if isinstance(v, Raw) else cell(v) for v in row) + "</tr>"
        for row in rows
    )
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


class Raw:
    """A table value that is already HTML (built from escaped parts by this package)."""

    def __init__(self, html: str) -> None:
        self.html = html


def details_table(details: Mapping[str, Any], *, limit: int = 40) -> str:
    """The details' scalar fields (nested ones flattened with dots), as a two-column table."""
    rows: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif not isinstance(value, (list, tuple)):
            rows.append((prefix, value))

    walk("", details)
    return table(["field", "value"], rows) if rows else ""


def markdown_block(markdown: str) -> str:
    """The step's Markdown report, as text (escaped), under a heading that folds it."""
    if not markdown:
        return ""
    return (
        "<h2>Report text</h2>\n<details open><summary>The Markdown report</summary>"
        f'<pre class="md">{esc(markdown)}</pre></details>'
    )
