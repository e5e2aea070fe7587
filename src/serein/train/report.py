"""The evaluation report of a training run: one self-contained HTML page.

Model beside the dummy baseline (and the champion when there is one) on the holdout: ROC and
precision-recall curves and the confusion matrix for classifiers, residual plots for regressors;
then the gate verdict, the ONNX check and the lineage.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serein.report.page import Section, kpis_html, table_html, write_report

if TYPE_CHECKING:
    from serein.train.evaluate import Evaluation
    from serein.train.gate import GateVerdict


def _curves(y: np.ndarray, runs: dict[str, Evaluation]) -> list[Any]:
    """ROC and PR figures, one trace per model (per class, one-vs-rest, for multi-class)."""
    import plotly.graph_objects as go
    from sklearn.metrics import precision_recall_curve, roc_curve

    roc, pr = go.Figure(), go.Figure()
    for label, ev in runs.items():
        if ev.proba is None or ev.classes is None:
            continue
        targets = [(ev.classes[1], 1)] if len(ev.classes) == 2 else [(c, i) for i, c in enumerate(ev.classes)]
        for cls, col in targets:
            truth = y == cls
            if truth.all() or not truth.any():
                continue
            name = label if len(ev.classes) == 2 else f"{label} · {cls}"
            fpr, tpr, _ = roc_curve(truth, ev.proba[:, col])
            roc.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=name))
            precision, recall, _ = precision_recall_curve(truth, ev.proba[:, col])
            pr.add_trace(go.Scatter(x=recall, y=precision, mode="lines", line_shape="hv", name=name))
    roc.update_layout(title="ROC curve (holdout)", xaxis_title="false positive rate", yaxis_title="true positive rate", height=420)
    pr.update_layout(title="Precision-recall curve (holdout)", xaxis_title="recall", yaxis_title="precision", height=420)
    return [roc, pr]


def _confusion(y: np.ndarray, ev: Evaluation) -> Any:
    import plotly.graph_objects as go
    from sklearn.metrics import confusion_matrix

    labels = [str(c) for c in ev.classes or []]
    matrix = confusion_matrix(y, ev.predictions, labels=ev.classes)
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, text=matrix, texttemplate="%{text}", colorscale="Blues"))
    fig.update_layout(title="Confusion matrix (model, holdout)", xaxis_title="predicted", yaxis_title="actual",
                      yaxis_autorange="reversed", height=420)
    return fig


def _residuals(y: np.ndarray, runs: dict[str, Evaluation]) -> list[Any]:
    import plotly.graph_objects as go

    scatter, hist = go.Figure(), go.Figure()
    for label, ev in runs.items():
        pred = ev.predictions.astype(float)
        scatter.add_trace(go.Scattergl(x=pred, y=y - pred, mode="markers", name=label, marker={"size": 4, "opacity": 0.6}))
        hist.add_trace(go.Histogram(x=y - pred, name=label, opacity=0.6, nbinsx=50))
    scatter.update_layout(title="Residuals vs prediction (holdout)", xaxis_title="predicted", yaxis_title="actual − predicted", height=420)
    hist.update_layout(title="Residual distribution (holdout)", barmode="overlay", xaxis_title="actual − predicted", height=420)
    return [scatter, hist]


def write_evaluation_report(path: Path, title: str, task: str, y: Any, model: Evaluation, baseline: Evaluation,
                            champion: Evaluation | None, verdict: GateVerdict, lineage: dict[str, str],
                            onnx: dict[str, str], params: dict[str, Any]) -> Path:
    """Write the report to ``path`` and return it."""
    y_arr = np.asarray(y)
    runs = {"model": model, "baseline (dummy)": baseline}
    if champion is not None:
        runs[f"champion v{verdict.champion_version}"] = champion
    metric_rows = [{"metric": m, **{label: ev.metrics.get(m) for label, ev in runs.items()}} for m in model.metrics]
    headline = {verdict.metric: verdict.value, "baseline": verdict.baseline, "gate": "passed" if verdict.passed else "FAILED",
                "holdout rows": len(y_arr)}
    if task == "classification":
        figures = [*_curves(y_arr, runs), _confusion(y_arr, model)]
    else:
        figures = _residuals(y_arr.astype(float), runs)
    gate_cls = "ok" if verdict.passed else "bad"
    gate_html = (f'<p class="{gate_cls}">Gate {"passed" if verdict.passed else "failed"} on {verdict.metric}</p>'
                 + "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in verdict.reasons) + "</ul>")
    sections = [
        Section("Summary", html=kpis_html(headline)),
        Section("Metrics on the holdout", html=table_html(metric_rows), figures=figures),
        Section("Quality gate", html=gate_html),
        Section("ONNX export", html=table_html([{"key": k, "value": v} for k, v in onnx.items()])),
        Section("Lineage", html=table_html([{"key": k, "value": v} for k, v in lineage.items()])),
        Section("Parameters", html=table_html([{"key": k, "value": v} for k, v in params.items()])),
    ]
    return write_report(path, title, sections, subtitle=f"{task} · holdout evaluation")
