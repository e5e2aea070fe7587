"""CBPE against hand-worked expectations, sklearn's isotonic regression and realized metrics on
synthetic streams whose scores are calibrated by construction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from serein.monitor.cbpe import (
    calibrate,
    estimate_performance,
    expected_auc,
    fit_calibration,
)

IDENTITY = {"classes": ["0", "1"], "tables": {"1": {"x": [0.0, 1.0], "y": [0.0, 1.0]}}}


def test_hand_worked_binary_estimate() -> None:
    scores = np.array([0.9, 0.6, 0.4, 0.2])
    est = estimate_performance(IDENTITY, scores, [1, 1, 0, 0])["metrics"]
    tp, fp, fn = 0.9 + 0.6, 0.1 + 0.4, 0.4 + 0.2  # predicted 1: p and 1-p; predicted 0: p
    assert est["accuracy"]["value"] == pytest.approx((0.9 + 0.6 + 0.6 + 0.8) / 4)
    assert est["precision"]["value"] == pytest.approx(tp / (tp + fp))
    assert est["recall"]["value"] == pytest.approx(tp / (tp + fn))
    assert est["f1"]["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # expected AUC: pairs (i, j), i != j, weighted p_i (1 - p_j), won when score_i > score_j
    p = scores
    wins = sum(p[i] * (1 - p[j]) for i in range(4) for j in range(4) if i != j and scores[i] > scores[j])
    pairs = sum(p[i] * (1 - p[j]) for i in range(4) for j in range(4) if i != j)
    assert est["roc_auc"]["value"] == pytest.approx(wins / pairs)
    for m in est.values():
        assert m["low"] <= m["high"]


def test_expected_auc_counts_ties_half() -> None:
    scores, p = np.array([0.5, 0.5, 0.1]), np.array([1.0, 0.0, 0.0])
    # positive row 0 vs negatives 1 (tie: half) and 2 (win): (0.5 + 1) / 2
    assert expected_auc(scores, p) == pytest.approx(0.75)


def test_calibration_table_is_sklearns_isotonic_fit() -> None:
    rng = np.random.default_rng(1)
    s = rng.random(3000)
    y = (rng.random(3000) < s ** 2).astype(int)
    cal = fit_calibration(y, s, [0, 1])
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    probe = np.linspace(-0.1, 1.1, 57)
    assert calibrate(cal, probe)[:, 1] == pytest.approx(iso.predict(probe), abs=2e-3)  # table thinned to 200 points
    assert len(cal["tables"]["1"]["x"]) <= 200
    assert fit_calibration([1, 1, 1], [0.2, 0.5, 0.9], [0, 1]) is None  # one class only: nothing to fit


def _stream(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores s and labels drawn with P(y=1) = s**1.5: miscalibrated, so calibration matters."""
    s = rng.beta(2, 3, n)
    return s, (rng.random(n) < s ** 1.5).astype(int)


def test_estimate_within_interval_of_realized_on_a_calibrated_stream() -> None:
    rng = np.random.default_rng(2)
    s, y = _stream(rng, 10_000)
    cal = fit_calibration(y, s, [0, 1])
    covered = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    runs = 30
    for _ in range(runs):
        cur, truth = _stream(rng, 2_000)
        pred = (cur > 0.5).astype(int)
        est = estimate_performance(cal, cur, pred)["metrics"]
        realized = {"accuracy": accuracy_score(truth, pred), "f1": f1_score(truth, pred),
                    "roc_auc": roc_auc_score(truth, cur)}
        for m, value in realized.items():
            covered[m] += est[m]["low"] <= value <= est[m]["high"]
        assert abs(est["accuracy"]["value"] - realized["accuracy"]) < 0.04
    # 95 % intervals for the draw of labels; the calibration's own error widens the miss a little
    assert all(c >= 0.8 * runs for c in covered.values()), covered
    # without calibration the raw scores overstate the positive rate and the estimate is off
    raw = estimate_performance(IDENTITY, cur, pred)["metrics"]["accuracy"]["value"]
    assert abs(raw - realized["accuracy"]) > abs(est["accuracy"]["value"] - realized["accuracy"])


def test_multiclass_estimate_tracks_realized() -> None:
    rng = np.random.default_rng(3)

    def stream(n: int) -> tuple[np.ndarray, np.ndarray]:
        P = np.exp(1.5 * rng.normal(size=(n, 3)))
        P /= P.sum(axis=1, keepdims=True)
        y = (rng.random((n, 1)) > np.cumsum(P, axis=1)[:, :-1]).sum(axis=1)
        raw = P ** 0.6
        return raw / raw.sum(axis=1, keepdims=True), y

    raw, y = stream(6_000)
    cal = fit_calibration(np.array(["a", "b", "c"])[y], raw, ["a", "b", "c"])
    cur, truth = stream(3_000)
    pred = np.array(["a", "b", "c"])[cur.argmax(axis=1)]
    est = estimate_performance(cal, cur, pred)["metrics"]
    labels = np.array(["a", "b", "c"])[truth]
    assert est["accuracy"]["value"] == pytest.approx(accuracy_score(labels, pred), abs=0.03)
    assert est["f1"]["value"] == pytest.approx(f1_score(labels, pred, average="macro"), abs=0.03)
    assert est["roc_auc"]["value"] == pytest.approx(roc_auc_score(truth, cur, multi_class="ovr"), abs=0.02)
    assert estimate_performance(cal, cur, ["zz"] * len(cur)) is None  # predictions outside the classes


def test_large_window_interval_matches_the_binomial_spread() -> None:
    rng = np.random.default_rng(6)
    n = 100_000  # above DRAW_MAX_ROWS: drawn on a subsample, rescaled
    s = rng.random(n)
    pred = (s > 0.5).astype(int)
    acc = estimate_performance(IDENTITY, s, pred)["metrics"]["accuracy"]
    c = np.where(pred == 1, s, 1 - s)  # each row's chance of being right
    half_width = 1.96 * np.sqrt(np.sum(c * (1 - c))) / n
    assert acc["value"] == pytest.approx(c.mean())
    assert (acc["high"] - acc["low"]) / 2 == pytest.approx(half_width, rel=0.2)
