"""Arrow <-> numpy through buffers (``serein.data.arrow_arrays``): boolean masks and scalars equal
to pyarrow's own conversions, and the contract's Arrow screen (``validate_arrow``) judging a
clean Parquet batch without importing pandas, with the counts pandera gives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from serein.data.arrow_arrays import arrow_floats, arrow_integers, arrow_mask, arrow_scalar


def test_a_one_chunk_column_is_read_without_a_copy_and_cannot_be_changed_through_it() -> None:
    table = pa.table({"x": [1.5, 2.5, 3.5], "n": [4, 5, 6]})
    x, n = arrow_floats(table.column("x").slice(1)), arrow_integers(table.column("n"), missing=-1)
    assert x.tolist() == [2.5, 3.5] and n.tolist() == [4, 5, 6]
    assert np.shares_memory(n, np.frombuffer(table.column("n").chunk(0).buffers()[1], dtype=np.int64))
    for values in (x, n):
        with pytest.raises(ValueError, match="read-only"):
            values[0] = 0
    assert table.column("x").to_pylist() == [1.5, 2.5, 3.5]
    two = pa.chunked_array([[1.0, None], [3.0]])  # several chunks (or nulls): a new array
    assert np.isnan(arrow_floats(two)[1]) and arrow_floats(two).tolist()[::2] == [1.0, 3.0]


def test_boolean_masks_read_like_pyarrow_with_offsets_nulls_and_chunks() -> None:
    rng = np.random.default_rng(3)
    values = rng.random(1003) < 0.4
    nulls = rng.random(1003) < 0.1
    base = pa.array(values, mask=nulls)
    column = pa.chunked_array([base.slice(5, 600), base.slice(0, 3), pa.array([], pa.bool_()), base.slice(611)])
    expected = pc.fill_null(column, False).to_numpy()  # pyarrow's own reading: null -> False
    np.testing.assert_array_equal(arrow_mask(column), expected)
    assert arrow_mask(column).sum() == int(np.concatenate([(values & ~nulls)[5:605], (values & ~nulls)[:3],
                                                           (values & ~nulls)[611:]]).sum())
    np.testing.assert_array_equal(arrow_mask(pa.array([True, False, True])), [True, False, True])
    assert arrow_mask(pa.chunked_array([], pa.bool_())).size == 0


def test_scalars_are_those_pa_scalar_makes() -> None:
    for value in (2.5, -0.0, 1e300, 0, -7, 2**62, True, False):
        made = arrow_scalar(value)
        assert made.equals(pa.scalar(value)) and made.type == pa.scalar(value).type, value
    column = pa.array([1, 5, None, 9])
    assert pc.less(column, arrow_scalar(5.5)).to_pylist() == [True, True, None, False]


def test_a_clean_batch_is_screened_without_pandas_with_pandera_counts(tmp_path: Path) -> None:
    """The screen on a batch read from Parquet that breaks no row-level check (only warnings and
    a completeness failure, judged over the whole table) never imports pandas; its findings are
    those of pandera on the whole frame, done here in the test's own process."""
    from serein.data.contract import Contract
    from serein.data.validation import validate

    spec = {
        "columns": {
            "x": {"type": "float", "min": -10.0, "max": 10.0, "completeness": 0.99},
            "k": {"type": "integer", "min": 0, "max": 50, "nullable": False},
            "c": {"type": "string", "allowed": ["a", "b"], "unseen": "flag"},
            "code": {"type": "string", "regex": r"[A-Z]\d$", "nullable": False},
        },
        "rules": [{"name": "cap", "left": "k", "op": "<=", "right": 40}],
    }
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.normal(size=n)
    x[rng.random(n) < 0.02] = np.nan  # completeness 0.98 < 0.99
    frame = {"x": x, "k": rng.integers(0, 41, n), "c": rng.choice(["a", "b", "z", "y"], n, p=[0.5, 0.4, 0.07, 0.03]),
             "code": rng.choice(["A1", "B2", "C3"], n)}
    pq.write_table(pa.table(frame), tmp_path / "batch.parquet")
    exact = validate(pq.read_table(tmp_path / "batch.parquet").to_pandas(), Contract.from_dict(spec))
    script = textwrap.dedent(f"""
        import json, sys
        import pyarrow.parquet as pq
        from serein.data.contract import Contract
        from serein.data.validation import validate_arrow
        table = pq.ParquetFile({str(tmp_path / "batch.parquet")!r}).read()
        report = validate_arrow(table, Contract.from_dict({spec!r}))
        print(json.dumps({{"failures": report.failures, "warnings": report.warnings, "bad": report.n_bad,
                          "pandas": "pandas" in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    fast = json.loads(out.stdout.strip().splitlines()[-1])
    assert fast["pandas"] is False
    assert fast["bad"] == exact.n_bad == 0
    assert [(f["column"], f["check"], f["count"]) for f in fast["failures"]] == \
        [(f["column"], f["check"], f["count"]) for f in exact.failures] == [("x", "completeness", int(np.isnan(x).sum()))]
    unseen = int(np.isin(frame["c"], ["z", "y"]).sum())
    assert [(f["column"], f["check"], f["count"], sorted(f["examples"])) for f in fast["warnings"]] == \
        [(f["column"], f["check"], f["count"], sorted(f["examples"])) for f in exact.warnings] == \
        [("c", "unseen", unseen, ["y", "z"])]


def test_integers_beyond_float64_precision_read_as_the_nearest_floats() -> None:
    """An int64 column with values beyond 2**53 (ids, amounts in micro-units) reads as floats as
    numpy casts them; Arrow's safe cast refused them and ended a monitor run with an internal error."""
    from serein.data.arrow_arrays import arrow_floats, arrow_integers

    column = pa.chunked_array([[2**53 + 1, None], [-(2**62), 7]])
    assert arrow_floats(column)[[0, 2, 3]].tolist() == [float(2**53 + 1), float(-(2**62)), 7.0]
    assert np.isnan(arrow_floats(column)[1])
    assert arrow_integers(column, missing=0).tolist() == [2**53 + 1, 0, -(2**62), 7]
    with pytest.raises(pa.ArrowInvalid):  # a fraction is still refused as an integer, not truncated
        arrow_integers(pa.array([1.5]), missing=0)
