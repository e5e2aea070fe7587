"""ONNX export of a fitted pipeline, accepted only when it agrees with scikit-learn on the holdout.

ONNX Runtime computes trees in float32, so outputs are never bit-identical: we measure the label
agreement and the largest probability (or, for regressors, prediction) difference on the holdout,
record both, and keep the export only within the stated tolerance. Otherwise (or when a step does
not convert) the reason is recorded and serving falls back to the sklearn pipeline.

Categorical ``SimpleImputer`` steps convert only with a string ``missing_values``: the exported
copy uses ``""``, so callers map missing categories to ``""`` (``onnx_feeds`` does). Categories
reach ONNX as strings, so the exported copy's categorical fill values and one-hot categories are
strings too (a boolean column's ``True`` becomes ``"True"``, as ``onnx_feeds`` writes it), except
that a pipeline which hands a boolean to its model as it is gets it as a number (``1.0``). A bare
estimator on numeric columns (its converter takes one matrix) gets one input per column, joined
by a Concat node in front of it.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from serein.data.contract import Contract

MISSING_CATEGORY = ""
# What a text value that is the empty string is fed to an export as: "" itself is the exported
# imputers' missing value (MISSING_CATEGORY), so a client's "" would be imputed, where scikit-learn
# takes it as a category (unseen by the one-hot encoder, unless it was fitted on one). No fitted
# category is this string, so the export's encoders see an unseen category too.
EMPTY_TEXT = "\u2400serein:empty-string"
MIN_LABEL_AGREEMENT = 0.999  # classifiers: share of holdout rows with the same predicted label
MAX_PROBA_DIFF = 0.05  # classifiers: largest absolute probability difference on the holdout
# classifiers: mean absolute probability difference on the holdout. A verified export differs from
# scikit-learn by float32 rounding (means of 6e-9 to 3e-8 measured for boosted and random trees,
# logistic regression and nearest neighbours on the demo data), with now and then a row whose value
# sits on a threshold (one tree's leaf apart): far below this. An encoding mismatch of a category, a
# null or a boolean shifts every row it touches, and passed the 0.05 maximum while off by 0.017.
MAX_MEAN_PROBA_DIFF = 1e-4
MAX_RELATIVE_DIFF = 1e-3  # regressors: largest |difference| / std of the predictions
MATRIX_INPUT = "serein_matrix"  # the one input of a model converted from a single matrix
# ONNX Runtime's log level for its sessions: fatal only. It writes its own (colour-coded, not JSON)
# lines on stderr, and an error it logs is also raised to the caller, which reports it.
QUIET_ORT = 4


@dataclass
class OnnxExport:
    """The outcome of an export: ``path`` is None when it was skipped (``reason`` says why)."""

    path: Path | None
    reason: str
    inputs: dict[str, str] = field(default_factory=dict)
    label_agreement: float | None = None
    max_diff: float | None = None

    def tags(self) -> dict[str, str]:
        out = {"serein.onnx": "ok" if self.path is not None else f"skipped: {self.reason}"}
        if self.label_agreement is not None:
            out["serein.onnx.label_agreement"] = f"{self.label_agreement:.6f}"
        if self.max_diff is not None:
            out["serein.onnx.max_diff"] = f"{self.max_diff:.6g}"
        return out


def onnx_inputs(contract: Contract, features: list[str]) -> dict[str, str]:
    """Each feature's ONNX input kind: ``float`` for numeric columns, ``string`` otherwise."""
    return {f: "float" if contract.columns[f].numeric else "string" for f in features}


def onnx_text(value: Any) -> str:
    """A text feature's value as an export's string input takes it: a null as the imputers'
    missing value, the empty string as ``EMPTY_TEXT``, anything else as its text.

    >>> onnx_text(None), onnx_text("Oslo"), onnx_text("") == EMPTY_TEXT
    ('', 'Oslo', True)
    """
    return MISSING_CATEGORY if value is None else (str(value) or EMPTY_TEXT)


