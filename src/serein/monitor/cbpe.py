"""Confidence-based performance estimation (CBPE): a classifier's performance on traffic whose
labels have not arrived, from its own calibrated scores (the method NannyML popularised).

If the scores are calibrated, a row predicted positive with calibrated probability 0.8 is a true
positive with probability 0.8 and a false positive with probability 0.2. Summing such
probabilities over a window gives the *expected* confusion matrix, hence expected accuracy,
precision, recall and F1; the expected ROC AUC weighs every (positive, negative) pair of rows by
``p_i (1 - p_j)``. The estimate holds while the relation between scores and outcomes (the
concept) holds: it sees covariate shift, not concept drift — realized performance, when labels
arrive, is the judge, and the report shows both.

Calibration is fitted once, at registration, on the holdout: one isotonic regression per class
(one-vs-rest; for a binary model only the positive class), stored in the reference profile as a
small table of breakpoints (``x``: raw score, ``y``: calibrated probability; applying it is
``np.interp``, as ``IsotonicRegression(out_of_bounds="clip").predict`` does). Multi-class
calibrated rows are renormalised to sum to one.

The interval says where the *realized* metric should fall: labels are drawn ``N_DRAWS`` times
from calibrated probabilities and the metric computed on each draw; the 2.5th and 97.5th
percentiles bound it. Two errors are in it. The labels' own chance, which shrinks as the window
grows (windows above ``DRAW_MAX_ROWS`` rows draw on a random subsample and scale that part of the
spread by ``sqrt(m / n)``). And the calibration's error, which does not shrink with the window: a
holdout of a few thousand rows pins the calibration curve only roughly, most of all where it had
few rows — exactly where covariate shift moves traffic. So registration also fits the calibration
on ``N_BOOTSTRAP`` bootstrap resamples of the holdout (``bootstrap``: tables of ≤ ``MAX_BOOT_TABLE``
breakpoints) and each batch of draws takes its probabilities from one of them; a profile without
them (older versions) gets the labels' chance alone.

>>> import numpy as np
>>> cal = {"classes": ["0", "1"], "tables": {"1": {"x": [0.0, 1.0], "y": [0.0, 1.0]}}}
>>> est = estimate_performance(cal, np.array([0.9, 0.8, 0.3, 0.2]), ["1", "1", "0", "0"])
>>> round(est["metrics"]["accuracy"]["value"], 3)   # (0.9 + 0.8 + 0.7 + 0.8) / 4
0.8
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from serein.monitor.profile import factorize, sorted_quantiles

N_DRAWS = 200
MAX_TABLE = 200  # breakpoints kept per class (isotonic fits on big holdouts have thousands)
N_BOOTSTRAP = 20  # calibrations refitted on resampled holdouts: the calibration's own error
MAX_BOOT_TABLE = 100  # breakpoints kept per class and resample (they only spread the interval)
DRAW_BATCH = 10
INTERVAL_LEVELS = np.array([0.025, 0.975])  # the interval's ends (np.percentile's method; its np.unique imports numpy.ma)
DRAW_MAX_ROWS = 20_000  # above this, draws run on a subsample and their spread is rescaled


def _class_scores(proba: np.ndarray) -> np.ndarray:
    """Binary scores (a vector of positive-class probabilities) as a two-column matrix."""
    proba = np.asarray(proba, dtype=float)
    return np.column_stack([1.0 - proba, proba]) if proba.ndim == 1 else proba


def _isotonic_tables(y: np.ndarray, P: np.ndarray, names: list[str], max_points: int) -> dict[str, Any] | None:
    """Per calibrated class (binary: the positive one) the isotonic fit of "is this class" on its
    score, thinned to ``max_points`` breakpoints; None when a class never or always occurs."""
    from sklearn.isotonic import IsotonicRegression

    tables = {}
    for name in names[1:] if len(names) == 2 else names:
        k = names.index(name)
        truth = (y == name).astype(float)
        if truth.min() == truth.max():
            return None
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(P[:, k], truth)
        x, fy = iso.X_thresholds_, iso.y_thresholds_
        if x.size > max_points:
            keep = np.unique(np.linspace(0, x.size - 1, max_points).round().astype(int))
            x, fy = x[keep], fy[keep]
        tables[name] = {"x": [round(float(v), 6) for v in x], "y": [round(float(v), 6) for v in fy]}
    return tables


def fit_calibration(labels: Sequence[Any], proba: Any, classes: Sequence[Any],
                    n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, Any] | None:
    """Isotonic calibration tables fitted on the holdout's true ``labels`` and the model's
    probabilities ``proba`` (columns follow ``classes``; a vector means the positive class of a
    binary model), and ``n_bootstrap`` refits on resamples of the holdout (seeded: the same
    holdout gives the same profile). None when labels or classes are missing or a class never occurs.

    >>> cal = fit_calibration([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], [0, 1])
    >>> cal["tables"]["1"]["y"]
    [0.0, 0.5, 0.5, 1.0]
    """
    if labels is None or proba is None or classes is None or len(classes) < 2:
        return None
    P = _class_scores(proba)
    y = np.asarray([str(v) for v in labels], dtype=object)
    names = [str(c) for c in classes]
    tables = _isotonic_tables(y, P, names, MAX_TABLE)
    if tables is None:
        return None
    rng = np.random.default_rng(seed)
    resamples = (rng.integers(0, len(y), len(y)) for _ in range(n_bootstrap))
    bootstrap = [t for t in (_isotonic_tables(y[i], P[i], names, MAX_BOOT_TABLE) for i in resamples) if t is not None]
    return {"method": "isotonic", "classes": names, "n": len(y), "tables": tables, "bootstrap": bootstrap}


def calibrate(calibration: Mapping[str, Any], proba: Any, tables: Mapping[str, Any] | None = None,
              ties: Sequence[Ties | None] | None = None) -> np.ndarray:
    """Calibrated class probabilities (n × classes) of raw ``proba`` (or binary scores), by the
    calibration's tables or by ``tables`` (one of its bootstrap refits). ``ties``: the raw scores'
    :func:`score_ties`, when already known; each class's table is then applied once per distinct
    score, in ascending order, where ``np.interp`` finds its segment at once (on a million scores
    in random order it searches the table for each: 20 times slower), and the values are gathered
    back to the rows. The result is the same."""
    P = _class_scores(proba)
    names = calibration["classes"]
    tables = calibration["tables"] if tables is None else tables

    def apply(k: int, name: str) -> np.ndarray:
        t = tables[name]
        known = None if ties is None else ties[k]
        if known is None:
            return np.interp(P[:, k], t["x"], t["y"])
        return np.interp(known.values, t["x"], t["y"])[known.groups]

    if len(names) == 2:
        p1 = apply(1, names[1])
        return np.column_stack([1.0 - p1, p1])
    Q = np.column_stack([apply(k, name) for k, name in enumerate(names)])
    total = Q.sum(axis=1, keepdims=True)
    return np.where(total > 0, Q / np.where(total > 0, total, 1.0), P)


def _confusion_metrics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of (possibly expected, possibly per-draw) confusion counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1}


def _macro(metrics: Mapping[str, np.ndarray], present: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``metrics`` (classes along the first axis) averaged over the classes ``present``
    (weights: 1 or 0 for drawn labels, the chance of being present for the expectation). As
    scikit-learn's ``average="macro"`` and realized performance (``serein.monitor.performance``)
    do, a class neither labelled nor predicted is left out; one labelled but never predicted
    counts, with 0."""
    return {name: (v * present).sum(axis=0) / present.sum(axis=0) for name, v in metrics.items()}


