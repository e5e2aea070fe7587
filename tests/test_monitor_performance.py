"""Performance metrics against sklearn on hand-checkable and random data, and the drop verdict."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics

from serein.monitor.performance import (
    Labelled,
    compare_performance,
    compute_metrics,
    intervals,
    standard_errors,
    weighted_metrics,
)


def sklearn_metrics(task: str, labels, predictions, scores=None, classes=None) -> dict[str, float]:
    """The metrics computed independently, by scikit-learn on the rows as strings (or floats)."""
    y, p = np.asarray(labels, dtype=object), np.asarray(predictions, dtype=object)
    keep = np.array([not (a is None or b is None or a != a or b != b) for a, b in zip(y, p)], dtype=bool)
    y, p = y[keep], p[keep]
    if task == "regression":
        yf, pf = y.astype(float), p.astype(float)
        out = {"rmse": float(np.sqrt(metrics.mean_squared_error(yf, pf))), "mae": float(metrics.mean_absolute_error(yf, pf))}
        if yf.size > 1 and np.ptp(yf) > 0:
            out["r2"] = float(metrics.r2_score(yf, pf))
        return out
    ys, ps = y.astype(str), p.astype(str)
    names = [str(c) for c in classes] if classes is not None else sorted(set(ys) | set(ps))
    out = {"accuracy": float(metrics.accuracy_score(ys, ps))}
    if len(names) == 2:
        positive = names[1]
        yt, pt = ys == positive, ps == positive
        out["f1"] = float(metrics.f1_score(yt, pt, zero_division=0))
        if scores is not None:
            s = np.asarray(scores, dtype=float)[keep]
            if 0 < yt.sum() < yt.size:
                out["roc_auc"] = float(metrics.roc_auc_score(yt, s))
                out["log_loss"] = float(metrics.log_loss(yt, np.clip(s, 1e-15, 1 - 1e-15), labels=[False, True]))
            idx = np.minimum((s * 10).astype(int), 9)
            out["calibration_error"] = float(sum(abs(yt[idx == b].sum() - s[idx == b].sum()) for b in range(10)) / s.size)
    else:
        present = [name for name in names if name in set(ys) | set(ps)]  # as the holdout's macro F1 counts them
        out["f1"] = float(metrics.f1_score(ys, ps, labels=present, average="macro", zero_division=0))
    return out


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
    fast = weighted_metrics(Labelled.of(**args), W)
    for b in range(3):
        pick = {k: (np.asarray(v)[idx[b]] if k in ("labels", "predictions", "scores") else v) for k, v in args.items()}
        slow = sklearn_metrics(**pick)
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


def _random_case(kind: str, n: int, rng: np.random.Generator) -> dict:
    if kind == "regression":
        y = rng.normal(size=n).astype(object)
        y[rng.random(n) < 0.05] = None
        return {"task": "regression", "labels": list(y), "predictions": rng.normal(size=n)}
    if kind == "binary":
        scores = np.round(rng.random(n), 2)  # ties
        labels = rng.integers(0, 2, n).astype(object)
        labels[rng.random(n) < 0.05] = None
        return {"task": "classification", "labels": list(labels), "predictions": [str(int(s > 0.5)) for s in scores],
                "scores": scores, "classes": [0, 1]}
    labels = rng.choice(["a", "b", "c", "d"], n).astype(object)  # "d" is no class of the model
    labels[rng.random(n) < 0.05] = None
    return {"task": "classification", "labels": list(labels), "predictions": rng.choice(["a", "b", "c"], n),
            "classes": ["a", "b", "c"]}


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_sklearns_on_random_windows(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    case = _random_case(kind, int(rng.integers(20, 3000)), rng)
    ours, theirs = compute_metrics(**case), sklearn_metrics(**case)
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_an_arrow_label_column_with_nulls_is_read_as_the_list_would_be() -> None:
    rng = np.random.default_rng(8)
    labels = [None if rng.random() < 0.1 else int(v) for v in rng.integers(0, 2, 500)]
    scores = rng.random(500)
    preds = (scores > 0.5).astype(np.int64)
    from_list = compute_metrics("classification", labels, preds, scores, classes=[0, 1])
    from_arrow = compute_metrics("classification", pa.chunked_array([labels[:200], labels[200:]]), preds, scores,
                                 classes=[0, 1])
    assert from_arrow == from_list and from_list == pytest.approx(sklearn_metrics("classification", labels, preds,
                                                                                   scores, [0, 1]))


def test_a_label_outside_a_binary_models_classes_counts_as_wrong() -> None:
    m = compute_metrics("classification", ["no", "yes", "maybe", "yes"], ["no", "yes", "yes", "no"], classes=["no", "yes"])
    assert m["accuracy"] == 0.5  # "maybe" matches no prediction
    assert m["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # tp 1, fp 1 (the "maybe" row), fn 1


def test_constant_labels_leave_r2_and_the_auc_out() -> None:
    assert "r2" not in compute_metrics("regression", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    m = compute_metrics("classification", [1, 1, 1], [1, 0, 1], scores=[0.9, 0.2, 0.7], classes=[0, 1])
    assert "roc_auc" not in m and "log_loss" not in m and m["accuracy"] == pytest.approx(2 / 3)


def test_lengths_that_differ_are_refused_by_name() -> None:
    from serein.errors import UsageError

    with pytest.raises(UsageError, match="2 labels, 1 predictions"):
        compute_metrics("classification", [1, 0], [1])
    with pytest.raises(UsageError, match="1 scores"):
        standard_errors("classification", [1, 0], [1, 0], scores=[0.3], classes=[0, 1])


def test_infinite_regression_labels_are_not_labels() -> None:
    """An infinite label (or prediction) is no measurement: those rows are left out like missing
    ones, and the metrics of the rest are those of the finite rows — it used to turn RMSE, MAE and
    R² into NaN, all dropped from the result, which then passed for "nothing dropped"."""
    y = np.array([1.0, np.inf, 2.0, -np.inf, 3.5, 4.0])
    p = np.array([1.5, 2.0, 2.0, 1.0, 3.0, np.inf])
    rows = Labelled.of("regression", pa.chunked_array([y]), p)
    assert rows.n == 3
    finite = np.isfinite(y) & np.isfinite(p)
    expected = sklearn_metrics("regression", y[finite].tolist(), p[finite].tolist())
    assert rows.metrics() == pytest.approx(expected)


def test_macro_f1_averages_over_the_classes_the_rows_hold() -> None:
    """A class neither labelled nor predicted in a window is left out of the macro F1, as
    scikit-learn's default leaves it out of the holdout's: it used to count as an F1 of 0, so a
    window without the rare class (or a population that lost it) scored (k-1)/k of its F1 and
    raised a performance drop against the holdout."""
    labels = ["a", "b", "b", "a", "b", "a", None]
    predictions = ["a", "b", "a", "a", "b", "b", "c"]
    m = compute_metrics("classification", labels, predictions, classes=["a", "b", "c", "d"])
    assert m["f1"] == pytest.approx(metrics.f1_score(labels[:6], predictions[:6], average="macro"))
    rows = Labelled.of("classification", labels, predictions, classes=["a", "b", "c", "d"])
    only_a = np.array([[1.0, 0, 0, 1, 0, 0]])  # a resample holding class a alone
    assert weighted_metrics(rows, only_a)["f1"][0] == pytest.approx(1.0)