def classifier_agrees(agreement: float, gaps: np.ndarray) -> bool:
    """Whether a classifier's export (or a part of it) agrees with scikit-learn within the
    registration's limits: the share of rows given the same label (``agreement``), and the largest
    and the mean of the absolute probability differences ``gaps``."""
    return bool(agreement >= MIN_LABEL_AGREEMENT and gaps.max(initial=0.0) <= MAX_PROBA_DIFF
                and (not gaps.size or gaps.mean() <= MAX_MEAN_PROBA_DIFF))


def regressor_agrees(differences: np.ndarray, reference: np.ndarray) -> bool:
    """Whether a regressor's export (or a part of it) agrees with scikit-learn's predictions
    ``reference``: the largest absolute difference within ``MAX_RELATIVE_DIFF`` of their spread."""
    return bool(differences.max(initial=0.0) <= MAX_RELATIVE_DIFF * max(float(np.std(reference)), 1e-12))


def onnx_feeds(X: pd.DataFrame, inputs: dict[str, str]) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs for the rows of ``X``: one ``(n, 1)`` array per feature; missing
    numbers become NaN, and text values go through :func:`onnx_text`."""
    import pandas as pd

    feeds = {}
    for name, kind in inputs.items():
        col = X[name]
        if kind == "float":
            feeds[name] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)
        else:
            values = col.astype(object).where(col.notna(), None)
            feeds[name] = np.array([onnx_text(v) for v in values], dtype=object).reshape(-1, 1)
    return feeds


def _steps(est: Any) -> Any:
    """``est`` and every step inside it, through Pipelines and ColumnTransformers (which are
    yielded too: callers pick the kinds they look for)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    yield est
    if isinstance(est, Pipeline):
        for _, step in est.steps:
            yield from _steps(step)
    elif isinstance(est, ColumnTransformer):
        for _, trans, _ in est.transformers_:
            yield from _steps(trans)


def _imputers(est: Any) -> Any:
    from sklearn.impute import SimpleImputer

    return (step for step in _steps(est) if isinstance(step, SimpleImputer))


def _encoders(est: Any) -> Any:
    from sklearn.preprocessing import OneHotEncoder

    return (step for step in _steps(est) if isinstance(step, OneHotEncoder))


def _as_strings(categories: np.ndarray) -> np.ndarray:
    """An encoder's categories as ONNX sees them: text, with a missing category (NaN or None,
    learnt when no imputer ran before the encoder) as ``MISSING_CATEGORY``, the string missing
    values are fed as (``str`` would make it ``"nan"``, which no input ever is)."""
    return np.array([MISSING_CATEGORY if _missing(value) else str(value) for value in categories], dtype=object)


def _missing(value: Any) -> bool:
    """Whether an encoder's category stands for a missing value: None, NaN or pandas' NA.

    >>> import pandas as pd
    >>> [_missing(v) for v in (None, float("nan"), pd.NA, "a", 0)]
    [True, True, True, False, False]
    """
    try:
        return value is None or bool(value != value)
    except TypeError:  # pandas' NA is neither equal nor unequal to itself
        return True


