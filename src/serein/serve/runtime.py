"""Runtimes: validated columns in, predictions (and class probabilities) out.

Four runtimes share one interface, ``predict(columns, n_rows) -> Predictions``:

* ``TablesRuntime`` computes the preprocessing with numpy and scores a tree ensemble's look-up
  tables with the compiled kernel: where the version's batch plan verified them and the kernel
  is built.
* ``EstimatorRuntime`` computes the pipeline's preprocessing with numpy and runs only the
  estimator's part of the verified export in ONNX Runtime (~29 µs for one row of the serving
  benchmark's pipeline): used when the version's batch plan verified that preprocessing
  (``serein.serve.models.estimator_runtime``).
* ``OnnxRuntime`` runs the whole verified ONNX export (~70 µs for one row, against ~8.5 ms in
  scikit-learn). It is used whenever the model version carries an ``onnx_path`` and the export's
  inputs are one tensor per feature, and the runtime above is not available.
* ``SklearnRuntime`` runs the fitted pipeline itself: the fallback for pipelines that did not
  convert.

Both build their input once per request from the column lists the validator produced, never a
DataFrame per row. Probabilities are returned as one list per row *aligned with the model's
``classes``* (``probabilities[i][k]`` is the probability of ``classes[k]`` for row ``i``); the
``score`` of a row is the positive-class probability for a binary classifier, the highest class
probability for a multi-class one and the predicted value for a regressor.

ONNX Runtime computes in float32: a model fed values near float32's limit (inputs beyond it are
clipped to it) answers far from scikit-learn, which computes in float64, or overflows to an
infinite or NaN output (a linear model's sum, a nearest-neighbour distance: the square of 2e19 is
beyond float32). Serving gives the ONNX runtimes the scikit-learn pipeline as their ``fallback``,
which scores again the rows with such an input (``FLOAT32_SAFE``) or a non-finite output
(``finite``); a row without a finite output either way (or that the pipeline refuses) raises
``NonFiniteOutput``, so a client never gets ``null`` for a prediction, a label picked from NaN
probabilities, or an answer computed from overflowed values.

Thread pools are sized per worker (``limit_threads``): with default OpenMP threads on a small
shared machine scikit-learn's p99 latency passed one second.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from serein.registry.onnx_export import QUIET_ORT, onnx_text

if TYPE_CHECKING:
    from serein.arrow_features import ArrowFeatures
    from serein.data.contract import Contract
    from serein.registry.loaded import LoadedModel
    from serein.tree_tables import TableTrees

log = logging.getLogger(__name__)


FLOAT32_MAX = float(np.finfo(np.float32).max)
# Beyond this magnitude a product or square of two values overflows float32 (~1.8e19).
FLOAT32_SAFE = float(np.sqrt(FLOAT32_MAX))
_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


@dataclass
class Predictions:
    """The outputs for one request, as plain Python values ready for JSON."""

    labels: list[Any]
    probabilities: list[list[float]] | None
    scores: list[float | None]

    def slice(self, start: int, stop: int) -> Predictions:
        """The outputs of rows ``start`` to ``stop`` (one request's share of a micro-batch)."""
        probabilities = None if self.probabilities is None else self.probabilities[start:stop]
        return Predictions(self.labels[start:stop], probabilities, self.scores[start:stop])


Columns = dict[str, "np.ndarray | list[Any]"]  # one per feature, as ``RowValidator.validate`` makes them


class Runtime(Protocol):
    name: str  # onnx (the verified export, or what is compiled from it) or sklearn
    scorer: str  # what computes the outputs, in words (GET /v1/models/{name})
    classes: list[Any] | None

    def predict(self, columns: Columns, n_rows: int) -> Predictions: ...


class NonFiniteOutput(ValueError):
    """Rows (positions in the request) for which the model computes no finite output."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"{len(rows)} row(s) without a finite output")
        self.rows = rows


def _non_finite(scores: list[float | None]) -> list[int]:
    """Rows whose score (a probability, or a regressor's value) is NaN or infinite."""
    try:
        if math.isfinite(sum(scores)):  # type: ignore[arg-type]
            return []
    except TypeError:  # None: a classifier without probabilities, whose labels are always a class
        return []
    return [i for i, s in enumerate(scores) if s is not None and not math.isfinite(s)]


def beyond_safe(values: np.ndarray, axis: int) -> list[int]:
    """Rows of a float32 input holding a value beyond ``FLOAT32_SAFE`` (or clipped to float32's
    range): ONNX Runtime's answer for them may have overflowed on the way (a tree's survives, a
    linear model's or a distance's does not)."""
    hits = np.abs(values) >= FLOAT32_SAFE  # NaN (a null) compares False
    return np.flatnonzero(hits.any(axis=axis)).tolist() if hits.any() else []


def finite(out: Predictions, columns: Columns, fallback: Runtime, unsafe: Sequence[int] = ()) -> Predictions:
    """``out`` with each row whose output is not finite, or that is listed in ``unsafe`` (inputs
    beyond ``FLOAT32_SAFE``), scored again by ``fallback`` (in place); ``NonFiniteOutput`` for the rows
    still without a finite output (also those the fallback refuses). A runtime without a fallback
    (batch scoring) does not call it."""
    bad = _non_finite(out.scores)
    if unsafe:
        bad = sorted(set(bad).union(unsafe))
    if not bad:
        return out
    again = _rows_again(fallback, columns, bad)
    if again is not None:
        parts = [(bad, again)]
    else:  # refused together: each row alone, so that only the rows at fault are named
        parts = [([i], _rows_again(fallback, columns, [i])) for i in bad]
    failed = [i for rows, part in parts
              for i in (rows if part is None else [rows[k] for k in _non_finite(part.scores)])]
    if failed:
        raise NonFiniteOutput(failed)
    for rows, part in parts:
        assert part is not None
        for k, i in enumerate(rows):
            out.labels[i] = part.labels[k]
            out.scores[i] = part.scores[k]
            if out.probabilities is not None and part.probabilities is not None:
                out.probabilities[i] = part.probabilities[k]
    return out


def _rows_again(fallback: Runtime, columns: Columns, rows: list[int]) -> Predictions | None:
    """``fallback``'s outputs for ``rows`` of ``columns``, or None when it refuses them (e.g.
    scikit-learn refusing a value that scaling turned into an infinity)."""
    subset = {name: values[rows] if isinstance(values, np.ndarray) else [values[i] for i in rows]
              for name, values in columns.items()}
    try:
        with np.errstate(all="ignore"):  # overflow on the way is what is being checked
            return fallback.predict(subset, len(rows))
    except ValueError:
        return None


def limit_threads(threads: int) -> None:
    """Cap the BLAS/OpenMP pools of the libraries loaded so far at ``threads`` per process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _python_classes(classes: Any) -> list[Any] | None:
    """Class labels as plain Python values (numpy scalars are not JSON)."""
    return None if classes is None else np.asarray(classes).ravel().tolist()


def _scores(probabilities: np.ndarray) -> np.ndarray:
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities.max(axis=1)


def _from_probabilities(classes: list[Any], probabilities: np.ndarray) -> Predictions:
    labels = [classes[k] for k in probabilities.argmax(axis=1).tolist()]
    return Predictions(labels, probabilities.tolist(), _scores(probabilities).tolist())


def _from_values(values: np.ndarray) -> Predictions:
    flat = np.asarray(values, dtype=np.float64).reshape(-1).tolist()
    return Predictions(flat, None, list(flat))


class SklearnRuntime:
    """The fitted scikit-learn pipeline, fed one DataFrame per request.

    Classifiers with ``predict_proba`` predict the most probable class (one pass instead of
    two); those without it return labels only.
    """

    name = "sklearn"
    scorer = "the scikit-learn pipeline"

    def __init__(self, pipeline: Any, contract: Contract, classes: list[Any] | None) -> None:
        self.pipeline = pipeline
        self.classes = _python_classes(classes)
        self._types = {name: spec.type for name, spec in contract.columns.items()}
        # a classifier without predict_proba answers labels only
        self.gives_probabilities = self.classes is not None and hasattr(pipeline, "predict_proba")

    def frame(self, columns: Columns) -> Any:
        """The request's columns as a DataFrame with the dtypes training data had."""
        import pandas as pd

        data: dict[str, Any] = {}
        for name, values in columns.items():
            kind = self._types[name]
            if isinstance(values, np.ndarray):  # numeric, as validated: NaN already marks a null
                data[name] = values
                continue
            has_null = any(v is None for v in values)
            if kind == "integer":
                data[name] = np.array(values, dtype=np.float64 if has_null else np.int64)
            elif kind == "float":
                data[name] = np.array(values, dtype=np.float64)
            elif kind == "string":
                data[name] = pd.Series(values, dtype="str")
            elif kind == "datetime":
                data[name] = pd.Series(values, dtype="datetime64[ns, UTC]")
            else:  # boolean
                data[name] = pd.Series(values, dtype=object if has_null else bool)
        return pd.DataFrame(data)

    def predict(self, columns: Columns, n_rows: int) -> Predictions:
        X = self.frame(columns)
        if self.classes is None:
            return _from_values(self.pipeline.predict(X))
        if self.gives_probabilities:
            return _from_probabilities(self.classes, np.asarray(self.pipeline.predict_proba(X)))
        return Predictions(np.asarray(self.pipeline.predict(X)).ravel().tolist(), None, [None] * n_rows)


class OnnxRuntime:
    """An ONNX export run by ONNX Runtime, fed one ``(n, 1)`` tensor per feature.

    ONNX Runtime computes trees in float32, so probabilities may differ from scikit-learn's by a
    small tolerance (measured at registration); labels agree.
    """

    name = "onnx"
    scorer = "the whole ONNX export in ONNX Runtime"
    fallback: Runtime | None = None  # scores the rows without a finite output (``finite``)

    def __init__(self, path: str, contract: Contract, classes: list[Any] | None,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        features = list(contract.columns)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = QUIET_ORT
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i.type for i in self.session.get_inputs()}
        if set(inputs) != set(features):
            raise ValueError(
                f"the ONNX export takes inputs {sorted(inputs)}, not one tensor per feature {sorted(features)}"
            )
        unknown = sorted({t for t in inputs.values() if t not in _ONNX_DTYPES})
        if unknown:
            raise ValueError(f"the ONNX export has input types serving cannot feed: {unknown}")
        self._inputs = [(name, _ONNX_DTYPES[inputs[name]]) for name in features]
        # float32 inputs are built together: one conversion and one clip per request, not per column
        self._float_inputs = [name for name, dtype in self._inputs if dtype is np.float32]
        self._other_inputs = [(name, dtype) for name, dtype in self._inputs if dtype is not np.float32]
        cannot_be_null = [name for name, dtype in self._inputs
                          if dtype in (np.int64, np.int32, np.bool_) and contract.columns[name].nullable]
        if cannot_be_null:
            raise ValueError(f"nullable feature(s) {cannot_be_null} have integer or boolean ONNX inputs, "
                             "which cannot carry a null")
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.classes = _python_classes(classes)

    def feed(self, columns: Columns, n_rows: int) -> dict[str, np.ndarray]:
        """Input tensors: nulls become NaN in float inputs; text values go through
        ``onnx_text`` (a null becomes ``""``, the ``missing_values`` of the exported categorical
        imputers; an empty string an unseen category, as in scikit-learn). (Integer and
        boolean inputs never see a null: ``__init__`` refuses them for nullable features.)"""
        return self._feed(columns, n_rows)[0]

    def _feed(self, columns: Columns, n_rows: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """``feed`` and the ``(inputs, rows)`` float32 block of the float inputs (None without any)."""
        feed: dict[str, np.ndarray] = {}
        block = None
        if self._float_inputs:
            block = np.array([columns[name] for name in self._float_inputs], dtype=np.float64)
            # Values beyond float32's range are clipped, not turned into infinities.
            block = np.clip(block, -FLOAT32_MAX, FLOAT32_MAX, out=block).astype(np.float32)
            for name, row in zip(self._float_inputs, block):
                feed[name] = row.reshape(n_rows, 1)
        for name, dtype in self._other_inputs:
            values = columns[name]
            if dtype is np.object_:
                array = np.array([onnx_text(v) for v in values], dtype=object)
            else:
                array = np.array(values, dtype=dtype)
            feed[name] = array.reshape(n_rows, 1)
        return feed, block

    def predict(self, columns: Columns, n_rows: int) -> Predictions:
        feed, block = self._feed(columns, n_rows)
        out = _from_outputs(self.classes, self.session.run(self._outputs, feed), n_rows)
        if self.fallback is None:
            return out
        return finite(out, columns, self.fallback, [] if block is None else beyond_safe(block, axis=0))


def _from_outputs(classes: list[Any] | None, outputs: list[Any], n_rows: int) -> Predictions:
    """The Predictions of an ONNX export's outputs (label, then probabilities for a classifier)."""
    if classes is None:
        return _from_values(outputs[0])
    probabilities = outputs[1] if len(outputs) > 1 else None
    if probabilities is None:
        return Predictions(np.asarray(outputs[0]).ravel().tolist(), None, [None] * n_rows)
    if isinstance(probabilities, list):  # a ZipMap output: one {class: p} dict per row
        probabilities = np.array([[row[c] for c in classes] for row in probabilities])
    probabilities = np.asarray(probabilities, dtype=np.float64)
    # float32 sums of tree votes overshoot by an ulp (a forest's 1.0000001 and -1.2e-7): a
    # probability outside [0, 1] breaks clients' logarithms. NaN stays NaN (``finite`` sees it).
    return _from_probabilities(classes, np.clip(probabilities, 0.0, 1.0, out=probabilities))


class EstimatorRuntime:
    """The pipeline's preprocessing computed with numpy (:meth:`ArrowFeatures.matrix_of`) and only
    the estimator's part of the ONNX export run by ONNX Runtime (``serein.batch.estimator_model``).

    The export's own preprocessing (string imputers, one-hot encoders and casts, one input per
    feature) costs much of its call: for the serving benchmark's pipeline (20 features, 40
    trees) the whole export takes ~70 µs for one row and 0.39-0.45 ms for 100, this runtime
    ~29 µs and 0.23-0.24 ms, with the same outputs (a logistic regression: 68 -> 28 µs and
    0.20 -> 0.14 ms). Used only for a version whose batch plan (``serein.batch_plan``) checked
    that preprocessing and the estimator's part against scikit-learn on its reference sample, and
    only when ``matrix_of`` gives the same matrix as the checked one for that sample (``prepare``
    in ``serein.serve.models``).
    """

    name = "onnx"
    scorer = "numpy preprocessing, then the export's estimator part in ONNX Runtime"
    fallback: Runtime | None = None  # scores the rows without a finite output (``finite``)

    def __init__(self, features: ArrowFeatures, estimator: bytes, classes: list[Any] | None, threads: int = 1) -> None:
        from serein.registry.onnx_export import session

        self.features = features
        self.session = session(estimator, threads=threads)
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.classes = _python_classes(classes)

    def predict(self, columns: Columns, n_rows: int) -> Predictions:
        matrix = self.features.matrix_of(columns, n_rows)
        out = _from_outputs(self.classes, self.session.run(self._outputs, {"X": matrix}), n_rows)
        if self.fallback is None:
            return out
        return finite(out, columns, self.fallback, beyond_safe(matrix, axis=1))


class TablesRuntime:
    """The pipeline's preprocessing computed with numpy (:meth:`ArrowFeatures.inputs_of`) and its
    trees scored as look-up tables by the compiled kernel (``serein.tree_tables``,
    ``serein.tree_kernel``) instead of ONNX Runtime's node-by-node traversal.

    Used only for a version whose batch plan checked the tables against scikit-learn on its
    reference sample (``estimator_runtime`` in ``serein.serve.models``), and only where the
    kernel is built: the tables' numpy path costs more per call than ONNX Runtime for a request's
    few rows. A tree only compares its inputs with thresholds, so a value clipped to float32's
    range takes the branch the pipeline's float64 value takes, and the leaf values' sums are
    finite: no row needs the pipeline again for its inputs (``finite`` still guards the outputs).
    """

    name = "onnx"  # the tables are compiled from the verified ONNX export
    scorer = "numpy preprocessing, then the trees as look-up tables (compiled kernel)"
    fallback: Runtime | None = None  # scores the rows without a finite output (``finite``)

    def __init__(self, features: ArrowFeatures, trees: TableTrees, classes: list[Any] | None) -> None:
        self.features = features
        self.trees = trees
        self.classes = _python_classes(classes)

    def predict(self, columns: Columns, n_rows: int) -> Predictions:
        out = _from_outputs(self.classes, self.trees.run(*self.features.inputs_of(columns, n_rows)), n_rows)
        return out if self.fallback is None else finite(out, columns, self.fallback)


def make_runtime(model: LoadedModel, threads: int = 1, prefer_onnx: bool = True) -> Runtime:
    """The fastest runtime that can serve ``model``: ONNX Runtime when an export exists and loads,
    else the scikit-learn pipeline (the reason for a fallback is logged)."""
    limit_threads(threads)
    if prefer_onnx and model.onnx_path:
        try:
            return OnnxRuntime(model.onnx_path, model.contract, model.classes, threads=threads)
        except Exception as exc:  # noqa: BLE001 - any load failure: the sklearn pipeline still serves
            log.warning("%s v%s: ONNX export not usable (%s); serving with scikit-learn",
                        model.name, model.version, exc)
    return SklearnRuntime(model.pipeline, model.contract, model.classes)
