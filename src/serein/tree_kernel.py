"""The compiled kernel of :class:`serein.tree_tables.TableTrees`: its tables scored row by row in C.

``tree_kernel.c`` is built into ``libtreekernel.so`` beside this module when serein is installed
(``hatch_build.py``, with the system's C compiler) and called through :mod:`ctypes`, which releases
the GIL for the whole call, so batch scoring's worker threads run it in parallel. It does what
``TableTrees``' numpy path does, row by row instead of in about 30 passes over blocks of rows: 2.8x
less CPU on the drift benchmark's million rows (0.14 s against 0.40 s on one thread), with the
same scores.

Where no compiler was found at install time the library is missing, :func:`kernel_for` gives
None and ``TableTrees`` scores with numpy; ``SEREIN_TREE_KERNEL=0`` in the environment asks for
numpy too. Everything the C code indexes with is checked here first (the tables may come from a
batch plan file on disk): a damaged file is refused with ``ValueError``, never read out of bounds.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from serein.tree_tables import _Table

LIBRARY = Path(__file__).with_name("libtreekernel.so")
ABI = 1  # SEREIN_TREE_KERNEL_ABI in tree_kernel.c: a library built from other source is not used
_int64 = ctypes.c_int64
_pointer = ctypes.c_void_p


class _Input(ctypes.Structure):
    _fields_ = [("values", _pointer), ("cuts", _pointer), ("padded", _int64), ("count", _int64), ("size", _int64),
                ("radix", _int64)]


class _TableArgs(ctypes.Structure):
    _fields_ = [("masks", _pointer), ("first_input", _int64), ("n_inputs", _int64)]


@cache
def library() -> ctypes.CDLL | None:
    """The built kernel, or None (not built, built from other source, or turned off)."""
    if os.environ.get("SEREIN_TREE_KERNEL", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(LIBRARY))
        lib.serein_tree_kernel_abi.restype = _int64
        if lib.serein_tree_kernel_abi() != ABI:
            return None
    except (OSError, AttributeError):
        return None
    for name in ("serein_tree_scores32", "serein_tree_scores64"):
        function = getattr(lib, name)
        function.restype = _int64
        function.argtypes = [_int64, _int64, _int64, _int64, ctypes.POINTER(_TableArgs), ctypes.POINTER(_Input),
                             _pointer, _int64, _pointer, _pointer]
    return lib


class TreeKernel:
    """One ensemble's tables packed for the kernel once; :meth:`scores` per batch of rows."""

    def __init__(self, lib: ctypes.CDLL, tables: Sequence[_Table], leaf_values: np.ndarray, trees: int) -> None:
        self.tables = tables
        self.leaf_values = np.ascontiguousarray(leaf_values, dtype=np.float64)  # (trees * leaves, scores)
        self.trees = trees
        self.leaves = len(self.leaf_values) // trees
        dtype = tables[0].masks.dtype
        self.function = lib.serein_tree_scores32 if dtype == np.uint32 else lib.serein_tree_scores64
        self.dtype = dtype
        self._masks = [np.ascontiguousarray(table.masks) for table in tables]  # kept alive: the C side points at them
        # per input, in table order: (position in TableTrees.run's inputs, padded thresholds or
        # None for a category code, thresholds before the padding, number of codes, radix)
        self._inputs = [(position, None if cuts is None else np.ascontiguousarray(cuts.padded, dtype=np.float32),
                         0 if cuts is None else cuts.count, size, radix)
                        for table, masks in zip(tables, self._masks, strict=True)
                        for position, radix, cuts, size in zip(table.inputs, table.radixes, table.cuts,
                                                               _sizes(len(masks), table.radixes), strict=True)]
        self._check()
        args, first = [], 0
        for table, masks in zip(tables, self._masks, strict=True):
            args.append(_TableArgs(masks.ctypes.data, first, len(table.inputs)))
            first += len(table.inputs)
        self._tables = (_TableArgs * len(args))(*args)

    def _check(self) -> None:
        """Refuse tables the C code could read out of bounds with (see the module text)."""
        if self.trees < 1 or len(self.leaf_values) != self.trees * self.leaves or not 2 <= self.leaves <= 8 * self.dtype.itemsize + 1:
            raise ValueError("the leaf values do not match the number of trees")
        for masks in self._masks:
            if masks.dtype != self.dtype or masks.ndim != 2 or masks.shape[1] != self.trees:
                raise ValueError("a table's masks do not match the ensemble's trees")
        for _, padded, count, size, _ in self._inputs:
            if padded is not None and (len(padded) & (len(padded) + 1) or not 0 <= count <= len(padded)
                                       or size != count + 1):
                raise ValueError("a number input's thresholds are not padded to 2**m - 1 entries")

    def scores(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The summed leaf values ``(rows, scores)`` for one array per input (float32 numbers,
        integer category codes, as ``TableTrees.run`` takes them). Raises ``ValueError`` on a
        category code outside its table."""
        rows = len(inputs[0])
        values, args = [], []
        for position, padded, count, size, radix in self._inputs:
            array = np.ascontiguousarray(inputs[position], dtype=np.int64 if padded is None else np.float32)
            if len(array) != rows:
                raise ValueError("the inputs have different lengths")
            values.append(array)  # alive until the call returns
            args.append(_Input(array.ctypes.data, None if padded is None else padded.ctypes.data,
                               0 if padded is None else len(padded), count, size, radix))
        out = np.empty((rows, self.leaf_values.shape[1]), dtype=np.float64)
        alive = np.empty(self.trees, dtype=self.dtype)
        bad = self.function(rows, self.trees, self.leaves, len(self.tables), self._tables, (_Input * len(args))(*args),
                            self.leaf_values.ctypes.data, self.leaf_values.shape[1], alive.ctypes.data, out.ctypes.data)
        if bad >= 0:
            raise ValueError(f"row {bad}: a category code outside its table")
        return out


def _sizes(codes: int, radixes: Sequence[int]) -> list[int]:
    """How many codes each input of a table of ``codes`` rows has, from the radixes (mixed radix:
    each radix is the product of the later inputs' sizes, the last is 1); ValueError when the
    radixes do not describe the table.

    >>> _sizes(24, [12, 3, 1])
    [2, 4, 3]
    """
    sizes, above = [], codes
    for radix in radixes:
        if radix < 1 or above % radix:
            raise ValueError("a table's radixes do not match its masks")
        sizes.append(above // radix)
        above = radix
    if above != 1:
        raise ValueError("a table's radixes do not match its masks")
    return sizes


def kernel_for(tables: Sequence[_Table], leaf_values: np.ndarray, trees: int) -> TreeKernel | None:
    """The kernel for these tables, or None when the library is not available."""
    lib = library()
    return None if lib is None else TreeKernel(lib, tables, leaf_values, trees)
