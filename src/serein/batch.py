"""Batch scoring: a registered model version over a whole file or dataset, in chunks.

``predict_batch(ws, "credit-default@champion", "applications.parquet", "scores.parquet")`` reads
the input as a stream of Arrow record batches (Parquet, CSV, a Delta table or a dataset version;
never the whole input as Python objects), and for each chunk:

1. validates the model's feature columns against its contract
   (:func:`serein.data.validation.validate_arrow`: Arrow compute over the columns, the exact
   pandera-based check only for suspect rows): rows that break it are set aside with their
   reasons, never scored and never silently dropped (written to the quarantine, see below);
2. scores the valid rows with the version's verified ONNX export (else with the scikit-learn
   pipeline), feeding whole columns as arrays; for serein's recipe pipelines the preprocessing
   runs in numpy straight from the Arrow columns (:class:`serein.arrow_features.ArrowFeatures`)
   and only the estimator's part of the export runs: its trees as look-up tables
   (:mod:`serein.tree_tables`), else in ONNX Runtime. That path is checked against scikit-learn
   once per version and remembered (:mod:`serein.batch_plan`), so later runs do not deserialize
   the pipeline. As in serving, rows that ONNX Runtime's float32 may have overflowed on (an input
   beyond ``FLOAT32_SAFE``, a NaN or infinite output) are scored again by the pipeline; a row
   without a finite prediction either way is set aside like a row that breaks the contract;
3. writes the input columns (or only ``id_column``) followed by ``prediction``, one
   ``proba_<class>`` column per class for a classifier, and ``model`` / ``model_version``.

Chunks are scored by ``threads`` workers at once (ONNX Runtime, Arrow compute and numpy release the
GIL) and written in input order. Outputs: ``*.parquet`` / ``*.pq`` (Parquet), ``*.csv``,
``dataset:NAME`` (a new version of a workspace dataset, one Delta commit) or any other path (a
Delta table). An existing output file is replaced only with ``mode="overwrite"``; files are
written under a temporary name and renamed at the end, so a failed run leaves no half file.
Rejected rows go to ``<output>.rejected.parquet`` (values as text with ``_reason`` and ``_row``,
the row's position in the input), or for a dataset output to that dataset's quarantine table
(``serein data quarantine NAME``).

The model is loaded through the registry, which refuses a version whose artifacts do not match
the sha256 recorded at registration.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serein.arrow_features import ArrowFeatures
from serein.batch_plan import ArrowPlan
from serein.errors import ConflictError, NotFoundError, UsageError
from serein.serve.runtime import FLOAT32_SAFE, beyond_safe
from serein.tree_tables import MISSING_TRACKS, TableTrees, most_probable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from serein.registry.loaded import LoadedModel
    from serein.serve.runtime import Runtime
    from serein.workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 100_000
DATASET_PREFIX = "dataset:"
MODES = ("append", "overwrite")
# file formats an output path may be mistaken for: refused rather than taken for a Delta folder's name
UNWRITTEN_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson", ".xlsx", ".xls", ".txt", ".tsv", ".feather", ".arrow",
                                ".ipc", ".orc", ".avro", ".pkl", ".pickle", ".h5", ".hdf5", ".zip", ".gz", ".db"})
RUNTIMES = ("auto", "sklearn")
OUTPUT_COLUMNS = ("prediction", "model", "model_version")
PROBA_PREFIX = "proba_"
PLAN_FILE = "batch-plan.json"  # in the version's cache folder (serein.batch_plan)
# The ONNX operators of the preprocessing steps ArrowFeatures reproduces (SimpleImputer of numbers,
# StandardScaler, OneHotEncoder; a text imputer's nodes feed a OneHotEncoder): the estimator's part
# of an export starts after all of them.
PREPROCESSING_OPS = frozenset({"Imputer", "Scaler", "OneHotEncoder"})


@dataclass
class BatchResult:
    """What a batch scoring run did. ``rows_read == rows_scored + rows_rejected`` always holds;
    ``problems`` counts the contract's findings by ``column: check`` over the whole input, and the rows the
    model has no finite prediction for (``UNANSWERED``)."""

    model: str
    version: int
    runtime: str
    input: str
    output: str
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rejected_to: str | None = None
    output_version: int | None = None
    seconds: float = 0.0
    problems: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- input -------------------------------------------------------------------------------------
@dataclass
class Source:
    """A stream of record batches with its schema and, where cheap to know, its row count."""

    label: str
    schema: pa.Schema
    rows: int | None
    batches: Callable[[int], Iterator[pa.RecordBatch]]


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows (the last may be shorter) from batches of any size."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if not pending and batch.num_rows == size:  # the usual case: passed on without a copy
            yield batch
            continue
        pending.append(batch)
        held += batch.num_rows
        if held >= size:
            table = pa.Table.from_batches(pending).combine_chunks()
            start = 0
            while held - start >= size:
                yield table.slice(start, size).to_batches()[0]
                start += size
            pending = table.slice(start).to_batches()
            held -= start
    if held:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


def plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with dictionary-encoded columns (how Parquet text is read) decoded to plain ones."""
    import pyarrow as pa

    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    columns = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _delta_source(path: str, version: int | None, label: str) -> Source:
    from deltalake import DeltaTable

    dataset = DeltaTable(path, version=version).to_pyarrow_dataset()
    return Source(label, dataset.schema, dataset.count_rows(),
                  lambda size: _rebatch(dataset.to_batches(batch_size=size), size))


