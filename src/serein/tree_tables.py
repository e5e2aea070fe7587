"""Tree ensembles scored by table look-ups instead of node-by-node traversal (batch scoring).

A tree of at most 64 leaves is evaluated for many rows at once in the manner of QuickScorer
(Lucchese et al., SIGIR 2015). Number its leaves left to right: a test ``x <= t`` that fails rules
out every leaf of its true (left) branch, and the leaf a row reaches is the leftmost leaf that no
failing test rules out. For one input column, which tests fail depends only on how many of the
column's thresholds lie below the value, so a table indexed by that count holds, per tree, the
bitmask of the leaves still possible; a row's leaf in each tree is the lowest set bit of the AND of
its inputs' entries. A one-hot encoded text column is one input indexed by its category (the
entries of its 0/1 columns combined), and inputs with few entries share one table (indexed in mixed
radix). A row then costs a branchless search per number column and one look-up and AND per table.
The compiled kernel (:mod:`serein.tree_kernel`, built when serein is installed) does that row by
row without the GIL; where it is not built, numpy does it by blocks of rows (``_scores``, 2.8x
the CPU). Either is a fraction of ONNX Runtime's node-by-node traversal for the ensembles serein
trains (HistGradientBoosting: ``BRANCH_LEQ`` tests, at most 31 leaves per tree).

Compiled only from what it reproduces exactly, an ONNX ``TreeEnsembleClassifier`` (two classes with
one score and a logistic link, or one score per class and a softmax) or ``TreeEnsembleRegressor``
(one target, summed): every test ``BRANCH_LEQ``,
none sending missing values to its true branch (NaN then fails every test, as in ONNX Runtime), at
most 64 leaves per tree, thresholds as ``nodes_values``. Anything else compiles to None and ONNX
Runtime scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serein.tree_kernel import kernel_for

BLOCK_ROWS = 4096  # rows per pass: the running masks (rows x trees) stay in the core's cache
# Inputs are merged into one table while it stays this small: fewer tables, fewer gathers per row.
# 1 MB against 256 KB: 10 -> 8 tables for the drift benchmark's model, its 1M-row scoring on two
# threads 10 % faster (median of 7 paired runs, on a VM with 2 MB of L2 cache per core).
TABLE_BYTES = 1024 * 1024
ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
MISSING_TRACKS = "nodes_missing_value_tracks_true"  # ONNX tree ensembles: where NaN goes at each node
DIGEST = "digest"  # among the arrays of to_arrays: the sha256 of all the others (see _digest)


@dataclass
class _Tests:
    """The tests of one matrix column: thresholds (float32) with the tree each sits in and the
    leaves its true branch holds (a bitmask)."""

    thresholds: list[float]
    trees: list[int]
    masks: list[int]


@dataclass
class _Cuts:
    """The sorted distinct thresholds of a number input, padded with +inf to ``2**m - 1`` entries
    so that :meth:`failing` can search them level by level without branches."""

    padded: np.ndarray
    count: int

    @classmethod
    def of(cls, cuts: np.ndarray) -> _Cuts:
        padded = np.full((1 << len(cuts).bit_length()) - 1, np.inf, dtype=np.float32)
        padded[:len(cuts)] = cuts
        return cls(padded, len(cuts))

    def failing(self, values: np.ndarray) -> np.ndarray:
        """For each value ``x``, how many thresholds ``t`` fail the test ``x <= t``: those below
        ``x``, every one for NaN (``np.searchsorted(cuts, values)``, which it matches, costs ~1.8x
        more: a binary search per value, whose branches the CPU cannot predict)."""
        fails = np.empty(len(values), dtype=np.bool_)
        probe = np.empty(len(values), dtype=np.float32)
        added = np.empty(len(values), dtype=np.intp)
        step = (len(self.padded) + 1) // 2
        # the first level probes one threshold for every row: a comparison with a scalar
        np.logical_not(np.less_equal(values, self.padded[step - 1], out=fails), out=fails)
        found = np.multiply(fails, step, dtype=np.intp)
        step //= 2
        while step:  # invariant: the tests of padded[:found] fail, and those of padded[found + 2 * step - 1:] pass
            # padded[found + step - 1] through a view, so no index array is made; found + step - 1
            # is always in range, and mode="clip" spares take its buffered bounds check
            np.take(self.padded[step - 1:], found, out=probe, mode="clip")
            np.logical_not(np.less_equal(values, probe, out=fails), out=fails)
            found += np.multiply(fails, step, out=added)  # (faster than a masked add)
            step //= 2
        return np.minimum(found, self.count, out=found)  # NaN fails the +inf padding too


@dataclass
class _Table:
    """Per-tree leaf bitmasks by code, and how a row's code is computed from the inputs: input
    ``k`` contributes ``code_k * radix_k``; ``cuts`` turns a number input into its code."""

    masks: np.ndarray  # (codes, trees)
    inputs: list[int]
    radixes: list[int]
    cuts: list[_Cuts | None]  # a number input's thresholds, None for a category code

    @property
    def sizes(self) -> list[int]:
        """How many codes each input has, from the radixes (mixed radix: each radix is the product
        of the later inputs' sizes, the last is 1); ValueError when they do not describe the masks.

        >>> _Table(np.zeros((24, 1)), [0, 1, 2], [12, 3, 1], [None] * 3).sizes
        [2, 4, 3]
        """
        sizes, above = [], len(self.masks)
        for radix in self.radixes:
            if radix < 1 or above % radix:
                raise ValueError("a table's radixes do not match its masks")
            sizes.append(above // radix)
            above = radix
        if above != 1:
            raise ValueError("a table's radixes do not match its masks")
        return sizes


class TableTrees:
    """A compiled tree ensemble: :meth:`run` takes the inputs of ``layout`` as two blocks (float32
    numbers, and category codes for one-hot inputs) and returns what ONNX Runtime's node would:
    ``[labels, probabilities]`` for a classifier, ``[predictions (rows, 1)]`` for a regressor."""

    def __init__(self, tables: list[_Table], ensemble: _Ensemble, layout: Sequence[int | None]) -> None:
        trees, leaves, scores = ensemble.leaf_values.shape
        self.layout = list(layout)
        # each input's slot (row) in its block, the numbers' or the codes', counted in layout order
        self.slots = [sum(1 for k in self.layout[:position] if (k is None) == (kind is None))
                      for position, kind in enumerate(self.layout)]
        self.tables = tables
        self.leaf_values = ensemble.leaf_values.reshape(trees * leaves, scores)  # rows: see _leaves
        self.base = ensemble.base
        self.labels = ensemble.labels
        self.link = ensemble.link
        self.offsets = np.arange(trees, dtype=np.intp) * leaves
        self.ones = np.ones(trees)  # sums a row's leaf values over the trees
        self._check()  # before any scorer indexes with them (the kernel checks nothing itself)
        self.kernel = kernel_for(tables, self.leaf_values, trees, self.slots)  # None: numpy scores (_scores)

    @classmethod
    def compile(cls, model: bytes, layout: Sequence[int | None]) -> TableTrees | None:
        """The ensemble of the ONNX ``model`` whose one input is a float matrix made of the inputs
        in ``layout`` order: ``None`` for a number (one column), ``k`` for a text column one-hot
        encoded over ``k`` columns (code ``j < k``: column ``j`` is 1; code ``k``: all are 0).
        None when the model is not one this class reproduces exactly (see the module text)."""
        import onnx
        from onnx import helper

        graph = onnx.load_from_string(model).graph
        if len(graph.node) != 1 or graph.node[0].op_type not in ENSEMBLES:
            return None
        node = graph.node[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ensemble = _parse(node.op_type, attrs)
        if ensemble is None or not ensemble.tests:
            return None
        tests = ensemble.tests
        n_trees = ensemble.leaf_values.shape[0]
        dtype = np.uint32 if ensemble.leaf_values.shape[1] <= 33 else np.uint64
        width = sum(1 if k is None else k for k in layout)
        if any(column >= width for column in tests):
            return None
        tables, at = [], 0
        for position, k in enumerate(layout):
            columns = range(at, at + (1 if k is None else k))
            at += len(columns)
            if not any(c in tests for c in columns):
                continue  # no test reads this input
            if k is None:
                cuts, masks = _column_table(tests[columns[0]], n_trees, dtype)
                tables.append(_Table(masks, [position], [1], [_Cuts.of(cuts)]))
            else:
                tables.append(_Table(_one_hot_table(tests, columns, n_trees, dtype), [position], [1], [None]))
        return cls(_merged(tables), ensemble, layout)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The compiled ensemble as named arrays (for ``numpy.savez``; :meth:`from_arrays` reverses
        it): batch scoring keeps them beside the version's plan (``serein.batch_plan``), so a later
        run neither imports onnx nor compiles the export again (0.1-0.15 s). They carry their own
        digest (``DIGEST``): a file whose arrays were damaged, or mixed with another ensemble's,
        is refused rather than scored with."""
        trees = len(self.offsets)
        out = {"leaf_values": self.leaf_values.reshape(trees, -1, self.leaf_values.shape[1]),
               "base": self.base, "link": np.array(self.link),
               "layout": np.array([-1 if k is None else k for k in self.layout], dtype=np.int64)}
        if self.labels is not None:
            out["labels"] = self.labels
        for i, table in enumerate(self.tables):
            out[f"masks{i}"] = table.masks
            out[f"inputs{i}"] = np.asarray(table.inputs, dtype=np.int64)
            out[f"radixes{i}"] = np.asarray(table.radixes, dtype=np.int64)
            out[f"counts{i}"] = np.array([-1 if c is None else c.count for c in table.cuts], dtype=np.int64)
            for j, cuts in enumerate(table.cuts):
                if cuts is not None:
                    out[f"cuts{i}_{j}"] = cuts.padded
        out[DIGEST] = np.array(_digest(out))
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> TableTrees:
        """The ensemble :meth:`to_arrays` gave. Raises KeyError or ValueError on arrays it did not:
        arrays that do not describe tables the scorers can index safely, or whose digest is not
        theirs (a byte changed, an array taken from another ensemble's file), which could
        otherwise be well formed and score wrong answers."""
        tables = []
        while f"masks{len(tables)}" in arrays:
            i = len(tables)
            counts = [int(c) for c in arrays[f"counts{i}"]]
            cuts = [None if count < 0 else _Cuts(np.asarray(arrays[f"cuts{i}_{j}"], dtype=np.float32), count)
                    for j, count in enumerate(counts)]
            tables.append(_Table(np.asarray(arrays[f"masks{i}"]), [int(v) for v in arrays[f"inputs{i}"]],
                                 [int(v) for v in arrays[f"radixes{i}"]], cuts))
        link = str(arrays["link"])
        if not tables or link not in LINKS or len({t.masks.dtype for t in tables}) != 1:
            raise ValueError("not the arrays of a compiled tree ensemble")
        labels = np.asarray(arrays["labels"]) if "labels" in arrays else None
        ensemble = _Ensemble({}, np.asarray(arrays["leaf_values"], dtype=np.float64),
                             np.asarray(arrays["base"], dtype=np.float64), labels, link)
        trees = cls(tables, ensemble, [None if k < 0 else int(k) for k in arrays["layout"]])
        if DIGEST not in arrays or str(arrays[DIGEST]) != _digest(arrays):
            raise ValueError("the arrays' digest does not match them: damaged, or mixed with another ensemble's")
        return trees

    def _check(self) -> None:
        """Raise ValueError unless the tables can be indexed as the scorers do (neither the kernel
        nor the numpy path checks anything per row but a category code): at least one tree, per
        input codes of its size (a number's thresholds plus one, padded to ``2**m - 1``, a text
        column's categories plus one), each input of the layout in one table at most, per-tree
        masks wide enough for the leaves, and scores and labels that fit the link."""
        trees, scores = len(self.offsets), self.leaf_values.shape[1]
        leaves = len(self.leaf_values) // max(trees, 1)
        dtype = self.tables[0].masks.dtype
        if trees < 1 or dtype not in (np.uint32, np.uint64) or not 2 <= leaves <= 8 * dtype.itemsize + 1:
            raise ValueError("the leaf values do not fit the masks")
        classes = None if self.labels is None else len(self.labels)
        fits = {"identity": classes is None and scores == 1, "logistic": classes == 2 and scores == 1,
                "softmax": classes == scores and scores > 2}
        if self.base.shape != (scores,) or not fits[self.link]:
            raise ValueError("the scores do not fit the link and labels")
        seen: set[int] = set()
        for table in self.tables:
            if table.masks.dtype != dtype or table.masks.ndim != 2 or table.masks.shape[1] != trees:
                raise ValueError("a table's masks do not match the ensemble's trees")
            for position, cuts, size in zip(table.inputs, table.cuts, table.sizes, strict=True):
                if cuts is not None and (len(cuts.padded) & (len(cuts.padded) + 1)
                                         or not 0 <= cuts.count <= len(cuts.padded)):
                    raise ValueError("a number input's thresholds are not padded to 2**m - 1 entries")
                if not 0 <= position < len(self.layout) or position in seen:
                    raise ValueError("a table's inputs do not match the layout")
                categories = self.layout[position]  # None for a number
                if (cuts is None) == (categories is None) or size != 1 + (
                        cuts.count if cuts is not None else categories):  # type: ignore[operator]
                    raise ValueError("a table's inputs do not match the layout")
                seen.add(position)

    def run(self, numbers: np.ndarray, codes: np.ndarray) -> list[np.ndarray]:
        """The ensemble's outputs for the rows of the layout's inputs: ``numbers`` ``(number
        inputs, rows)`` float32, ``codes`` ``(text inputs, rows)`` integer category codes, each in
        layout order (as :meth:`serein.arrow_features.ArrowFeatures.inputs` gives them)."""
        if self.kernel is not None:
            scores = self.kernel.scores(numbers, codes)
        else:
            scores = self._scores([numbers[i] if k is None else codes[i]
                                   for k, i in zip(self.layout, self.slots, strict=True)])
        scores += self.base
        if self.link == "identity":
            return [scores]
        assert self.labels is not None
        if self.link == "logistic":
            positive = 0.5 + 0.5 * np.tanh(0.5 * scores[:, 0])  # the logistic function, without overflow
            probabilities = np.column_stack([1.0 - positive, positive])
        else:
            probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
        return [self.labels[most_probable(probabilities)], probabilities]

    def _scores(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The summed leaf values ``(rows, scores)`` for one array per input, in numpy by blocks
        of rows (what the compiled kernel, :mod:`serein.tree_kernel`, does row by row where it is
        built)."""
        rows = len(inputs[0])
        codes = [self._codes(table, inputs) for table in self.tables]
        scores = np.empty((rows, self.leaf_values.shape[1]), dtype=np.float64)
        dtype = self.tables[0].masks.dtype
        alive = np.empty((min(rows, BLOCK_ROWS), len(self.offsets)), dtype=dtype)
        scratch = np.empty_like(alive)
        for start in range(0, rows, BLOCK_ROWS):
            stop = min(rows, start + BLOCK_ROWS)
            acc, tmp = alive[:stop - start], scratch[:stop - start]
            np.take(self.tables[0].masks, codes[0][start:stop], axis=0, out=acc)
            for table, code in zip(self.tables[1:], codes[1:], strict=True):
                np.take(table.masks, code[start:stop], axis=0, out=tmp)
                np.bitwise_and(acc, tmp, out=acc)
            leaves = self._leaves(acc, tmp)
            if self.leaf_values.shape[1] == 1:  # a matrix-vector product: faster than .sum
                scores[start:stop, 0] = self.leaf_values[:, 0].take(leaves) @ self.ones
            else:
                scores[start:stop] = self.leaf_values.take(leaves, axis=0).sum(axis=1)
        return scores

    def _leaves(self, alive: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """Rows of ``leaf_values`` of each row's leaf per tree: the lowest set bit of its mask,
        counted as ``popcount(m ^ (m - 1)) = index + 1`` (hence the unused leaf 0 of each tree)."""
        np.subtract(alive, 1, out=scratch)
        np.bitwise_xor(alive, scratch, out=scratch)
        return np.add(np.bitwise_count(scratch), self.offsets, dtype=np.intp)

    @staticmethod
    def _codes(table: _Table, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Each row's index into ``table``."""
        code: np.ndarray | None = None
        for position, radix, cuts in zip(table.inputs, table.radixes, table.cuts, strict=True):
            part = inputs[position] if cuts is None else cuts.failing(inputs[position])
            part = part.astype(np.intp, copy=False)
            code = part * radix if code is None else code + part * radix
        assert code is not None
        return code


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """The sha256 of ``arrays`` but ``DIGEST``: names, dtypes, shapes and contents."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name != DIGEST:
            array = np.ascontiguousarray(arrays[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def most_probable(probabilities: np.ndarray) -> np.ndarray:
    """Each row's column of highest probability, the first on a tie, as ``argmax(axis=1)`` gives
    it; for two columns by one comparison, ten times faster.

    >>> most_probable(np.array([[0.5, 0.5], [0.2, 0.8], [0.3, 0.1]])).tolist()
    [0, 1, 0]
    """
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] > probabilities[:, 0]).astype(np.intp)
    return probabilities.argmax(axis=1)


@dataclass
class _Ensemble:
    """What :func:`_parse` reads from an ONNX tree ensemble node."""

    tests: dict[int, _Tests]  # by matrix column
    leaf_values: np.ndarray  # (trees, 1 + leaves, scores), leaves left to right after an unused 0
    base: np.ndarray  # (scores,)
    labels: np.ndarray | None  # a classifier's class labels
    link: str  # one of LINKS


LINKS = ("identity", "logistic", "softmax")  # regressor; binary classifier (one score); one score per class


def _parse(op: str, attrs: dict[str, Any]) -> _Ensemble | None:
    """The ensemble of an ONNX tree node, or None when it is not one :class:`TableTrees`
    reproduces exactly."""
    if any(attrs.get(MISSING_TRACKS, [])) or "nodes_values" not in attrs:
        return None
    if not set(attrs["nodes_modes"]) <= {b"BRANCH_LEQ", b"LEAF"}:
        return None
    transform = attrs.get("post_transform", b"NONE")
    if op == "TreeEnsembleClassifier":
        labels = np.asarray(attrs.get("classlabels_int64s") or
                            [label.decode() for label in attrs.get("classlabels_strings", [])])
        if len(labels) == 2 and transform == b"LOGISTIC" and not any(attrs["class_ids"]):
            link = "logistic"  # one score, for the second class
        elif len(labels) > 2 and transform == b"SOFTMAX":
            link = "softmax"
        else:
            return None
        prefix = "class"
    else:
        labels, link, prefix = None, "identity", "target"
        if attrs.get("n_targets", 1) != 1 or transform != b"NONE" or attrs.get("aggregate_function", b"SUM") != b"SUM":
            return None
    width = len(labels) if link == "softmax" else 1
    ids = attrs[f"{prefix}_ids"]
    base = np.asarray(attrs.get("base_values") or [0.0] * width, dtype=np.float64)
    if len(base) != width or any(not 0 <= k < width for k in ids):
        return None
    weights: dict[tuple[int, int], np.ndarray] = {}
    for tree, node, k, weight in zip(attrs[f"{prefix}_treeids"], attrs[f"{prefix}_nodeids"], ids,
                                     attrs[f"{prefix}_weights"], strict=True):
        weights.setdefault((tree, node), np.zeros(width))[k] += weight
    nodes = {(t, n): i for i, (t, n) in enumerate(zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], strict=True))}
    children = {(tree, int(attrs[side][i])) for (tree, _), i in nodes.items() if attrs["nodes_modes"][i] != b"LEAF"
                for side in ("nodes_truenodeids", "nodes_falsenodeids")}
    roots: dict[int, list[int]] = {}
    for tree, node in nodes:
        if (tree, node) not in children:
            roots.setdefault(tree, []).append(node)
    trees = sorted(roots)
    tests: dict[int, _Tests] = {}
    leaves: list[list[int]] = []
    for index, tree in enumerate(trees):
        order = _walk(attrs, nodes, tree, roots[tree][0], index, tests) if len(roots[tree]) == 1 else None
        if order is None:
            return None
        leaves.append(order)
    values = np.zeros((len(trees), 1 + max(map(len, leaves)), width), dtype=np.float64)
    for index, (tree, order) in enumerate(zip(trees, leaves, strict=True)):
        for position, node in enumerate(order, start=1):
            values[index, position] = weights.get((tree, node), 0.0)
    return _Ensemble(tests, values, base, labels, link)


def _walk(attrs: dict[str, Any], nodes: dict[tuple[int, int], int], tree: int, root: int, index: int,
          tests: dict[int, _Tests]) -> list[int] | None:
    """The leaves of ``tree`` left to right (true branches first), recording each test's
    threshold and true-branch leaves in ``tests``; None for a malformed tree or one of more than
    64 leaves."""
    order: list[int] = []
    stack: list[tuple[int, int | None]] = [(root, None)]  # (node, first leaf of its true branch once walked)
    budget = 2 * len(nodes)  # a cycle cannot run forever
    while stack and budget:
        budget -= 1
        node, first = stack.pop()
        i = nodes.get((tree, node))
        if i is None:
            return None
        if first is not None:  # its true branch is walked: those leaves are order[first:]
            entry = tests.setdefault(int(attrs["nodes_featureids"][i]), _Tests([], [], []))
            entry.thresholds.append(float(np.float32(attrs["nodes_values"][i])))
            entry.trees.append(index)
            entry.masks.append(sum(1 << leaf for leaf in range(first, len(order))))
        elif attrs["nodes_modes"][i] == b"LEAF":
            order.append(node)
            if len(order) > 64:
                return None
        else:
            stack.append((int(attrs["nodes_falsenodeids"][i]), None))
            stack.append((node, len(order)))
            stack.append((int(attrs["nodes_truenodeids"][i]), None))
    return None if stack else order


def _column_table(tests: _Tests, n_trees: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct thresholds of one column and the leaf masks by how many of them lie
    below a value: entry ``b`` rules out the true branches of the tests with the ``b`` smallest
    thresholds (the tests ``x <= t`` that fail)."""
    cuts = np.unique(np.asarray(tests.thresholds, dtype=np.float32))
    full = np.iinfo(dtype).max
    masks = np.full((len(cuts) + 1, n_trees), full, dtype=dtype)
    for threshold, tree, left in zip(tests.thresholds, tests.trees, tests.masks, strict=True):
        failing_from = int(np.searchsorted(cuts, np.float32(threshold))) + 1
        masks[failing_from:, tree] &= dtype(full ^ left)
    return cuts, masks


def _one_hot_table(tests: dict[int, _Tests], columns: range, n_trees: int, dtype: type) -> np.ndarray:
    """Leaf masks by category code for a one-hot input over ``columns`` (see ``compile``)."""
    full = np.iinfo(dtype).max
    masks = np.full((len(columns) + 1, n_trees), full, dtype=dtype)
    for k, column in enumerate(columns):
        if column not in tests:
            continue
        cuts, by_count = _column_table(tests[column], n_trees, dtype)
        zero, one = np.searchsorted(cuts, np.array([0.0, 1.0], dtype=np.float32))
        values = np.repeat(by_count[zero][None, :], len(columns) + 1, axis=0)  # the column is 0 ...
        values[k] = by_count[one]  # ... but for code k
        masks &= values
    return masks


def _merged(tables: list[_Table]) -> list[_Table]:
    """``tables`` with the smallest merged pairwise while the product stays within TABLE_BYTES:
    fewer gathers per row (the running mask is read and written once per table)."""
    tables = sorted(tables, key=lambda t: len(t.masks))
    while len(tables) > 1:
        a, b = tables[0], tables[1]
        if len(a.masks) * len(b.masks) * a.masks[0].nbytes > TABLE_BYTES:
            break
        masks = (a.masks[:, None, :] & b.masks[None, :, :]).reshape(-1, a.masks.shape[1])
        merged = _Table(masks, a.inputs + b.inputs, [r * len(b.masks) for r in a.radixes] + b.radixes,
                        a.cuts + b.cuts)
        tables = sorted([merged, *tables[2:]], key=lambda t: len(t.masks))
    return tables