def _presence(P: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The chance that each class is labelled or predicted in the window, from its number of
    predictions ``predicted`` and the calibrated probabilities ``P``: 1 for a predicted class,
    else the chance that at least one row's label is that class, ``1 - Π (1 - P[:, j])``."""
    out = np.ones(P.shape[1])
    unpredicted = predicted == 0
    with np.errstate(divide="ignore"):  # a probability of 1: the class is labelled for sure
        out[unpredicted] = -np.expm1(np.log1p(-P[:, unpredicted]).sum(axis=0))
    return out


class Ties(NamedTuple):
    """A set of scores sorted once: what :func:`expected_auc`, :func:`rankdata` and
    :func:`calibrate` need of a sort."""

    values: np.ndarray  # the distinct scores, ascending
    groups: np.ndarray  # each row's index in ``values``


def ties(scores: np.ndarray) -> Ties:
    """The distinct values of ``scores`` and each row's rank among them (0 for the smallest), as
    ``np.unique(scores, return_inverse=True)`` gives them.

    >>> ties(np.array([0.5, 0.1, 0.5, 0.9])).groups.tolist()
    [1, 0, 1, 2]
    """
    order = np.argsort(scores)
    ordered = scores[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.empty(scores.size, dtype=np.intp)
    group[order] = np.cumsum(first) - 1
    return Ties(ordered[first], group)


def expected_auc(scores: np.ndarray, p: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Expected ROC AUC of ``scores`` when row i is positive with probability ``p[i]``: the sum
    over ordered pairs i ≠ j of ``p_i (1 - p_j)`` (score_i above score_j, ties half) over the sum
    of ``p_i (1 - p_j)``. ``groups``: the scores' :func:`ties` groups, when already known.

    >>> expected_auc(np.array([0.9, 0.1]), np.array([1.0, 0.0]))
    1.0
    """
    group = ties(scores).groups if groups is None else groups
    neg = 1.0 - p
    group_neg = np.bincount(group, weights=neg)  # summed in row order: the same whatever the sort's tie order
    below = np.concatenate([[0.0], np.cumsum(group_neg)[:-1]])
    wins = p * (below[group] + 0.5 * group_neg[group]) - 0.5 * p * neg  # a row is not paired with itself
    pairs = p.sum() * neg.sum() - float(np.sum(p * neg))
    return float(wins.sum() / pairs) if pairs > 0 else float("nan")


def _estimates(P: np.ndarray, raw: np.ndarray, pred_idx: np.ndarray,
               groups: list[np.ndarray | None] | None = None) -> dict[str, float]:
    """Expected metrics from calibrated probabilities ``P`` and predicted class indices;
    ``groups``: the :func:`ties` groups of the raw scores per class (see :func:`score_ties`)."""
    n, k = P.shape
    groups = groups or [None] * k
    right = P[np.arange(n), pred_idx]  # the chance each row's prediction is right
    out = {"accuracy": float(right.mean())}
    tp = np.bincount(pred_idx, weights=right, minlength=k)  # expected hits per predicted class
    predicted = np.bincount(pred_idx, minlength=k)
    fp = predicted - tp
    fn = np.ones(n) @ P - tp  # the column sums (P.sum(axis=0) runs row by row: 60 times slower on a million rows)
    cm = _confusion_metrics(tp, fp, fn)
    if k == 2:
        out.update({name: float(v[1]) for name, v in cm.items()})
        out["roc_auc"] = expected_auc(raw[:, 1], P[:, 1], groups[1])
    else:
        out.update({name: float(v) for name, v in _macro(cm, _presence(P, predicted)).items()})
        out["roc_auc"] = float(np.nanmean([expected_auc(raw[:, j], P[:, j], groups[j]) for j in range(k)]))
    return out


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks from 1, ties sharing the mean of their ranks (``scipy.stats.rankdata``'s
    default, without importing scipy.stats).

    >>> rankdata(np.array([10.0, 20.0, 10.0, 5.0])).tolist()
    [2.5, 4.0, 2.5, 1.0]
    """
    return average_ranks(ties(x).groups)


def average_ranks(groups: np.ndarray) -> np.ndarray:
    """:func:`rankdata` of the values whose :func:`ties` groups are ``groups``."""
    counts = np.bincount(groups)
    last = np.cumsum(counts)  # each tie group's last rank (from 1)
    return ((2 * last - counts + 1) / 2.0)[groups]


def score_ties(raw: np.ndarray) -> list[Ties | None]:
    """The :func:`ties` of each class's scores (binary: the positive class's only), which the
    calibration, every refit's expected ROC AUC and every draw's realized one read."""
    k = raw.shape[1]
    return [ties(raw[:, j]) for j in range(k)] if k > 2 else [None, ties(raw[:, 1])]


def _groups(ties: list[Ties | None]) -> list[np.ndarray | None]:
    """The ``groups`` of each class's :func:`ties` (None where a class's scores were not sorted)."""
    return [None if t is None else t.groups for t in ties]


def _draws(P: np.ndarray, ranks: list[np.ndarray | None], pred_idx: np.ndarray, n_draws: int,
           seed: int) -> dict[str, np.ndarray]:
    """Each metric realized under ``n_draws`` label sets drawn from ``P`` (in batches, to bound
    memory). Per class and batch one matrix product counts what every metric needs: the drawn
    labels' rank sum (the ROC AUC's Mann-Whitney statistic), their hits among the predictions and
    their number; the rest follows from the fixed number of predictions. The counts are whole (or
    half) numbers far below 2**53, hence exact in any summation order."""
    rng = np.random.default_rng(seed)
    n, k = P.shape
    cum = np.cumsum(P, axis=1)
    classes = range(k) if k > 2 else [1]
    weights = {j: np.vstack([ranks[j], pred_idx == j, np.ones(n)]) for j in classes}  # ranks, predicted j, ones
    predicted = {j: float(np.count_nonzero(pred_idx == j)) for j in classes}
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_draws, DRAW_BATCH):
        d = min(DRAW_BATCH, n_draws - start)
        u = rng.random((n, d))
        labels = (u[:, :, None] > cum[:, None, :-1]).sum(axis=2) if k > 2 else None  # n × d class indices
        counts = []
        aucs = []
        for j in classes:
            Y = u > cum[:, :1] if labels is None else labels == j  # binary: drawn positive
            rank_sum, tp, n1 = weights[j] @ Y.astype(float)
            counts.append((tp, predicted[j] - tp, n1 - tp))
            with np.errstate(invalid="ignore", divide="ignore"):
                aucs.append((rank_sum - n1 * (n1 + 1) / 2) / (n1 * (n - n1)))
        tp, fp, fn = np.array(counts).transpose(1, 0, 2)  # each classes × d
        cm = _confusion_metrics(tp, fp, fn)
        if labels is None:  # binary: the positive class's; the rest of the rows are the negatives' hits
            parts = {"accuracy": (n - fp[0] - fn[0]) / n, **{name: v[0] for name, v in cm.items()}}
        else:
            parts = {"accuracy": tp.sum(axis=0) / n, **_macro(cm, tp + fp + fn > 0)}
        with warnings.catch_warnings():  # a draw may lack a class on tiny windows: its AUC is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            parts["roc_auc"] = np.nanmean(np.vstack(aucs), axis=0) if k > 2 else aucs[0]
        for name, values in parts.items():
            out.setdefault(name, []).append(values)
    return {name: np.concatenate(v) for name, v in out.items()}


def estimate_performance(calibration: Mapping[str, Any], proba: Any, predictions: Sequence[Any],
                         n_draws: int = N_DRAWS, seed: int = 0) -> dict[str, Any] | None:
    """Expected accuracy, precision, recall, F1 (binary: of the positive class; multi-class:
    macro over the classes labelled or predicted, see :func:`_macro`) and ROC AUC of a window
    from the model's raw ``proba`` (or binary scores) and its predicted classes, each with a 95 %
    interval for the realized value. None for an empty window or predictions outside the
    calibrated classes."""
    raw = _class_scores(proba)
    names = list(calibration["classes"])
    if raw.shape[0] == 0 or raw.shape[1] != len(names):
        return None
    index = {name: i for i, name in enumerate(names)}
    codes, distinct = factorize(predictions)  # each distinct class looked up once; a null is -1
    pred_idx = np.array([*(index.get(str(v), -1) for v in distinct), -1], dtype=np.int64)[codes]
    if (pred_idx < 0).any():
        return None
    full = score_ties(raw)  # sorted once: the calibration and the expected ROC AUC read it
    P = calibrate(calibration, raw, ties=full)
    n = raw.shape[0]
    sub, scale = np.arange(n), 1.0
    if n > DRAW_MAX_ROWS:  # the labels' spread shrinks as 1/sqrt(n): draw on a subsample, rescale it
        sub = np.random.default_rng(seed).choice(n, DRAW_MAX_ROWS, replace=False)
        scale = float(np.sqrt(DRAW_MAX_ROWS / n))
    raw_s, pred_s = raw[sub], pred_idx[sub]
    sampled = full if scale == 1.0 else score_ties(raw_s)  # sorted once for every refit and draw
    groups = _groups(sampled)
    ranks = [None if g is None else average_ranks(g) for g in groups]
    point = _estimates(P, raw, pred_idx, _groups(full))
    centre = point if scale == 1.0 else _estimates(P[sub], raw_s, pred_s, groups)
    refits = calibration.get("bootstrap") or [None]
    per_refit = max(1, n_draws // len(refits))
    deviations: dict[str, list[np.ndarray]] = {}
    for j, tables in enumerate(refits):
        Pj = P[sub] if tables is None else calibrate(calibration, raw_s, tables, sampled)
        expected = centre if tables is None else _estimates(Pj, raw_s, pred_s, groups)
        for name, d in _draws(Pj, ranks, pred_s, per_refit, seed + j).items():
            # the refit's shift of the expectation stays whole; the labels' chance around it scales
            deviations.setdefault(name, []).append(expected[name] - centre[name] + (d - expected[name]) * scale)
    metrics = {}
    for name, value in point.items():
        d = value + np.concatenate(deviations[name])
        d = d[np.isfinite(d)]
        low, high = sorted_quantiles(np.sort(d), INTERVAL_LEVELS).tolist() if d.size else (None, None)
        metrics[name] = {"value": value, "low": low, "high": high}
    return {"method": "cbpe", "n": int(raw.shape[0]), "metrics": metrics}
