"""A ``--current`` batch for monitoring, read and scored fast and lean.

``serein monitor NAME --current X`` compares a whole batch with the model's reference profile.
On a million rows the time goes to reading, scoring and importing, and the memory to Python
objects, so the batch stays an Arrow table from the file to the verdicts (pandas is imported only
where the whole-pipeline export scores a batch, or for the rare columns Arrow cannot type):

- only the columns the model needs are read (its features; its target and a scored batch's
  outputs when the batch has them), straight from Parquet (memory-mapped, decoded on all cores)
  or CSV with pyarrow, or from a Delta table or dataset version without loading its other columns
  or hashing its content;
- text columns are kept dictionary-encoded (one small code per row, each distinct category
  stored once: drift counts the codes) and numbers as Arrow columns, never as Python objects;
- a batch that already carries the model's outputs — ``serein predict`` writes ``prediction``,
  ``proba_<class>`` and ``model`` / ``model_version`` columns — is not scored again when those
  say the outputs come from the version being monitored (``carried_outputs``);
- otherwise the model scores the batch in chunks (``ARROW_CHUNK_ROWS``, or ``CHUNK_ROWS`` through
  the whole export) on one thread per core, as
  ``serein predict`` does (``serein.batch.ChunkScorer``): the pipeline's preprocessing in numpy
  straight from the Arrow columns and its trees as look-up tables, the path the version's saved
  batch plan says reproduced scikit-learn on its reference sample (``serein.batch_plan``); a
  version without one, or columns of other types (numbers read as text), go through the verified
  whole-pipeline ONNX export (else the scikit-learn pipeline) as pandas chunks; in a numeric
  feature, text that is not a number is scored as missing (the contract's type check reports it).

A batch named ``X`` is a Parquet/CSV/JSON Lines file, a Delta table folder, or a dataset ref of
the workspace (``NAME``, ``NAME@3``, ``NAME@ISO-TIME``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serein.errors import UsageError
from serein.data.arrow_arrays import arrow_floats, arrow_integers
from serein.monitor.profile import numeric_values

if TYPE_CHECKING:
    import pandas as pd

    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

# Rows per scoring chunk through the whole export: ONNX Runtime's intermediate tensors grow with it
# (a 100k-row chunk of a pipeline one-hot encoding ~250 columns held ~600 MB; 20k rows ~20 MB),
# while a call's fixed cost is already amortised at a few thousand rows.
CHUNK_ROWS = 20_000
# Rows per chunk on the Arrow path, as ``serein predict`` scores: it holds a few arrays of the
# chunk's rows (float32 inputs, table codes), while every chunk costs a thousand numpy calls, each
# holding the GIL for a moment the other core's chunk waits on. A million rows on 2 cores: 0.25 s
# in 20k-row chunks, 0.20 s in 100k-row ones.
ARROW_CHUNK_ROWS = 100_000
HINT = "pass a Parquet/CSV file, a Delta table folder or a dataset ref such as credit@3 (see `serein data list`)"
UTC_TIME = pa.timestamp("us", tz="UTC")  # serein.data.casting.TIME_DTYPE in Arrow


def _select(schema_names: Sequence[str], needed: Sequence[str], optional: Sequence[str], source: str) -> list[str]:
    missing = [c for c in needed if c not in schema_names]
    if missing:
        raise UsageError(f"{source} lacks the model's feature column(s) {', '.join(map(repr, missing))}",
                         hint=f"the model needs {', '.join(needed)}")
    return [*needed, *(c for c in optional if c in schema_names and c not in needed)]


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _dictionary_text(table: pa.Table) -> pa.Table:
    """``table`` with its plain text columns dictionary-encoded (each distinct value stored once)."""
    for at, field in enumerate(table.schema):
        if _is_text(field.type):
            table = table.set_column(at, field.name, pc.dictionary_encode(table.column(at)))
    return table


def _from_frame(frame: pd.DataFrame) -> pa.Table:
    """A pandas frame (JSON Lines) as an Arrow table; a column mixing types (numbers and text)
    Arrow cannot hold as one is kept as text, which drift parses as numbers where it can and the
    contract's checks flag."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        try:
            columns[name] = pa.Array.from_pandas(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None or v != v else str(v) for v in values], pa.string())
    return pa.table(columns)