def _file_source(path: Path, text: Sequence[str] = ()) -> Source:
    """A Parquet or CSV file; a CSV file's ``text`` columns are read as text whatever they look
    like (type inference would make codes such as "07" the number 7)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from serein.data.readers import file_format

    kind = file_format(path)
    try:
        if kind == "parquet":
            text = [f.name for f in pq.read_schema(path) if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            parquet = pq.ParquetFile(path, read_dictionary=text)  # each category decoded once per page
            return Source(str(path), parquet.schema_arrow, parquet.metadata.num_rows,
                          lambda size: _rebatch(parquet.iter_batches(batch_size=size), size))
        if kind == "csv":
            options = pcsv.ConvertOptions(strings_can_be_null=True, column_types={c: pa.string() for c in text})
            schema = pcsv.open_csv(path, convert_options=options).schema
            return Source(str(path), schema, None,
                          lambda size: _rebatch(iter(pcsv.open_csv(path, convert_options=options)), size))
    except Exception as exc:  # pyarrow raises many types for malformed content
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{path} is not a readable {kind} file: {detail}", hint=f"check that it is valid {kind}") from None
    raise UsageError(f"{path}: batch scoring reads Parquet, CSV or Delta, not {kind}",
                     hint="convert it, or ingest it first (`serein data ingest`) and score the dataset")


def open_source(ws: Workspace, text: str, text_columns: Sequence[str] = ()) -> Source:
    """The input named by ``text``: a dataset ref (``NAME``, ``NAME@3``, ``NAME@ISO-TIME``), a
    Delta table folder, or a Parquet/CSV file (its ``text_columns`` read as text)."""
    from serein.data.readers import SUFFIXES

    path = Path(text)
    if (path / "_delta_log").is_dir():
        return _delta_source(str(path.resolve()), None, str(path))
    if path.is_file():
        return _file_source(path, text_columns)
    if os.sep in text or text.lower().endswith(tuple(SUFFIXES)):
        raise NotFoundError(f"input {text} not found",
                            hint="give an existing Parquet/CSV file, a Delta table folder or a dataset ref NAME@VERSION")
    name, version = ws.datasets.resolve(text)
    return _delta_source(ws.datasets.path(name), version, f"{name}@{version}")


# -- scoring -----------------------------------------------------------------------------------
def plan_path(ws: Workspace, model: LoadedModel) -> Path:
    """Where the batch plan of ``model``'s version is remembered (:mod:`serein.batch_plan`), beside
    its cached artifacts: shared by ``serein predict`` and ``serein monitor --current``."""
    return ws.state_dir / "cache" / model.name / str(model.version) / PLAN_FILE


def _estimator_nodes(graph: Any, cut: str) -> list[Any] | None:
    """The nodes of ``graph`` that compute its outputs from tensor ``cut`` and constants, in graph
    order; None when a path from a graph input to an output avoids ``cut``."""
    producer = {out: node for node in graph.node for out in node.output}
    stops = {cut, ""} | {t.name for t in graph.initializer}
    inputs = {t.name for t in graph.input} - stops
    needed: set[int] = set()
    stack = [t.name for t in graph.output]
    while stack:
        name = stack.pop()
        if name in stops:
            continue
        if name in inputs:
            return None
        node = producer[name]
        if id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    return [node for node in graph.node if id(node) in needed]


def estimator_model(export: str, width: int, nan_free: bool = False) -> bytes:
    """The estimator's part of a whole-pipeline ONNX export as a model of one float input ``X`` of
    ``width`` columns: the nodes after the preprocessed matrix, which is the tensor nearest the
    inputs that every path from the inputs to the outputs goes through and that comes after every
    node of the preprocessing (``PREPROCESSING_OPS``). Not the one nearest the outputs: an
    estimator's own part may hold such tensors too (a nearest-neighbour classifier computes its
    label and its probabilities from one tensor of class votes). Read from the verified export,
    so scoring needs no converter. ``nan_free``: ``X`` never holds NaN, so tree nodes lose their
    missing-value branches (one test less per node visited, ~6 % of the trees' time). Raises
    ValueError when the graph has no such tensor."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(export)
    graph = model.graph
    outputs = {t.name for t in graph.output}
    produced = {out for node in graph.node for out in node.output}
    for node in graph.node:  # topological order: the first cut found is the nearest the inputs
        for cut in node.input:
            if cut not in produced or cut in outputs:
                continue
            nodes = _estimator_nodes(graph, cut)
            if nodes is None or any(kept.op_type in PREPROCESSING_OPS for kept in nodes):
                continue
            for kept in nodes:
                kept.input[:] = ["X" if name == cut else name for name in kept.input]
                for attribute in [a for a in kept.attribute if nan_free and a.name == MISSING_TRACKS]:
                    kept.attribute.remove(attribute)  # optional: by default NaN takes the false branch
            used = {name for kept in nodes for name in kept.input}
            matrix = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])
            sub = helper.make_graph(nodes, "estimator", [matrix], list(graph.output),
                                    [t for t in graph.initializer if t.name in used])
            cut_out = helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
            return cut_out.SerializeToString()
    raise ValueError(f"{export}: no single tensor between the inputs and the outputs")


