"""Model performance on labelled rows, and its comparison with the holdout performance.

Classification: accuracy, F1 (binary: of the positive class, the second of ``classes``; otherwise
macro-averaged over the classes labelled or predicted, as scikit-learn averages the holdout's),
and for binary models with scores ROC AUC, log loss and the expected calibration
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from serein.errors import UsageError
from serein.monitor.cbpe import ties
from serein.monitor.profile import factorize, numeric_values

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


@dataclass
class Labelled:
    """The rows whose label and prediction are both known (None and NaN are missing, and so are
    a regressor's infinite values), as the metrics read them. Classification: labels and
    predictions as codes into ``names`` (the model's classes as strings first, then any other
    value met), so that a label ``1`` matches a prediction ``"1"``, with ``n_classes`` the classes
    macro F1 averages over; regression: floats.
    ``scores``: binary positive-class probabilities, or None.

    Built without a Python object per row: each distinct value is turned into text once.

    >>> rows = Labelled.of("classification", [0, 1, None, 1], ["0", "0", "1", "1"], classes=[0, 1])
    >>> rows.y.tolist(), rows.p.tolist(), rows.names
    ([0, 1, 1], [0, 0, 1], ['0', '1'])
    """

    y: np.ndarray
    p: np.ndarray
    scores: np.ndarray | None = None
    names: list[str] | None = None
    n_classes: int = 0

    @classmethod
    def of(cls, task: str, labels: Any, predictions: Any, scores: Any = None,
           classes: Sequence[Any] | None = None) -> Labelled:
        """The known rows of ``labels`` and ``predictions`` (lists, numpy or Arrow arrays, pandas
        series), with the ``scores`` at those rows. Raises UsageError when their lengths differ."""
        lengths = {"labels": len(labels), "predictions": len(predictions)}
        if scores is not None:
            lengths["scores"] = len(scores)
        if len(set(lengths.values())) > 1:
            raise UsageError("labels, predictions and scores need one value per row: got "
                             + ", ".join(f"{n} {name}" for name, n in lengths.items()))
        if task == "regression":
            y, p = numeric_values(labels), numeric_values(predictions)
            keep = np.isfinite(y) & np.isfinite(p)  # an infinite label or prediction is no measurement
            rows = cls(y, p)
        else:
            (y_codes, y_distinct), (p_codes, p_distinct) = factorize(labels), factorize(predictions)
            names = [str(c) for c in classes] if classes is not None else \
                sorted({str(v) for v in (*y_distinct, *p_distinct)})
            index = {name: i for i, name in enumerate(names)}
            y, p = _recoded(y_codes, y_distinct, index), _recoded(p_codes, p_distinct, index)
            keep = (y >= 0) & (p >= 0)
            rows = cls(y, p, names=list(index), n_classes=len(names))
        if scores is not None:
            rows.scores = np.asarray(scores, dtype=float)
        return rows if keep.all() else rows.take(np.flatnonzero(keep))

    @property
    def n(self) -> int:
        return int(self.y.size)

    def take(self, rows: np.ndarray) -> Labelled:
        """These rows at positions ``rows``."""
        return Labelled(self.y[rows], self.p[rows], None if self.scores is None else self.scores[rows],
                        self.names, self.n_classes)

    def metrics(self) -> dict[str, float]:
        """Each metric on these rows. Undefined ones are left out: ROC AUC and log loss without
        both classes, R² on fewer than two rows or constant labels."""
        if not self.n:
            return {}
        found = weighted_metrics(self, np.ones((1, self.n)))
        if "roc_auc" in found and not np.isfinite(found["roc_auc"][0]):  # one class only: no log loss either
            del found["log_loss"]
        return {name: float(values[0]) for name, values in found.items() if np.isfinite(values[0])}

    def standard_errors(self, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, float]:
        """Bootstrap standard error of each metric: ``n_boot`` resamples with replacement, each
        metric computed on all of them at once (:func:`weighted_metrics`), in batches that bound
        memory. Above ``BOOTSTRAP_MAX_ROWS`` rows a random subsample of that size is resampled and
        its errors scaled by ``sqrt(m / n)`` (the metrics are averages or smooth functions of
        averages, whose errors shrink as ``1/sqrt(n)``)."""
        if self.n < 2:
            return {}
        rng = np.random.default_rng(seed)
        rows, scale = self, 1.0
        if self.n > BOOTSTRAP_MAX_ROWS:  # standard errors shrink as 1/sqrt(n): resample a subsample, rescale
            rows = self.take(rng.choice(self.n, BOOTSTRAP_MAX_ROWS, replace=False))
            scale = float(np.sqrt(BOOTSTRAP_MAX_ROWS / self.n))
        batch = max(1, min(n_boot, 2_000_000 // rows.n))
        draws: dict[str, list[np.ndarray]] = {}
        for done in range(0, n_boot, batch):
            b = min(batch, n_boot - done)
            W = np.stack([np.bincount(rng.integers(0, rows.n, rows.n), minlength=rows.n) for _ in range(b)])
            for name, values in weighted_metrics(rows, W).items():
                draws.setdefault(name, []).append(values)
        out = {}
        for name, parts in draws.items():
            values = np.concatenate(parts)
            values = values[np.isfinite(values)]
            if values.size > 1:
                out[name] = float(np.std(values, ddof=1)) * scale
        return out


def _recoded(codes: np.ndarray, distinct: Sequence[Any], index: dict[str, int]) -> np.ndarray:
    """:func:`factorize` codes as positions in ``index`` (text to position; a value not in it is
    added), -1 where missing."""
    table = np.array([index.setdefault(str(value), len(index)) for value in distinct] + [-1], dtype=np.intp)
    return table[codes]


def _calibration_gaps(s: np.ndarray, residual: np.ndarray, W: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """For each row of ``W``, ``Σ_bins |Σ_{i in bin} W[b, i] · residual[i]|`` over ``n_bins``
    equal-width bins of the scores ``s`` (a score of exactly 1 falls in the last bin): with the
    residuals ``label - score``, divided by the rows counted, the ECE.

    >>> truth, s = np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.05, 0.95, 0.95, 0.55])
    >>> float(_calibration_gaps(s, truth - s, np.ones((1, 4)))[0] / 4)
    0.15000000000000002
    """
    bins = np.minimum((s * n_bins).astype(np.intp), n_bins - 1)
    return np.array([np.abs(np.bincount(bins, weights=w * residual, minlength=n_bins)).sum() for w in W])


def compute_metrics(task: str, labels: Any, predictions: Any, scores: Any = None,
                    classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Metrics of ``predictions`` (and binary ``scores``: positive-class probabilities) against
    ``labels``; rows with a missing label or prediction are left out (see :class:`Labelled`)."""
    return Labelled.of(task, labels, predictions, scores, classes).metrics()


