"""CBPE against hand-worked expectations, sklearn's isotonic regression and realized metrics on
synthetic streams whose scores are calibrated by construction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from serein.monitor.cbpe import (
    calibrate,
    estimate_performance,
    expected_auc,
    fit_calibration,
    rankdata,
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


def test_expected_auc_equals_the_pairwise_sum_with_many_ties() -> None:
    rng = np.random.default_rng(11)
    scores, p = rng.integers(0, 12, 300) / 11.0, rng.random(300)
    i, j = np.meshgrid(np.arange(300), np.arange(300), indexing="ij")
    weight = np.where(i != j, p[i] * (1 - p[j]), 0.0)
    won = (scores[i] > scores[j]) + 0.5 * (scores[i] == scores[j])
    assert expected_auc(scores, p) == pytest.approx((weight * won).sum() / weight.sum(), rel=1e-12)


def test_average_ranks_equal_scipys() -> None:
    from scipy.stats import rankdata as scipy_rankdata

    rng = np.random.default_rng(12)
    for x in (rng.normal(size=1000), rng.integers(0, 20, 1000).astype(float), np.array([1.0]), np.zeros(5)):
        assert rankdata(x).tolist() == scipy_rankdata(x).tolist()


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


def test_hand_worked_multiclass_confusion() -> None:
    # three rows, three classes, probabilities already calibrated (tables are the identity)
    identity = {"x": [0.0, 1.0], "y": [0.0, 1.0]}
    cal = {"classes": ["a", "b", "c"], "tables": {k: identity for k in "abc"}}
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]])
    est = estimate_performance(cal, P, ["a", "b", "b"])["metrics"]  # the third row is predicted b
    # expected confusion per class: tp = Σ_pred=k P[:, k], fp = Σ_pred=k (1 - P[:, k]), fn = Σ_pred≠k P[:, k]
    tp = {"a": 0.7, "b": 0.6 + 0.3, "c": 0.0}
    fp = {"a": 0.3, "b": 0.4 + 0.7, "c": 0.0}
    fn = {"a": 0.1 + 0.2, "b": 0.2, "c": 0.1 + 0.3 + 0.5}
    f1 = [2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]) for k in "abc"]
    # c is never predicted: it counts (with 0) as far as some row is likely to be labelled c
    present = [1.0, 1.0, 1 - 0.9 * 0.7 * 0.5]
    assert est["accuracy"]["value"] == pytest.approx((0.7 + 0.6 + 0.3) / 3)
    assert est["f1"]["value"] == pytest.approx(np.dot(f1, present) / sum(present))
    assert est["precision"]["value"] == pytest.approx((0.7 / 1.0 + 0.9 / 2.0) / sum(present))


def test_multiclass_estimate_leaves_out_a_class_absent_from_the_window() -> None:
    """A class the window neither predicts nor is likely to label is left out of the estimated
    macro precision, recall and F1, point and interval, as scikit-learn's ``average="macro"`` and
    realized performance leave it out: it counted as 0, so with one of four classes gone from the
    traffic the estimate was three quarters of the realized value and outside its own interval."""
    rng = np.random.default_rng(0)
    names = np.array(["a", "b", "c", "d"])

    def stream(n: int, d_shift: float) -> tuple[np.ndarray, np.ndarray]:
        logits = 1.5 * rng.normal(size=(n, 4))
        logits[:, 3] -= d_shift  # class d made rare
        P = np.exp(logits)
        P /= P.sum(axis=1, keepdims=True)
        y = (rng.random((n, 1)) > np.cumsum(P, axis=1)[:, :-1]).sum(axis=1)
        raw = P ** 0.6
        return raw / raw.sum(axis=1, keepdims=True), y

    raw, y = stream(6_000, 0.0)
    cal = fit_calibration(names[y], raw, list(names))
    cur, truth = stream(3_000, 12.0)
    pred, labels = names[cur.argmax(axis=1)], names[truth]
    assert "d" not in set(pred) | set(labels)
    est = estimate_performance(cal, cur, pred)["metrics"]
    for name, realized in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
        value = realized(labels, pred, average="macro")
        assert est[name]["value"] == pytest.approx(value, abs=0.03), name
        assert est[name]["low"] <= value <= est[name]["high"], name


def _calibrated_window(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores that are calibrated by construction (y ~ Bernoulli(s)), labels and predictions."""
    s = rng.beta(2, 2, n)
    return s, (rng.random(n) < s).astype(int), (s > 0.5).astype(int)