# The Arrow path's estimator: its outputs for a batch's rows, and the rows whose preprocessed input
# holds a value beyond FLOAT32_SAFE (None: the estimator cannot overflow, so nothing is checked).
Estimate = Callable[["pa.RecordBatch"], tuple[list[Any], list[int] | None]]
NO_ROWS = np.empty(0, dtype=np.intp)


@dataclass
class Scored:
    """Scored rows: ``predictions``, ``probabilities`` (None for a regressor) and ``unanswered``, the
    positions of the rows for which neither ONNX Runtime nor the pipeline computes a finite output
    (their outputs are NaN or infinite)."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    unanswered: np.ndarray

    @property
    def outputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.predictions, self.probabilities

    def only(self, rows: np.ndarray) -> Scored:
        """The answered ``rows`` (a mask) alone."""
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Scored(self.predictions[rows], probabilities, NO_ROWS)


def _non_finite_rows(predictions: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray:
    """Positions of the rows with a NaN or infinite output (a probability, or a regressor's value)."""
    values = predictions if probabilities is None else probabilities
    return np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))


class ChunkScorer:
    """Validated feature frames (or Arrow batches) in, prediction arrays out: ONNX Runtime or the
    pipeline.

    For Arrow batches (:meth:`score_arrow`) a pipeline whose preprocessing :class:`ArrowFeatures`
    reproduces runs as numpy preprocessing + the estimator alone (the part cut out of the verified
    export: as look-up tables when its trees compile to :class:`serein.tree_tables.TableTrees`,
    else in ONNX Runtime), once that path has been checked against scikit-learn on the version's
    reference sample with the registration tolerances (``serein.registry.onnx_export``);
    otherwise the whole-pipeline export (or the pipeline) scores it.

    ONNX Runtime computes in float32: as in serving (``serein.serve.runtime``), the rows with an
    input beyond ``FLOAT32_SAFE`` or a non-finite output are scored again by the pipeline, which
    is deserialized only when a chunk has such a row; the rows without a finite output either way
    are :attr:`Scored.unanswered`."""

    def __init__(self, model: LoadedModel, prefer_onnx: bool, arrow_path: bool = False,
                 plan_file: Path | None = None) -> None:
        """``arrow_path``: set up the Arrow path for :meth:`score_arrow` (worth it for batch scoring
        only). ``plan_file``: where the outcome of checking that path is remembered for this
        version (:mod:`serein.batch_plan`): when it holds a plan for the version's artifacts, the
        path is set up from it without deserializing the pipeline; when that plan's estimator is
        look-up tables, the export is not even loaded (importing ONNX Runtime and building the
        session: 0.35 s of CPU in a 2 s monitoring run) until a frame needs it."""
        self.model = model
        self.classes = None if model.classes is None else np.asarray(model.classes).ravel()
        self._prefer_onnx = prefer_onnx
        self.features: ArrowFeatures | None = None
        self.estimator: Estimate | None = None  # the Arrow path's estimator
        self.estimator_kind: str | None = None  # one of serein.batch_plan.ESTIMATORS
        self.trees: TableTrees | None = None  # the tables, when they are the estimator
        if not (arrow_path and prefer_onnx and model.onnx_path):
            return
        recalled = None if plan_file is None else ArrowPlan.recall(plan_file, self.model)
        if recalled is not None and recalled.features is not None and recalled.trees is not None:
            self._use(recalled.features, "tables", self._tables(recalled.features, recalled.trees), recalled.trees)
        elif self.session is not None:
            self._set_up_arrow_path(recalled, plan_file)

    @cached_property
    def _runtime(self) -> Runtime:
        """The runtime for whole frames; the serving runtime's checks decide whether the export
        is usable (else: the pipeline)."""
        from serein.serve.runtime import make_runtime

        return make_runtime(self.model, threads=1, prefer_onnx=self._prefer_onnx)

    @property
    def runtime(self) -> str:
        """``onnx`` (the export, or the look-up tables compiled from it) or ``sklearn``."""
        return "onnx" if self.estimator_kind == "tables" else self._runtime.name

    @property
    def session(self) -> Any:
        """The whole export's ONNX Runtime session, or None when the pipeline scores."""
        runtime = self._runtime
        return getattr(runtime, "session", None) if runtime.name == "onnx" else None

    def _set_up_arrow_path(self, recalled: ArrowPlan | None, plan_file: Path | None) -> None:
        """The Arrow path from the remembered plan (its tables compiled again from the export and
        remembered when they were missing), else checked now (and remembered)."""
        if recalled is not None and recalled.features is None:
            return
        adopted = None if recalled is None else self._adopt(recalled.features, recalled.estimator)
        if adopted is not None:
            if adopted.trees is not None and plan_file is not None:
                adopted.save(plan_file, self.model)  # the tables were missing: kept for the next run
            return
        plan = self._check_arrow_path()
        if plan_file is not None:
            plan.save(plan_file, self.model)

    def _use(self, features: ArrowFeatures, kind: str, estimate: Estimate, trees: TableTrees | None) -> None:
        """Score Arrow batches through ``features`` and the estimator ``estimate`` (one of
        ``ESTIMATORS``; ``trees``: the tables, when that is ``tables``)."""
        self.features, self.estimator, self.estimator_kind = features, estimate, kind
        self.trees = trees if kind == "tables" else None

    @staticmethod
    def _tables(features: ArrowFeatures, trees: TableTrees) -> Estimate:
        """The ``tables`` estimator: the batch's inputs (:meth:`ArrowFeatures.inputs`) through ``trees``.
        A tree only compares its inputs with thresholds, so a value clipped to float32's range takes
        the branch the pipeline's float64 value takes, and the sums of leaf values are finite: no
        row needs the pipeline, and neither inputs nor outputs are checked (no work per row)."""
        return lambda batch: (trees.run(*features.inputs(batch)), None)

    @staticmethod
    def _in_onnx_runtime(features: ArrowFeatures, candidate: Any) -> Estimate:
        """The ``onnxruntime`` estimator: the batch's matrix (:meth:`ArrowFeatures.matrix`) through
        the ``candidate`` session, with the rows where that matrix is beyond ``FLOAT32_SAFE``."""
        def estimate(batch: pa.RecordBatch) -> tuple[list[Any], list[int]]:
            matrix = features.matrix(batch)
            return candidate.run(None, {"X": matrix}), beyond_safe(matrix, axis=1)

        return estimate

    def _check_arrow_path(self) -> ArrowPlan:
        """Set up the Arrow path (see the class docstring) when it reproduces the pipeline: the
        trees as look-up tables (:class:`serein.tree_tables.TableTrees`, about twice as fast as
        ONNX Runtime's traversal) where they compile and agree, else ONNX Runtime. Returns what
        was set up, to be remembered."""
        import pandas as pd
        import pyarrow as pa

        none = ArrowPlan(None, None)
        features = ArrowFeatures.compile(self.model.pipeline, self.model.contract)
        sample = (self.model.profile or {}).get("sample", {}).get("columns", {})
        if features is None or not sample or any(f not in sample for f in self.model.features):
            return none
        try:
            estimators, trees = self._estimators(features)
        except Exception as exc:  # noqa: BLE001 - no usable estimator part: the whole export still scores
            log.info("%s v%s: estimator-only ONNX path unavailable (%s)", self.model.name, self.model.version, exc)
            return none
        frame = pd.DataFrame({f: sample[f] for f in self.model.features})
        table = pa.RecordBatch.from_pandas(frame, preserve_index=False)
        for kind, estimate in estimators.items():
            try:
                agrees = self._agrees(estimate(table)[0], frame)
            except Exception as exc:  # noqa: BLE001 - a part that cannot score the sample is declined too
                log.info("%s v%s: the estimator's part run by %s fails on the reference sample (%s)",
                         self.model.name, self.model.version, kind, exc)
                continue
            if agrees:
                self._use(features, kind, estimate, trees)
                return ArrowPlan(features, kind, trees if kind == "tables" else None)
            log.info("%s v%s: the estimator's part run by %s disagrees with scikit-learn on the reference sample",
                     self.model.name, self.model.version, kind)
        return none  # the whole export scores

    def _adopt(self, features: ArrowFeatures, kind: str | None) -> ArrowPlan | None:
        """Set up the Arrow path a plan names from the export (its tables compiled again); None
        when it no longer builds."""
        try:
            estimators, trees = self._estimators(features)
        except Exception as exc:  # noqa: BLE001 - checked again from the pipeline
            log.info("%s v%s: the remembered batch plan does not build (%s)", self.model.name, self.model.version, exc)
            return None
        estimate = estimators.get(kind or "")
        if kind is None or estimate is None:
            return None
        self._use(features, kind, estimate, trees)
        return ArrowPlan(features, kind, trees if kind == "tables" else None)

    def _estimators(self, features: ArrowFeatures) -> tuple[dict[str, Estimate], TableTrees | None]:
        """The ways to run the estimator's part of the export on Arrow batches, fastest first:
        look-up tables when its trees compile to them, ONNX Runtime always; and those tables."""
        from serein.registry.onnx_export import session

        cut = estimator_model(self.model.onnx_path, features.width, features.nan_free)
        candidate = session(cut)
        trees = TableTrees.compile(cut, features.layout)
        estimators: dict[str, Estimate] = {}
        if trees is not None:
            estimators["tables"] = self._tables(features, trees)
        estimators["onnxruntime"] = self._in_onnx_runtime(features, candidate)
        return estimators, trees

    def _agrees(self, outputs: list[Any], frame: pd.DataFrame) -> bool:
        """Whether estimator ``outputs`` for ``frame`` agree with the pipeline within the
        registration tolerances (``serein.registry.onnx_export``)."""
        from serein.registry.onnx_export import classifier_agrees, regressor_agrees

        if self.classes is None:
            reference = np.asarray(self.model.pipeline.predict(frame), dtype=np.float64)
            return regressor_agrees(np.abs(np.asarray(outputs[0], dtype=np.float64).ravel() - reference), reference)
        reference = np.asarray(self.model.pipeline.predict_proba(frame))
        proba = np.asarray(outputs[1])
        return classifier_agrees(float(np.mean(proba.argmax(axis=1) == reference.argmax(axis=1))),
                                 np.abs(proba - reference))

    def _feed(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[int]]:
        """One ``(n, 1)`` tensor per ONNX input, and the rows with a float input beyond
        ``FLOAT32_SAFE``. Text columns are factorised first, so the few distinct categories become
        Python strings once, not once per row; a null becomes the exported imputers' missing value."""
        import pandas as pd

        from serein.registry.onnx_export import MISSING_CATEGORY, onnx_text

        feed = {}
        floats = []
        for node in self.session.get_inputs():
            column = frame[node.name]
            if node.type == "tensor(string)":
                codes, uniques = pd.factorize(column, use_na_sentinel=True)
                table = np.array([onnx_text(u) for u in uniques] + [MISSING_CATEGORY], dtype=object)
                array = table[codes]  # code -1 (null) picks the last entry
            else:
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
                dtype = np.float32 if node.type == "tensor(float)" else np.float64
                array = np.clip(values, np.finfo(dtype).min, np.finfo(dtype).max).astype(dtype)
            feed[node.name] = array.reshape(-1, 1)
            if array.dtype == np.float32:
                floats.append(feed[node.name])
        return feed, beyond_safe(np.hstack(floats), axis=1) if floats else []

    def _outputs(self, outputs: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        if self.classes is None:
            return np.asarray(outputs[0], dtype=np.float64).reshape(-1), None
        probabilities = np.asarray(outputs[1], dtype=np.float64)
        return self.classes[most_probable(probabilities)], probabilities

    def score_arrow(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`answer_arrow`'s outputs, NaN or infinite for the rows without a finite answer."""
        return self.answer_arrow(batch).outputs

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """``(predictions, probabilities or None)`` for the rows of ``frame`` (features only), NaN
        or infinite for the rows without a finite answer (:meth:`answer`)."""
        return self.answer(frame).outputs

    def answer_arrow(self, batch: pa.RecordBatch) -> Scored:
        """:meth:`answer` for an Arrow batch of validated rows (the Arrow path when it is set up)."""
        if self.estimator is None:
            return self.answer(plain(batch.select(self.model.features)).to_pandas())
        outputs, beyond = self.estimator(batch)
        if beyond is None:  # look-up tables: see _tables
            return Scored(*self._outputs(outputs), NO_ROWS)
        return self._checked(self._outputs(outputs), beyond,
                             lambda rows: plain(batch.select(self.model.features).take(rows)).to_pandas())

    def answer(self, frame: pd.DataFrame) -> Scored:
        """The rows of ``frame`` (features only) scored by the whole export, else the pipeline."""
        if self.session is not None:
            feed, beyond = self._feed(frame)
            return self._checked(self._outputs(self.session.run(None, feed)), beyond, lambda rows: frame.iloc[rows])
        predictions, probabilities = self._pipeline_outputs(frame)
        return Scored(predictions, probabilities, _non_finite_rows(predictions, probabilities))

    def _checked(self, outputs: tuple[np.ndarray, np.ndarray | None], beyond: list[int],
                 rows_of: Callable[[np.ndarray], pd.DataFrame]) -> Scored:
        """ONNX Runtime's ``outputs`` with the rows listed in ``beyond`` (an input beyond
        ``FLOAT32_SAFE``) or without a finite output scored again by the pipeline (``rows_of``
        gives them as a frame); the rows the pipeline has no finite output for are unanswered.
        One vectorised test per chunk: the pipeline is loaded only when a row needs it."""
        predictions, probabilities = outputs
        again = np.union1d(np.asarray(beyond, dtype=np.intp), _non_finite_rows(predictions, probabilities))
        if not again.size:
            return Scored(predictions, probabilities, NO_ROWS)
        again_predictions, again_probabilities = self._again(rows_of(again))
        predictions[again] = again_predictions
        if probabilities is not None and again_probabilities is not None:
            probabilities[again] = again_probabilities
        return Scored(predictions, probabilities, again[_non_finite_rows(again_predictions, again_probabilities)])

    def _pipeline_outputs(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The pipeline's ``(predictions, probabilities or None)`` for the rows of ``frame``."""
        if self.classes is None:
            return np.asarray(self.model.pipeline.predict(frame), dtype=np.float64).reshape(-1), None
        probabilities = np.asarray(self.model.pipeline.predict_proba(frame), dtype=np.float64)
        return self.classes[most_probable(probabilities)], probabilities

    def _again(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`_pipeline_outputs` for rows ONNX Runtime could not answer: together, else row by
        row when the pipeline refuses them together (scikit-learn refuses a whole frame for one
        value that scaling turned into an infinity); NaN for a row it refuses alone."""
        try:
            with np.errstate(all="ignore"):  # overflow on the way is what is being checked
                return self._pipeline_outputs(frame)
        except ValueError:
            if len(frame) == 1:
                if self.classes is None:
                    return np.full(1, np.nan), None
                return self.classes[:1], np.full((1, len(self.classes)), np.nan)  # the label means nothing here
        parts = [self._again(frame.iloc[[i]]) for i in range(len(frame))]
        probabilities = None if self.classes is None else np.concatenate([p for _, p in parts])
        return np.concatenate([p for p, _ in parts]), probabilities


@dataclass
class ScoredChunk:
    """One chunk's output batch, its rejected rows (as a quarantine frame) and its findings."""

    output: pa.RecordBatch
    rows: int
    rejected: pd.DataFrame | None
    problems: dict[str, int]


UNANSWERED = "prediction: no finite answer"  # BatchResult.problems' key for rows the model cannot score


class ChunkJob:
    """Validates and scores one chunk; the same object serves every worker thread."""

    def __init__(self, model: LoadedModel, scorer: ChunkScorer, keep: list[str], source: str) -> None:
        self.model = model
        self.scorer = scorer
        self.keep = keep
        self.source = source

    def __call__(self, offset: int, batch: pa.RecordBatch) -> ScoredChunk:
        """Score the rows of ``batch`` that pass the contract; those that break it, and those the
        model computes no finite prediction for, are set aside with their reasons."""
        import pyarrow as pa

        from serein.data.validation import validate_arrow

        features = batch.select(self.model.features)
        report = validate_arrow(features, self.model.contract)
        problems: dict[str, int] = {}
        for finding in report.failures:
            key = f"{finding['column'] or 'rule'}: {finding['check']}"
            problems[key] = problems.get(key, 0) + finding["count"]
        bad, reasons, scored = report.bad_rows, report.row_reasons, batch
        if report.n_bad:
            good = pa.array(~bad)
            scored, features = batch.filter(good), features.filter(good)
        # None on the Arrow path (the columns already have the contract's types), else the rows cast
        # by the contract (e.g. numbers read from CSV text)
        data = None if report.data is None else report.data[~bad]
        answers = self.scorer.answer_arrow(features) if data is None else self.scorer.answer(data)
        if answers.unanswered.size:
            unanswered = answers.unanswered
            problems[UNANSWERED] = int(unanswered.size)
            at = np.flatnonzero(~bad)[unanswered]  # their positions in the chunk
            bad = bad.copy()
            bad[at] = True
            frame = plain(features.take(unanswered)).to_pandas() if data is None else data.iloc[unanswered]
            reasons = {**reasons, **self._unanswered(frame, at)}
            answered = np.ones(scored.num_rows, dtype=bool)
            answered[unanswered] = False
            scored, answers = scored.filter(pa.array(answered)), answers.only(answered)
        rejected = self._rejected(batch, bad, reasons, offset) if bad.any() else None
        return ScoredChunk(self._output(scored, answers), report.n_rows, rejected, problems)

    def _output(self, batch: pa.RecordBatch, answers: Scored) -> pa.RecordBatch:
        """The output columns for the scored rows of ``batch``: the kept input columns, then
        ``prediction``, the class probabilities, ``model`` and ``model_version``."""
        import pyarrow as pa

        kept = batch.select(self.keep)
        columns = {name: kept.column(name) for name in self.keep}
        columns["prediction"] = pa.array(answers.predictions)
        if answers.probabilities is not None:
            for k, cls in enumerate(self.scorer.classes):
                columns[f"{PROBA_PREFIX}{cls}"] = pa.array(answers.probabilities[:, k])
        n = kept.num_rows
        # one-entry dictionary: written as its index, not hashed row by row (readers see text)
        columns["model"] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)),
                                                          pa.array([self.model.name], pa.string()))
        columns["model_version"] = pa.repeat(pa.scalar(self.model.version, pa.int64()), n)
        return pa.RecordBatch.from_pydict(columns)

    def _unanswered(self, frame: pd.DataFrame, rows: np.ndarray) -> dict[int, str]:
        """The reasons of the rows of ``frame`` (features; at positions ``rows`` of the chunk) that
        the model computes no finite prediction for: each numeric field beyond ``FLOAT32_SAFE``
        (the values float32, then the pipeline, overflowed on), else the prediction itself."""
        numeric = [name for name in self.model.features if self.model.contract.columns[name].numeric]
        beyond = np.abs(frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)) >= FLOAT32_SAFE
        problem = "the model computes no finite prediction"
        return {int(row): "; ".join(f"{name}: beyond ±{FLOAT32_SAFE:.2g}, where {problem}"
                                    for name, hit in zip(numeric, hits, strict=True) if hit)
                or f"prediction: {problem} for this row" for row, hits in zip(rows, beyond, strict=True)}

    def _rejected(self, batch: pa.RecordBatch, bad: np.ndarray, reasons: dict[int, str], offset: int) -> pd.DataFrame:
        import pyarrow as pa

        from serein.data.quarantine import quarantine_rows

        positions = np.flatnonzero(bad)
        rows = plain(batch.filter(pa.array(bad))).to_pandas()
        local = {k: reasons[int(i)] for k, i in enumerate(positions)}
        out = quarantine_rows(rows, np.ones(len(rows), dtype=bool), local, self.source, None, datetime.now(UTC))
        out["_row"] = positions + offset
        return out


