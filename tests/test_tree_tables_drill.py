"""Regression tests from a correctness drill of the look-up tables (``serein.tree_tables``) against
scikit-learn: what the drill found wrong, each pinned down on a small model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from test_tree_tables import _blocks, _cut, _probe

from serein import tree_kernel, tree_tables
from serein.tree_tables import DIGEST, TableTrees


@pytest.mark.usefixtures("scorer")
def test_saved_tables_mixed_with_another_ensembles_or_changed_are_refused(credit_df: pd.DataFrame,
                                                                          tmp_path: Path) -> None:
    """A batch plan's tables file whose arrays were changed, or partly taken from another model's
    plan with the same inputs, used to load as well-formed tables and score wrong answers (a
    swapped ``base`` or ``inputs1``, a threshold or mask changed): every such file is refused
    with ValueError, so the plan is compiled again from the export."""
    target = credit_df["default"].map({0: "repaid", 1: "default"})
    cut, layout = _cut(credit_df, tmp_path, HistGradientBoostingClassifier(max_iter=6, random_state=0), target, True)
    other_cut, other_layout = _cut(credit_df.iloc[::-1].reset_index(drop=True), tmp_path,
                                   HistGradientBoostingClassifier(max_iter=4, max_leaf_nodes=9, random_state=1),
                                   target.iloc[::-1].reset_index(drop=True), True)
    assert layout == other_layout
    ours, theirs = TableTrees.compile(cut, layout), TableTrees.compile(other_cut, layout)
    assert ours is not None and theirs is not None
    arrays, other = ours.to_arrays(), theirs.to_arrays()
    inputs = _blocks(_probe(cut, layout, 500), layout)
    np.testing.assert_array_equal(TableTrees.from_arrays(arrays).run(*inputs)[1], ours.run(*inputs)[1])

    for name in sorted(set(arrays) & set(other) - {DIGEST}):
        if not np.array_equal(arrays[name], other[name]):
            with pytest.raises((ValueError, KeyError)):  # what serein.batch_plan reads as "compile again"
                TableTrees.from_arrays({**arrays, name: other[name]})
    for name, array in arrays.items():
        if name != DIGEST and array.dtype.kind in "iuf" and array.size:
            changed = array.copy()
            changed.flat[array.size // 2] += 1
            with pytest.raises((ValueError, KeyError)):
                TableTrees.from_arrays({**arrays, name: changed})
    with pytest.raises(ValueError):  # saved before tables carried a digest: compiled again
        TableTrees.from_arrays({name: array for name, array in arrays.items() if name != DIGEST})


def test_saved_tables_whose_inputs_do_not_fit_the_layout_are_refused(credit_df: pd.DataFrame, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the kernel (whose own checks guard its reads), the numpy path checked nothing: a
    text column's table with fewer codes than the column has categories silently picked other
    rows of a merged table. Such tables are refused even with a digest that matches them."""
    monkeypatch.setattr(tree_tables, "kernel_for", lambda *args: None)
    cut, layout = _cut(credit_df, tmp_path, HistGradientBoostingClassifier(max_iter=3, random_state=0),
                       credit_df["default"], True)
    trees = TableTrees.compile(cut, layout)
    assert trees is not None
    text = next(p for p, k in enumerate(layout) if k is not None)
    at = next(i for i, table in enumerate(trees.tables) if text in table.inputs)
    arrays = trees.to_arrays()
    layout_changed = arrays["layout"].copy()
    layout_changed[text] += 1  # one more category than its table has codes for
    for changed in ({**arrays, "layout": layout_changed},
                    {**arrays, f"inputs{at}": arrays[f"inputs{at}"][::-1].copy()}):
        changed[DIGEST] = np.array(tree_tables._digest(changed))
        if np.array_equal(changed[f"inputs{at}"], arrays[f"inputs{at}"]) and changed["layout"] is arrays["layout"]:
            continue  # a table of one input: reversing changes nothing
        with pytest.raises(ValueError, match="layout"):
            TableTrees.from_arrays(changed)


def test_a_null_entry_of_a_text_columns_dictionary_takes_the_imputed_category() -> None:
    """Arrow lets a dictionary hold a null (``dictionary_encode(null_encoding="encode")``, Arrow
    files written that way): such rows are nulls, which the pipeline imputes, but the look-up
    tables' inputs (and the estimator's matrix) coded them as an unseen category."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from serein.arrow_features import ArrowFeatures, _Block

    features = ArrowFeatures([_Block(["x"], np.array([0.0])),
                              _Block(["city"], np.array(["Oslo"], dtype=object), categories=[["Lyon", "Oslo"]])])
    city = pa.array(["Lyon", None, "Rome", "Oslo", None])
    expected = [[0, 1, 2, 1, 1]]  # Lyon, the fill (Oslo), unseen, Oslo, the fill
    for column in (city, pc.dictionary_encode(city), pc.dictionary_encode(city, null_encoding="encode"),
                   pc.dictionary_encode(city, null_encoding="encode").slice(1)):
        batch = pa.RecordBatch.from_arrays([pa.array(np.arange(len(column), dtype=np.float64)), column],
                                           names=["x", "city"])
        _, codes = features.inputs(batch)
        assert codes.tolist() == [expected[0][5 - len(column):]]
        assert features.matrix(batch)[:, 1:].tolist() == np.eye(3, 2)[expected[0][5 - len(column):]].tolist()
    _, served = features.inputs_of({"x": np.zeros(5), "city": city.to_pylist()}, 5)
    assert served.tolist() == expected