def _weighted_auc(s: np.ndarray, truth: np.ndarray, W: np.ndarray) -> np.ndarray:
    """ROC AUC of scores ``s`` against 0/1 ``truth`` with each row counted ``W[b, i]`` times, for
    every row ``b`` of ``W`` (ties count half), as ``roc_auc_score`` on the repeated rows."""
    groups = ties(s).groups
    aucs = []
    for w in W:
        pos = np.bincount(groups, weights=w * truth)
        neg = np.bincount(groups, weights=w * (1.0 - truth))
        below = np.cumsum(neg) - neg
        n1, n0 = pos.sum(), neg.sum()
        aucs.append((pos * (below + 0.5 * neg)).sum() / (n1 * n0) if n1 > 0 and n0 > 0 else np.nan)
    return np.array(aucs)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)


def weighted_metrics(rows: Labelled, W: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of :func:`compute_metrics` on ``rows`` for each row of ``W`` (how many times
    each row is counted: a bootstrap resample), vectorised. A metric undefined on a resample is
    NaN there."""
    W = np.asarray(W, dtype=float)
    n = W.sum(axis=1)
    if rows.names is None:
        err = rows.y - rows.p
        out = {"rmse": np.sqrt(W @ err ** 2 / n), "mae": W @ np.abs(err) / n}
        mean = (W @ rows.y) / n
        total = W @ rows.y ** 2 - n * mean ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out["r2"] = np.where((total > 0) & (n > 1), 1 - (W @ err ** 2) / total, np.nan)
        return out
    y, p = rows.y, rows.p
    out = {"accuracy": W @ (y == p) / n}
    if rows.n_classes == 2:
        yt, pt = y == 1, p == 1  # the second class is the positive one
        out["f1"] = _f1(W @ (yt & pt), W @ (~yt & pt), W @ (yt & ~pt))
        if rows.scores is not None and np.isfinite(rows.scores).all():
            sc, truth = rows.scores, yt.astype(float)
            out["roc_auc"] = _weighted_auc(sc, truth, W)
            clipped = np.clip(sc, 1e-15, 1 - 1e-15)
            out["log_loss"] = W @ -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped)) / n
            out["calibration_error"] = _calibration_gaps(sc, truth - sc, W) / n
    else:
        # macro over the classes the (resampled) rows label or predict, as scikit-learn's default
        # averages the holdout's: a class absent from both is no F1 of 0
        counts = [(W @ ((y == c) & (p == c)), W @ ((y != c) & (p == c)), W @ ((y == c) & (p != c)))
                  for c in range(rows.n_classes)]
        f1s = np.array([_f1(*c) for c in counts])
        present = np.array([tp + fp + fn > 0 for tp, fp, fn in counts])
        with np.errstate(invalid="ignore", divide="ignore"):
            out["f1"] = (f1s * present).sum(axis=0) / present.sum(axis=0)
    return out


def standard_errors(task: str, labels: Any, predictions: Any, scores: Any = None,
                    classes: Sequence[Any] | None = None, n_boot: int = N_BOOTSTRAP,
                    seed: int = 0) -> dict[str, float]:
    """Bootstrap standard error of each metric of :func:`compute_metrics` on these rows (see
    :meth:`Labelled.standard_errors`).

    >>> se = standard_errors("regression", [1.0, 2.0, 3.0, 4.0] * 25, [1.5, 2.0, 2.5, 4.0] * 25)
    >>> 0 < se["mae"] < 0.1
    True
    """
    return Labelled.of(task, labels, predictions, scores, classes).standard_errors(n_boot, seed)


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
