"""The fitted preprocessing of serein's recipe pipelines computed from Arrow columns with numpy.

:class:`ArrowFeatures` reproduces a ``ColumnTransformer`` of imputers, scalers and one-hot encoders
(what ``serein.train.pipeline.build_pipeline`` makes) without scikit-learn at scoring time: it is
compiled once from the fitted objects and can be saved as JSON (:meth:`ArrowFeatures.to_dict`), so
a later batch run sets it up without importing scikit-learn (see ``serein.batch``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from serein.data.arrow_arrays import arrow_floats, arrow_integers

if TYPE_CHECKING:
    import pyarrow as pa

    from serein.data.contract import Contract

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class _Block:
    """Columns of the preprocessed matrix from input columns: numbers (imputed, maybe scaled) or
    text columns one-hot encoded."""

    columns: list[str]
    fill: np.ndarray  # the imputer's statistics, one per column
    mean: np.ndarray | None = None  # StandardScaler, numbers only
    scale: np.ndarray | None = None
    categories: list[list[str]] | None = None  # OneHotEncoder's categories per column: a one-hot block

    @property
    def width(self) -> int:
        return len(self.columns) if self.categories is None else sum(map(len, self.categories))


def _scaled(values: np.ndarray, block: _Block, at: Any) -> np.ndarray:
    """``values`` (imputed, float64) scaled in place by the block's scaler at index ``at`` (a
    column's position, or ``np.s_[:, None]`` for the whole block), then clipped to float32's range,
    as the export does: a value scaled past float64's range is clipped too, without a warning."""
    with np.errstate(over="ignore"):
        if block.mean is not None:
            values -= block.mean[at]
        if block.scale is not None:
            values /= block.scale[at]
    return np.clip(values, -FLOAT32_MAX, FLOAT32_MAX, out=values)


