"""The compiled reader of predict bodies (``serein.serve.json_rows``) against the general path
(orjson, then the validator): whatever the body, the reader either gives exactly the columns and
flags the general path gives, or leaves the body to it; it never accepts what the general path
refuses. Bodies are written by hand, so that spacing, key order and number spellings vary. The
same for the prediction-log records it cuts into the store's rows."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import orjson
import pytest

from serein.data.contract import Contract
from serein.serve import json_rows
from serein.serve.payloads import instances
from serein.serve.predlog import request_record
from serein.serve.predlog_shipper import line_rows, record_line, table_rows
from serein.serve.validation import RequestInvalid, RowValidator

pytestmark = pytest.mark.skipif(json_rows.library() is None, reason="the JSON rows reader is not built here")

CONTRACT = Contract.from_dict({"columns": {
    "age": {"type": "integer", "nullable": False, "min": 18, "max": 99},
    "income": {"type": "float", "nullable": True, "non_negative": True},
    "term": {"type": "integer", "nullable": True},
    "city": {"type": "string", "nullable": True, "allowed": ["Lyon", "Oslo", "Zoë ☃"], "unseen": "flag"},
    "code": {"type": "string", "nullable": False, "allowed": ["a", "b"], "unseen": "reject"},
    "note": {"type": "string", "nullable": True},
    "seen": {"type": "datetime", "nullable": True},
}})
NUMBERS = ["0", "-0", "-0.0", "7", "41", "17", "100", "3.0", "3.5", "-2.25", "1e2", "1E-3", "2.5e+1", "0.1",
           "123456789012345", "1234567890123456789", "9007199254740993.0", "1e400", "5e-324", "1.7976931348623157e308"]
TEXTS = ['"Lyon"', '"Oslo"', '"Zoë ☃"', '"Paris"', '""', '"a"', '"b"', '"c"', '"tab\\there"', '"quote \\" x"',
         '"2024-05-01T10:00:00Z"', '"not a date"', '"\\u00e9"']
ODD = ['"12"', "true", "false", "[1]", '{"x": 1}', "NaN", "01", "1.", "+1", "Infinity"]


def _value(rng: random.Random, name: str, clean: bool) -> str:
    """A value for field ``name``: any spelling (``clean``: one the contract accepts, mostly)."""
    kind = rng.random()
    if clean:
        if name == "age":
            return rng.choice(["17", "41", "30.0", "1e1", "99", "100"])  # 17 and 100 are flagged, not refused
        if name in ("income", "term"):
            return rng.choice(["null", "0", "-0", "-0.0", "7", "2.5e+1", "1E-3" if name == "income" else "3.0",
                               "-2.25" if name == "income" else "-2", repr(round(rng.uniform(0, 1e5), 2))])
        if name == "code":
            return rng.choice(['"a"', '"b"'])
        if name == "seen":
            return rng.choice(["null", '"2024-05-01T10:00:00Z"', '"2024-05-01"'])
        return rng.choice(["null", '"Lyon"', '"Oslo"', '"Zoë ☃"', '"Zo\\u00eb \\u2603"', '"Paris"', '""', '"Ly\\/on"'])
    if kind < 0.08:
        return "null"
    if kind < 0.2:
        return rng.choice(ODD)
    if name in ("age", "income", "term"):
        return rng.choice(NUMBERS) if kind < 0.5 else repr(round(rng.uniform(-5, 120), rng.randint(0, 6)))
    if name == "code":
        return rng.choice(['"a"', '"b"', '"a"', '"c"'])
    return rng.choice(TEXTS)


def _body(rng: random.Random, n_rows: int) -> bytes:
    """A predict body spelled by hand: random spacing, key order and, now and then, a field missing,
    an unknown field or one given twice; half of the bodies hold values the contract accepts only."""
    space = lambda: rng.choice(["", "", " ", "\n  ", "\t"])  # noqa: E731
    clean = rng.random() < 0.5
    rows = []
    for _ in range(n_rows):
        names = list(CONTRACT.columns)
        if rng.random() < 0.5:
            rng.shuffle(names)
        if rng.random() < 0.02:
            names.pop()
        if rng.random() < 0.02:
            names.append(rng.choice(["extra", "age"]))
        fields = [f'{space()}"{name}"{space()}:{space()}{_value(rng, name, clean)}' for name in names]
        rows.append("{" + ",".join(fields) + space() + "}")
    return f'{space()}{{"instances":{space()}[{",".join(rows)}]{space()}}}{space()}'.encode()


def _general(validator: RowValidator, body: bytes) -> Any:
    """What the general path gives: the validated batch, or the kind of refusal."""
    try:
        return validator.validate(instances(orjson.loads(body), 10_000))
    except orjson.JSONDecodeError:
        return "not JSON"
    except RequestInvalid:
        return "invalid"


def _same(read: Any, general: Any) -> None:
    assert list(read.columns) == list(general.columns) and read.flags == general.flags
    for name, values in read.columns.items():
        expected = general.columns[name]
        if isinstance(expected, np.ndarray):
            assert values.dtype == expected.dtype and np.array_equal(values, expected, equal_nan=True), name
            assert np.array_equal(np.signbit(values), np.signbit(expected)), name
        else:
            assert values == expected and [type(v) for v in values] == [type(v) for v in expected], name


def test_the_reader_gives_what_the_general_path_gives_or_leaves_the_body_to_it() -> None:
    validator = RowValidator(CONTRACT)
    rng = random.Random(7)
    read_count = accepted = 0
    for trial in range(3000):
        body = _body(rng, rng.choice([1, 2, 3, 20, 60]))
        general = _general(validator, body)
        try:
            read = validator.validate_body(body, 10_000)
        except RequestInvalid as exc:  # only a field given twice, which orjson lets through
            [problem] = exc.problems
            assert problem["problem"] == "field given more than once", (trial, body)
            continue
        accepted += not isinstance(general, str)
        if read is not None:
            read_count += 1
            assert not isinstance(general, str), (trial, body, general)
            _same(read, general)
    assert read_count == accepted > 600, "every body the general path accepts is read (escaped texts too)"


def test_a_field_given_twice_is_named() -> None:
    body = b'{"instances": [{"age": 30, "income": 1.5, "term": 3, "city": "Lyon", "code": "a", "note": null,' \
           b' "seen": null}, {"age": 30, "income": 1.5, "term": 3, "city": "Lyon", "code": "a", "note": null,' \
           b' "seen": null, "term": 4}]}'
    validator = RowValidator(CONTRACT)
    for check in (validator.validate_body, validator.refuse_fields_given_twice):
        with pytest.raises(RequestInvalid) as refused:
            check(body, 10)
        assert refused.value.problems == [{"row": 1, "field": "term", "problem": "field given more than once"}]
    assert validator.refuse_fields_given_twice(body.replace(b', "term": 4', b""), 10) is None


def test_escaped_texts_are_read_and_a_field_given_twice_after_one_is_named() -> None:
    """Python's ``json.dumps`` escapes every non-ASCII character: such bodies are read too, so a
    field given twice after an escaped text is seen (orjson alone would keep the last value)."""
    row = {"age": 30, "income": 1.5, "term": None, "city": "Zoë ☃", "code": "a", "note": 'say "hi"\\', "seen": None}
    validator = RowValidator(CONTRACT)
    body = json.dumps({"instances": [row, {**row, "note": "\t"}]}).encode()
    assert b"\\u00eb" in body
    _same(validator.validate_body(body, 10), validator.validate(instances(orjson.loads(body), 10)))
    with pytest.raises(RequestInvalid) as refused:
        validator.refuse_fields_given_twice(body[:-3] + b', "code": "b"}]}', 10)
    assert refused.value.problems == [{"row": 1, "field": "code", "problem": "field given more than once"}]
    for malformed in (b"\\x41", b"\\u12", b"\\ud800"):  # orjson refuses these: so does the general path
        assert validator.validate_body(body.replace(b"\\u00eb", malformed), 10) is None


@pytest.mark.parametrize("body", [
    b'{"instances": []}', b'{"instances": [{}]}', b'[{"age": 1}]', b'{"rows": [{"age": 1}]}', b"",
    b'{"instances": [{"age": 30}]} x', b'{"instances": [{"age": 30', b'\xef\xbb\xbf{"instances": []}',
    b'{"instances": [{"age": 30, "income": 1, "term": 1, "city": "\xff", "code": "a", "note": null, "seen": null}]}',
    b'{"instances": [{"age": 30, "income": 1, "term": 1, "city": "\x01", "code": "a", "note": null, "seen": null}]}',
], ids=["empty", "empty-row", "list", "other-key", "nothing", "trailing", "cut", "bom", "not-utf8", "control"])
def test_bodies_the_reader_does_not_judge_go_to_the_general_path(body: bytes) -> None:
    assert RowValidator(CONTRACT).validate_body(body, 10) is None


def test_more_rows_than_allowed_go_to_the_general_path() -> None:
    row = b'{"age": 30, "income": 1, "term": 1, "city": "Lyon", "code": "a", "note": null, "seen": null}'
    body = b'{"instances": [' + b",".join([row] * 3) + b"]}"
    validator = RowValidator(CONTRACT)
    assert validator.validate_body(body, 3).n_rows == 3
    assert validator.validate_body(body, 2) is None  # instances() then answers 413


def test_a_contract_with_a_boolean_field_is_read_by_the_general_path() -> None:
    validator = RowValidator(Contract.from_dict({"columns": {"ok": {"type": "boolean"}, "x": {"type": "float"}}}))
    assert validator.validate_body(b'{"instances": [{"ok": true, "x": 1}]}', 10) is None


def test_the_rows_may_sit_under_another_key() -> None:
    """MLflow's ``/invocations`` names its list of rows ``dataframe_records`` (or ``instances``,
    ``inputs``): the reader reads the key it is given, and no other."""
    row = b'{"age": 30, "income": 1, "term": 1, "city": "Lyon", "code": "a", "note": null, "seen": null}'
    validator = RowValidator(CONTRACT)
    records = b'{"dataframe_records": [' + row + b"]}"
    assert validator.validate_body(records, 10, b"dataframe_records").n_rows == 1
    assert validator.validate_body(records, 10) is None
    assert validator.validate_body(b'{"instances": [' + row + b"]}", 10, b"dataframe_records") is None


NASTY_TEXTS = ["Lyon", "", "Zoë ☃", 'say "hi"', "a,}{", "tab\there", "new\nline", "back\\slash", "},{\"x\":1}", "\x00"]


def _record(rng: random.Random, n_rows: int) -> dict[str, Any]:
    """A request record as ``predlog.request_record`` makes it, of random columns (numpy arrays and
    lists, as validated), outputs and spellings."""
    names = rng.sample(["age", "income", "city", "Zoë", 'q"uote', "x,y", "n", "flag", "when"], rng.randint(1, 9))
    inputs: dict[str, Any] = {}
    for name in names:
        kind = rng.random()
        if kind < 0.3:
            values = np.array([rng.choice([0.0, -0.0, 1e-300, 1.5e300, rng.gauss(0, 1e3), float("nan"), 3.0])
                               for _ in range(n_rows)])
            inputs[name] = values if rng.random() < 0.5 else np.clip(values, -1e30, 1e30).astype(np.float32)
        elif kind < 0.5:
            inputs[name] = np.array([rng.randint(-2**40, 2**40) for _ in range(n_rows)])
        elif kind < 0.85:
            inputs[name] = [rng.choice([*NASTY_TEXTS, None]) for _ in range(n_rows)]
        else:
            inputs[name] = [rng.choice([True, False, None]) for _ in range(n_rows)]
    k = rng.choice([1, 2, 3])
    labels = [rng.choice([0, 1, "yes", "no ☃", True, 2.5, "a,}"]) for _ in range(n_rows)]
    probabilities = None if rng.random() < 0.3 else [[rng.random() for _ in range(k)] for _ in range(n_rows)]
    return request_record(request_id=f"r{rng.randint(0, 9)}", model=rng.choice(["m", "mé,}"]), version=3,
                          inputs=inputs, predictions=labels, probabilities=probabilities,
                          scores=[rng.random() for _ in range(n_rows)], latency_ms=1.25, shadow=rng.random() < 0.2)


def test_the_shippers_rows_cut_from_a_line_are_those_of_the_record_read_back() -> None:
    """``predlog_shipper.line_rows`` cuts each row's inputs, prediction and probabilities from a
    record line with the compiled reader: the store gets exactly the rows that converting the
    record read back by orjson gives, whatever the values' spelling."""
    rng = random.Random(11)
    for trial in range(600):
        line = record_line(_record(rng, rng.choice([1, 2, 5, 40])))[:-1]
        record = orjson.loads(line)
        assert json_rows.record_rows(line, len(record["predictions"]), list(record["inputs"])) is not None, line
        assert line_rows(line) == table_rows(record), (trial, line)


@pytest.mark.parametrize("line", [
    b'{"inputs":[{"x":1}],"predictions":[0],"probabilities":null}',  # an earlier serein's rows
    b'{"inputs":{"x":[1,2]},"predictions":[0],"probabilities":null}',  # a column longer than the predictions
    b'{"inputs":{"x":[1]},"predictions":[0,1],"probabilities":null}',  # shorter
    b'{"inputs":{"x":[1],"y":[2]},"predictions":[0],"probabilities":null}',  # more columns than named
    b'{"inputs":{"x":[1]},"probabilities":null}',  # no predictions
    b'{"inputs":{"x":[1]},"predictions":[0],"probabilities":[[0.5],[0.5]]}',  # probabilities for two rows
], ids=["rows", "longer", "shorter", "columns", "no-predictions", "probabilities"])
def test_a_line_the_reader_does_not_cut_is_left_to_python(line: bytes) -> None:
    assert json_rows.record_rows(line, 1, ["x"]) is None
