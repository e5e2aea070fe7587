"""Self-contained HTML reports: plotly charts with plotly.js embedded once, inline.

No CDN, no network at view time: the JavaScript comes from the installed plotly package.

>>> import plotly.graph_objects as go
>>> page = render_report("T", [Section("A", figures=[go.Figure()], html="<p>x</p>")])
>>> page.count("<script") >= 2 and "<script src=" not in page
True
"""

from __future__ import annotations

import html as _html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STYLE = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2933;background:#f7f9fb}
header{background:#243b53;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.8;font-size:13px}
main{padding:16px 32px;max-width:1200px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:12px 20px;margin:16px 0}
h2{font-size:17px;margin:6px 0 10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 10px;text-align:left}
th{background:#f0f4f8}
.bad{color:#b42318;font-weight:600}.ok{color:#067647}.warn{color:#b54708;font-weight:600}
.kpis{display:flex;gap:14px;flex-wrap:wrap}.kpi{border:1px solid #d9e2ec;border-radius:6px;padding:8px 14px;background:#fff}
.kpi b{display:block;font-size:20px}
"""


@dataclass
class Section:
    """One titled block of a report: optional HTML, then figures (plotly) in order."""

    title: str
    figures: Sequence[Any] = field(default_factory=list)
    html: str = ""


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               classes: Mapping[int, str] | None = None) -> str:
    """An HTML table of ``rows``; ``classes`` maps row index to a CSS class (bad/ok/warn)."""
    if not rows:
        return "<p><em>none</em></p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in cols)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and i in classes else ""
        cells = "".join(f"<td>{_html.escape(_fmt(row.get(c)))}</td>" for c in cols)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kpis_html(items: Mapping[str, Any]) -> str:
    """A row of headline numbers."""
    cells = "".join(f'<div class="kpi">{_html.escape(str(k))}<b>{_html.escape(_fmt(v))}</b></div>' for k, v in items.items())
    return f'<div class="kpis">{cells}</div>'


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_report(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The whole report as one HTML string with plotly.js inlined once."""
    from plotly.offline import get_plotlyjs

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{_html.escape(title)}</title><style>{STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<header><h1>{_html.escape(title)}</h1><p>{_html.escape(subtitle)} · generated {stamp} by serein</p></header><main>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{_html.escape(section.title)}</h2>{section.html}")
        for fig in section.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}))
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write_report(path: str | Path, title: str, sections: Sequence[Section], subtitle: str = "") -> Path:
    """Render and write a report; returns its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_report(title, sections, subtitle), encoding="utf-8")
    return p
