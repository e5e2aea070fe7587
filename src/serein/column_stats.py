"""The compiled summary of a numeric column for drift: ``column_stats.c`` through :mod:`ctypes`.

A numeric feature's drift needs, of the window's finite values, their count, mean and standard
deviation, the quantiles the Wasserstein distance reads and the counts in the reference's bins.
numpy gets them in about fifteen passes over the column (``serein.monitor.profile._select``,
``x.mean()``, ``x.std()``, dropping the missing values first): 20-30 ms for a million values on
this project's 2-core VM, most of a monitoring run's drift step over 20 such columns. The
compiled summary takes three passes and releases the GIL for all of them, so the features judged
on one thread leave the other to the performance estimate (``serein.monitor.monitor.assess``).

``column_stats.c`` is built into ``libcolumnstats.so`` beside this module when serein is installed
(``hatch_build.py``); without it (no compiler, ``SEREIN_COLUMN_STATS=0``, a stale or damaged
library: see :mod:`serein.native`) :func:`numeric_summary` computes the same with numpy. Both give
the same quantiles and counts (exact order statistics), and a mean and standard deviation equal
within rounding (the library sums with compensation, numpy pairwise).

>>> s = numeric_summary(np.array([3.0, np.nan, 1.0, 2.0, np.inf]), np.array([0.0, 0.5, 1.0]), [1.5])
>>> s.count, s.mean, s.quantiles.tolist(), s.counts.tolist()
(3, 2.0, [1.0, 2.0, 3.0], [1, 2])
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from serein.monitor.profile import bin_counts, interpolated, quantiles_and_bins
from serein.native import library_path, load

SOURCE = Path(__file__).with_name("column_stats.c")
LIBRARY = library_path(SOURCE)
ABI = 1  # SEREIN_COLUMN_STATS_ABI in column_stats.c
DONE, NOT_HANDLED, NO_MEMORY = 0, 1, -1
log = logging.getLogger(__name__)


class NumericSummary(NamedTuple):
    """What drift reads of a numeric column's finite values."""

    count: int
    mean: float
    std: float  # ddof 0, as ``np.std``
    quantiles: np.ndarray  # at the levels asked, by linear interpolation (``np.quantile``'s default)
    counts: np.ndarray  # per right-closed bin (-inf, e0], (e0, e1], ..., (ek, inf) of the edges asked


@cache
def library() -> ctypes.CDLL | None:
    """The built library, or None (turned off, not built, unloadable, or built from other source);
    the reason is logged at debug level."""
    lib, why = _load()
    log.debug("column statistics: %s", why)
    return lib


def _load() -> tuple[ctypes.CDLL | None, str]:
    """The library (or None) and what was found."""
    pointer, int64 = ctypes.c_void_p, ctypes.c_int64
    return load(LIBRARY, SOURCE, ABI, switch="SEREIN_COLUMN_STATS", fallback="numeric drift with numpy",
                functions={"serein_numeric_summary": [pointer, int64, pointer, int64, pointer, int64, pointer,
                                                      pointer, pointer, pointer]})


def numeric_summary(values: np.ndarray, levels: np.ndarray, edges: Sequence[float]) -> NumericSummary:
    """The summary of the finite values of the float array ``values`` (NaN and infinities are
    missing), with quantiles at ``levels`` and counts in the bins of the ascending ``edges``:
    compiled where the library is available and can bucket these values, else with numpy (no
    finite value, or a range too wide or too narrow for floating point, go that way too)."""
    lib = library()
    x = np.ascontiguousarray(values, dtype=np.float64)
    levels = np.ascontiguousarray(levels, dtype=np.float64)
    edges_ = np.ascontiguousarray(edges, dtype=np.float64)
    if lib is None:
        return _numpy_summary(x, levels, edges_)
    stats = np.empty(3)
    lo, hi = np.empty(levels.size), np.empty(levels.size)
    below = np.empty(edges_.size, dtype=np.int64)
    status = lib.serein_numeric_summary(x.ctypes.data, x.size, levels.ctypes.data, levels.size, edges_.ctypes.data,
                                        edges_.size, stats.ctypes.data, lo.ctypes.data, hi.ctypes.data,
                                        below.ctypes.data)
    if status == NOT_HANDLED:
        return _numpy_summary(x, levels, edges_)
    if status == NO_MEMORY:
        raise MemoryError("column statistics: out of memory")
    if status != DONE:
        raise ValueError(f"column statistics: levels outside [0, 1] (status {status})")
    count = int(stats[0])
    quantiles = interpolated(levels * (count - 1), lo, hi)  # as serein.monitor.profile.sorted_quantiles
    return NumericSummary(count, float(stats[1]), float(stats[2]), quantiles, bin_counts(below, count))


def _numpy_summary(values: np.ndarray, levels: np.ndarray, edges: np.ndarray) -> NumericSummary:
    """:func:`numeric_summary` with numpy (``serein.monitor.profile.quantiles_and_bins``)."""
    finite = np.isfinite(values)
    x = values if finite.all() else values[finite]
    if not x.size:
        return NumericSummary(0, math.nan, math.nan, np.full(levels.size, math.nan), bin_counts(np.zeros(edges.size), 0))
    quantiles, counts = quantiles_and_bins(x, levels, edges)
    with np.errstate(over="ignore"):  # values near float64's limits: an infinite deviation, as the library gives
        return NumericSummary(int(x.size), float(x.mean()), float(x.std()), quantiles, counts)