def _keep_unimputed_categories(pipeline: Any) -> None:
    """In an imputer followed by a one-hot encoder, a column whose encoder learnt a missing
    category was not imputed by scikit-learn: its missing values were None, which an imputer of
    NaN leaves alone in an object column (a nullable boolean column arrives that way). The
    exported imputer, which imputes ``""`` (every missing category as ONNX is fed), must leave
    that column alone too, so its fill becomes ``""``: the encoder then sends ``""`` to the
    missing category's column, as scikit-learn sends None (rather than to the fill's column)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    for step in _steps(pipeline):
        if not isinstance(step, Pipeline):
            continue
        for (_, first), (_, second) in itertools.pairwise(step.steps):
            if (isinstance(first, SimpleImputer) and isinstance(second, OneHotEncoder)
                    and first.missing_values == MISSING_CATEGORY and len(first.statistics_) == len(second.categories_)):
                for j, categories in enumerate(second.categories_):
                    if categories.dtype == object and any(_missing(c) for c in categories):
                        first.statistics_[j] = MISSING_CATEGORY


BOOSTING_OPSETS = {"": 17, "ai.onnx.ml": 3}  # the newest onnxmltools' tree converters accept


def _boosting_opsets(pipeline: Any) -> dict[str, int] | None:
    """For a pipeline holding LightGBM or XGBoost models: register onnxmltools' converters for
    their classes with skl2onnx and return the opsets to convert at; None for any other. The
    pipeline is the export's own copy: its XGBoost boosters forget their feature names."""
    found = {type(step) for step in _steps(pipeline) if type(step).__module__.split(".")[0] in ("lightgbm", "xgboost")}
    if not found:
        return None
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    for step in _steps(pipeline):
        if type(step).__module__.startswith("xgboost"):
            step.get_booster().feature_names = None  # the converter reads features as f0, f1, ... only
    for cls in found:
        library = cls.__module__.split(".")[0]
        if library == "lightgbm":
            from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm as converter
        else:
            from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost as converter
        if hasattr(cls, "predict_proba"):
            update_registered_converter(cls, f"{library}.{cls.__name__}", calculate_linear_classifier_output_shapes,
                                        converter, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
        else:
            update_registered_converter(cls, f"{library}.{cls.__name__}", calculate_linear_regressor_output_shapes,
                                        converter)
    return BOOSTING_OPSETS


def convert(pipeline: Any, inputs: dict[str, str], classifier: bool) -> bytes:
    """The serialized ONNX model of a fitted pipeline (raises when a step does not convert)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    exported = copy.deepcopy(pipeline)
    for imputer in _imputers(exported):
        if getattr(imputer, "statistics_", np.empty(0)).dtype == object:
            imputer.missing_values = MISSING_CATEGORY
            imputer.statistics_ = imputer.statistics_.astype(str)  # booleans arrive as "True"/"False"
    _keep_unimputed_categories(exported)
    for encoder in _encoders(exported):
        encoder.categories_ = [_as_strings(c) if c.dtype == object else c for c in encoder.categories_]
    types = [(n, FloatTensorType([None, 1]) if k == "float" else StringTensorType([None, 1])) for n, k in inputs.items()]
    final = exported.steps[-1][1] if hasattr(exported, "steps") else exported
    options = {id(final): {"zipmap": False}} if classifier else None
    opsets = _boosting_opsets(exported)
    try:
        model = convert_sklearn(exported, initial_types=types, options=options, target_opset=opsets)
    except Exception:
        if any(kind != "float" for kind in inputs.values()):
            raise
        # A bare estimator (a forest, boosting, a linear model) or a pipeline whose first step
        # takes one matrix: converted with one input, then fed by the columns through a Concat.
        matrix = [(MATRIX_INPUT, FloatTensorType([None, len(inputs)]))]
        return _columns_into_matrix(convert_sklearn(exported, initial_types=matrix, options=options,
                                                    target_opset=opsets), list(inputs)).SerializeToString()
    return _restore_input_names(model, list(inputs)).SerializeToString()


def _columns_into_matrix(model: Any, names: list[str]) -> Any:
    """``model`` (one float input ``MATRIX_INPUT`` of ``len(names)`` columns) with one ``(n, 1)``
    input per column instead, joined in order by a Concat node, so it is fed like any export.
    Inner variables named like a column (a column called ``label``) are renamed first."""
    from onnx import TensorProto, helper

    graph = model.graph
    inner = _inner_names(graph)
    taken = inner | set(names) | {MATRIX_INPUT}
    renamed: dict[str, str] = {}
    for name in sorted(set(names) & inner):
        fresh = next(f"{name}_{i}" for i in itertools.count(1) if f"{name}_{i}" not in taken)
        taken.add(fresh)
        renamed[name] = fresh
    for node in graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    for item in (*graph.output, *graph.initializer, *graph.value_info):
        item.name = renamed.get(item.name, item.name)
    del graph.input[:]
    graph.input.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]) for name in names)
    graph.node.insert(0, helper.make_node("Concat", names, [MATRIX_INPUT], axis=1, name="serein_columns"))
    return model


def _inner_names(graph: Any) -> set[str]:
    """Every variable name used inside ``graph`` (besides its inputs)."""
    return ({n for node in graph.node for n in (*node.input, *node.output)} | {o.name for o in graph.output}
            | {i.name for i in graph.initializer} | {v.name for v in graph.value_info}) - {MATRIX_INPUT}


def _restore_input_names(model: Any, names: list[str]) -> Any:
    """``model`` with its graph inputs named exactly as the columns: skl2onnx renames inputs
    whose names are not identifiers (``"Age (years)"`` becomes ``Age__years_``), while ONNX
    itself accepts any string, and callers feed columns by their own names."""
    graph = model.graph
    renamed = {given.name: name for given, name in zip(graph.input, names, strict=True) if given.name != name}
    for given in graph.input:
        given.name = renamed.get(given.name, given.name)
    for node in graph.node:
        for i, source in enumerate(node.input):
            if source in renamed:
                node.input[i] = renamed[source]
    return model


def session(model: bytes | str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime session with a bounded thread pool (cores are shared)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = QUIET_ORT  # its failures reach the caller as exceptions
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])


def export_onnx(pipeline: Any, X: pd.DataFrame, contract: Contract, features: list[str], task: str,
                path: Path) -> OnnxExport:
    """Convert ``pipeline``, compare it with scikit-learn on the holdout ``X`` and write it to
    ``path`` when it agrees within tolerance."""
    inputs = onnx_inputs(contract, features)
    classifier = task == "classification"
    if classifier and not hasattr(pipeline, "predict_proba"):
        # Its export's second output would be decision scores, which serving would take for
        # probabilities: scikit-learn serves it (labels only).
        return OnnxExport(None, "the classifier has no predict_proba (its export gives scores, not probabilities)",
                          inputs)
    try:
        try:
            blob = convert(pipeline, inputs, classifier)
        except Exception:
            # Booleans go in as "True"/"False" for encoders and imputers; a boolean the pipeline
            # hands on to its model as it is (passthrough) must go in as a number (1.0/0.0).
            booleans = [f for f in features if contract.columns[f].type == "boolean"]
            if not booleans:
                raise
            inputs = {**inputs, **dict.fromkeys(booleans, "float")}
            blob = convert(pipeline, inputs, classifier)
        outputs = session(blob).run(None, onnx_feeds(X[features], inputs))
    except Exception as exc:  # any converter/runtime failure means: serve with sklearn
        return OnnxExport(None, f"conversion failed: {type(exc).__name__}: {str(exc)[:300]}", inputs)
    if classifier:
        labels, proba = np.asarray(outputs[0]).ravel(), np.asarray(outputs[1])
        agreement = float(np.mean(labels == np.asarray(pipeline.predict(X[features]))))
        gaps = np.abs(proba - pipeline.predict_proba(X[features]))
        diff = float(np.max(gaps)) if len(X) else 0.0
        mean = float(np.mean(gaps)) if len(X) else 0.0
        ok = classifier_agrees(agreement, gaps)
        limits = (f"label agreement >= {MIN_LABEL_AGREEMENT}, max probability difference <= {MAX_PROBA_DIFF}, "
                  f"mean <= {MAX_MEAN_PROBA_DIFF:g}")
    else:
        pred = np.asarray(outputs[0]).ravel().astype(float)
        ref = np.asarray(pipeline.predict(X[features]), dtype=float)
        agreement = None
        diff = float(np.max(np.abs(pred - ref))) if len(X) else 0.0
        ok = regressor_agrees(np.abs(pred - ref), ref)
        limits = f"max difference <= {MAX_RELATIVE_DIFF} x std of predictions"
    if not ok:
        shown = f"label agreement {agreement:.4f}, mean difference {mean:.3g}, " if agreement is not None else ""
        return OnnxExport(None, f"disagrees with scikit-learn on the holdout ({shown}max difference {diff:.4g}; "
                                f"required {limits})", inputs, agreement, diff)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return OnnxExport(path, f"agrees on {len(X)} holdout rows ({limits})", inputs, agreement, diff)
