"""TableTrees (``serein.tree_tables``) against ONNX Runtime on the same exported trees: binary
HistGradientBoosting classifiers (31 and up to 64 leaves per tree), a multi-class one and a
regressor, probed on, just below and just above every threshold, with NaN, infinities and unseen
categories; and the ensembles it declines. Each comparison runs twice: with the compiled kernel
(``serein.tree_kernel``) and with numpy (where the kernel is not built)."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import helper
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier

from serein.batch import estimator_model
from serein.data.profiling import suggest_contract
from serein.registry.onnx_export import convert, onnx_inputs, session
from serein.train.pipeline import build_pipeline
from serein import tree_kernel, tree_tables
from serein.tree_tables import TableTrees

NUMERIC = ["age", "income", "credit_score", "term_months"]
CATEGORICAL = ["employment", "region"]


def _compiler() -> str | None:
    return shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) or shutil.which("cc")


def _cut(credit_df: pd.DataFrame, tmp_path: Path, estimator: Any, target: pd.Series,
         classifier: bool) -> tuple[bytes, list[int | None]]:
    """The estimator's part (no missing-value tracks) of the export of ``estimator`` fitted on
    1,500 applications, and its matrix layout (numbers first, then one-hot text columns)."""
    columns = NUMERIC + CATEGORICAL
    train = credit_df[columns].iloc[:1500]
    pipeline = build_pipeline(NUMERIC, CATEGORICAL, estimator, scale=False).fit(train, target.iloc[:1500])
    path = tmp_path / "model.onnx"
    path.write_bytes(convert(pipeline, onnx_inputs(suggest_contract(train), columns), classifier=classifier))
    layout = [None] * len(NUMERIC) + [len(c) for c in pipeline[0].named_transformers_["categorical"][-1].categories_]
    width = sum(1 if k is None else k for k in layout)
    return estimator_model(str(path), width, nan_free=True), layout


def _ensemble(model: bytes) -> tuple[onnx.NodeProto, dict[str, Any]]:
    node = onnx.load_from_string(model).graph.node[0]
    return node, {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _probe(model: bytes, layout: list[int | None], rows: int, seed: int = 0) -> list[np.ndarray]:
    """Inputs for ``layout``: each number drawn from its column's thresholds, the next float32
    below and above each, NaN, +-inf and 0; each category code from all codes (the last: unseen)."""
    _, attrs = _ensemble(model)
    rng = np.random.default_rng(seed)
    inputs, at = [], 0
    for k in layout:
        if k is None:
            cuts = np.array([v for f, v, m in zip(attrs["nodes_featureids"], attrs["nodes_values"],
                                                  attrs["nodes_modes"], strict=True) if f == at and m != b"LEAF"],
                            dtype=np.float32)
            values = np.concatenate([cuts, np.nextafter(cuts, np.float32(np.inf)),
                                     np.nextafter(cuts, np.float32(-np.inf)),
                                     np.array([np.nan, np.inf, -np.inf, 0.0], dtype=np.float32)])
            inputs.append(rng.choice(values, rows))
            at += 1
        else:
            inputs.append(rng.integers(0, k + 1, rows))
            at += k
    return inputs


def _blocks(inputs: list[np.ndarray], layout: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """The inputs as ``TableTrees.run`` takes them: a block of numbers and a block of codes."""
    numbers = [values for values, k in zip(inputs, layout, strict=True) if k is None]
    codes = [values for values, k in zip(inputs, layout, strict=True) if k is not None]
    rows = len(inputs[0])
    return (np.array(numbers, dtype=np.float32).reshape(len(numbers), rows),
            np.array(codes, dtype=np.intp).reshape(len(codes), rows))


def _matrix(inputs: list[np.ndarray], layout: list[int | None]) -> np.ndarray:
    """The float32 matrix the inputs stand for: numbers as they are, codes one-hot."""
    parts = [values.reshape(-1, 1) if k is None else np.eye(k + 1, k, dtype=np.float32)[values]
             for values, k in zip(inputs, layout, strict=True)]
    return np.hstack(parts).astype(np.float32)


def _saved(trees: TableTrees, tmp_path: Path) -> TableTrees:
    """``trees`` saved with ``numpy.savez`` (no pickles) and read back, as batch plans keep them."""
    np.savez(tmp_path / "tables.npz", **trees.to_arrays())
    with np.load(tmp_path / "tables.npz", allow_pickle=False) as arrays:
        return TableTrees.from_arrays(dict(arrays))


def _leaves_per_tree(model: bytes) -> int:
    _, attrs = _ensemble(model)
    trees = [t for t, m in zip(attrs["nodes_treeids"], attrs["nodes_modes"], strict=True) if m == b"LEAF"]
    return int(np.bincount(trees).max())


@pytest.mark.usefixtures("scorer")
@pytest.mark.parametrize(("leaves", "text_labels"), [(31, False), (60, True)])
def test_classifier_matches_onnx_runtime(credit_df: pd.DataFrame, tmp_path: Path, leaves: int, text_labels: bool) -> None:
    estimator = HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=leaves, min_samples_leaf=5, random_state=0)
    target = credit_df["default"].map({0: "repaid", 1: "default"}) if text_labels else credit_df["default"]
    cut, layout = _cut(credit_df, tmp_path, estimator, target, classifier=True)
    assert (_leaves_per_tree(cut) > 32) == (leaves > 32)  # 60: the 64-bit masks
    trees = TableTrees.compile(cut, layout)
    assert trees is not None
    inputs = _probe(cut, layout, 20_000)
    label, proba = trees.run(*_blocks(inputs, layout))
    expected_label, expected_proba = session(cut).run(None, {"X": _matrix(inputs, layout)})
    np.testing.assert_allclose(proba, expected_proba, atol=1e-6)
    np.testing.assert_array_equal(label, expected_label)
    assert [out.shape for out in trees.run(*_blocks([values[:0] for values in inputs], layout))] == [(0,), (0, 2)]  # a chunk of rejects
    saved_label, saved_proba = _saved(trees, tmp_path).run(*_blocks(inputs, layout))
    np.testing.assert_array_equal(saved_proba, proba)
    np.testing.assert_array_equal(saved_label, label)


@pytest.mark.usefixtures("scorer")
def test_multiclass_classifier_matches_onnx_runtime(credit_df: pd.DataFrame, tmp_path: Path) -> None:
    """One score per class (a tree per class and iteration) and a softmax."""
    grade = pd.cut(credit_df["loan_amount"].fillna(0.0), 3, labels=["small", "medium", "large"]).astype(str)
    estimator = HistGradientBoostingClassifier(max_iter=15, random_state=0)
    cut, layout = _cut(credit_df, tmp_path, estimator, grade, classifier=True)
    trees = TableTrees.compile(cut, layout)
    assert trees is not None and trees.link == "softmax"
    inputs = _probe(cut, layout, 20_000, seed=2)
    label, proba = trees.run(*_blocks(inputs, layout))
    expected_label, expected_proba = session(cut).run(None, {"X": _matrix(inputs, layout)})
    assert proba.shape == expected_proba.shape == (20_000, 3)
    np.testing.assert_allclose(proba, expected_proba, atol=1e-6)
    np.testing.assert_array_equal(label, expected_label)
    saved_label, saved_proba = _saved(trees, tmp_path).run(*_blocks(inputs, layout))
    np.testing.assert_array_equal(saved_proba, proba)
    np.testing.assert_array_equal(saved_label, label)


@pytest.mark.usefixtures("scorer")
def test_regressor_matches_onnx_runtime(credit_df: pd.DataFrame, tmp_path: Path) -> None:
    estimator = HistGradientBoostingRegressor(max_iter=30, random_state=0)
    cut, layout = _cut(credit_df, tmp_path, estimator, credit_df["loan_amount"], classifier=False)
    trees = TableTrees.compile(cut, layout)
    assert trees is not None
    inputs = _probe(cut, layout, 20_000, seed=1)
    (predicted,) = trees.run(*_blocks(inputs, layout))
    (expected,) = session(cut).run(None, {"X": _matrix(inputs, layout)})
    assert predicted.shape == expected.shape
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    np.testing.assert_array_equal(_saved(trees, tmp_path).run(*_blocks(inputs, layout))[0], predicted)
    with pytest.raises(ValueError):
        TableTrees.from_arrays({**trees.to_arrays(), "link": np.array("cubic")})


def test_declines_what_it_does_not_reproduce(credit_df: pd.DataFrame, tmp_path: Path) -> None:
    """More than 64 leaves in a tree, a random forest's averaged votes, tests that send NaN to
    their true branch."""
    wide = HistGradientBoostingClassifier(max_iter=3, max_leaf_nodes=200, min_samples_leaf=2, random_state=0)
    cut, layout = _cut(credit_df, tmp_path, wide, credit_df["default"], classifier=True)
    assert _leaves_per_tree(cut) > 64
    assert TableTrees.compile(cut, layout) is None

    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)  # averaged votes, no link
    cut, layout = _cut(credit_df, tmp_path, forest, credit_df["default"], classifier=True)
    assert _leaves_per_tree(cut) <= 8 and TableTrees.compile(cut, layout) is None

    cut, layout = _cut(credit_df, tmp_path, HistGradientBoostingClassifier(max_iter=5), credit_df["default"],
                       classifier=True)
    assert TableTrees.compile(cut, layout) is not None
    model = onnx.load_from_string(cut)
    _, attrs = _ensemble(cut)
    model.graph.node[0].attribute.append(helper.make_attribute("nodes_missing_value_tracks_true",
                                                               [1] * len(attrs["nodes_modes"])))
    assert TableTrees.compile(model.SerializeToString(), layout) is None


def test_kernel_is_built_where_a_compiler_is() -> None:
    """Installing serein with a C compiler on the machine builds the kernel (hatch_build.py)."""
    if _compiler() is None:
        pytest.skip("no C compiler here: serein scores tree tables with numpy")
    assert tree_kernel.library() is not None, f"{tree_kernel.LIBRARY} is missing: reinstall serein (pip install -e .)"


def test_kernel_refuses_what_it_would_read_out_of_bounds(credit_df: pd.DataFrame, tmp_path: Path) -> None:
    """Tables from a damaged plan file and category codes outside a table are refused with
    ValueError (a batch plan is then compiled again), never read past an array's end."""
    if tree_kernel.library() is None:
        pytest.skip("the C kernel is not built here (no C compiler when serein was installed)")
    estimator = HistGradientBoostingClassifier(max_iter=5, random_state=0)
    cut, layout = _cut(credit_df, tmp_path, estimator, credit_df["default"], classifier=True)
    trees = TableTrees.compile(cut, layout)
    assert trees is not None and trees.kernel is not None
    arrays = trees.to_arrays()
    padded = next(name for name in arrays if name.startswith("cuts"))
    with pytest.raises(ValueError, match="padded"):
        TableTrees.from_arrays({**arrays, padded: arrays[padded][:-1]})
    with pytest.raises(ValueError, match="masks"):
        TableTrees.from_arrays({**arrays, "masks0": arrays["masks0"][:, :-1]})
    with pytest.raises(ValueError, match="leaf values"):
        TableTrees.from_arrays({**arrays, "leaf_values": arrays["leaf_values"][:, :1]})
    inputs = _probe(cut, layout, 100)
    text = layout.index(next(k for k in layout if k is not None))
    inputs[text] = inputs[text].copy()
    inputs[text][7] = layout[text] + 1  # one past the unseen-category code
    with pytest.raises(ValueError, match="row 7"):
        trees.run(*_blocks(inputs, layout))


def test_an_ensemble_beyond_the_kernels_stack_budget_is_scored_with_numpy(credit_df: pd.DataFrame, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel keeps one mask per tree on the thread's stack: an ensemble of more than
    ``MAX_TREES`` trees gets no kernel and is scored by numpy, with the same answers."""
    estimator = HistGradientBoostingClassifier(max_iter=5, random_state=0)
    cut, layout = _cut(credit_df, tmp_path, estimator, credit_df["default"], classifier=True)
    probe = _probe(cut, layout, 500)
    monkeypatch.setattr(tree_kernel, "MAX_TREES", 4)
    trees = TableTrees.compile(cut, layout)
    assert trees is not None and trees.kernel is None
    expected = session(cut).run(None, {"X": _matrix(probe, layout)})[1]
    np.testing.assert_allclose(trees.run(*_blocks(probe, layout))[1], expected, atol=1e-6)