def _read_file(path: Path, needed: Sequence[str], optional: Sequence[str], text: Sequence[str] = ()) -> pa.Table:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from serein.data.readers import file_format, read_table

    kind = file_format(path)
    source = f"file {path}"
    if kind == "jsonl":  # pyarrow refuses JSON whose field types change between rows
        frame = read_table(path)
        return _from_frame(frame[_select(list(frame.columns), needed, optional, source)])
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is empty (0 bytes)", hint="give a file with a header and at least one row")
    try:
        if kind == "parquet":
            schema = pq.read_schema(path)
            columns = _select(schema.names, needed, optional, source)
            text = [c for c in columns if _is_text(schema.field(c).type)]
            # ParquetFile, not read_table: the latter goes through pyarrow.dataset, which imports pandas
            return pq.ParquetFile(path, memory_map=True, read_dictionary=text).read(columns=columns)
        options = pcsv.ConvertOptions(strings_can_be_null=True)
        with pcsv.open_csv(path, convert_options=options) as reader:
            names = reader.schema.names
        columns = _select(names, needed, optional, source)
        options.include_columns = columns
        # text columns stay text: CSV inference would make codes such as "07" the number 7
        options.column_types = {c: pa.string() for c in text if c in columns}
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


def _looks_iso(column: pa.ChunkedArray) -> bool:
    """Whether the first non-null values of a text column look like ISO date-times (as
    ``serein.data.readers`` decides before parsing a column as times)."""
    from serein.data.readers import ISO_DATETIME, ISO_SAMPLE

    sample = pc.drop_null(column).slice(0, ISO_SAMPLE).to_pylist()
    return bool(sample) and all(isinstance(v, str) and ISO_DATETIME.match(v) for v in sample)


def utc_times(table: pa.Table) -> pa.Table:
    """``table`` with date-times as UTC microseconds (naive ones taken to be UTC) and ISO 8601 text
    parsed when every value parses: ``serein.data.readers.normalise_times`` on Arrow columns
    (text that looks like times goes through it, the rest never meets pandas)."""
    for at, field in enumerate(table.schema):
        column = table.column(at)
        if pa.types.is_timestamp(field.type) and field.type != UTC_TIME:
            table = table.set_column(at, field.name, pc.cast(column, UTC_TIME, safe=False))
        elif (_is_text(field.type) or (pa.types.is_dictionary(field.type) and _is_text(field.type.value_type))) \
                and _looks_iso(column):
            from serein.data.readers import normalise_times

            plain = column.cast(field.type.value_type) if pa.types.is_dictionary(field.type) else column
            frame = pa.table({field.name: plain}).to_pandas()
            parsed = normalise_times(frame)
            if parsed is not frame:  # every value parsed (otherwise the text stays as it was)
                table = table.set_column(at, field.name, pa.Array.from_pandas(parsed[field.name]))
    return table


def read_batch(ws: Workspace, current: str, needed: Sequence[str],
               optional: Sequence[str] = (), text: Sequence[str] = ()) -> tuple[pa.Table, str]:
    """The ``needed`` columns (and those of ``optional`` present) of the batch ``current`` as an
    Arrow table with UTC timestamps — text dictionary-encoded — and a label for it (``file ...``,
    ``dataset NAME@V``). The ``text`` columns of a CSV file are read as text, whatever they look
    like (a file with its own types keeps them)."""
    path = Path(current)
    if (path / "_delta_log").is_dir():
        data, source = _read_delta(str(path.resolve()), None, needed, optional, f"Delta table {path}"), f"Delta table {path}"
    elif path.is_file():
        data, source = _read_file(path, needed, optional, text), f"file {current}"
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
    if data.num_rows == 0:
        raise UsageError(f"{source} has no rows to monitor")
    nested = [f"{name!r} ({data.schema.field(name).type})" for name in needed
              if pa.types.is_nested(data.schema.field(name).type)]
    if nested:
        raise UsageError(f"{source}: feature column(s) {', '.join(nested)} hold lists or records, not numbers or text",
                         hint="give each feature as a plain column of numbers or text")
    return utc_times(data), source


def output_columns(model: LoadedModel) -> list[str]:
    """The columns in which ``serein predict`` writes ``model``'s outputs (``serein.batch``)."""
    from serein.batch import OUTPUT_COLUMNS, PROBA_PREFIX

    return [*OUTPUT_COLUMNS, *(f"{PROBA_PREFIX}{c}" for c in model.classes or [])]


