"""Arrow columns as numpy arrays, and numpy values as Arrow scalars, through their buffers.

pyarrow's own conversions (``to_numpy``, ``pa.array`` of a list or a numpy array, ``pa.scalar``,
a Python number given to a compute function) import pandas on first use, through pyarrow's
pandas shim: a quarter of a second of a monitoring run whose window never becomes a pandas frame.
Reading a fixed-width column's data and validity buffers with ``np.frombuffer``, or wrapping a
numpy buffer with ``pa.Array.from_buffers``, imports nothing. Columns are first cast by Arrow to
the one width read here (int64 or float64; a no-op when they already are), so the buffers'
layout is known.

>>> import pyarrow as pa
>>> arrow_floats(pa.chunked_array([[1, None], [3]])).tolist()
[1.0, nan, 3.0]
>>> arrow_floats(pa.array([2**53 + 1, -(2**62)])).tolist()  # beyond 2**53: the nearest float
[9007199254740992.0, -4.611686018427388e+18]
>>> arrow_integers(pa.array([4, None, 6]), missing=-1).tolist()
[4, -1, 6]
>>> arrow_mask(pa.array([True, None, False, True])).tolist()
[True, False, False, True]
>>> arrow_scalar(2.5), arrow_scalar(3), arrow_scalar(True)
(<pyarrow.DoubleScalar: 2.5>, <pyarrow.Int64Scalar: 3>, <pyarrow.BooleanScalar: True>)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _chunks(column: pa.Array | pa.ChunkedArray, kind: pa.DataType) -> list[pa.Array]:
    """The column's chunks cast to ``kind``. To float64 the cast may round: an integer beyond
    2**53 becomes the nearest float, as numpy would make it (Arrow's safe cast refuses it); to
    int64 it stays safe, refusing a fraction rather than truncating it."""
    cast = column.cast(kind, safe=not pa.types.is_floating(kind))
    return list(cast.chunks) if isinstance(cast, pa.ChunkedArray) else [cast]


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """``length`` bits of a bitmap (Arrow's validity and boolean layout) from bit ``offset``."""
    return np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), count=offset + length, bitorder="little")[offset:].astype(bool)


def _read(chunk: pa.Array, dtype: type, missing: float | int) -> np.ndarray:
    """One int64/float64 chunk's values, ``missing`` where null."""
    end = chunk.offset + len(chunk)
    values = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=end)[chunk.offset:] if len(chunk) else np.zeros(0, dtype)
    if not chunk.null_count:
        return values
    return np.where(_bits(chunk.buffers()[0], chunk.offset, len(chunk)), values, missing)


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """The chunks' arrays as one; a single chunk's as it is, read-only (without nulls it is a view
    of Arrow's buffer, which must not change: copying a million floats cost more than the numpy
    work done on them)."""
    if len(parts) == 1:
        parts[0].flags.writeable = False
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def arrow_floats(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column of numbers or booleans as float64, NaN where null (read-only when the column is
    one chunk)."""
    return _joined([_read(chunk, np.float64, np.nan) for chunk in _chunks(column, pa.float64())], np.float64)


def arrow_integers(column: pa.Array | pa.ChunkedArray, missing: int) -> np.ndarray:
    """A column of integers as int64, ``missing`` where null (read-only when the column is one
    chunk)."""
    return _joined([_read(chunk, np.int64, missing) for chunk in _chunks(column, pa.int64())], np.int64)


def arrow_mask(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a numpy bool array, False where null (a test that could not be
    answered finds nothing)."""
    parts = []
    for chunk in _chunks(column, pa.bool_()):
        if not len(chunk):
            continue
        validity, values = chunk.buffers()
        mask = _bits(values, chunk.offset, len(chunk))
        parts.append(mask & _bits(validity, chunk.offset, len(chunk)) if chunk.null_count else mask)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


SCALAR_TYPES: tuple[tuple[type, pa.DataType, type], ...] = (
    (bool, pa.bool_(), np.bool_), (int, pa.int64(), np.int64), (float, pa.float64(), np.float64))


def arrow_scalar(value: bool | int | float) -> pa.Scalar:
    """``value`` as the Arrow scalar ``pa.scalar`` would make of it (bool, int64 or double), for
    Arrow compute to compare a column with."""
    for python_type, kind, dtype in SCALAR_TYPES:  # bool first: it is an int too
        if isinstance(value, python_type):
            data = np.packbits([value], bitorder="little") if kind == pa.bool_() else np.array([value], dtype=dtype)
            return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(data)])[0]
    raise TypeError(f"no Arrow scalar for {type(value).__name__} {value!r}")
