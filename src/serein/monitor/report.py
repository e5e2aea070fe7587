"""The HTML report of a monitoring run: summary, drift table, reference-vs-window distributions
of every feature and of the predictions, performance on labelled rows with intervals, the CBPE
estimate beside realized performance, data quality, and — when the run was chunked — drift,
performance, estimate and quality over time, and the alert timeline.

Drift over time is drawn as each feature's *drift ratio*, comparable across methods and chunk
sizes: ``score / threshold`` for a distance (or a missing-rate change, when the missing rate alone
drifted), ``threshold / score`` for a test's corrected p-value (capped at 10): a feature drifted in
a chunk when its ratio is at least 1.

Charts come from the stored summaries only (the reference profile and the window's counts in the
result), so a report can be drawn without the data; plotly is imported only when one is asked for.
The page is self-contained (``serein.report.page``: plotly.js inline, no CDN).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serein.report.page import Section, kpis_html, table_html, write_report

if TYPE_CHECKING:
    from serein.monitor.monitor import MonitorResult

STATUS_CLASS = {"drift": "bad", "warning": "warn", "ok": "ok"}
RATIO_CAP = 10.0
SEVERITY_COLOUR = {"critical": "#d64545", "warning": "#f0b429", "info": "#829ab1"}
LAYOUT = {"height": 340, "margin": {"t": 40, "b": 40, "l": 50, "r": 10},
          "legend": {"orientation": "h", "y": -0.2}}


def drift_ratio(part: Mapping[str, Any]) -> float | None:
    """How far past its threshold a verdict is (≥ 1: drifted), whatever the method.

    >>> drift_ratio({"method": "psi", "score": 0.1, "threshold": 0.2})
    0.5
    >>> drift_ratio({"method": "ks", "score": 0.001, "threshold": 0.01, "direction": "below"})
    10.0
    >>> drift_ratio({"method": "missing_rate", "score": 0.1, "threshold": 0.05})
    2.0
    """
    score, threshold = part.get("score"), part.get("threshold")
    if score is None or not threshold:
        return None
    if part.get("method") in ("ks", "chi2"):
        return min(RATIO_CAP, threshold / score) if score > 0 else RATIO_CAP
    return min(RATIO_CAP, score / threshold)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable names of the right-closed bins of ``edges`` (open outer bins).

    >>> bin_labels([1.0, 2.5])
    ['≤ 1', '(1, 2.5]', '> 2.5']
    """
    if not edges:
        return ["all"]
    inner = [f"({a:.4g}, {b:.4g}]" for a, b in zip(edges[:-1], edges[1:])]
    return [f"≤ {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}"]


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def distribution_figure(title: str, ref: Mapping[str, Any], drift: Mapping[str, Any]) -> Any:
    """Grouped bars of reference and window shares on the reference's bins or categories."""
    import plotly.graph_objects as go

    if drift["kind"] == "numeric":
        labels = bin_labels(ref["edges"])
        ref_counts, cur_counts = ref["counts"], drift["current_counts"]
    else:
        cur = drift["current_counts"]
        labels = [name for name in cur if name in ref["categories"] or cur[name] or
                  (name == "__other__" and ref.get("other"))]
        ref_all = {**ref["categories"], "__other__": ref.get("other", 0)}
        ref_counts = [ref_all.get(name, 0) for name in labels]
        cur_counts = [cur[name] for name in labels]
    fig = go.Figure([
        go.Bar(name="reference", x=labels, y=_shares(ref_counts), marker_color="#829ab1"),
        go.Bar(name="window", x=labels, y=_shares(cur_counts), marker_color="#d64545" if drift["drifted"] else "#3ebd93"),
    ])
    fig.update_layout(title=title, barmode="group", height=300, margin={"t": 40, "b": 40, "l": 40, "r": 10},
                      yaxis_tickformat=".0%", legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"})
    return fig


def _drift_rows(features: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    rows, classes = [], {}
    order = sorted(features, key=lambda n: (not features[n]["drifted"], n))
    for i, name in enumerate(order):
        f = features[name]
        rows.append({"feature": name, "kind": f["kind"], "method": f.get("method"), "score": f.get("score"),
                     "threshold": f.get("threshold"), "psi": f.get("psi"),
                     "wasserstein / unseen": f.get("wasserstein", f.get("unseen_rate")),
                     "missing": f"{f['null_rate_ref']:.1%} → {f['null_rate']:.1%}", "status": f["status"],
                     "reasons": "; ".join(f.get("reasons", []))})
        if f["status"] in STATUS_CLASS:
            classes[i] = STATUS_CLASS[f["status"]]
    return rows, classes


def _prediction_section(result: MonitorResult, profile: Mapping[str, Any]) -> Section:
    pred = result.prediction_drift or {}
    ref = profile["prediction"]
    refs = {"values": ref.get("values"), "classes": ref.get("predicted"), "scores": ref.get("scores")}
    figures = [distribution_figure(f"predicted {part}", refs[part], p) for part, p in pred.items()
               if isinstance(p, dict) and p.get("current_counts") is not None and refs.get(part)]
    rows = [{"output": part, "method": p.get("method"), "score": p.get("score"), "threshold": p.get("threshold"),
             "status": p["status"], "reasons": "; ".join(p.get("reasons", []))}
            for part, p in pred.items() if isinstance(p, dict)]
    return Section("Predictions", figures=figures, html=table_html(rows))


def _performance_section(result: MonitorResult) -> Section:
    perf = result.performance
    if not perf:
        return Section("Performance", html="<p>No feedback labels in this window.</p>")
    rows = [{"metric": m, "holdout": v["reference"], "window": v["current"], "95% low": v.get("low"),
             "95% high": v.get("high"), "change": v["change"],
             "dropped": "yes" if v["dropped"] else ""} for m, v in perf["metrics"].items()]
    classes = {i: "bad" for i, r in enumerate(rows) if r["dropped"]}
    note = (f"<p>{perf['n_labelled']} labelled rows"
            + (f" (fewer than {perf['min_labels']}: no verdict)" if perf["n_labelled"] < perf["min_labels"] else "")
            + ".</p>")
    return Section("Performance", html=note + table_html(rows, classes=classes))


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _x(chunks: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Chunk positions on a chart: their start times when known and distinct to the minute, else
    their numbers (row chunks of a burst of traffic can all start within one minute).

    >>> _x([{"index": 0, "start": 0.0}, {"index": 1, "start": 3600.0}])
    ['1970-01-01 00:00', '1970-01-01 01:00']
    >>> _x([{"index": 0, "start": 0.0}, {"index": 1, "start": 20.0}])
    ['chunk 1', 'chunk 2']
    """
    if all(c.get("start") is not None for c in chunks):
        times = [_when(c["start"]) for c in chunks]
        if len(set(times)) == len(times):
            return times
    return [f"chunk {c['index'] + 1}" for c in chunks]


def _band(fig: Any, x: list[Any], low: list[Any], high: list[Any], colour: str, name: str) -> None:
    """A shaded interval between ``low`` and ``high``."""
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=low, mode="lines", line={"width": 0}, fill="tonexty", fillcolor=colour,
                             name=name, hoverinfo="skip"))


def drift_over_time_figure(chunks: Sequence[Mapping[str, Any]]) -> Any:
    """Each feature's (and the scores') drift ratio per chunk, with the line at 1."""
    import plotly.graph_objects as go

    x = _x(chunks)
    fig = go.Figure()
    names = sorted({name for c in chunks for name in c["features"]})
    series = {name: [drift_ratio(c["features"].get(name, {})) for c in chunks] for name in names}
    series.update({f"predicted {part}": [drift_ratio(c["prediction_drift"].get(part) or {}) for c in chunks]
                   for part in ("classes", "scores", "values") if any(part in c["prediction_drift"] for c in chunks)})
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines+markers", name=name))
    fig.add_hline(y=1.0, line_dash="dash", line_color="#d64545", annotation_text="drift")
    fig.update_layout(title="Drift ratio per chunk (≥ 1: drifted)", yaxis_title="score / threshold", **LAYOUT)
    return fig


def performance_over_time_figures(chunks: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Per metric: realized values with their 95 % intervals, and the CBPE estimate with its
    interval, chunk by chunk."""
    import plotly.graph_objects as go

    x = _x(chunks)
    metrics = []
    for c in chunks:
        for source in ((c.get("performance") or {}).get("metrics") or {}, (c.get("estimated_performance") or {}).get("metrics") or {}):
            metrics += [m for m in source if m not in metrics]
    figures = []
    for m in metrics:
        realized = [((c.get("performance") or {}).get("metrics") or {}).get(m) or {} for c in chunks]
        estimated = [((c.get("estimated_performance") or {}).get("metrics") or {}).get(m) or {} for c in chunks]
        fig = go.Figure()
        if any(e for e in estimated):
            _band(fig, x, [e.get("low") for e in estimated], [e.get("high") for e in estimated],
                  "rgba(130,154,177,0.3)", "estimate 95%")
            fig.add_trace(go.Scatter(x=x, y=[e.get("value") for e in estimated], mode="lines+markers",
                                     name="estimated (CBPE)", line={"dash": "dot", "color": "#486581"}))
        if any(r for r in realized):
            _band(fig, x, [r.get("low") for r in realized], [r.get("high") for r in realized],
                  "rgba(62,189,147,0.25)", "realized 95%")
            fig.add_trace(go.Scatter(x=x, y=[r.get("current") for r in realized], mode="lines+markers",
                                     name="realized", line={"color": "#1f7a5a"}))
            ref = next((r.get("reference") for r in realized if r.get("reference") is not None), None)
            if ref is not None:
                fig.add_hline(y=ref, line_dash="dash", line_color="#829ab1", annotation_text="holdout")
        fig.update_layout(title=f"{m} per chunk", **LAYOUT)
        figures.append(fig)
    return figures


def quality_over_time_figure(chunks: Sequence[Mapping[str, Any]]) -> Any:
    """The share of each chunk's rows breaking the contract."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=_x(chunks), y=[(c.get("quality") or {}).get("bad_row_rate") for c in chunks],
                                mode="lines+markers", name="rows breaking the contract")])
    fig.update_layout(title="Rows breaking the contract, per chunk", yaxis_tickformat=".1%", yaxis_rangemode="tozero", **LAYOUT)
    return fig


def alert_timeline_figure(alerts: Sequence[Mapping[str, Any]]) -> Any:
    """One bar per alert from when it opened to when it was resolved (or last updated), by rule."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for severity, colour in SEVERITY_COLOUR.items():
        mine = [a for a in alerts if a["severity"] == severity]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[v for a in mine for v in (_when(a["created_at"]), _when(a.get("resolved_at") or a["updated_at"]), None)],
            y=[v for a in mine for v in [f"{a['rule']} {a.get('feature') or ''}".strip()] * 2 + [None]],
            mode="lines+markers", line={"width": 6, "color": colour}, name=severity,
        ))
    fig.update_layout(title="Alert timeline", height=max(240, 40 + 24 * len({(a['rule'], a.get('feature')) for a in alerts})),
                      margin={"t": 40, "b": 40, "l": 200, "r": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


def _estimate_section(result: MonitorResult) -> Section:
    est = result.estimated_performance
    if not est:
        return Section("Estimated performance (CBPE)",
                       html="<p>No estimate: the model is not a classifier or its profile holds no calibration.</p>")
    rows = [{"metric": m, "estimate": v["value"], "95% low": v["low"], "95% high": v["high"], "holdout": v.get("reference"),
             "realized": v.get("realized"), "dropped": "yes" if m in est["dropped"] else ""} for m, v in est["metrics"].items()]
    note = (f"<p>Estimated from calibrated scores on all {est['n']} rows; realized on the {est['n_labelled']} "
            f"labelled rows. The interval is where the realized value should fall if calibration holds.</p>")
    return Section("Estimated performance (CBPE)", html=note + table_html(rows, classes={i: "bad" for i, r in enumerate(rows) if r["dropped"]}))


def _quality_section(result: MonitorResult) -> Section:
    q = result.quality
    if not q:
        return Section("Data quality", html="<p>Not checked.</p>")
    rows = [{"check": c["name"], "severity": c["severity"], "rows": c["count"], "rate": f"{c['rate']:.2%}",
             "breached": "yes" if c["breached"] else "", "examples": ", ".join(map(str, c["examples"])),
             "message": c["message"]} for c in q["checks"]]
    note = (f"<p>{q['bad_rows']} of {q['n_rows']} rows ({q['bad_row_rate']:.2%}) break the contract; a check is "
            f"breached at a rate of {q['max_rate']:.1%} and {q['min_count']} rows.</p>")
    return Section("Data quality", html=note + table_html(rows, classes={i: "bad" for i, r in enumerate(rows) if r["breached"]}))


def _over_time_sections(result: MonitorResult, alerts: Sequence[Mapping[str, Any]]) -> list[Section]:
    sections = []
    chunks = result.chunks or []
    if chunks:
        sections.append(Section(f"Drift over time ({len(chunks)} chunks of {result.window.get('chunk')})",
                                figures=[drift_over_time_figure(chunks)]))
        performance = performance_over_time_figures(chunks)
        if performance:  # none without labels or an estimate (a regressor's unlabelled batch)
            sections.append(Section("Performance over time: realized and estimated", figures=performance))
        sections.append(Section("Data quality over time", figures=[quality_over_time_figure(chunks)]))
    if alerts:
        rows = [{"id": a["id"], "rule": a["rule"], "feature": a.get("feature"), "severity": a["severity"],
                 "status": a["status"], "count": a["count"], "opened": _when(a["created_at"]),
                 "updated": _when(a["updated_at"]), "message": a["message"]} for a in alerts]
        sections.append(Section("Alerts", figures=[alert_timeline_figure(alerts)], html=table_html(rows)))
    return sections


def write_monitor_report(path: str | Path, result: MonitorResult, profile: Mapping[str, Any],
                         alerts: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write the report of ``result`` (compared with ``profile``) to ``path``, with the model's
    ``alerts`` (``ws.alerts.list(model=...)``) on a timeline; returns the path."""
    rows, classes = _drift_rows(result.features)
    pred_drift = bool(result.prediction_drift and result.prediction_drift["drifted"])
    summary = kpis_html({
        "rows": result.n_rows, "drifted features": f"{len(result.drifted)} / {len(result.features)}",
        "prediction drift": "yes" if pred_drift else "no",
        "label drift": "n/a" if result.label_drift is None else ("yes" if result.label_drift["drifted"] else "no"),
        "multivariate": "n/a" if result.multivariate is None else f"AUC {result.multivariate['score']:.3f}",
        "performance drop": ", ".join((result.performance or {}).get("dropped", [])) or "no",
        "quality breaches": len((result.quality or {}).get("breached", [])),
        "alerts": len(result.alerts),
    }) + f"<p>Window: {html.escape(result.window['source'])}</p>"
    charted = [r["feature"] for r in rows if result.features[r["feature"]].get("current_counts") is not None]
    figures = [distribution_figure(name, profile["features"][name], result.features[name]) for name in charted]
    sections = [
        Section("Summary", html=summary),
        Section("Feature drift", html=table_html(rows, classes=classes)),
        Section("Distributions: reference vs window", figures=figures),
        _prediction_section(result, profile),
        _performance_section(result),
        _estimate_section(result),
        _quality_section(result),
        *_over_time_sections(result, alerts or []),
    ]
    return write_report(path, f"Monitoring: {result.model} v{result.version}", sections,
                        subtitle=f"{result.n_rows} rows · status {result.status}")
