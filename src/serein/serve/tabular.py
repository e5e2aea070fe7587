"""Turning column-oriented and CSV request bodies into the rows the validator checks.

The validator (``serve.validation.RowValidator``) takes decoded JSON rows, one ``{feature: value}``
dict each. The protocols that send tables another way are brought to that form here, so every
protocol is validated, scored and logged by the one path ``/v1`` uses:

* ``rows_from_columns``: one list per column (the Open Inference Protocol's one tensor per column,
  MLflow's columnar ``inputs``/``instances``);
* ``rows_from_split``: ``columns`` + ``data`` (MLflow's ``dataframe_split``, pandas' split orient);
* ``csv_rows``: CSV text with a header row, each field parsed *strictly* by the contract's column
  type (a numeric column takes only a number; an empty field is a null; ``true``/``false`` for a
  boolean column). A field that does not parse is a problem naming its row and column, as the
  validator's are; the value itself is never quoted back.

Structural mistakes (ragged columns, a missing header, a header written with semicolons or tabs
rather than commas) raise ``ValidationFailed`` (HTTP 422 on ``/v1``; the other protocols answer
400 as their clients expect).

>>> from serein.data.contract import Contract
>>> contract = Contract.from_dict({"columns": {"age": {"type": "integer"}, "city": {"type": "string"}}})
>>> csv_rows(b"age,city\\n41,Oslo\\n,\\n", contract, max_rows=10)
[{'age': 41, 'city': 'Oslo'}, {'age': None, 'city': None}]
>>> rows_from_columns({"age": [41, 7], "city": ["Oslo"]}, max_rows=10)
Traceback (most recent call last):
serein.errors.ValidationFailed: the columns have different lengths: 'age' has 2 value(s), 'city' has 1 (every column needs one value per row)
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from serein.data.readers import other_separator, separator_problem
from serein.errors import UsageError, ValidationFailed
from serein.serve.payloads import HttpError, JsonInstances, is_json, media_type, read_body
from serein.serve.validation import MAX_PROBLEMS, RequestInvalid
from serein.serve.validation import _field_name as field_name

if TYPE_CHECKING:
    from starlette.requests import Request

    from serein.data.contract import Contract
    from serein.serve.models import ServedModel
    from serein.serve.answers import Scored

CSV_MEDIA = "text/csv"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False}


class ScoreRows(Protocol):
    """The ``/v1`` predict path every protocol hands its rows to (``score`` in
    ``serve.app.create_app``), decoded or as a ``JsonInstances`` body: validate, predict, submit
    the log record, then return (answer with ``serve.answers.after_logged``). ``claimed``: the
    request id came from the client, so it must not have been used before."""

    def __call__(self, served: ServedModel, rows: list[Any] | JsonInstances, rid: str, start: float,
                 claimed: bool) -> Awaitable[Scored]: ...


def check_row_count(n_rows: int, max_rows: int) -> None:
    """Refuse a request without rows (422) or with more than ``max_rows`` (413)."""
    if n_rows == 0:
        raise ValidationFailed("the request holds no rows", hint="send at least one row to predict")
    if n_rows > max_rows:
        raise HttpError(413, f"{n_rows} rows exceed the limit of {max_rows} per request",
                        hint="split them over several requests (serve.max_rows sets the limit)")


def rows_from_columns(columns: Mapping[str, Sequence[Any]], max_rows: int) -> list[dict[str, Any]]:
    """One dict per row from one equally long list per column."""
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        longest, shortest = max(lengths, key=lengths.__getitem__), min(lengths, key=lengths.__getitem__)
        raise ValidationFailed(f"the columns have different lengths: {field_name(longest)!r} has "
                               f"{lengths[longest]} value(s), {field_name(shortest)!r} has {lengths[shortest]}",
                               hint="every column needs one value per row")
    n_rows = next(iter(lengths.values()), 0)
    check_row_count(n_rows, max_rows)
    return column_rows(list(columns), list(columns.values()), n_rows)


def column_rows(names: Sequence[str], columns: Sequence[Sequence[Any]], n_rows: int) -> list[dict[str, Any]]:
    """One dict per row from ``n_rows``-long columns (the rows the validator and the log take),
    filled column by column: keys in ``names`` order, as ``dict(zip(names, values))`` per row gives
    them, in two thirds of its time."""
    rows: list[dict[str, Any]] = [{} for _ in range(n_rows)]
    for name, values in zip(names, columns, strict=True):
        for row, value in zip(rows, values):
            row[name] = value
    return rows


def rows_from_split(columns: Any, data: Any, max_rows: int) -> list[dict[str, Any]]:
    """One dict per row from a ``columns`` list and ``data`` rows of values in that order."""
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValidationFailed("'columns' must be a list of column names", hint=_SPLIT_EXAMPLE)
    _unique(columns)
    if not isinstance(data, list):
        raise ValidationFailed("'data' must be a list of rows (one list of values per row)", hint=_SPLIT_EXAMPLE)
    check_row_count(len(data), max_rows)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise ValidationFailed(f"row {i} of 'data' must be a list of values", hint=_SPLIT_EXAMPLE)
        if len(row) != len(columns):
            raise ValidationFailed(f"row {i} of 'data' has {len(row)} value(s) for {len(columns)} column(s)",
                                   hint="give every row one value per column, null for a missing one")
    return [dict(zip(columns, row)) for row in data]  # every row's length checked above


_SPLIT_EXAMPLE = 'send {"columns": ["age", ...], "data": [[41, ...], ...]}'


def _unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValidationFailed(f"column {field_name(name)!r} is given twice", hint="name every column once")
        seen.add(name)


class _Unparsable(Exception):
    """A CSV field that is not a value of its column's type; carries the problem, never the text."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _csv_parser(kind: str | None) -> Callable[[str], Any] | None:
    """A function turning one non-empty CSV field into the column's JSON value (raising
    ``_Unparsable``), or None when the text goes to the validator as it is: strings, date-times
    (the validator checks them) and columns the contract does not know."""
    if kind in ("integer", "float"):
        expected = "an integer" if kind == "integer" else "a number"

        def number(text: str) -> Any:
            if _INTEGER.fullmatch(text):
                return int(text)
            if _NUMBER.fullmatch(text):
                return float(text)
            raise _Unparsable(f"expected {expected}, got text that is not one (leave the field empty for a "
                              "missing value)")
        return number
    if kind == "boolean":
        def boolean(text: str) -> Any:
            value = _BOOLEANS.get(text.lower())
            if value is None:
                raise _Unparsable("expected true or false")
            return value
        return boolean
    return None


