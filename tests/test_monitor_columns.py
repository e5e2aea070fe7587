"""The column kernels a million-row window runs on: order statistics without a full sort, bin
counts without a search per value, and Arrow columns counted and converted without pandas — each
checked against the plain computation it replaces (numpy sorting, pandas hashing)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serein.monitor.profile import (
    SELECT_BUCKETS,
    category_counts,
    factorize,
    mid_levels,
    numeric_values,
    order_statistics,
    quantiles_and_bins,
    sorted_bin_counts,
    sorted_quantiles,
)

N = 4 * SELECT_BUCKETS  # large enough for the bucket path (smaller arrays are simply sorted)


def _columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "normal": rng.normal(size=N),
        "lognormal": rng.lognormal(0.0, 0.7, N),
        "integer codes": rng.integers(0, 30, N).astype(float),
        "negative whole numbers, wide": rng.integers(-40_000, 40_000, N).astype(float),
        "whole numbers, one not": np.append(rng.integers(0, 30, N).astype(float), 2.5),
        "codes and noise": np.concatenate([rng.integers(0, 5, N // 2).astype(float), rng.normal(size=N // 2)]),
        "far outliers": np.append(rng.normal(size=N), [1e12, -1e12]),
        "infinite": np.append(rng.normal(size=N), [np.inf, -np.inf]),
        "constant": np.full(N, 3.0),
        "tiny spread": 1.0 + rng.normal(size=N) * 1e-300,
        "small": rng.normal(size=500),
    }


@pytest.mark.parametrize("name", list(_columns()))
def test_order_statistics_quantiles_and_bins_equal_sorting(name: str) -> None:
    x = _columns()[name]
    xs = np.sort(x)
    ranks = np.unique(np.random.default_rng(1).integers(0, x.size, 300))
    assert np.array_equal(order_statistics(x, ranks), xs[ranks])
    assert np.array_equal(order_statistics(x, np.array([0, x.size - 1])), [xs[0], xs[-1]])
    for levels in (mid_levels(), np.linspace(0.0, 1.0, 11)):
        with np.errstate(invalid="ignore"):  # inf - inf at the ends of the infinite column
            assert np.array_equal(quantiles_and_bins(x, levels, ())[0], sorted_quantiles(xs, levels), equal_nan=True)
        if np.isfinite(x).all():
            np.testing.assert_allclose(quantiles_and_bins(x, levels, ())[0], np.quantile(x, levels),
                                       rtol=1e-12, atol=1e-300)
    finite = xs[np.isfinite(xs)]
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, 11)[1:-1]))
    counts = quantiles_and_bins(x, np.empty(0), edges)[1]
    assert np.array_equal(counts, sorted_bin_counts(xs, edges)) and counts.sum() == x.size
    # edges on values themselves, at and beyond both ends, and one value apart
    odd = np.unique(np.concatenate([edges, finite[[0, 5, finite.size // 2, -1]], finite[[0, -1]] + [-1.0, 1.0],
                                    np.nextafter(finite[[7, finite.size // 3]], np.inf)]))
    q, counts = quantiles_and_bins(x, mid_levels(), odd)
    assert np.array_equal(counts, sorted_bin_counts(xs, odd))
    with np.errstate(invalid="ignore"):
        assert np.array_equal(q, sorted_quantiles(xs, mid_levels()), equal_nan=True)


def test_order_statistics_leave_the_input_alone() -> None:
    x = np.random.default_rng(2).normal(size=N)
    before = x.copy()
    quantiles_and_bins(x, mid_levels(), [0.0, 1.0])
    assert np.array_equal(x, before)


def test_arrow_numbers_become_floats_with_nan_for_missing() -> None:
    column = pa.chunked_array([pa.array([1, None, 3], pa.int32()), pa.array([4], pa.int32())])
    assert np.array_equal(numeric_values(column), [1.0, np.nan, 3.0, 4.0], equal_nan=True)
    assert numeric_values(pa.chunked_array([[True, False]])).tolist() == [1.0, 0.0]
    # text goes through pandas.to_numeric, as a pandas column of text does
    text = pa.chunked_array([pa.array(["1.5", "x", None]).dictionary_encode()])
    assert np.array_equal(numeric_values(text), [1.5, np.nan, np.nan], equal_nan=True)
    assert numeric_values(np.array([1, 2], dtype=np.int64)).dtype == np.float64


def _pandas_counts(values: list) -> tuple[dict[str, int], int]:
    series = pd.Series(values, dtype=object)
    freq = series.value_counts(dropna=True)
    counts: dict[str, int] = {}
    for value, count in freq.items():
        counts[str(value)] = counts.get(str(value), 0) + int(count)
    return counts, int(series.isna().sum())


def test_category_counts_agree_across_arrow_numpy_lists_and_pandas() -> None:
    rng = np.random.default_rng(3)
    values = [None if v == "none" else v for v in rng.choice(["a", "b", "c", "none"], 5000).tolist()]
    expected = _pandas_counts(values)
    # chunks with their own dictionaries (as Parquet row groups are read), one of them unused in part
    chunks = [pa.array(values[:2000]).dictionary_encode(), pa.array(values[2000:]).dictionary_encode(),
              pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["zz", "b"]))]
    both = pa.chunked_array(chunks)
    assert category_counts(both) == _pandas_counts(values + ["zz", "zz"])
    assert category_counts(pa.chunked_array([pa.array(values)])) == expected
    assert category_counts(values) == expected
    assert category_counts(pd.Series(values)) == expected
    assert category_counts(np.array(values, dtype=object)) == expected
    numbers = rng.integers(0, 4, 1000)
    assert category_counts(numbers) == _pandas_counts(numbers.tolist())
    floats = np.array([1.0, np.nan, 2.0, 1.0])
    assert category_counts(floats) == ({"1.0": 2, "2.0": 1}, 1)  # NaN is missing, as in pandas
    assert category_counts([1, "1", "a"]) == ({"1": 2, "a": 1}, 0)  # mixed types: pandas decides


def test_factorize_matches_pandas() -> None:
    values = ["b", None, "a", "b", float("nan"), "c"]
    codes, distinct = factorize(values)
    expected_codes, expected_distinct = pd.factorize(pd.Series(values, dtype=object))
    assert [distinct[c] if c >= 0 else None for c in codes] == \
        [expected_distinct[c] if c >= 0 else None for c in expected_codes]
    codes, distinct = factorize(pa.chunked_array([pa.array(["x", None]).dictionary_encode(),
                                                  pa.array(["y", "x"]).dictionary_encode()]))
    assert [distinct[c] if c >= 0 else None for c in codes] == ["x", None, "y", "x"]
    codes, distinct = factorize(np.array([3, 1, 3]))
    assert [distinct[c] for c in codes] == [3, 1, 3]


def test_chi2_quantile_and_upper_gamma_equal_scipy() -> None:
    from scipy.special import chdtri, gammaincc

    from serein.monitor.gamma import chi2_upper_quantile, upper_gamma

    for dof in (1, 2, 3, 7, 10, 49, 50, 199, 1000, 10_000):
        for p in (1e-6, 0.001, 0.01, 0.05, 0.5, 0.95):
            assert chi2_upper_quantile(p, dof) == pytest.approx(chdtri(dof, p), rel=1e-12), (dof, p)
    for a in (0.5, 1.0, 2.5, 10.0, 100.0, 1000.0):
        for x in (1e-3, 0.5, 1.0, 3.0, 10.0, 99.0, 101.0, 1500.0):
            assert upper_gamma(a, x) == pytest.approx(gammaincc(a, x), rel=1e-11, abs=1e-300), (a, x)
    with pytest.raises(ValueError):
        chi2_upper_quantile(0.0, 3)
    assert math.isclose(chi2_upper_quantile(0.05, 1), 1.959963984540054 ** 2, rel_tol=1e-12)


def test_arrow_buffers_read_like_pyarrow_with_offsets_nulls_and_chunks() -> None:
    from serein.data.arrow_arrays import arrow_floats, arrow_integers

    base = pa.array([1, None, 3, 4, None, 6, 7, 8, 9, 10], pa.int16())
    column = pa.chunked_array([base.slice(3, 5), base.slice(0, 2), pa.array([], pa.int16())])  # offsets, an empty chunk
    expected = [4, None, 6, 7, 8, 1, None]
    assert arrow_integers(column, missing=-9).tolist() == [-9 if v is None else v for v in expected]
    assert np.array_equal(arrow_floats(column), [np.nan if v is None else float(v) for v in expected], equal_nan=True)
    flags = pa.array([True, None, False, True] * 3).slice(1)
    assert np.array_equal(arrow_floats(flags), [np.nan, 0.0, 1.0] + [1.0, np.nan, 0.0, 1.0] * 2, equal_nan=True)
    doubles = pa.chunked_array([pa.array(np.random.default_rng(5).normal(size=1000)).slice(17, 500)])
    assert np.array_equal(arrow_floats(doubles), doubles.to_numpy())
    assert arrow_floats(pa.chunked_array([], pa.float64())).size == 0


def test_numeric_arrow_columns_and_codes_convert_without_importing_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas at its first numpy conversion; drift's kernels do not convert
    through it, so a batch's drift, outputs and CBPE leave pandas out (as does the contract's
    Arrow screen: ``tests/test_data_arrow_arrays.py``). The batch is read from Parquet in the
    subprocess: building Arrow arrays from Python objects would itself import pandas."""
    import subprocess
    import sys
    import textwrap

    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    x[::100] = np.nan
    scores = rng.random(5000)
    pq.write_table(pa.table({"x": x, "c": pa.array(["a", "b", None, "a"] * 1250),
                             "prediction": (scores > 0.5).astype(np.int64), "proba_1": scores}), tmp_path / "batch.parquet")
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import pyarrow.parquet as pq
        from serein.monitor.batch_window import _column_values
        from serein.monitor.cbpe import estimate_performance
        from serein.monitor.drift import categorical_drift, numeric_drift
        from serein.monitor.profile import numeric_profile, numeric_values
        t = pq.ParquetFile({str(tmp_path / "batch.parquet")!r}, read_dictionary=["c"]).read()
        numeric_drift(numeric_profile(np.random.default_rng(1).normal(size=5000)), t.column("x"))
        ref = {{"kind": "categorical", "categories": {{"a": 100, "b": 50}}, "other": 0, "count": 150, "n_nulls": 0}}
        out = categorical_drift(ref, t.column("c"))
        cal = {{"classes": ["0", "1"], "tables": {{"1": {{"x": [0.0, 1.0], "y": [0.0, 1.0]}}}}}}
        estimate_performance(cal, numeric_values(t.column("proba_1")), _column_values(t.column("prediction")))
        print(out["current_counts"], "pandas" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "{'a': 2500, 'b': 1250, '__other__': 0, '__unseen__': 0} False", \
        out.stdout + out.stderr
