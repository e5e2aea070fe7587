"""Quarantined rows: the rows of an ingest batch that broke the dataset's contract.

They are never silently dropped: each goes to the dataset's quarantine Delta table
(``<data_root>/_quarantine/<name>``) with its values as text (so a value that broke its column's
type survives exactly as it came) and with why and when it was set aside:

* ``_reason``: ``"col: problem; col: problem"``;
* ``_row``: the row's position in the batch (0-based, header excluded);
* ``_source``: the file (or ``DataFrame``) the batch came from;
* ``_batch_version``: the dataset version written by the same batch (null when the whole
  batch was refused and no version was written);
* ``_ingested_at``: when (UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

QUARANTINE_DIR = "_quarantine"
META_COLUMNS = ("_reason", "_row", "_source", "_batch_version", "_ingested_at")


def quarantine_rows(batch: pd.DataFrame, bad: np.ndarray, reasons: dict[int, str], source: str,
                    batch_version: int | None, ingested_at: datetime) -> pd.DataFrame:
    """The bad rows of ``batch`` (positions where ``bad``), values as text, with the meta columns."""
    import numpy as np
    import pandas as pd

    frame = batch.reset_index(drop=True)
    positions = np.flatnonzero(bad)
    rows = frame.iloc[positions]
    out = pd.DataFrame({str(name): _as_text(col) for name, col in rows.items()}, index=rows.index)
    out["_reason"] = pd.Series([reasons.get(int(i), "") for i in positions], index=rows.index, dtype="str")
    out["_row"] = positions.astype("int64")
    out["_source"] = source
    out["_batch_version"] = pd.Series(batch_version, index=rows.index, dtype="Int64")
    out["_ingested_at"] = pd.Timestamp(ingested_at).tz_convert("UTC")
    return out.reset_index(drop=True)


def _as_text(col: pd.Series) -> pd.Series:
    """Values as text, nulls kept as nulls; date-times in ISO 8601."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        text = col.map(lambda v: v.isoformat(), na_action="ignore")
        return text.astype("str")
    return col.astype("str")
