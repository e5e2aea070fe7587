"""The compiled kernel of :class:`serein.tree_tables.TableTrees`: its tables scored row by row in C.

``tree_kernel.c`` is built into ``libtreekernel.so`` beside this module when serein is installed
(``hatch_build.py``, with the system's C compiler) and called through :mod:`ctypes`, which releases
the GIL for the whole call, so batch scoring's worker threads run it in parallel. It does what
``TableTrees``' numpy path does, row by row instead of in about 30 passes over blocks of rows: 2.8x
less CPU on the drift benchmark's million rows (0.14 s against 0.40 s on one thread), with the
same scores.

Where no compiler was found at install time the library is missing, :func:`kernel_for` gives
None and ``TableTrees`` scores with numpy; ``SEREIN_TREE_KERNEL=0`` in the environment asks for
numpy too, and so does a library of another ABI or built from another ``tree_kernel.c``
(:mod:`serein.native`); ``test_kernel_is_built_where_a_compiler_is`` fails meanwhile. The reason for
every fallback is logged at debug level; ``python -m serein.native`` prints which path scores
here and why. Everything the C code indexes with is checked first, by ``TableTrees`` (the tables
may come from a batch plan file on disk), and the inputs' shapes here: a damaged file is refused
with ``ValueError``, never read out of bounds.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serein.native import library_path, load

if TYPE_CHECKING:
    from serein.tree_tables import _Table

SOURCE = Path(__file__).with_name("tree_kernel.c")
LIBRARY = library_path(SOURCE)
log = logging.getLogger(__name__)
ABI = 3  # SEREIN_TREE_KERNEL_ABI in tree_kernel.c: a library built from other source is not used
# 64 kB of masks at most on a thread's stack (``alive`` in tree_kernel.c): glibc threads get 8 MB,
# musl's 128 kB; an ensemble this large is scored with numpy
MAX_TREES = 8192
_int64 = ctypes.c_int64
_pointer = ctypes.c_void_p


class _Input(ctypes.Structure):
    _fields_ = [("column", _int64), ("cuts", _pointer), ("padded", _int64), ("count", _int64), ("size", _int64),
                ("radix", _int64)]


class _Block(ctypes.Structure):
    _fields_ = [("numbers", _pointer), ("codes", _pointer), ("number_column_step", _int64),
                ("number_row_step", _int64), ("code_column_step", _int64), ("code_row_step", _int64)]


class _TableArgs(ctypes.Structure):
    _fields_ = [("masks", _pointer), ("first_input", _int64), ("n_inputs", _int64)]


@cache
def library() -> ctypes.CDLL | None:
    """The built kernel, or None (turned off, not built, unloadable, or built from other source);
    the reason is logged at debug level, and ``TableTrees`` scores with numpy."""
    lib, why = _load()
    log.debug("tree kernel: %s", why)
    return lib


def _load() -> tuple[ctypes.CDLL | None, str]:
    """The kernel (or None) and what was found."""
    arguments = [_int64, ctypes.POINTER(_Block), _int64, _int64, _int64, ctypes.POINTER(_TableArgs),
                 ctypes.POINTER(_Input), _pointer, _int64, _pointer]
    return load(LIBRARY, SOURCE, ABI, switch="SEREIN_TREE_KERNEL", fallback="scoring with numpy",
                functions={"serein_tree_scores32": arguments, "serein_tree_scores64": arguments})


class TreeKernel:
    """One ensemble's tables packed for the kernel once; :meth:`scores` per batch of rows. The
    tables come checked by ``TableTrees`` (``_check``): everything the C code indexes with fits."""

    def __init__(self, lib: ctypes.CDLL, tables: Sequence[_Table], leaf_values: np.ndarray, trees: int,
                 slots: Sequence[int]) -> None:
        """``slots``: each input's row in its block (``TableTrees.slots``)."""
        self.leaf_values = np.ascontiguousarray(leaf_values, dtype=np.float64)  # (trees * leaves, scores)
        self.trees = trees
        self.leaves = len(self.leaf_values) // trees
        self.dtype = tables[0].masks.dtype
        self.function = lib.serein_tree_scores32 if self.dtype == np.uint32 else lib.serein_tree_scores64
        self._masks = [np.ascontiguousarray(table.masks) for table in tables]  # kept alive: the C side points at them
        # per input, in table order: (slot in its block, padded thresholds or None for a category
        # code, thresholds before the padding, number of codes, radix)
        self._inputs = [(slots[position], None if cuts is None else np.ascontiguousarray(cuts.padded, dtype=np.float32),
                         0 if cuts is None else cuts.count, size, radix)
                        for table in tables
                        for position, radix, cuts, size in zip(table.inputs, table.radixes, table.cuts, table.sizes,
                                                               strict=True)]
        self._leaf_values = self.leaf_values.ctypes.data
        self.numbers = 1 + max((slot for slot, padded, *_ in self._inputs if padded is not None), default=-1)
        self.codes = 1 + max((slot for slot, padded, *_ in self._inputs if padded is None), default=-1)
        args, first = [], 0
        for table, masks in zip(tables, self._masks, strict=True):
            args.append(_TableArgs(masks.ctypes.data, first, len(table.inputs)))
            first += len(table.inputs)
        self._tables = (_TableArgs * len(args))(*args)
        self._args = (_Input * len(self._inputs))(*(
            _Input(slot, None if padded is None else padded.ctypes.data, 0 if padded is None else len(padded),
                   count, size, radix) for slot, padded, count, size, radix in self._inputs))

    def scores(self, numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The summed leaf values ``(rows, scores)`` for the inputs as ``TableTrees.run`` takes
        them (read in place, whatever their strides). Raises ``ValueError`` on blocks of the
        wrong shape and on a category code outside its table."""
        numbers = _steps_in_items(np.asarray(numbers, dtype=np.float32))
        codes = _steps_in_items(np.asarray(codes, dtype=np.int64))
        rows = numbers.shape[1] if numbers.ndim == 2 else -1
        if numbers.ndim != 2 or codes.ndim != 2 or codes.shape[1] != rows or len(numbers) < self.numbers \
                or len(codes) < self.codes:
            raise ValueError("the inputs are not blocks of the layout's numbers and codes for the same rows")
        block = _Block(numbers.ctypes.data, codes.ctypes.data, *(step // 4 for step in numbers.strides),
                       *(step // 8 for step in codes.strides))
        out = np.empty((rows, self.leaf_values.shape[1]), dtype=np.float64)
        bad = self.function(rows, block, self.trees, self.leaves, len(self._tables), self._tables, self._args,
                            self._leaf_values, self.leaf_values.shape[1], out.ctypes.data)
        if bad >= 0:
            raise ValueError(f"row {bad}: a category code outside its table")
        return out


def _steps_in_items(block: np.ndarray) -> np.ndarray:
    """``block``, copied when its strides are not whole items (the kernel counts in items)."""
    return block if all(step % block.itemsize == 0 for step in block.strides) else np.ascontiguousarray(block)


def kernel_for(tables: Sequence[_Table], leaf_values: np.ndarray, trees: int,
               slots: Sequence[int]) -> TreeKernel | None:
    """The kernel for these tables (see :class:`TreeKernel`), or None when the library is not
    available or the ensemble has more than ``MAX_TREES`` trees (the kernel keeps one mask per
    tree on the calling thread's stack)."""
    lib = library()
    return None if lib is None or trees > MAX_TREES else TreeKernel(lib, tables, leaf_values, trees, slots)
