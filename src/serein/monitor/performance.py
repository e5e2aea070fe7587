"""Model performance on labelled rows, and its comparison with the holdout performance.

Classification: accuracy, F1 (binary: of the positive class, the second of ``classes``; otherwise
macro-averaged), and for binary models with scores ROC AUC, log loss and the expected calibration
error (``calibration_error``, ECE: 10 equal-width score bins, ``Σ |B|/n · |mean label in B − mean score in B|``).
Regression: RMSE, MAE, R². Labels and predicted classes are compared as strings, because feedback
arrives as JSON and a label ``1`` must match a prediction ``"1"``.

Each metric gets a 95 % interval, ``value ± 1.96 ·`` its bootstrap standard error
(``intervals``). ECE is reported, never judged: it is biased upwards on small samples (an
empty-ish bin's gap is mostly noise), so a window of 300 rows would look worse calibrated than a
holdout of 3,000 with nothing changed.

A metric has *dropped* when it is worse than the holdout by more than a tolerance: an absolute
``tolerance`` (default 0.05) for the bounded higher-is-better scores (accuracy, F1, ROC AUC, R²)
and a relative ``tolerance_relative`` (default 10 %) for the errors (log loss, RMSE, MAE), AND
the gap is significant: larger than ``z`` (default 2.33, one-sided 1 %) times the combined
standard error of the two estimates (bootstrap standard errors of the holdout metric, stored in
the reference profile, and of the window's). A few hundred labels make F1 or ROC AUC wobble by
more than any useful tolerance; without the second condition a healthy model raises alarms.
Fewer than ``min_labels`` labelled rows (default 100) give no verdict at all.

>>> compute_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
0.3333333333333333
>>> compare_performance({"accuracy": 0.70}, {"accuracy": 0.80}, n_labelled=500)["dropped"]
['accuracy']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

HIGHER_IS_BETTER = ("accuracy", "f1", "roc_auc", "r2")
LOWER_IS_BETTER = ("log_loss", "rmse", "mae")
INFORMATIONAL = ("calibration_error",)  # reported with an interval, not judged (see the module docstring)
ECE_BINS = 10
Z_INTERVAL = 1.96
TOLERANCE = 0.05
TOLERANCE_RELATIVE = 0.10
MIN_LABELS = 100
Z_DROP = 2.33
N_BOOTSTRAP = 100
BOOTSTRAP_MAX_ROWS = 20_000


def _known(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Mask of the rows whose label and prediction are both present (None and NaN are missing)."""
    return np.array([not (a is None or b is None or a != a or b != b)  # noqa: PLR0124 (x != x: NaN)
                     for a, b in zip(labels, predictions)], dtype=bool)


def expected_calibration_error(truth: Any, scores: Any, n_bins: int = ECE_BINS) -> float:
    """ECE of positive-class ``scores`` against 0/1 ``truth`` over ``n_bins`` equal-width bins
    (a score of exactly 1 falls in the last bin).

    >>> expected_calibration_error([0, 1, 1, 1], [0.05, 0.95, 0.95, 0.55])
    0.15
    """
    y, s = np.asarray(truth, dtype=float), np.asarray(scores, dtype=float)
    idx = np.minimum((s * n_bins).astype(int), n_bins - 1)
    gap = np.bincount(idx, weights=y, minlength=n_bins) - np.bincount(idx, weights=s, minlength=n_bins)
    return float(round(np.abs(gap).sum() / y.size, 12))