def _block(trans: Any, columns: list[str], kinds: dict[str, str]) -> _Block | None:
    """A :class:`_Block` for a fitted ColumnTransformer branch made of a SimpleImputer followed by
    an optional StandardScaler (numbers) or a OneHotEncoder ignoring unknown categories (one text
    column); None for anything else."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    steps = [step for _, step in trans.steps] if isinstance(trans, Pipeline) else [trans]
    imputer, *rest = steps
    if not isinstance(imputer, SimpleImputer) or imputer.add_indicator or len(rest) > 1:
        return None
    fill = np.asarray(imputer.statistics_)
    numeric = all(kinds.get(c) in ("integer", "float") for c in columns)
    if fill.dtype == object and not all(kinds.get(c) == "string" for c in columns):
        return None
    if fill.dtype != object and not numeric:
        return None
    if not rest:
        return _Block(columns, fill.astype(np.float64)) if fill.dtype != object else None
    step = rest[0]
    if isinstance(step, StandardScaler) and fill.dtype != object:
        return _Block(columns, fill.astype(np.float64),
                      mean=step.mean_ if step.with_mean else None, scale=step.scale_ if step.with_std else None)
    if (isinstance(step, OneHotEncoder) and step.handle_unknown == "ignore" and step.drop is None
            and not getattr(step, "_infrequent_enabled", False) and not step.sparse_output
            and all(isinstance(c, str) for cats in step.categories_ for c in cats)):
        return _Block(columns, fill, categories=[list(cats) for cats in step.categories_])
    return None


class ArrowFeatures:
    """The fitted preprocessing of serein's recipes (a ColumnTransformer of imputers, scalers and
    one-hot encoders) computed straight from Arrow columns with numpy: text columns are coded
    through their dictionary (each distinct category looked up once), numbers are imputed in
    place. :meth:`matrix` gives the float32 matrix the estimator takes (for ONNX Runtime, without
    the string operators of the whole-pipeline export); :meth:`inputs` the same per input column,
    in a block of numbers and a block of text columns' category codes (for
    ``serein.tree_tables``); :meth:`matrix_of` and :meth:`inputs_of` take a request's validated
    columns instead (serving)."""

    def __init__(self, blocks: list[_Block]) -> None:
        self.blocks = blocks
        self.width = sum(b.width for b in blocks)

    def to_dict(self) -> dict[str, Any]:
        """The compiled preprocessing as JSON-ready values (:meth:`from_dict` reverses it)."""
        def floats(values: np.ndarray | None) -> list[float] | None:
            return None if values is None else [float(v) for v in values]

        return {"blocks": [{"columns": b.columns, "categories": b.categories,
                            "fill": [str(v) for v in b.fill] if b.categories is not None else floats(b.fill),
                            "mean": floats(b.mean), "scale": floats(b.scale)} for b in self.blocks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArrowFeatures:
        """The preprocessing :meth:`to_dict` saved."""
        def array(values: list[Any] | None, dtype: Any) -> np.ndarray | None:
            return None if values is None else np.asarray(values, dtype=dtype)

        return cls([_Block(list(b["columns"]), array(b["fill"], object if b["categories"] is not None else np.float64),
                           array(b["mean"], np.float64), array(b["scale"], np.float64),
                           None if b["categories"] is None else [list(c) for c in b["categories"]])
                    for b in data["blocks"]])

    @property
    def nan_free(self) -> bool:
        """Whether :meth:`matrix` never holds NaN: nulls and NaN take finite fills, infinities are
        clipped, so only a non-finite fill, mean or scale could bring one in."""
        return all(bool(np.isfinite(part).all()) for b in self.blocks if b.categories is None
                   for part in (b.fill, b.mean, b.scale) if part is not None)

    @classmethod
    def compile(cls, pipeline: Any, contract: Contract) -> ArrowFeatures | None:
        """The compiled preprocessing of ``pipeline`` (``Pipeline([ColumnTransformer, estimator])``)
        for inputs typed by ``contract``, or None when a step is not one this class reproduces."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None
        pre = pipeline.steps[0][1]
        if not isinstance(pre, ColumnTransformer):
            return None
        kinds = {name: spec.type for name, spec in contract.columns.items()}
        blocks = []
        for name, trans, columns in pre.transformers_:
            if trans == "drop" or (name == "remainder" and not len(columns)):
                continue
            block = None if isinstance(trans, str) else _block(trans, list(columns), kinds)
            if block is None:
                return None
            blocks.append(block)
        return cls(blocks)

    def reads(self, schema: pa.Schema) -> bool:
        """Whether :meth:`inputs` takes columns typed as in ``schema``: integers or floats for the
        number blocks, text (plain or dictionary-encoded) for the one-hot ones. Batch scoring's
        contract screen guarantees it; a caller scoring unscreened columns (``serein monitor
        --current``) asks first, and anything else (numbers read as text, booleans) goes to the
        whole-pipeline export."""
        import pyarrow as pa

        def text(kind: pa.DataType) -> bool:
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            return pa.types.is_string(kind) or pa.types.is_large_string(kind)

        for block in self.blocks:
            for name in block.columns:
                at = schema.get_field_index(name)
                if at < 0:
                    return False
                kind = schema.field(at).type
                if not (text(kind) if block.categories is not None
                        else pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                    return False
        return True

    @property
    def layout(self) -> list[int | None]:
        """The matrix's inputs in column order: None for a number (one column), the category count
        for a one-hot encoded text column (as :meth:`inputs` gives them)."""
        return [None if b.categories is None else len(b.categories[k]) for b in self.blocks for k in range(len(b.columns))]

    def inputs(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """The inputs of :attr:`layout` for the rows of ``batch`` as two blocks, each in layout
        order: ``(number inputs, rows)`` float32, each number column imputed, scaled and clipped
        (the matrix column itself), and ``(text inputs, rows)`` codes, each row's category as its
        position (its hot column), the category count for an unseen one (no column)."""
        numbers, codes = self._blocks(batch.num_rows)
        i = j = 0
        for block in self.blocks:
            for k, name in enumerate(block.columns):
                if block.categories is None:
                    numbers[i] = self._number(batch.column(name), block, k)
                    i += 1
                else:
                    codes[j] = self._codes(batch.column(name), block.categories[k], str(block.fill[k]))
                    j += 1
        return numbers, codes

    def inputs_of(self, columns: Mapping[str, np.ndarray | Sequence[Any]],
                  n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`inputs` for a request's validated columns (``serein.serve.validation``: a number
        column as a numpy array, NaN for a null; a text column as a list, None for a null). Made
        for serving's few rows: a number block is converted in one call, and a text value is one
        dictionary look-up, where :meth:`inputs`'s per-column Arrow work costs ~0.4 ms whatever
        the row count.

        >>> features = ArrowFeatures([_Block(["x", "y"], np.array([0.0, 5.0]), mean=np.array([1.0, 0.0]),
        ...                                  scale=np.array([2.0, 1.0])),
        ...                           _Block(["city"], np.array(["Oslo"], dtype=object), categories=[["Lyon", "Oslo"]])])
        >>> numbers, codes = features.inputs_of({"x": np.array([3.0, np.nan]), "y": np.array([1, 2]),
        ...                                      "city": [None, "Rome"]}, 2)
        >>> numbers.tolist(), codes.tolist()
        ([[1.0, -0.5], [1.0, 2.0]], [[1, 2]])
        """
        numbers, codes = self._blocks(n_rows)
        i = j = 0
        for block, lookups in zip(self.blocks, self._lookups, strict=True):
            if lookups is None:
                numbers[i:i + len(block.columns)] = self._number_block(columns, block)
                i += len(block.columns)
                continue
            assert block.categories is not None
            for k, (name, lookup) in enumerate(zip(block.columns, lookups, strict=True)):
                unseen = len(block.categories[k])
                fill = lookup.get(str(block.fill[k]), unseen)
                codes[j] = [fill if value is None else lookup.get(value, unseen) for value in columns[name]]
                j += 1
        return numbers, codes

    def _blocks(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Empty blocks of numbers and codes for ``n_rows`` rows."""
        texts = sum(len(b.columns) for b in self.blocks if b.categories is not None)
        return (np.empty((len(self.layout) - texts, n_rows), dtype=np.float32),
                np.empty((texts, n_rows), dtype=np.intp))

    def matrix(self, batch: pa.RecordBatch) -> np.ndarray:
        """The ``(rows, width)`` float32 input of the estimator for the rows of ``batch``."""
        return self._matrix(*self.inputs(batch))

    def matrix_of(self, columns: Mapping[str, np.ndarray | Sequence[Any]], n_rows: int) -> np.ndarray:
        """:meth:`matrix` for a request's validated columns (as :meth:`inputs_of` takes them).

        >>> features = ArrowFeatures([_Block(["x", "y"], np.array([0.0, 5.0]), mean=np.array([1.0, 0.0]),
        ...                                  scale=np.array([2.0, 1.0])),
        ...                           _Block(["city"], np.array(["Oslo"], dtype=object), categories=[["Lyon", "Oslo"]])])
        >>> features.matrix_of({"x": np.array([3.0, np.nan]), "y": np.array([1, 2]), "city": [None, "Rome"]}, 2)
        array([[ 1. ,  1. ,  0. ,  1. ],
               [-0.5,  2. ,  0. ,  0. ]], dtype=float32)
        """
        return self._matrix(*self.inputs_of(columns, n_rows))

    def _matrix(self, numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The matrix of the inputs' blocks: each run of number inputs copied as one slice, and
        every text input's hot column set in one assignment (an unseen category's code, its
        category count, sets none)."""
        runs, offsets, counts = self._matrix_plan
        out = np.zeros((numbers.shape[1], self.width), dtype=np.float32)
        for at, first, size in runs:
            out[:, at:at + size] = numbers[first:first + size].T
        if len(codes):
            hot = codes < counts[:, None]
            inputs, rows = np.nonzero(hot)
            out[rows, offsets[inputs] + codes[inputs, rows]] = 1.0
        return out

    @cached_property
    def _matrix_plan(self) -> tuple[list[tuple[int, int, int]], np.ndarray, np.ndarray]:
        """Where the inputs go in the matrix: ``(matrix column, first number input, size)`` per run
        of number inputs, and each text input's first column and category count."""
        runs: list[tuple[int, int, int]] = []
        offsets, counts = [], []
        at = numbers = 0
        for count in self.layout:
            if count is None:
                if runs and runs[-1][0] + runs[-1][2] == at:
                    runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
                else:
                    runs.append((at, numbers, 1))
                at, numbers = at + 1, numbers + 1
            else:
                offsets.append(at)
                counts.append(count)
                at += count
        return runs, np.array(offsets, dtype=np.intp), np.array(counts, dtype=np.intp)

    @staticmethod
    def _number_block(columns: Mapping[str, np.ndarray | Sequence[Any]], block: _Block) -> np.ndarray:
        """A number block's ``(columns, rows)`` float64 values from a request's columns: imputed,
        scaled and clipped to float32's range, in one call per step."""
        values = np.array([columns[name] for name in block.columns], dtype=np.float64)
        missing = np.isnan(values)
        if missing.any():
            values[missing] = np.broadcast_to(block.fill[:, None], values.shape)[missing]
        return _scaled(values, block, np.s_[:, None])

    @cached_property
    def _lookups(self) -> list[list[dict[str, int]] | None]:
        """Per block, None for numbers, else each text column's position of every category."""
        return [None if b.categories is None else [{c: i for i, c in enumerate(cats)} for cats in b.categories]
                for b in self.blocks]

    @staticmethod
    def _number(column: pa.Array, block: _Block, k: int) -> np.ndarray:
        """Column ``k`` of a numeric block: nulls imputed, scaled, clipped to float32's range (float64;
        stored as float32 in the numbers block, as the whole export does)."""
        values = arrow_floats(column)  # from the buffers: pyarrow's to_numpy would import pandas
        values = np.where(np.isnan(values), block.fill[k], values)  # a new array: the column stays as it is
        return _scaled(values, block, k)

    @staticmethod
    def _codes(column: pa.Array, categories: list[str], fill: str) -> np.ndarray:
        """The position in ``categories`` of each row's value, ``len(categories)`` for an unseen
        one. Each distinct value is looked up once (through the column's dictionary); a null
        takes the imputed ``fill``, whether its index is null or it is a null entry of the
        dictionary (which Arrow allows: ``dictionary_encode(null_encoding="encode")``)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
        lookup = {c: i for i, c in enumerate(categories)}
        unseen = len(categories)
        filled = lookup.get(fill, unseen)
        dictionary = encoded.dictionary.to_pylist()
        positions = np.array([filled if v is None else lookup.get(v, unseen) for v in dictionary] + [filled],
                             dtype=np.intp)
        return positions[arrow_integers(encoded.indices, missing=len(positions) - 1)]
