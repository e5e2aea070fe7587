"""A ``--current`` batch for monitoring, read and scored fast and lean.

``serein monitor NAME --current X`` compares a whole batch with the model's reference profile.
On a million rows the time goes to reading and scoring, and the memory to Python objects, so:

- only the columns the model needs are read (its features; its target and a scored batch's
  outputs when the batch has them), straight from Parquet or CSV with pyarrow, or from a Delta
  table or dataset version without loading its other columns or hashing its content;
- text columns are kept dictionary-encoded (pandas categoricals: one small code per row, each
  distinct category stored once) and numbers as plain numpy columns, never as Python objects;
- a batch that already carries the model's outputs — ``serein predict`` writes ``prediction``,
  ``proba_<class>`` and ``model`` / ``model_version`` columns — is not scored again when those
  say the outputs come from the version being monitored (``carried_outputs``);
- otherwise the model scores the batch in chunks (``CHUNK_ROWS``) through ONNX Runtime when the
  version has a verified export (else its scikit-learn pipeline, deserialized only then), each
  chunk fed as whole column arrays (``serein.batch.ChunkScorer``), with progress per chunk. One
  single-threaded run per core at a time: a recipe pipeline's export spends most of its time in
  operators ONNX Runtime runs on one thread (string one-hot encoding, concatenation), so
  concurrent chunks use the cores better than intra-op threads do.

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
    import pyarrow.parquet as pq

    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

# Rows per scoring chunk: ONNX Runtime's intermediate tensors grow with it (a 100k-row chunk of a
# pipeline one-hot encoding ~250 columns held ~600 MB; 20k rows ~20 MB), while a call's fixed cost
# is already amortised at a few thousand rows.
CHUNK_ROWS = 20_000
HINT = "pass a Parquet/CSV file, a Delta table folder or a dataset ref such as credit@3 (see `serein data list`)"


def _select(schema_names: Sequence[str], needed: Sequence[str], optional: Sequence[str], source: str) -> list[str]:
    missing = [c for c in needed if c not in schema_names]
    if missing:
        raise UsageError(f"{source} lacks the model's feature column(s) {', '.join(map(repr, missing))}",
                         hint=f"the model needs {', '.join(needed)}")
    return [*needed, *(c for c in optional if c in schema_names and c not in needed)]


def _text_columns(schema: pa.Schema, columns: Sequence[str]) -> list[str]:
    import pyarrow as pa

    return [c for c in columns if pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type)]


def _dictionary_text(table: pa.Table) -> pa.Table:
    """``table`` with its plain text columns dictionary-encoded (each distinct value stored once)."""
    import pyarrow.compute as pc

    for name in _text_columns(table.schema, table.schema.names):
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, pc.dictionary_encode(table.column(name)))
    return table


def _columnwise(parquet: pq.ParquetFile, columns: Sequence[str]) -> pd.DataFrame:
    """The ``columns`` of a Parquet file as a frame, read and converted one column at a time: each
    decoded Arrow column is freed before the next is read, so the peak is the frame plus one
    column (reading them all at once held the decoded file and its pandas copy together)."""
    import pandas as pd

    return pd.DataFrame({name: parquet.read(columns=[name]).column(0).to_pandas() for name in columns}, copy=False)


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
            schema = pq.read_schema(path)
            columns = _select(schema.names, needed, optional, source)
            return _columnwise(pq.ParquetFile(path, read_dictionary=_text_columns(schema, columns)), columns)
        options = pcsv.ConvertOptions(strings_can_be_null=True)
        with pcsv.open_csv(path, convert_options=options) as reader:
            names = reader.schema.names
        columns = _select(names, needed, optional, source)
        options.include_columns = columns
        return _dictionary_text(pcsv.read_csv(path, convert_options=options))
    except UsageError:
        raise
    except Exception as exc:  # pyarrow raises many types for malformed content
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{path} is not a readable {kind} file: {detail}", hint=f"check that it is valid {kind}") from None


def _read_delta(path: str, version: int | None, needed: Sequence[str], optional: Sequence[str],
                source: str) -> pa.Table:
    from deltalake import DeltaTable

    dataset = DeltaTable(path, version=version).to_pyarrow_dataset()
    return _dictionary_text(dataset.to_table(columns=_select(dataset.schema.names, needed, optional, source)))


def read_batch(ws: Workspace, current: str, needed: Sequence[str],
               optional: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """The ``needed`` columns (and those of ``optional`` present) of the batch ``current`` as a
    pandas frame with UTC timestamps — numbers as numpy columns, text as categoricals — and a
    label for it (``file ...``, ``dataset NAME@V``)."""
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
    # self_destruct: each Arrow column is freed once converted, so the batch is never held twice
    frame = data if isinstance(data, pd.DataFrame) else data.to_pandas(split_blocks=True, self_destruct=True)
    del data
    if frame.empty:
        raise UsageError(f"{source} has no rows to monitor")
    return normalise_times(frame), source


def output_columns(model: LoadedModel) -> list[str]:
    """The columns in which ``serein predict`` writes ``model``'s outputs (``serein.batch``)."""
    from serein.batch import OUTPUT_COLUMNS, PROBA_PREFIX

    return [*OUTPUT_COLUMNS, *(f"{PROBA_PREFIX}{c}" for c in model.classes or [])]


def carried_outputs(frame: pd.DataFrame, model: LoadedModel) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(predictions, class probabilities or None)`` carried by a scored batch, or None when it
    must be scored: outputs are used only when every row has a prediction (and, for a classifier,
    every class probability) and its ``model`` / ``model_version`` columns name ``model``'s name
    and version on every row — outputs of another version say nothing about this one."""
    import pandas as pd

    from serein.batch import PROBA_PREFIX

    if "prediction" not in frame.columns or "model_version" not in frame.columns:
        return None
    if not (pd.to_numeric(frame["model_version"], errors="coerce") == model.version).all():
        return None
    if "model" in frame.columns and not frame["model"].eq(model.name).all():  # no per-row strings
        return None
    if frame["prediction"].isna().any():
        return None
    proba = None
    if model.is_classifier:
        columns = [f"{PROBA_PREFIX}{c}" for c in model.classes or []]
        if not columns or any(c not in frame.columns for c in columns) or frame[columns].isna().any().any():
            return None
        proba = frame[columns].to_numpy(dtype=np.float64)
    return frame["prediction"].to_numpy(), proba


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


