"""Numeric Arrow columns as numpy arrays, read straight from their buffers.

pyarrow's own conversions (``to_numpy``, ``pa.array`` of a numpy array, ``pa.scalar``) import
pandas on first use, through pyarrow's pandas shim: a quarter of a second of a monitoring run
whose window never becomes a pandas frame. Reading a fixed-width column's data and validity
buffers with ``np.frombuffer`` imports nothing. Columns are first cast by Arrow to the one width
read here (int64 or float64; a no-op when they already are), so the buffers' layout is known.

>>> import pyarrow as pa
>>> arrow_floats(pa.chunked_array([[1, None], [3]])).tolist()
[1.0, nan, 3.0]
>>> arrow_integers(pa.array([4, None, 6]), missing=-1).tolist()
[4, -1, 6]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _chunks(column: pa.Array | pa.ChunkedArray, kind: pa.DataType) -> list[pa.Array]:
    cast = column.cast(kind)
    return list(cast.chunks) if isinstance(cast, pa.ChunkedArray) else [cast]


def _read(chunk: pa.Array, dtype: type, missing: float | int) -> np.ndarray:
    """One int64/float64 chunk's values, ``missing`` where null."""
    end = chunk.offset + len(chunk)
    values = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=end)[chunk.offset:] if len(chunk) else np.zeros(0, dtype)
    if not chunk.null_count:
        return values
    valid = np.unpackbits(np.frombuffer(chunk.buffers()[0], dtype=np.uint8), count=end, bitorder="little")
    return np.where(valid[chunk.offset:].astype(bool), values, missing)


def arrow_floats(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column of numbers or booleans as float64, NaN where null."""
    parts = [_read(chunk, np.float64, np.nan) for chunk in _chunks(column, pa.float64())]
    return np.concatenate(parts) if parts else np.zeros(0)


def arrow_integers(column: pa.Array | pa.ChunkedArray, missing: int) -> np.ndarray:
    """A column of integers as int64, ``missing`` where null."""
    parts = [_read(chunk, np.int64, missing) for chunk in _chunks(column, pa.int64())]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
