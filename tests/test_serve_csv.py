"""CSV bodies: ``csv_rows`` parses numeric columns at once when every field is a JSON number, and
field by field otherwise. Both must give what the field-by-field rules give, for every field."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest

from serein.data.contract import Contract
from serein.serve.tabular import csv_rows
from serein.errors import ValidationFailed
from serein.serve.validation import RequestInvalid

CONTRACT = Contract.from_dict({"columns": {"n": {"type": "integer"}, "x": {"type": "float"},
                                           "b": {"type": "boolean"}, "s": {"type": "string"}}})
INTEGER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# fields the fast path takes, and the ones only the field-by-field rules decide
FIELDS = ["41", "-7", "0", "-0", "1.5", "-2.25e-05", "3E2", "", "+41", "007", ".5", "5.", " 41", "41 ",
          "1,5", "true", "null", "nan", "1e999", "99999999999999999999", "x", "[1]"]


def expected(text: str) -> tuple[object, bool]:
    """(value, parses) of one field of a numeric column, by the rules field by field."""
    if text == "":
        return None, True
    if INTEGER.fullmatch(text):
        return int(text), True
    if NUMBER.fullmatch(text):
        return float(text), True
    return None, False


def body(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["n", "x", "b", "s"])
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize("seed", range(80))
def test_numeric_fields_parse_as_field_by_field_whether_or_not_the_column_is_all_json(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fast = seed % 2 == 0  # half the cases: only JSON numbers, the fast path
    pool = FIELDS[:8] if fast else FIELDS
    rows = [[str(rng.choice(pool)), str(rng.choice(pool)), str(rng.choice(["true", "False", ""])),
             str(rng.choice(["a", "", "b c"]))] for _ in range(int(rng.integers(1, 30)))]
    want = [[expected(r[0]), expected(r[1])] for r in rows]
    bad = [(i, name) for i, pair in enumerate(want) for name, (_, ok) in zip("nx", pair) if not ok]
    if not bad:
        got = csv_rows(body(rows), CONTRACT, max_rows=100)
        assert [[g["n"], g["x"]] for g in got] == [[v for v, _ in pair] for pair in want]
        assert [[type(g["n"]), type(g["x"])] for g in got] == [[type(v) for v, _ in pair] for pair in want]
        assert [g["b"] for g in got] == [{"true": True, "false": False, "": None}[r[2].lower()] for r in rows]
        assert [g["s"] for g in got] == [r[3] or None for r in rows]
        return
    with pytest.raises(RequestInvalid) as caught:
        csv_rows(body(rows), CONTRACT, max_rows=100)
    named = [(p["row"], p["field"]) for p in caught.value.problems]
    assert named == bad[:len(named)] and len(named) == min(len(bad), 20)  # in row order, field by field


def test_a_ragged_row_and_bad_fields_are_named_in_row_order() -> None:
    text = b"n,x,b,s\n1,x,true,a\n1,2\n+,3,maybe,\n"
    with pytest.raises(RequestInvalid) as caught:
        csv_rows(text, CONTRACT, max_rows=100)
    assert [(p["row"], p["field"]) for p in caught.value.problems] == [(0, "x"), (1, None), (2, "n"), (2, "b")]


@pytest.mark.parametrize(
    ("text", "holding", "separator"),
    [
        (b"n;x;b;s\n1;2,5;true;a\n", "semicolons", "';'"),  # a comma in a row: ragged as well
        (b"n;x;b;s\r\n1;2;true;a\r\n", "semicolons", "';'"),
        (b"n\tx\tb\ts\n1\t2.5\ttrue\ta\n", "tabs", "'\\t'"),
        (b'"n";"x"\n1;2\n', "semicolons", "';'"),  # quoted names: malformed read with commas
    ],
)
def test_a_body_separated_otherwise_than_by_commas_is_named(text: bytes, holding: str, separator: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        csv_rows(text, CONTRACT, max_rows=100)
    assert caught.value.message == (f"the CSV is not comma-separated: its header row is one field holding {holding}: "
                                    f"the columns look separated by {separator}, not by commas")
    assert "commas" in caught.value.hint


def test_a_one_field_header_quoting_a_semicolon_is_no_separator_problem() -> None:
    with pytest.raises(ValidationFailed, match="not a header row"):
        csv_rows(b'"m;y"\n1\n', CONTRACT, max_rows=100)