def scored_chunks(source: Source, job: ChunkJob, chunk_rows: int, threads: int) -> Iterator[ScoredChunk]:
    """The chunks of ``source`` scored by ``threads`` workers, yielded in input order. Up to
    ``2 * threads`` chunks are in flight: while the caller writes one, each worker that finishes
    finds the next chunk already queued instead of waiting for the caller to read it."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="serein-batch") as pool:
        pending: list[Future[ScoredChunk]] = []
        offset = 0
        for batch in source.batches(chunk_rows):
            pending.append(pool.submit(job, offset, batch))
            offset += batch.num_rows
            if len(pending) >= 2 * threads:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


# -- output ------------------------------------------------------------------------------------
class Sink:
    """Where scored batches go: a Parquet or CSV file (renamed into place at the end), a Delta
    table, or a workspace dataset."""

    def __init__(self, ws: Workspace, text: str, mode: str) -> None:
        from serein.data.refs import check_name

        if mode not in MODES:
            raise UsageError(f"unknown output mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
        self.ws, self.mode, self.label = ws, mode, text
        self.dataset = check_name(text[len(DATASET_PREFIX):]) if text.startswith(DATASET_PREFIX) else None
        self.path = Path(self.ws.datasets.path(self.dataset)) if self.dataset else Path(text)
        suffix = self.path.name.lower()
        self.kind = "delta" if self.dataset else (
            "parquet" if suffix.endswith((".parquet", ".pq")) else "csv" if suffix.endswith(".csv") else "delta")
        if self.kind == "delta" and not self.dataset and self.path.suffix.lower() in UNWRITTEN_SUFFIXES \
                and not (self.path / "_delta_log").is_dir():
            raise UsageError(f"cannot write predictions as {self.path.suffix} ({self.path.name})",
                             hint="write a .parquet or .csv file, a Delta table folder (a path without such a "
                                  "suffix), or dataset:NAME")
        if self.kind != "delta" and self.path.exists() and mode != "overwrite":
            raise ConflictError(f"output {self.path} already exists", hint="pass --mode overwrite to replace it")
        if self.kind != "delta" and not self.path.parent.is_dir():
            raise NotFoundError(f"output folder {self.path.parent} does not exist", hint="create it first")

    @property
    def rejected_label(self) -> str:
        if self.dataset:
            return f"quarantine of dataset {self.dataset}"
        return str(self.path.with_name(self.path.name.split(".")[0] + ".rejected.parquet"))

    def write(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch], metadata: dict[str, str]) -> int | None:
        """Write every batch; returns the Delta version written (None for files). Parquet keeps
        dictionary-encoded text as it is (written as plain text columns); Delta and CSV get it decoded."""
        import pyarrow as pa

        if self.kind != "parquet":
            schema = pa.schema([pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
                                for f in schema])
            batches = map(plain, batches)
        if self.kind == "delta":
            from deltalake import CommitProperties, DeltaTable, write_deltalake

            reader = pa.RecordBatchReader.from_batches(schema, batches)
            try:
                write_deltalake(str(self.path), reader, mode=self.mode,
                                schema_mode="merge" if self.mode == "append" else "overwrite",
                                commit_properties=CommitProperties(custom_metadata=metadata))
            except Exception as exc:  # delta-rs raises a bare Exception for schema conflicts
                raise ConflictError(f"could not write to {self.label}: {str(exc).splitlines()[0]}",
                                    hint="the table's earlier versions are unchanged; use --mode overwrite to "
                                         "replace its content") from None
            return DeltaTable(str(self.path)).version()
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                # Dictionary pages for text only and snappy for all but floating-point columns (on
                # probabilities both cost CPU and save nothing: 2x the write time); min/max
                # statistics for all but text (a row group of a low-cardinality text column holds
                # nearly every category, so they skip nothing, and cost ~17 % of the write);
                # store_schema=False: readers see text columns, not the dictionaries they were read as.
                text = [f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
                        or pa.types.is_large_string(f.type)]
                codecs = {f.name: "none" if pa.types.is_floating(f.type) else "snappy" for f in schema}
                with pq.ParquetWriter(partial, schema, store_schema=False, use_dictionary=text, compression=codecs,
                                      write_statistics=[n for n in schema.names if n not in text]) as writer:
                    for batch in batches:
                        writer.write_batch(batch)
            else:
                import pyarrow.csv as pcsv

                with pcsv.CSVWriter(partial, schema) as writer:
                    for batch in batches:
                        writer.write_batch(batch)
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        return None

    def reject(self, frames: list[pd.DataFrame]) -> str:
        """Store the rejected rows; returns where they went."""
        import pandas as pd
        import pyarrow as pa

        table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
        if self.dataset:
            from deltalake import write_deltalake

            write_deltalake(self.ws.datasets.quarantine_path(self.dataset), table, mode="append", schema_mode="merge")
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, self.rejected_label)
        return self.rejected_label


# -- the whole run -----------------------------------------------------------------------------
def _output_columns(model: LoadedModel, source: Source, id_column: str | None) -> list[str]:
    """The input columns copied to the output; refuses missing features and name clashes."""
    names = source.schema.names
    missing = [f for f in model.features if f not in names]
    if missing:
        raise UsageError(f"{source.label} lacks the feature column(s) {', '.join(map(repr, missing))} of "
                         f"{model.name} v{model.version}", hint=f"the model needs {', '.join(model.features)}")
    if id_column is not None and id_column not in names:
        raise UsageError(f"{source.label} has no column {id_column!r} (--id-column)",
                         hint=f"its columns are {', '.join(names)}")
    keep = [id_column] if id_column is not None else list(names)
    added = [*OUTPUT_COLUMNS, *(f"{PROBA_PREFIX}{c}" for c in (model.classes or []))]
    clash = [c for c in keep if c in added]
    if clash:
        raise UsageError(f"{source.label} already has column(s) {', '.join(map(repr, clash))} that the output adds",
                         hint="keep only an id column with --id-column COLUMN, or rename them")
    return keep


def predict_batch(ws: Workspace, model: str, input: str, output: str, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                  id_column: str | None = None, runtime: str = "auto", mode: str = "append",
                  threads: int | None = None,
                  progress: Callable[[int, int | None], None] | None = None) -> BatchResult:
    """Score ``input`` with ``model`` (``NAME``, ``NAME@ALIAS`` or ``NAME@VERSION``; the champion
    when no version is named) and write the result to ``output``; see the module docstring.

    ``threads`` (default: the CPU count) chunks are scored at once; ``progress(rows_done,
    rows_total or None)`` is called after each chunk."""
    from threadpoolctl import threadpool_limits

    from serein.registry.registry import CHAMPION, split_ref

    if chunk_rows < 1:
        raise UsageError(f"the chunk size must be at least 1 row, got {chunk_rows}")
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint="auto uses ONNX Runtime where a verified export "
                                                               "exists; sklearn always runs the pipeline")
    start = time.perf_counter()
    sink = Sink(ws, output, mode)
    name, ref = split_ref(model)
    # refuses artifacts whose sha256 changed; the pipeline is deserialized only if something needs it
    loaded = ws.registry.load(name, ref or CHAMPION, pipeline=False)
    source = open_source(ws, input, [c for c, spec in loaded.contract.columns.items() if spec.type == "string"])
    if runtime == "sklearn" or loaded.onnx_path is None:
        loaded.loaded(pipeline=True)  # now: the thread limits below then cover its OpenMP pool
    keep = _output_columns(loaded, source, id_column)
    with threadpool_limits(limits=1):  # parallelism comes from the chunk workers, not nested pools
        scorer = ChunkScorer(loaded, prefer_onnx=runtime == "auto", arrow_path=True, plan_file=plan_path(ws, loaded))
        result = BatchResult(model=loaded.name, version=loaded.version, runtime=scorer.runtime,
                             input=source.label, output=output)
        job = ChunkJob(loaded, scorer, keep, source.label)
        _score_into(sink, source, job, result, chunk_rows, threads or os.cpu_count() or 1, progress)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _score_into(sink: Sink, source: Source, job: ChunkJob, result: BatchResult, chunk_rows: int, threads: int,
                progress: Callable[[int, int | None], None] | None) -> None:
    """Stream the scored chunks into ``sink`` (the first chunk fixes the output schema) and the
    rejected rows to its quarantine, counting into ``result``."""
    import pyarrow as pa

    rejected: list[pd.DataFrame] = []

    def outputs() -> Iterator[pa.RecordBatch]:
        for chunk in scored_chunks(source, job, chunk_rows, threads):
            result.rows_read += chunk.rows
            result.rows_scored += chunk.output.num_rows
            for key, count in chunk.problems.items():
                result.problems[key] = result.problems.get(key, 0) + count
            if chunk.rejected is not None:
                rejected.append(chunk.rejected)
            if progress is not None:
                progress(result.rows_read, source.rows)
            yield chunk.output

    batches = outputs()
    first = next(batches, None)
    if first is None:
        raise UsageError(f"{source.label} has no rows", hint="score an input with at least one row")
    schema = first.schema

    def in_schema() -> Iterator[pa.RecordBatch]:
        yield first
        for batch in batches:
            try:
                yield batch if batch.schema.equals(schema) else batch.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise UsageError(f"{source.label}: a later chunk's columns do not match the first chunk's types "
                                 f"({str(exc).splitlines()[0]})",
                                 hint="give the file consistent column types (e.g. convert it to Parquet)") from None

    model = f"{job.model.name}@{job.model.version}"
    metadata = {"serein.source": f"serein predict {model} on {source.label}", "serein.model": model}
    result.output_version = sink.write(schema, in_schema(), metadata)
    result.rows_rejected = result.rows_read - result.rows_scored
    if rejected:
        result.rejected_to = sink.reject(rejected)
