"""The compiled numeric summary (``src/serein/column_stats.c``) against numpy on the sorted
values: the same quantiles and bin counts, bit for bit, on columns of every shape drift meets
(ties, integer codes, one far outlier, huge and tiny magnitudes, NaN and infinities, a handful of
values), and the numpy path it falls back to giving the same."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from serein import column_stats
from serein.monitor.profile import mid_levels, sorted_bin_counts, sorted_quantiles


def _column(rng: np.random.Generator, shape: int, n: int) -> np.ndarray:
    x = [lambda: rng.normal(size=n),
         lambda: rng.lognormal(size=n) ** 3,  # a long tail: most values in a few buckets
         lambda: rng.integers(0, 30, size=n).astype(float),  # codes: one distinct value per bucket
         lambda: np.full(n, 2.5),
         lambda: np.concatenate([rng.random(n), [1e12]]),  # one outlier: every value in the first bucket
         lambda: np.round(rng.normal(size=n), 2),  # ties across buckets
         lambda: rng.choice([0.0, -0.0, 1.0, 5e-324, 1e-300], size=n),  # subnormal spans
         lambda: rng.normal(size=n) * 1e300,  # a range beyond float64: numpy's path
         ][shape]()
    hit = rng.random(x.size) < 0.05
    x[hit] = rng.choice([np.nan, np.inf, -np.inf], size=int(hit.sum()))
    return x


def _expected(x: np.ndarray, levels: np.ndarray, edges: list[float]) -> tuple[int, np.ndarray, np.ndarray]:
    finite = np.sort(x[np.isfinite(x)])
    return finite.size, sorted_quantiles(finite, levels), sorted_bin_counts(finite, edges)


@pytest.mark.parametrize("shape", range(8))
def test_summary_equals_sorting(shape: int) -> None:
    rng = np.random.default_rng(shape)
    for n in (1, 2, 3, 31, 33, 1000, 70_000, 200_000):
        x = _column(rng, shape, n)
        levels = np.concatenate([mid_levels(), rng.random(3), [0.0, 1.0]])
        finite = x[np.isfinite(x)]
        picked = rng.choice(finite, 4).tolist() if finite.size else []
        edges = sorted({*picked, *rng.normal(size=3).tolist(), -1e300, 1e300})
        count, quantiles, counts = _expected(x, levels, edges)
        for summary in (column_stats.numeric_summary(x, levels, edges),
                        column_stats._numpy_summary(x, levels, np.asarray(edges))):
            assert summary.count == count
            assert summary.counts.tolist() == counts.tolist()
            if not count:
                assert np.isnan(summary.quantiles).all() and np.isnan(summary.mean)
                continue
            assert summary.quantiles.tolist() == quantiles.tolist()
            with np.errstate(over="ignore"):
                mean, std = float(np.mean(x[np.isfinite(x)])), float(np.std(x[np.isfinite(x)]))
            assert summary.mean == pytest.approx(mean, rel=1e-9, abs=1e-12 * std)
            assert summary.std == pytest.approx(std, rel=1e-9)


def test_levels_outside_the_unit_interval_are_refused() -> None:
    if column_stats.library() is None:
        pytest.skip("the library is not built here (no C compiler when serein was installed)")
    with pytest.raises(ValueError, match="levels outside"):
        column_stats.numeric_summary(np.arange(10.0), np.array([0.5, np.nan]), [])


def test_library_is_built_where_a_compiler_is() -> None:
    """Installing serein with a C compiler on the machine builds the library (hatch_build.py)."""
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler here: drift is judged with numpy")
    assert column_stats.library() is not None, f"{column_stats.LIBRARY} is missing: reinstall serein (pip install -e .)"
