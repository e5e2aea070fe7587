"""Content hashes of whole data frames, for lineage.

MLflow's dataset digest covers only the first 10,000 rows, so two training sets differing in row
10,001 would look identical. ``frame_hash`` covers every row: each column is hashed row-wise with
pandas' vectorised, fixed-key hash (``hash_pandas_object``, stable across runs and processes) and
the resulting bytes, together with the column names and dtypes, are fed to sha256. The pandas
index is ignored, so a filtered or re-indexed copy of the same rows has the same hash; row order
and column order do count.

>>> import pandas as pd
>>> a = pd.DataFrame({"x": [1, 2], "y": ["a", None]})
>>> b = a.set_axis([10, 20])
>>> frame_hash(a) == frame_hash(b)
True
>>> frame_hash(a) == frame_hash(a.assign(x=[1, 3]))
False
>>> len(frame_hash(a))
64
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def frame_hash(df: pd.DataFrame) -> str:
    """sha256 (hex) over all rows, column names and dtypes of ``df``; independent of its index."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(f"rows={len(df)};".encode())
    for name, col in df.items():
        digest.update(f"{name!s}\x00{col.dtype!s}\x00".encode())
        digest.update(pd.util.hash_pandas_object(col, index=False).to_numpy().tobytes())
    return digest.hexdigest()
