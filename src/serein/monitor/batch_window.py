"""A ``--current`` batch for monitoring, read and scored fast.

``serein monitor NAME --current X`` compares a whole batch with the model's reference profile.
On a million rows the time goes to reading and scoring, so:

- only the columns the model needs are read (its features, and its target when the batch has
  it), straight from Parquet or CSV with pyarrow, or from a Delta table or dataset version
  without loading its other columns or hashing its content;
- the model scores the batch in chunks (``CHUNK_ROWS``) through ONNX Runtime when the version
  has a verified export (else its scikit-learn pipeline), one worker per core, each chunk fed as
  whole column arrays (``serein.batch.ChunkScorer``), with progress reported per chunk.

A batch named ``X`` is a Parquet/CSV/JSON Lines file, a Delta table folder, or a dataset ref of
the workspace (``NAME``, ``NAME@3``, ``NAME@ISO-TIME``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serein.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

CHUNK_ROWS = 100_000  # rows per scoring chunk: large enough to amortise a call, small enough to show progress
HINT = "pass a Parquet/CSV file, a Delta table folder or a dataset ref such as credit@3 (see `serein data list`)"


def _select(schema_names: Sequence[str], needed: Sequence[str], optional: Sequence[str], source: str) -> list[str]:
    missing = [c for c in needed if c not in schema_names]
    if missing:
        raise UsageError(f"{source} lacks the model's feature column(s) {', '.join(map(repr, missing))}",
                         hint=f"the model needs {', '.join(needed)}")
    return [*needed, *(c for c in optional if c in schema_names and c not in needed)]


def _read_file(path: Path, needed: Sequence[str], optional: Sequence[str]) -> pa.Table | pd.DataFrame:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from serein.data.readers import file_format, read_table

    kind = file_format(path)
    source = f"file {path}"
    if kind == "jsonl":  # pyarrow refuses JSON whose field types change between rows
        frame = read_table(path)
        return frame[_select(list(frame.columns), needed, optional, source)]
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is empty (0 bytes)", hint="give a file with a header and at least one row")
    try:
        if kind == "parquet":
            columns = _select(pq.read_schema(path).names, needed, optional, source)
            return pq.read_table(path, columns=columns)
        options = pcsv.ConvertOptions(strings_can_be_null=True)
        with pcsv.open_csv(path, convert_options=options) as reader:
            names = reader.schema.names
        columns = _select(names, needed, optional, source)
        options.include_columns = columns
        return pcsv.read_csv(path, convert_options=options)
    except UsageError:
        raise
    except Exception as exc:  # pyarrow raises many types for malformed content
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{path} is not a readable {kind} file: {detail}", hint=f"check that it is valid {kind}") from None


def _read_delta(path: str, version: int | None, needed: Sequence[str], optional: Sequence[str],
                source: str) -> pa.Table:
    from deltalake import DeltaTable

    dataset = DeltaTable(path, version=version).to_pyarrow_dataset()
    return dataset.to_table(columns=_select(dataset.schema.names, needed, optional, source))


def read_batch(ws: Workspace, current: str, needed: Sequence[str],
               optional: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """The ``needed`` columns (and those of ``optional`` present) of the batch ``current`` as a
    pandas frame with UTC timestamps, and a label for it (``file ...``, ``dataset NAME@V``)."""
    import pandas as pd

    from serein.data.readers import normalise_times

    path = Path(current)
    if (path / "_delta_log").is_dir():
        data, source = _read_delta(str(path.resolve()), None, needed, optional, f"Delta table {path}"), f"Delta table {path}"
    elif path.is_file():
        data, source = _read_file(path, needed, optional), f"file {current}"
    else:
        from serein.data.refs import DatasetRef

        try:
            ref = DatasetRef.parse(current)
        except UsageError:
            raise UsageError(f"--current {current!r} is neither a file nor a dataset ref", hint=HINT) from None
        if not ws.datasets.exists(ref.name):
            raise UsageError(f"--current {current!r} is neither a file nor a dataset of this workspace", hint=HINT)
        name, version = ws.datasets.resolve(ref)
        source = f"dataset {name}@{version}"
        data = _read_delta(ws.datasets.path(name), version, needed, optional, source)
    frame = data if isinstance(data, pd.DataFrame) else data.to_pandas()
    if frame.empty:
        raise UsageError(f"{source} has no rows to monitor")
    return normalise_times(frame), source


def score_batch(model: LoadedModel, X: pd.DataFrame,
                progress: Callable[[str, int, int], None] | None = None,
                chunk_rows: int = CHUNK_ROWS, workers: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(predictions, class probabilities or None)`` of ``model`` on the rows of ``X`` (its
    feature columns), chunk by chunk; ``progress("scoring", rows_done, rows)`` after each chunk."""
    from serein.batch import ChunkScorer

    scorer = ChunkScorer(model, prefer_onnx=True)
    n = len(X)
    starts = range(0, n, chunk_rows)
    done = 0

    def score(start: int) -> tuple[np.ndarray, np.ndarray | None]:
        return scorer.score(X.iloc[start:start + chunk_rows])

    predictions: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for pred, proba in pool.map(score, starts):  # ONNX Runtime releases the GIL
            predictions.append(pred)
            if proba is not None:
                probabilities.append(proba)
            done += len(pred)
            if progress is not None:
                progress("scoring", done, n)
    return np.concatenate(predictions), np.concatenate(probabilities) if probabilities else None


def scores_of(proba: np.ndarray) -> np.ndarray:
    """The score of each row: the positive-class probability of a binary classifier, the
    highest class probability otherwise (as the prediction log stores it).

    >>> scores_of(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist()
    [0.8, 0.1]
    """
    return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)