def csv_rows(body: bytes | bytearray, contract: Contract, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a CSV body with a header row, typed by ``contract`` (see the module text)."""
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the CSV body is not UTF-8 (invalid byte at offset {exc.start})",
                         hint="encode the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        records = list(reader)
    except csv.Error as exc:
        _refuse_other_separator(text)
        raise ValidationFailed(f"the CSV is malformed at line {reader.line_num}: {exc}",
                               hint="quote fields holding commas, quotes or line breaks, doubling inner quotes") from None
    if not header or header == [""]:
        raise ValidationFailed("the CSV has no header row", hint="start the CSV with a line naming the columns")
    if not any(name in contract.columns for name in header):
        _refuse_other_separator(text)
        raise ValidationFailed("the CSV's first line is not a header row (it names none of the model's columns)",
                               hint=f"start the CSV with a header row naming the columns, such as "
                                    f"{','.join(list(contract.columns)[:3])},...")
    if "" in header:
        raise ValidationFailed(f"column {header.index('') + 1} of the CSV header has no name",
                               hint="name every column in the header row")
    _unique(header)
    records = [record for record in records if record]  # csv yields [] for blank lines
    check_row_count(len(records), max_rows)
    width = len(header)
    problems = [(i, -1, {"row": i, "field": None, "problem": f"has {len(record)} field(s), the header has {width}"})
                for i, record in enumerate(records) if len(record) != width]
    whole = [i for i, record in enumerate(records) if len(record) == width] if problems else range(len(records))
    columns = list(zip(*(records[i] for i in whole))) or [()] * width
    values = []
    for position, (name, texts) in enumerate(zip(header, columns, strict=True)):
        parsed, bad = _column_values(contract.columns[name].type if name in contract.columns else None, texts)
        values.append(parsed)
        problems.extend((whole[i], position, {"row": whole[i], "field": field_name(name), "problem": problem})
                        for i, problem in bad)
    if problems:
        problems.sort(key=lambda found: found[:2])  # as the rows read, field by field
        raise RequestInvalid([found[2] for found in problems[:MAX_PROBLEMS]], more=len(problems) > MAX_PROBLEMS)
    return column_rows(header, values, len(whole))


def _refuse_other_separator(text: str) -> None:
    """Refuse a CSV body whose header row is written with semicolons or tabs rather than commas
    (``serein.data.readers.other_separator``), which reads as one column named by the whole line."""
    separator = other_separator(text.partition("\n")[0].rstrip("\r"))
    if separator is not None:
        raise ValidationFailed(f"the CSV is not comma-separated: {separator_problem(separator)}",
                               hint="separate the fields with commas, quoting a field that holds a comma")


def _column_values(kind: str | None, texts: Sequence[str]) -> tuple[list[Any], list[tuple[int, str]]]:
    """One CSV column's values (None for an empty field) and the positions of the fields that do
    not parse, with the problem. A numeric column whose fields are all JSON numbers, as CSV writers
    write them, is parsed at once (``_json_numbers``); any other is parsed field by field."""
    if kind in ("integer", "float") and (numbers := _json_numbers(texts)) is not None:
        return numbers, []
    parse = _csv_parser(kind)
    if parse is None:
        return [text or None for text in texts], []
    values: list[Any] = []
    bad: list[tuple[int, str]] = []
    for i, text in enumerate(texts):
        if text == "":
            values.append(None)
            continue
        try:
            values.append(parse(text))
        except _Unparsable as exc:
            values.append(None)
            bad.append((i, exc.problem))
    return values, bad


def _json_numbers(texts: Sequence[str]) -> list[Any] | None:
    """The fields of a numeric column, None for an empty one, when every other field is a JSON
    number: the fields joined with commas are parsed by one ``orjson.loads``, integers as ``int``
    (as field by field), about 40 times faster than a regular expression and a conversion per
    field. None otherwise (a sign, ``.5``, leading zeros, spaces, a comma inside a field,
    ``true``, a number beyond float64 or 64-bit integers, text): the field-by-field parse then
    decides, and names what does not parse.

    >>> _json_numbers(["41", "", "-1.5e-05"]), _json_numbers(["+41"]), _json_numbers(["1", " 2"])
    ([41, None, -1.5e-05], None, None)
    """
    present = [text for text in texts if text]
    joined = ",".join(present)
    if " " in joined or "\t" in joined or "\n" in joined or "\r" in joined:  # JSON's whitespace, not CSV's numbers
        return None
    try:
        numbers = orjson.loads(f"[{joined}]")
    except orjson.JSONDecodeError:
        return None
    if len(numbers) != len(present) or not {type(number) for number in numbers} <= {int, float}:
        return None  # a comma inside a field, or true, null, a list...
    if len(present) == len(texts):
        return list(numbers)
    found = iter(numbers)
    return [next(found) if text else None for text in texts]


async def predict_rows(request: Request, contract: Contract, max_bytes: int,
                       max_rows: int) -> list[Any] | JsonInstances:
    """The rows of a ``/v1`` predict body: ``{"instances": [...]}`` as JSON (read, not decoded yet:
    ``JsonInstances``), or CSV with a header row (``Content-Type: text/csv``); any other content
    type is refused with 415."""
    media = media_type(request)
    if media == CSV_MEDIA:
        check_charset(request)
        return csv_rows(await read_body(request, max_bytes), contract, max_rows)
    if not is_json(media):
        raise HttpError(415, f"content type must be application/json or text/csv, got {media[:60] or 'none'!r}",
                        hint='send {"instances": [...]} as application/json, or CSV with a header row as text/csv')
    return JsonInstances(await read_body(request, max_bytes), max_rows)


def check_charset(request: Request) -> None:
    """Refuse (415) a body declared in a character set other than UTF-8."""
    for parameter in request.headers.get("content-type", "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise HttpError(415, f"only UTF-8 bodies are accepted, got charset {value.strip()[:30]!r}",
                            hint="encode the body as UTF-8")