def compute_metrics(task: str, labels: Any, predictions: Any, scores: Any = None,
                    classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Metrics of ``predictions`` (and binary ``scores``: positive-class probabilities) against
    ``labels``; rows with a missing label or prediction are left out."""
    from sklearn import metrics

    y = np.asarray(labels, dtype=object)
    p = np.asarray(predictions, dtype=object)
    keep = _known(y, p)
    if not keep.any():
        return {}
    y, p = y[keep], p[keep]
    if task == "regression":
        yf, pf = y.astype(float), p.astype(float)
        out = {
            "rmse": float(np.sqrt(metrics.mean_squared_error(yf, pf))),
            "mae": float(metrics.mean_absolute_error(yf, pf)),
        }
        if yf.size > 1:
            out["r2"] = float(metrics.r2_score(yf, pf))
        return out
    ys, ps = y.astype(str), p.astype(str)
    names = [str(c) for c in classes] if classes is not None else sorted(set(ys) | set(ps))
    out = {"accuracy": float(metrics.accuracy_score(ys, ps))}
    if len(names) == 2:
        positive = names[1]
        out["f1"] = float(metrics.f1_score(ys, ps, pos_label=positive, average="binary", zero_division=0))
        if scores is not None:
            s = np.asarray(scores, dtype=float)[keep]
            truth = (ys == positive).astype(int)
            if np.isfinite(s).all() and 0 < truth.sum() < truth.size:
                out["roc_auc"] = float(metrics.roc_auc_score(truth, s))
                out["log_loss"] = float(metrics.log_loss(truth, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]))
            if np.isfinite(s).all():
                out["calibration_error"] = expected_calibration_error(truth, s)
    else:
        out["f1"] = float(metrics.f1_score(ys, ps, labels=names, average="macro", zero_division=0))
    return out


def _weighted_auc(s: np.ndarray, truth: np.ndarray, W: np.ndarray) -> np.ndarray:
    """ROC AUC of scores ``s`` against 0/1 ``truth`` with each row counted ``W[b, i]`` times, for
    every row ``b`` of ``W`` (ties count half), as ``roc_auc_score`` on the repeated rows."""
    order = np.argsort(s, kind="stable")
    _, start = np.unique(s[order], return_index=True)
    Wo, to = W[:, order], truth[order].astype(bool)
    pos = np.add.reduceat(Wo * to, start, axis=1)
    neg = np.add.reduceat(Wo * ~to, start, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    n1, n0 = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), wins / (n1 * n0), np.nan)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)


def weighted_metrics(task: str, labels: Any, predictions: Any, W: np.ndarray, scores: Any = None,
                     classes: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """The metrics of ``compute_metrics`` for each row of ``W`` (how many times each row is
    counted: a bootstrap resample), vectorised; rows with a missing label or prediction must
    already be left out. A metric undefined on a resample is NaN there."""
    W = np.asarray(W, dtype=float)
    n = W.sum(axis=1)
    if task == "regression":
        yf, pf = np.asarray(labels, dtype=float), np.asarray(predictions, dtype=float)
        err = yf - pf
        out = {"rmse": np.sqrt(W @ err ** 2 / n), "mae": W @ np.abs(err) / n}
        mean = (W @ yf) / n
        total = W @ yf ** 2 - n * mean ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out["r2"] = np.where(total > 0, 1 - (W @ err ** 2) / total, np.nan)
        return out
    ys = np.asarray(labels, dtype=object).astype(str)
    ps = np.asarray(predictions, dtype=object).astype(str)
    names = [str(c) for c in classes] if classes is not None else sorted(set(ys) | set(ps))
    out = {"accuracy": W @ (ys == ps) / n}
    if len(names) == 2:
        yt, pt = ys == names[1], ps == names[1]
        out["f1"] = _f1(W @ (yt & pt), W @ (~yt & pt), W @ (yt & ~pt))
        if scores is not None:
            sc = np.asarray(scores, dtype=float)
            if np.isfinite(sc).all():
                truth = yt.astype(float)
                out["roc_auc"] = _weighted_auc(sc, truth, W)
                clipped = np.clip(sc, 1e-15, 1 - 1e-15)
                out["log_loss"] = W @ -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped)) / n
                bins = np.minimum((sc * ECE_BINS).astype(int), ECE_BINS - 1)
                onehot = np.eye(ECE_BINS)[bins]
                out["calibration_error"] = np.abs((W * (truth - sc)) @ onehot).sum(axis=1) / n
    else:
        f1s = [_f1(W @ ((ys == c) & (ps == c)), W @ ((ys != c) & (ps == c)), W @ ((ys == c) & (ps != c))) for c in names]
        out["f1"] = np.mean(f1s, axis=0)
    return out


def standard_errors(task: str, labels: Any, predictions: Any, scores: Any = None,
                    classes: Sequence[Any] | None = None, n_boot: int = N_BOOTSTRAP,
                    seed: int = 0) -> dict[str, float]:
    """Bootstrap standard error of each metric of ``compute_metrics`` on these rows: ``n_boot``
    resamples with replacement, each metric computed on all of them at once
    (``weighted_metrics``), in batches that bound memory. Above ``BOOTSTRAP_MAX_ROWS`` rows a
    random subsample of that size is resampled and its errors scaled by ``sqrt(m / n)`` (the
    metrics are averages or smooth functions of averages, whose errors shrink as ``1/sqrt(n)``).

    >>> se = standard_errors("regression", [1.0, 2.0, 3.0, 4.0] * 25, [1.5, 2.0, 2.5, 4.0] * 25)
    >>> 0 < se["mae"] < 0.1
    True
    """
    y = np.asarray(labels, dtype=object)
    p = np.asarray(predictions, dtype=object)
    keep = _known(y, p)
    y, p = y[keep], p[keep]
    s = None if scores is None else np.asarray(scores, dtype=float)[keep]
    if y.size < 2:
        return {}
    rng = np.random.default_rng(seed)
    n = y.size
    scale = 1.0
    if n > BOOTSTRAP_MAX_ROWS:  # standard errors shrink as 1/sqrt(n): resample a subsample, rescale
        sub = rng.choice(n, BOOTSTRAP_MAX_ROWS, replace=False)
        y, p, s = y[sub], p[sub], None if s is None else s[sub]
        scale = float(np.sqrt(BOOTSTRAP_MAX_ROWS / n))
    batch = max(1, min(n_boot, 2_000_000 // y.size))
    draws: dict[str, list[np.ndarray]] = {}
    for done in range(0, n_boot, batch):
        b = min(batch, n_boot - done)
        W = np.stack([np.bincount(rng.integers(0, y.size, y.size), minlength=y.size) for _ in range(b)])
        for name, values in weighted_metrics(task, y, p, W, scores=s, classes=classes).items():
            draws.setdefault(name, []).append(values)
    out = {}
    for name, parts in draws.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        if values.size > 1:
            out[name] = float(np.std(values, ddof=1)) * scale
    return out


def intervals(values: Mapping[str, float], errors: Mapping[str, float], z: float = Z_INTERVAL) -> dict[str, dict[str, Any]]:
    """Each metric as ``{value, se, low, high}``: ``value ± z · se`` (no bounds without an SE).

    >>> intervals({"accuracy": 0.8}, {"accuracy": 0.01})["accuracy"]["low"]
    0.7804
    """
    out = {}
    for name, value in values.items():
        se = errors.get(name)
        low, high = (None, None) if se is None else (round(value - z * se, 12), round(value + z * se, 12))
        out[name] = {"value": value, "se": se, "low": low, "high": high}
    return out


def compare_performance(current: Mapping[str, float], reference: Mapping[str, float], n_labelled: int,
                        tolerance: float = TOLERANCE, tolerance_relative: float = TOLERANCE_RELATIVE,
                        min_labels: int = MIN_LABELS, current_se: Mapping[str, float] | None = None,
                        reference_se: Mapping[str, float] | None = None, z: float = Z_DROP) -> dict[str, Any]:
    """Per metric known on both sides: current, reference, change, the smallest significant gap
    and whether it dropped; ``dropped`` lists those that did (empty below ``min_labels`` rows).

    >>> compare_performance({"f1": 0.10}, {"f1": 0.22}, 300, current_se={"f1": 0.05},
    ...                     reference_se={"f1": 0.03})["dropped"]
    []
    """
    rows: dict[str, dict[str, Any]] = {}
    enough = n_labelled >= min_labels
    for name, cur in current.items():
        ref = reference.get(name)
        if name in INFORMATIONAL:
            rows[name] = {"current": cur, "reference": ref, "change": None if ref is None else cur - ref,
                          "dropped": False, "judged": False}
            continue
        if ref is None:
            rows[name] = {"current": cur, "reference": None, "change": None, "dropped": False}
            continue
        gap = cur - ref if name in LOWER_IS_BETTER else ref - cur
        if name in LOWER_IS_BETTER:
            beyond = gap / abs(ref) > tolerance_relative if ref else gap > 0
        else:
            beyond = gap > tolerance
        se_c, se_r = (current_se or {}).get(name), (reference_se or {}).get(name)
        noise = z * float(np.hypot(se_c or 0.0, se_r or 0.0)) if se_c is not None or se_r is not None else 0.0
        rows[name] = {"current": cur, "reference": ref, "change": cur - ref, "noise": noise,
                      "dropped": bool(enough and beyond and gap > noise)}
    return {
        "n_labelled": int(n_labelled),
        "min_labels": int(min_labels),
        "metrics": rows,
        "dropped": [name for name, row in rows.items() if row["dropped"]],
    }
