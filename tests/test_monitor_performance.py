"""Performance metrics against sklearn on hand-checkable data, and the drop verdict."""

from __future__ import annotations

import numpy as np
import pytest

from serein.monitor.performance import (
    compare_performance,
    compute_metrics,
    intervals,
    standard_errors,
    weighted_metrics,
)


def test_binary_metrics_compare_labels_as_strings() -> None:
    labels = [0, 1, 1, 0, 1, None]
    preds = ["0", "1", "0", "0", "1", "1"]
    scores = [0.1, 0.9, 0.4, 0.3, 0.8, 0.7]
    m = compute_metrics("classification", labels, preds, scores=scores, classes=[0, 1])
    assert m["accuracy"] == pytest.approx(4 / 5)  # the unlabelled row is left out
    assert m["f1"] == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))
    assert m["roc_auc"] == pytest.approx(1.0)  # every positive outranks every negative
    expected_ll = -np.mean(np.log([0.9, 0.9, 0.4, 0.7, 0.8]))
    assert m["log_loss"] == pytest.approx(expected_ll)


def test_multiclass_and_regression() -> None:
    m = compute_metrics("classification", ["a", "b", "c", "a"], ["a", "b", "b", "a"])
    assert m == {"accuracy": 0.75, "f1": pytest.approx((1 + 2 / 3 + 0) / 3)}
    r = compute_metrics("regression", [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert r["rmse"] == pytest.approx(1.0) and r["mae"] == pytest.approx(0.5)
    assert r["r2"] == pytest.approx(1 - 4 / 5)


def test_drop_needs_enough_labels_and_respects_direction() -> None:
    ref = {"accuracy": 0.80, "log_loss": 0.40, "rmse": 2.0}
    cur = {"accuracy": 0.77, "log_loss": 0.46, "rmse": 1.5}
    verdict = compare_performance(cur, ref, n_labelled=1000)
    assert verdict["dropped"] == ["log_loss"]  # +15 % error; accuracy -0.03 is within 0.05
    assert verdict["metrics"]["accuracy"]["change"] == pytest.approx(-0.03)
    assert compare_performance({"accuracy": 0.5}, ref, n_labelled=20)["dropped"] == []


def test_ece_by_hand_and_reported_not_judged() -> None:
    truth = [0, 0, 1, 1, 1, 0]
    scores = [0.1, 0.15, 0.9, 0.8, 0.35, 0.3]
    # bins: [0.1, 0.15] in bin 1 (labels 0, 0), [0.3, 0.35] in bin 3 (0, 1), 0.8 and 0.9 in bins 8, 9
    by_hand = (abs(0 - 0.25) + abs(1 - 0.65) + abs(1 - 0.8) + abs(1 - 0.9)) / 6
    m = compute_metrics("classification", truth, [int(s > 0.5) for s in scores], scores=scores, classes=[0, 1])
    assert m["calibration_error"] == pytest.approx(by_hand)
    verdict = compare_performance({"calibration_error": 0.30}, {"calibration_error": 0.01}, n_labelled=5000)
    assert verdict["dropped"] == [] and verdict["metrics"]["calibration_error"]["judged"] is False


def test_intervals_cover_the_bootstrap_spread() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    pred = np.where(rng.random(2000) < 0.8, y, 1 - y)  # 80 % accurate
    m = compute_metrics("classification", y, pred, classes=[0, 1])
    se = standard_errors("classification", y, pred, classes=[0, 1])
    ci = intervals(m, se)["accuracy"]
    analytic = np.sqrt(0.8 * 0.2 / 2000)  # binomial standard error
    assert se["accuracy"] == pytest.approx(analytic, rel=0.3)
    assert ci["low"] == pytest.approx(m["accuracy"] - 1.96 * se["accuracy"]) and ci["low"] < 0.8 < ci["high"]
    assert intervals({"r2": 0.5}, {})["r2"] == {"value": 0.5, "se": None, "low": None, "high": None}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_vectorised_bootstrap_equals_metrics_on_the_resampled_rows(task: str) -> None:
    rng = np.random.default_rng(11)
    n = 500
    if task == "regression":
        y = rng.normal(size=n)
        args: dict = {"task": "regression", "labels": y, "predictions": y + rng.normal(0, 0.5, n)}
    elif task == "binary":
        scores = np.round(rng.random(n), 2)  # ties, as real scores have
        args = {"task": "classification", "labels": rng.integers(0, 2, n), "predictions": (scores > 0.5).astype(int),
                "scores": scores, "classes": [0, 1]}
    else:
        args = {"task": "classification", "labels": rng.choice(list("abc"), n), "predictions": rng.choice(list("abc"), n)}
    idx = rng.integers(0, n, (3, n))
    W = np.stack([np.bincount(row, minlength=n) for row in idx])
    fast = weighted_metrics(args["task"], args["labels"], args["predictions"], W, scores=args.get("scores"),
                            classes=args.get("classes"))
    for b in range(3):
        pick = {k: (np.asarray(v)[idx[b]] if k in ("labels", "predictions", "scores") else v) for k, v in args.items()}
        slow = compute_metrics(**pick)
        assert set(slow) == set(fast)
        for name, value in slow.items():
            assert fast[name][b] == pytest.approx(value, abs=1e-9), name


def test_large_windows_bootstrap_a_subsample_and_rescale() -> None:
    rng = np.random.default_rng(4)
    n = 80_000  # above BOOTSTRAP_MAX_ROWS
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.7, y, 1 - y)
    se = standard_errors("classification", y, pred, classes=[0, 1])
    assert se["accuracy"] == pytest.approx(np.sqrt(0.7 * 0.3 / n), rel=0.25)  # the binomial standard error
