"""The monitoring report: self-contained HTML drawn from the profile and the result alone."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from serein.data.contract import Contract
from serein.monitor.drift import Thresholds, feature_drift, prediction_drift
from serein.monitor.monitor import MonitorResult
from serein.monitor.performance import compare_performance, compute_metrics
from serein.monitor.profile import build_profile
from serein.monitor.report import write_monitor_report

FEATURES = {"age": "float", "income": "float", "credit_score": "float", "purpose": "string", "employment": "string"}


def _scores(df: pd.DataFrame) -> np.ndarray:
    """A fixed scoring rule standing in for a model's positive-class probability."""
    return 1 / (1 + np.exp(0.012 * (df["credit_score"].to_numpy() - 680) + 1.5))


def test_report_is_self_contained(tmp_path: Path, credit_df: pd.DataFrame, drifted_df: pd.DataFrame) -> None:
    contract = Contract.from_dict({"columns": {k: {"type": v} for k, v in FEATURES.items()}})
    ref_scores = _scores(credit_df)
    profile = build_profile(credit_df, contract, "classification", (ref_scores > 0.5).astype(int), ref_scores,
                            labels=credit_df["default"], classes=[0, 1])
    scores = _scores(drifted_df)
    preds = (scores > 0.5).astype(int)
    features = {n: feature_drift(profile["features"][n], drifted_df[n], Thresholds()) for n in FEATURES}
    current = compute_metrics("classification", drifted_df["default"], preds, scores, classes=[0, 1])
    result = MonitorResult(
        model="credit", version=1, n_rows=len(drifted_df), window={"source": "test batch", "start": None, "end": None},
        features=features, drifted=[n for n, f in features.items() if f["drifted"]],
        prediction_drift=prediction_drift(profile["prediction"], preds, scores),
        performance=compare_performance(current, profile["performance"], len(drifted_df)),
        thresholds=Thresholds().to_dict(),
    )
    assert {"income", "credit_score", "purpose"} <= set(result.drifted)  # the demo's drifted regime
    path = write_monitor_report(tmp_path / "r" / "monitor.html", result, profile)
    page = path.read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*\bsrc=", page) == []  # no external script (plotly.js's own strings mention CDNs)
    assert len(page) > 3_000_000  # plotly.js is inline
    # one chart per feature plus predicted classes and scores
    assert len(re.findall(r'class="plotly-graph-div"', page)) == len(FEATURES) + 2
    for name in FEATURES:
        assert f"<td>{name}</td>" in page
    assert "__unseen__" in page  # the new "crypto" purpose is charted as unseen
    assert "Monitoring: credit v1" in page and "labelled rows" in page


def test_report_escapes_the_window_and_leaves_out_empty_series(tmp_path: Path, credit_df: pd.DataFrame) -> None:
    """The window's source (a file name) is HTML text, and chunks without labels or an estimate
    (a regressor's unlabelled batch) draw no "Performance over time" section with nothing in it."""
    contract = Contract.from_dict({"columns": {k: {"type": v} for k, v in FEATURES.items()}})
    values = credit_df["income"].fillna(0).to_numpy()
    profile = build_profile(credit_df, contract, "regression", values)
    features = {n: feature_drift(profile["features"][n], credit_df[n], Thresholds()) for n in FEATURES}
    short = {n: {k: f.get(k) for k in ("method", "score", "threshold", "drifted", "status")} for n, f in features.items()}
    half = len(credit_df) // 2
    outputs = prediction_drift(profile["prediction"], values)
    part = {k: outputs["values"].get(k) for k in ("method", "score", "threshold", "drifted", "status")}
    chunks = [{"index": i, "start": None, "end": None, "n_rows": half, "drifted": [], "features": short,
               "prediction_drift": {"drifted": False, "values": part}, "label_drift": None, "performance": None, "estimated_performance": None,
               "quality": {"bad_row_rate": 0.0}} for i in range(2)]
    result = MonitorResult(
        model="price", version=2, n_rows=len(credit_df),
        window={"source": "file <b>q&a</b>.csv", "start": None, "end": None, "chunk": str(half)},
        features=features, drifted=[], prediction_drift=outputs,
        performance=None, thresholds=Thresholds().to_dict(), chunks=chunks,
    )
    page = write_monitor_report(tmp_path / "monitor.html", result, profile).read_text(encoding="utf-8")
    assert "Window: file &lt;b&gt;q&amp;a&lt;/b&gt;.csv" in page and "<b>q&a</b>" not in page
    assert "Drift over time" in page and "Performance over time" not in page