def _number(value: object) -> float | None:
    """``value`` as a number (text that reads as one included, as ``pandas.to_numeric``), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _complete(column: pa.ChunkedArray) -> bool:
    """No nulls (and, for numbers, no NaN)."""
    if column.null_count:
        return False
    return not (pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py())


def carried_outputs(table: pa.Table, model: LoadedModel) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(predictions, class probabilities or None)`` carried by a scored batch, or None when it
    must be scored: outputs are used only when every row has a prediction (and, for a classifier,
    every class probability) and its ``model`` / ``model_version`` columns name ``model``'s name
    and version on every row — outputs of another version say nothing about this one."""
    from serein.batch import PROBA_PREFIX

    names = table.schema.names
    if "prediction" not in names or "model_version" not in names:
        return None
    # distinct values only (hashed by Arrow): no per-row Python objects
    if any(_number(v) != model.version for v in pc.unique(table.column("model_version")).to_pylist()):
        return None
    if "model" in names and pc.unique(table.column("model")).to_pylist() != [model.name]:
        return None
    if not _complete(table.column("prediction")):
        return None
    proba = None
    if model.is_classifier:
        columns = [f"{PROBA_PREFIX}{c}" for c in model.classes or []]
        if not columns or any(c not in names or not _complete(table.column(c)) for c in columns):
            return None
        proba = np.column_stack([numeric_values(table.column(c)) for c in columns])
        if np.isnan(proba).any():  # text that is not a number: not outputs of this model
            return None
    return _column_values(table.column("prediction")), proba


def _column_values(column: pa.ChunkedArray) -> np.ndarray:
    """A complete column as a numpy array: numbers from their buffers (``serein.data.arrow_arrays``),
    text (dictionary-decoded) through pyarrow."""
    if pa.types.is_integer(column.type):
        return arrow_integers(column, missing=0)  # complete: nothing is missing
    if pa.types.is_floating(column.type):
        return arrow_floats(column)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.to_numpy()


def score_batch(model: LoadedModel, X: pa.Table,
                progress: Callable[[str, int, int], None] | None = None,
                chunk_rows: int | None = None, workers: int | None = None,
                plan_file: Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(predictions, class probabilities or None)`` of ``model`` on the rows of the Arrow table
    ``X`` (its feature columns), chunk by chunk (``chunk_rows``; default ``ARROW_CHUNK_ROWS`` on the
    Arrow path, ``CHUNK_ROWS`` through the export) on ``workers`` threads (default: one per core);
    ``progress("scoring", rows_done, rows)`` after each chunk.

    Scored as ``serein predict`` scores (``serein.batch.ChunkScorer``): where the version's plan
    (remembered in ``plan_file``, see :mod:`serein.batch_plan`) has an Arrow path that reproduced
    the pipeline on its reference sample, and ``X``'s columns have the types that path reads, the
    preprocessing runs in numpy on the Arrow columns and the trees as look-up tables (or the
    estimator's part of the export in ONNX Runtime), with neither pandas nor the export's string
    operators. Otherwise each chunk goes to the whole-pipeline export (else the pipeline) as a
    pandas frame (text as categoricals)."""
    from serein.batch import ChunkScorer

    scorer = ChunkScorer(model, prefer_onnx=True, arrow_path=True, plan_file=plan_file)
    chunks: Sequence[pa.Table | pa.RecordBatch]
    if scorer.features is not None and scorer.features.reads(X.schema):
        chunks = X.to_batches(max_chunksize=chunk_rows or ARROW_CHUNK_ROWS)  # zero-copy slices of the table's chunks
        score: Callable[[Any], tuple[np.ndarray, np.ndarray | None]] = scorer.score_arrow
    else:
        rows = chunk_rows or CHUNK_ROWS
        X = _numbers_parsed(X, model)
        chunks = [X.slice(start, rows) for start in range(0, X.num_rows, rows)]

        def score(chunk: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
            return scorer.score(chunk.to_pandas())

    predictions: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    done = 0
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for pred, proba in pool.map(score, chunks):  # numpy, Arrow and ONNX Runtime release the GIL
            predictions.append(pred)
            if proba is not None:
                probabilities.append(proba)
            done += len(pred)
            if progress is not None:
                progress("scoring", done, X.num_rows)
    return np.concatenate(predictions), np.concatenate(probabilities) if probabilities else None


def _numbers_parsed(X: pa.Table, model: LoadedModel) -> pa.Table:
    """``X`` with the text columns of the model's numeric features read as numbers, text that is
    not a number as null, as drift reads them (``numeric_values``): such a value is scored as
    missing (the pipeline imputes it) instead of failing the whole run, and the contract's type
    check reports it."""
    features = (model.profile or {}).get("features") or {}
    for at, field in enumerate(X.schema):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if _is_text(kind) and (features.get(field.name) or {}).get("kind") == "numeric":
            X = X.set_column(at, field.name, pa.array(numeric_values(X.column(at)), pa.float64(), from_pandas=True))
    return X


def scores_of(proba: np.ndarray) -> np.ndarray:
    """The score of each row: the positive-class probability of a binary classifier, the
    highest class probability otherwise (as the prediction log stores it).

    >>> scores_of(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist()
    [0.8, 0.1]
    """
    return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)