def test_error_vs_realized_shrinks_as_one_over_sqrt_n() -> None:
    rng = np.random.default_rng(11)
    rmse = {}
    for n in (250, 1_000, 4_000):
        errors = []
        for _ in range(150):
            s, y, pred = _calibrated_window(rng, n)
            est = estimate_performance(IDENTITY, s, pred, n_draws=20)["metrics"]["accuracy"]["value"]
            errors.append(est - accuracy_score(y, pred))
        rmse[n] = float(np.sqrt(np.mean(np.square(errors))))
    for small, large in ((250, 1_000), (1_000, 4_000)):
        assert rmse[small] / rmse[large] == pytest.approx(2.0, rel=0.2), rmse
    # the only error left is the labels' chance: sd = sqrt(E[c(1-c)] / n), c = P(row is right)
    s = rng.beta(2, 2, 1_000_000)
    right = np.maximum(s, 1 - s)
    expected_sd = np.sqrt(np.mean(right * (1 - right)) / 1_000)
    assert rmse[1_000] == pytest.approx(expected_sd, rel=0.15)


def test_interval_covers_realized_95_percent_when_calibration_is_exact() -> None:
    rng = np.random.default_rng(12)
    windows = 300
    covered = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    for _ in range(windows):
        s, y, pred = _calibrated_window(rng, 500)
        est = estimate_performance(IDENTITY, s, pred, seed=int(rng.integers(1 << 30)))["metrics"]
        realized = {"accuracy": accuracy_score(y, pred), "f1": f1_score(y, pred), "roc_auc": roc_auc_score(y, s)}
        for m, value in realized.items():
            covered[m] += est[m]["low"] <= value <= est[m]["high"]
    for m, c in covered.items():
        assert 0.91 <= c / windows <= 0.99, (m, c / windows)


def test_bootstrap_refits_restore_coverage_on_small_holdouts() -> None:
    """A 600-row holdout calibrates roughly; windows of 3,000 rows are precise enough for that
    error to dominate. With the refits in the interval coverage is near 90 % (the bootstrap
    understates an isotonic fit's error a little), without them about half."""
    rng = np.random.default_rng(13)
    hits = {"with": 0, "without": 0}
    total = 0
    for _ in range(40):
        s, y = _stream(rng, 600)
        cal = fit_calibration(y, s, [0, 1])
        assert len(cal["bootstrap"]) == 20
        bare = {k: v for k, v in cal.items() if k != "bootstrap"}
        for _ in range(4):
            cur, truth = _stream(rng, 3_000)
            pred = (cur > 0.45).astype(int)
            value = accuracy_score(truth, pred)
            for name, c in (("with", cal), ("without", bare)):
                acc = estimate_performance(c, cur, pred, n_draws=100)["metrics"]["accuracy"]
                hits[name] += acc["low"] <= value <= acc["high"]
            total += 1
    assert hits["with"] / total >= 0.85, hits
    assert hits["with"] - hits["without"] >= 0.25 * total, hits


def test_calibration_is_reproducible_and_bootstrap_tables_are_small() -> None:
    rng = np.random.default_rng(14)
    s, y = _stream(rng, 5_000)
    a, b = fit_calibration(y, s, [0, 1]), fit_calibration(y, s, [0, 1])
    assert a == b
    assert all(len(t["1"]["x"]) <= 100 for t in a["bootstrap"])
