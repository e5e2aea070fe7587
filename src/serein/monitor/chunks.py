"""A window cut into chunks — by time (hourly, daily, any duration) or by row count — so drift,
performance and quality can be charted over time and each chunk judged on its own.

Time chunks are aligned to UTC multiples of their size (an ``hourly`` chunk runs from hh:00 to
hh+1:00) and a row belongs to the chunk its timestamp falls in; hours without traffic make no
chunk. Row chunks take ``n`` consecutive rows in log order; the last chunk keeps the remainder
(smaller chunks simply get wider noise floors, or no verdict below ``min_count``).

>>> import numpy as np
>>> [(c.rows.tolist(), c.start) for c in split_chunks(np.array([0.0, 10.0, 3600.0, 7300.0]), ("time", 3600.0))]
[([0, 1], 0.0), ([2], 3600.0), ([3], 7200.0)]
>>> [c.rows.tolist() for c in split_chunks(None, ("rows", 2), n=5)]
[[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serein.errors import UsageError


@dataclass
class Chunk:
    """Positions ``rows`` of the window in chunk ``index``; ``start``/``end`` bound a time chunk
    (UNIX seconds) and are the first/last row's time for a row chunk when times are known."""

    index: int
    rows: np.ndarray
    start: float | None
    end: float | None


def split_chunks(ts: np.ndarray | None, spec: tuple[str, float | int], n: int | None = None) -> list[Chunk]:
    """Chunks of a window whose rows have timestamps ``ts`` (or ``n`` rows without times, which
    only row chunks accept), in time order."""
    kind, size = spec
    if kind == "time":
        if ts is None:
            raise UsageError("time chunks need timestamps, and a --current batch has none",
                             hint="chunk a batch by rows, e.g. --chunk 1000")
        keys = np.floor(np.asarray(ts, dtype=float) / size).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        uniq, first = np.unique(keys[order], return_index=True)
        bounds = [*first.tolist(), order.size]
        return [Chunk(i, order[bounds[i]:bounds[i + 1]], float(k * size), float((k + 1) * size))
                for i, k in enumerate(uniq.tolist())]
    total = len(ts) if ts is not None else int(n or 0)
    out = []
    for i, begin in enumerate(range(0, total, int(size))):
        rows = np.arange(begin, min(begin + int(size), total))
        start = end = None
        if ts is not None:
            start, end = float(ts[rows[0]]), float(ts[rows[-1]])
        out.append(Chunk(i, rows, start, end))
    return out


def _compact_drift(part: Mapping[str, Any]) -> dict[str, Any]:
    return {k: part.get(k) for k in ("method", "score", "threshold", "drifted", "status")}


def summarise_chunk(chunk: Chunk, assessment: Mapping[str, Any]) -> dict[str, Any]:
    """What a chart or an alert needs of one chunk's assessment (see ``serein.monitor.monitor``):
    per-feature verdicts without the counts, the outputs' drift, performance with intervals,
    the CBPE estimate and the share of rows breaking the contract."""
    pred = assessment.get("prediction_drift") or {}
    quality = assessment.get("quality")
    return {
        "index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "n_rows": int(chunk.rows.size),
        "drifted": assessment["drifted"],
        "features": {name: _compact_drift(f) for name, f in assessment["features"].items()},
        "prediction_drift": {"drifted": bool(pred.get("drifted")),
                             **{part: _compact_drift(p) for part, p in pred.items() if isinstance(p, dict)}},
        "label_drift": None if assessment.get("label_drift") is None else _compact_drift(assessment["label_drift"]),
        "performance": assessment.get("performance"),
        "estimated_performance": assessment.get("estimated_performance"),
        "quality": None if quality is None else {"bad_row_rate": quality["bad_row_rate"]},
    }
