"""Reference profiles: everything monitoring needs to know about the training data, computed once.

A profile is built at registration from the holdout (features, predictions, scores, labels) and
stored with the model version as JSON. It holds no raw rows, only summaries sized by the number of
features: per numeric feature its quantile bins (open outer edges) with counts, 100 mid-point
quantiles (for the Wasserstein distance) and moments; per categorical feature the frequencies of
its ``TOP_K`` most common categories plus an ``__other__`` count; null rates everywhere; the
prediction distribution; the label distribution and the holdout performance. Comparing a window to
it (``serein.monitor.drift``) then costs O(window), never O(training set).

Two parts hold more than summaries, both of fixed size whatever the data: ``sample``, the same
``SAMPLE_SIZE`` (1,000) holdout rows of every feature, of the predictions, scores and labels (for
the KS test of small windows and the domain classifier of multivariate drift, which need raw
values; numbers kept to 7 significant digits), and ``calibration``, the isotonic calibration
tables of a classifier's scores (``serein.monitor.cbpe``, for estimating performance without
labels).

>>> import pandas as pd
>>> from serein.data.contract import Contract
>>> c = Contract.from_dict({"columns": {"x": {"type": "float"}, "c": {"type": "string"}}})
>>> X = pd.DataFrame({"x": [1.0, 2.0, 3.0, None], "c": ["a", "b", "a", "a"]})
>>> p = build_profile(X, c, "regression", predictions=[0.1, 0.2, 0.3, 0.4])
>>> p["features"]["x"]["null_rate"], p["features"]["c"]["categories"]
(0.25, {'a': 3, 'b': 1})
>>> p["prediction"]["kind"], p["labels"] is None
('regression', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serein.errors import UsageError
from serein.data.arrow_arrays import arrow_floats, arrow_integers

if TYPE_CHECKING:
    import pandas as pd

    from serein.data.contract import Contract

PROFILE_VERSION = 1
N_BINS = 10  # quantile bins per numeric feature: deciles, the usual PSI resolution
N_QUANTILES = 100  # mid-point quantiles kept for the Wasserstein distance
TOP_K = 50  # categories kept per categorical feature; the rest is counted as OTHER
OTHER = "__other__"
UNSEEN = "__unseen__"
TASKS = ("classification", "regression")
SAMPLE_SIZE = 1000  # holdout rows kept as a reference sample (KS tests, domain classifier)
SELECT_BUCKETS = 1 << 16  # buckets order_statistics spreads values over (a 512 kB count table)


def column_names(X: Any) -> list[str]:
    """The column names of a pandas frame or an Arrow table (a window's features come as either)."""
    return list(X.column_names if isinstance(X, pa.Table) else X.columns)


def numeric_values(values: Any) -> np.ndarray:
    """``values`` as a float array with NaN for missing (text that is not a number counts as
    missing: the contract check, not drift, reports it). Arrow columns and numpy arrays of numbers
    are converted without pandas and without a per-value pass; only text goes through
    ``pandas.to_numeric``.

    >>> numeric_values(pa.chunked_array([[1, None], [3]])).tolist()
    [1.0, nan, 3.0]
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        kind = values.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            return arrow_floats(values)
        values = values.to_pandas()  # text, decimals, ...: coerced below like any other series
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(float)
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if series.dtype == bool:
        series = series.astype(float)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _arrow_values(values: Any) -> pa.ChunkedArray | None:
    """``values`` as an Arrow column, or None when Arrow cannot hold them as one type (a list
    mixing numbers and text, say) or they are a pandas object (which keeps its own path)."""
    if isinstance(values, pa.Array):
        return pa.chunked_array([values])
    if isinstance(values, pa.ChunkedArray):
        return values
    if not isinstance(values, np.ndarray) and type(values).__module__.startswith("pandas"):
        return None
    try:
        return pa.chunked_array([pa.array(values, from_pandas=True)])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _codes(values: Any) -> tuple[np.ndarray, list[Any]] | None:
    """:func:`factorize` by numpy (arrays of numbers) or Arrow (Arrow columns, lists, other
    arrays); None when neither can type ``values`` and pandas has to."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return _numpy_codes(values)
    column = _arrow_values(values)
    return None if column is None else _dictionary_codes(column)


def factorize(values: Any) -> tuple[np.ndarray, list[Any]]:
    """``(codes, distinct)``: each value's index among the ``distinct`` values, -1 where missing
    (None or NaN), as ``pandas.factorize`` gives them (the distinct values' order may differ).
    Arrays of numbers are coded by numpy, Arrow columns and lists hashed by Arrow (a
    dictionary-encoded column is taken as it is); pandas objects, and lists Arrow cannot type, go
    through pandas.

    >>> factorize(["b", None, "a", "b"])
    (array([ 0, -1,  1,  0]), ['b', 'a'])
    """
    found = _codes(values)
    if found is None:
        import pandas as pd

        codes, uniques = pd.factorize(np.asarray(values, dtype=object) if isinstance(values, list) else values)
        return np.asarray(codes, dtype=np.int64), list(uniques)
    return found


def _numpy_codes(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """:func:`factorize` of a numpy array of numbers (NaN missing): integers spanning fewer than
    ``SELECT_BUCKETS`` values by counting them, anything else by ``np.unique``."""
    if values.size and values.dtype.kind in "iu" and int(values.max()) - int(values.min()) < SELECT_BUCKETS:
        low = values.min()
        shifted = (values - low).astype(np.intp)
        present = np.flatnonzero(np.bincount(shifted))
        lookup = np.full(int(present[-1]) + 1, -1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        return lookup[shifted], (present + low).tolist()
    known = ~np.isnan(values) if values.dtype.kind == "f" else np.ones(values.size, dtype=bool)
    distinct, inverse = np.unique(values[known], return_inverse=True)
    codes = np.full(values.size, -1, dtype=np.int64)
    codes[known] = inverse
    return codes, distinct.tolist()


def _dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    column = column.unify_dictionaries()  # chunks may each carry their own dictionary
    distinct = column.chunk(0).dictionary.to_pylist() if column.num_chunks else []
    parts = [arrow_integers(chunk.indices, missing=-1) for chunk in column.chunks]
    codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    not_numbers = [i for i, value in enumerate(distinct) if isinstance(value, float) and value != value]
    if not_numbers:  # NaN is missing, as in pandas
        codes[np.isin(codes, not_numbers)] = -1
    return codes, distinct


def category_counts(values: Any) -> tuple[dict[str, int], int]:
    """How often each non-missing value of ``values`` occurs, keyed by its string form (the form
    categories take in JSON), and the number of missing values. Counted from :func:`factorize`'s
    codes (pandas ``value_counts`` for pandas objects), so only the distinct values are ever
    turned into strings; categories that do not occur are left out.

    >>> category_counts(["a", "b", "a", None])
    ({'a': 2, 'b': 1}, 1)
    >>> import pandas as pd
    >>> category_counts(pd.Series(["a", None], dtype=pd.CategoricalDtype(["a", "b"])))
    ({'a': 1}, 1)
    """
    found = _codes(values)
    if found is None:
        import pandas as pd

        series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
        freq = series.value_counts(dropna=True, sort=False)
        distinct, tally, n_missing = freq.index.tolist(), freq.to_numpy().tolist(), len(series) - int(freq.sum())
    else:
        codes, distinct = found
        present = codes[codes >= 0]
        tally, n_missing = np.bincount(present, minlength=len(distinct)).tolist(), codes.size - present.size
    counts: dict[str, int] = {}
    for value, count in zip(distinct, tally):
        if count > 0:
            key = str(value)
            counts[key] = counts.get(key, 0) + int(count)
    return counts, int(n_missing)


def sorted_bin_counts(xs: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of a sorted ``xs`` (no NaN) in the right-closed bins ``(-inf, e0], (e0, e1], ...,
    (ek, inf)``: one binary search per edge, not per value.

    >>> sorted_bin_counts(np.array([0.0, 1.0, 1.5, 9.0]), [1.0, 2.0]).tolist()
    [2, 1, 1]
    """
    return bin_counts(np.searchsorted(xs, np.asarray(edges, dtype=float), side="right"), xs.size)


def bin_counts(at_or_below: np.ndarray, n: int) -> np.ndarray:
    """Counts per right-closed bin of ``n`` values from how many lie at or below each edge.

    >>> bin_counts(np.array([2, 3]), 4).tolist()
    [2, 1, 1]
    """
    return np.diff(np.concatenate(([0], at_or_below, [n]))).astype(np.int64)


def interpolated(pos: np.ndarray, at_floor: np.ndarray, at_next: np.ndarray) -> np.ndarray:
    """Linear interpolation between the order statistics at ``floor(pos)`` and the next rank
    (numpy's default quantile method).

    >>> interpolated(np.array([0.5, 2.0]), np.array([1.0, 4.0]), np.array([2.0, 4.0])).tolist()
    [1.5, 4.0]
    """
    return at_floor + (pos - np.floor(pos)) * (at_next - at_floor)


def sorted_quantiles(xs: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of a sorted ``xs`` at ``levels`` by linear interpolation (numpy's default
    method, so ``np.quantile(x, levels)`` gives the same), read off the sorted array: one sort
    serves every quantile a profile needs, where ``np.quantile`` partitions the data anew per call.

    >>> sorted_quantiles(np.array([1.0, 2.0, 4.0]), np.array([0.0, 0.25, 0.5, 1.0])).tolist()
    [1.0, 1.5, 2.0, 4.0]
    """
    pos = np.asarray(levels, dtype=float) * (xs.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, xs.size - 1)
    return interpolated(pos, xs[lo], xs[hi])


def order_statistics(x: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.sort(x)[ranks]`` for a float array without NaN, without sorting all of ``x``
    (:func:`_select`).

    >>> x = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    >>> order_statistics(x, np.array([0, 2, 4])).tolist()
    [1.0, 3.0, 5.0]
    """
    return _select(x, ranks, np.empty(0))[0]


def _select(x: np.ndarray, ranks: np.ndarray, edges: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``np.sort(x)[ranks]`` for a float array without NaN, and how many values lie at or below
    each of ``edges``, without sorting all of ``x``.

    The values are spread over ``SELECT_BUCKETS`` equal-width buckets between the minimum and the
    maximum; bucket order follows value order (subtracting the minimum, scaling and truncating are
    all monotone in floating point), so the cumulative bucket counts say which bucket holds each
    wanted rank, and only those buckets' values are sorted. An edge is placed in a bucket the same
    way: every value of an earlier bucket lies at or below it, every value of a later one above,
    so only its own bucket's values are compared with it (gathered with the ranks' buckets, in the
    same pass: no comparison per value and edge). A bucket holding a single distinct value (ties)
    gives it without sorting; whole numbers spanning fewer values than there are buckets (integer
    codes) are simply counted, value by value. Infinite or constant data, and arrays with fewer
    values than buckets, are sorted."""
    ranks = np.asarray(ranks, dtype=np.intp)
    edges = np.asarray(edges, dtype=float)
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    span = high - low
    if x.size <= SELECT_BUCKETS or not (math.isfinite(span) and span > 0 and math.isfinite(SELECT_BUCKETS / span)):
        xs = np.sort(x)
        return xs[ranks], np.searchsorted(xs, edges, side="right")
    if span < SELECT_BUCKETS and _whole_numbers(x):  # integer codes: count each value
        below = np.cumsum(np.bincount((x - low).astype(np.intp)))
        steps = np.floor(edges - low)  # a whole value v lies at or below an edge e when v - low <= floor(e - low)
        at_or_below = np.where(steps < 0, 0, below[np.clip(steps, 0, below.size - 1).astype(np.intp)])
        return low + np.searchsorted(below, ranks, side="right").astype(float), at_or_below
    scale = SELECT_BUCKETS / span
    idx = ((x - low) * scale).astype(np.intp)
    np.minimum(idx, SELECT_BUCKETS - 1, out=idx)  # the maximum itself lands on the upper bound
    counts = np.bincount(idx, minlength=SELECT_BUCKETS)
    first = np.cumsum(counts) - counts  # rank of each bucket's smallest value
    owner = np.searchsorted(first + counts, ranks, side="right")  # the bucket holding each rank
    inside = (edges >= low) & (edges < high)
    edge_bucket = np.minimum(((np.clip(edges, low, high) - low) * scale).astype(np.intp), SELECT_BUCKETS - 1)
    wanted = np.zeros(SELECT_BUCKETS, dtype=bool)  # the ranks' buckets
    wanted[owner] = True
    gathered = wanted.copy()  # and the edges'
    gathered[edge_bucket[inside]] = True
    chosen = gathered[idx]
    values, buckets = x[chosen], idx[chosen]
    at_or_below = np.where(edges < low, 0, x.size)
    for k in np.flatnonzero(inside):
        in_bucket = buckets == edge_bucket[k]
        at_or_below[k] = first[edge_bucket[k]] + np.count_nonzero(in_bucket & (values <= edges[k]))
    if not np.array_equal(gathered, wanted):  # the ranks' buckets only, from here on
        keep = wanted[buckets]
        values, buckets = values[keep], buckets[keep]
    out = np.empty(ranks.size)
    single = np.zeros(SELECT_BUCKETS, dtype=bool)
    if values.size > x.size // 8:  # ties fill the wanted buckets: take single-valued ones as they are
        smallest = np.full(SELECT_BUCKETS, np.inf)
        largest = np.full(SELECT_BUCKETS, -np.inf)
        np.minimum.at(smallest, buckets, values)
        np.maximum.at(largest, buckets, values)
        single = wanted & (smallest == largest)
        values = values[~single[buckets]]
        wanted &= ~single
        out[single[owner]] = smallest[owner[single[owner]]]
    values.sort()
    kept = np.where(wanted, counts, 0)
    before = np.cumsum(kept) - kept  # sorted values of the wanted buckets below each bucket
    sort = ~single[owner]
    out[sort] = values[before[owner[sort]] + ranks[sort] - first[owner[sort]]]
    return out, at_or_below


def _whole_numbers(x: np.ndarray) -> bool:
    """Whether every value of ``x`` is a whole number (a cheap look at the first thousand first)."""
    head = x[:1000]
    return bool(np.array_equal(head, np.trunc(head)) and np.array_equal(x, np.trunc(x)))


def quantiles_and_bins(x: np.ndarray, levels: np.ndarray,
                       edges: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sorted_quantiles` at ``levels`` and :func:`sorted_bin_counts` for ``edges`` of ``x``
    in any order (no NaN), read off :func:`_select`: the same values as sorting, without sorting
    the whole array, and the bins without one comparison per value and edge (for a million
    values and 9 edges, 3 ms of the 12 ms a numeric feature's drift took).

    >>> q, counts = quantiles_and_bins(np.array([9.0, 1.0, 0.0, 1.5]), np.array([0.0, 0.5, 1.0]), [1.0, 2.0])
    >>> q.tolist(), counts.tolist()
    ([0.0, 1.25, 9.0], [2, 1, 1])
    """
    pos = np.asarray(levels, dtype=float) * (x.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, x.size - 1)
    ranks, where = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    found, at_or_below = _select(x, ranks, edges)
    found = found[where]
    x_lo, x_hi = found[:lo.size], found[lo.size:]
    return interpolated(pos, x_lo, x_hi), bin_counts(at_or_below, x.size)


def mid_levels(n: int = N_QUANTILES) -> np.ndarray:
    """The levels ``(i + 0.5) / n``, ``i < n``: a mid-point rule for integrals over the quantile
    function, such as the Wasserstein distance."""
    return (np.arange(n) + 0.5) / n


def numeric_profile(values: Any, n_bins: int = N_BINS) -> dict[str, Any]:
    """Summary of one numeric column: quantile bins (interior edges, deduplicated, so tied
    values such as integer codes give fewer bins), counts, mid-point quantiles and moments.
    The values are sorted once; edges, counts and quantiles are all read off that sort."""
    raw = numeric_values(values)
    x = raw[np.isfinite(raw)]  # an infinite value counts as missing, as drift counts it
    out: dict[str, Any] = {
        "kind": "numeric",
        "count": int(raw.size),
        "n_nulls": int(raw.size - x.size),
        "null_rate": float((raw.size - x.size) / raw.size) if raw.size else 0.0,
    }
    del raw
    if x.size == 0:
        return {**out, "edges": [], "counts": [0], "quantiles": [], "min": None, "max": None,
                "mean": None, "std": None}
    x.sort()  # in place: x is already a private copy
    edges = np.unique(sorted_quantiles(x, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    return {
        **out,
        "edges": edges.tolist(),
        "counts": sorted_bin_counts(x, edges).tolist(),
        "quantiles": sorted_quantiles(x, mid_levels()).tolist(),
        "min": float(x[0]),
        "max": float(x[-1]),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
    }


def categorical_profile(values: Any, top_k: int = TOP_K) -> dict[str, Any]:
    """Summary of one categorical column: frequencies of its ``top_k`` most common categories
    (as strings; ties broken by name), the count of all others (``other``) and the number of
    distinct categories."""
    counts, n_nulls = category_counts(values)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(counts.values()) + n_nulls
    return {
        "kind": "categorical",
        "count": int(total),
        "n_nulls": n_nulls,
        "null_rate": float(n_nulls / total) if total else 0.0,
        "categories": dict(ranked[:top_k]),
        "other": int(sum(c for _, c in ranked[top_k:])),
        "n_categories": len(counts),
    }


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def prediction_profile(task: str, predictions: Any, scores: Any = None,
                       classes: Sequence[Any] | None = None) -> dict[str, Any]:
    """The distribution of a model's outputs: for classifiers the predicted-class profile and
    the binned scores (positive-class probability for binary, the top probability otherwise); for
    regressors the binned predicted values."""
    if task == "classification":
        out: dict[str, Any] = {
            "kind": "classification",
            "classes": None if classes is None else [_jsonable(c) for c in classes],
            "predicted": categorical_profile(predictions),
            "scores": None if scores is None else numeric_profile(scores),
        }
        return out
    return {"kind": "regression", "values": numeric_profile(predictions)}


def sample_rows(n: int, size: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``size`` rows drawn without replacement from ``n`` (all when fewer);
    the same for every column of one frame, so the sample stays row-aligned.

    >>> sample_rows(5, 3).tolist(), sample_rows(2).tolist()
    ([2, 3, 4], [0, 1])
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def sample_values(values: Any, rows: np.ndarray, numeric: bool) -> list[Any]:
    """``values`` at ``rows`` as JSON-ready numbers (7 significant digits) or strings; None for missing.

    >>> sample_values([1.23456789, None, 3.0], np.arange(3), numeric=True)
    [1.234568, None, 3.0]
    """
    if numeric:
        x = numeric_values(values)[rows]
        return [None if np.isnan(v) else float(f"{v:.7g}") for v in x]
    import pandas as pd

    series = (values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)).iloc[rows]
    return [None if pd.isna(v) else str(v) for v in series]


def reference_sample(X: pd.DataFrame, features: Mapping[str, Any], task: str, predictions: Any,
                     scores: Any = None, labels: Any = None) -> dict[str, Any]:
    """The row-aligned reference sample of the profiled ``features`` and of the outputs."""
    rows = sample_rows(len(X))
    regression = task == "regression"
    return {
        "n": int(rows.size),
        "columns": {name: sample_values(X[name], rows, f["kind"] == "numeric") for name, f in features.items()},
        "predictions": sample_values(predictions, rows, regression),
        "scores": None if scores is None else sample_values(scores, rows, True),
        "labels": None if labels is None else sample_values(labels, rows, regression),
    }


def build_profile(
    X: pd.DataFrame,
    contract: Contract,
    task: str,
    predictions: Any,
    scores: Any = None,
    labels: Any = None,
    classes: Sequence[Any] | None = None,
    performance: Mapping[str, float] | None = None,
    proba: Any = None,
) -> dict[str, Any]:
    """The reference profile of a model: features of ``X`` named by ``contract`` (its column types
    decide numeric vs categorical; datetime columns are not profiled), the model's
    ``predictions`` / ``scores`` on ``X``, the true ``labels`` and the holdout ``performance``
    (computed from labels, predictions and scores when not given), a reference sample, and for
    classifiers the calibration of ``proba`` (class probabilities, columns following ``classes``;
    binary ``scores`` suffice for a binary model). JSON-serialisable.
    """
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} for a reference profile", hint=f"use one of {', '.join(TASKS)}")
    missing = [name for name in contract.columns if name not in X.columns]
    if missing:
        raise UsageError(
            f"the data lacks contract column(s) {', '.join(map(repr, missing))}",
            hint="profile the same columns the model was trained on",
        )
    n = len(X)
    for what, values in (("predictions", predictions), ("scores", scores), ("labels", labels)):
        if values is not None and len(values) != n:
            raise UsageError(f"{what} has {len(values)} values but the data has {n} rows")
    features: dict[str, Any] = {}
    for name, spec in contract.columns.items():
        if spec.numeric:
            features[name] = {"type": spec.type, **numeric_profile(X[name])}
        elif spec.categorical:
            features[name] = {"type": spec.type, **categorical_profile(X[name])}
    performance_se: dict[str, float] = {}
    if labels is not None:
        from serein.monitor.performance import compute_metrics, standard_errors

        if performance is None:
            performance = compute_metrics(task, labels, predictions, scores=scores, classes=classes)
        performance_se = standard_errors(task, labels, predictions, scores=scores, classes=classes)
    label_profile = None
    if labels is not None:
        label_profile = categorical_profile(labels) if task == "classification" else numeric_profile(labels)
    calibration = None
    if task == "classification" and labels is not None:
        from serein.monitor.cbpe import fit_calibration

        binary = classes is not None and len(classes) == 2
        calibration = fit_calibration(labels, proba if proba is not None else (scores if binary else None), classes)
    return {
        "profile_version": PROFILE_VERSION,
        "task": task,
        "n_rows": int(n),
        "features": features,
        "prediction": prediction_profile(task, predictions, scores, classes),
        "labels": label_profile,
        "performance": {k: float(v) for k, v in (performance or {}).items()},
        "performance_se": performance_se,
        "sample": reference_sample(X, features, task, predictions, scores, labels),
        "calibration": calibration,
    }
