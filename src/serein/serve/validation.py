"""Per-request validation, compiled once per model from its contract.

Pandera costs ~10 ms per call, far too much for a single-row request, so serving compiles the
contract into per-column checks that work on the decoded JSON rows directly. One pass gathers the
rows into columns (checking that every row is an object with exactly the contract's fields); each
column is then checked *vectorised* (the set of its values' Python types, numpy for the numeric
checks, one set difference for the categories). Only a column where something is wrong is checked
value by value, which finds and names each problem. A request's rows come out *column-wise*: a
numpy array per numeric feature (``float64`` with NaN for a null; ``int64`` for an integer column
without nulls), a list per other feature, ready for the runtime to build its input once.

Two kinds of finding:

* **problems** reject the request (HTTP 422): a missing field, a null where the column is not
  nullable, a value of the wrong JSON type (no silent coercion: the string ``"1.5"`` is not a
  number, ``true`` is not a number, ``3.0`` is fine for an integer column), NaN/Infinity, an
  unknown field when ``contract.unknown_fields == "reject"``, a category outside ``allowed`` when
  the column's ``unseen == "reject"``, a string not matching the column's ``regex``.
* **flags** are accepted and reported (and predicted anyway): values outside ``min``/``max``,
  negatives where ``non_negative``, unseen categories when ``unseen == "flag"``, broken
  cross-column rules. Rejecting them would hide exactly the drift monitoring is there to see.

Messages name the row and field and what was expected; they never echo the submitted values.

A JSON body of rows can also be checked without being decoded into rows (``validate_body``): the
compiled reader (``serein.serve.json_rows``) reads it into the same columns, which go through the
same column checks; a body it does not judge, or one with a problem, goes to ``validate`` on the
decoded rows, which names the problems.

>>> from serein.data.contract import Contract
>>> v = RowValidator(Contract.from_dict({"columns": {
...     "age": {"type": "integer", "nullable": False, "min": 18},
...     "city": {"type": "string", "allowed": ["Lyon", "Oslo"], "unseen": "reject"}}}))
>>> batch = v.validate([{"age": 30.0, "city": "Oslo"}, {"age": 16, "city": None}])
>>> batch.columns
{'age': array([30, 16]), 'city': ['Oslo', None]}
>>> batch.flags
[{'row': 1, 'field': 'age', 'problem': 'below the contract minimum 18'}]
>>> try:
...     v.validate([{"age": "30", "city": "Paris", "zip": 1}])
... except RequestInvalid as exc:
...     [(p["field"], p["problem"]) for p in exc.problems]
[('age', 'expected an integer, got a string'), ('city', 'category not in the contract (2 allowed values)'), ('zip', 'unknown field (the contract has 2 fields)')]
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from itertools import chain
from dataclasses import dataclass
from datetime import UTC, datetime
from types import NoneType
from typing import Any

import numpy as np

from serein.data.contract import ColumnSpec, Contract, Rule
from serein.errors import ValidationFailed
from serein.serve.json_rows import Columns, GivenTwice, RowReader

MAX_PROBLEMS = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_FIELD_CHARS = 64
_EXACT_FLOAT_INT = 2.0**53  # float64 holds every integer below this exactly
_NOT_GIVEN = object()  # a field missing from its row (reported once, by the structural pass)

# The Python types (as decoded from JSON) each column type accepts; anything else is a problem.
_OK_TYPES: dict[str, set[type]] = {
    "integer": {int, float}, "float": {int, float}, "string": {str}, "boolean": {bool}, "datetime": {str},
}
_NUMERIC_KINDS = {int, float, NoneType}
_READABLE_TYPES = {"integer", "float", "string", "datetime"}  # what the compiled reader reads (booleans: orjson)
# From this many rows on, the checks run vectorised (numpy's per-call overhead, about a
# microsecond, would make a one-row request slower than checking its few values one by one).
VECTORISE_ROWS = 8

_JSON_KINDS: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    dict: "an object",
    list: "a list",
    NoneType: "null",
}
_EXPECTED = {
    "integer": "an integer",
    "float": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "datetime": "an ISO 8601 date-time string",
}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}


class _Reject(Exception):
    """Raised by a column check; carries the problem text (never the value)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


class RequestInvalid(ValidationFailed):
    """The rows of a request broke the contract; ``problems`` lists the first ones found."""

    def __init__(self, problems: list[dict[str, Any]], more: bool = False) -> None:
        first = problems[0]
        where = f"row {first['row']}" + (f", field {first['field']!r}" if first["field"] else "")
        count = f"{len(problems)}{'+' if more else ''} problem(s)"
        super().__init__(
            f"{count} in the instances (details list {'the first ' if more else ''}{len(problems)}), "
            f"first at {where}: {first['problem']}",
            hint="fix the listed fields; GET /v1/models/{name} shows the expected input schema",
        )
        self.problems = problems


@dataclass
class ValidatedBatch:
    """Rows that passed: one column per feature (contract order) and the flags raised."""

    columns: dict[str, np.ndarray | list[Any]]
    flags: list[dict[str, Any]]
    n_rows: int


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _field_name(name: Any) -> str:
    """A submitted field name, shortened so an error never carries a large payload back."""
    text = str(name)
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "..."


def _type_check(spec: ColumnSpec) -> Callable[[Any], Any]:
    """A closure returning the value as the column's Python type, or raising ``_Reject``."""
    expected = _EXPECTED[spec.type]

    def wrong(value: Any) -> _Reject:
        return _Reject(f"expected {expected}, got {_kind(value)}")

    if spec.type == "integer":
        def check(value: Any) -> Any:
            kind = type(value)
            if kind is int:
                if INT64_MIN <= value <= INT64_MAX:
                    return value
                raise _Reject("expected an integer within the 64-bit range")
            if kind is float:
                if value.is_integer():
                    if INT64_MIN <= value <= INT64_MAX:
                        return int(value)
                    raise _Reject("expected an integer within the 64-bit range")
                raise _Reject("expected an integer, got a number with a fraction" if math.isfinite(value)
                              else "expected an integer, got NaN or Infinity")
            raise wrong(value)
    elif spec.type == "float":
        def check(value: Any) -> Any:
            kind = type(value)
            if kind is float:
                if math.isfinite(value):
                    return value
                raise _Reject("expected a finite number, got NaN or Infinity")
            if kind is int:
                try:
                    return float(value)
                except OverflowError:
                    raise _Reject("expected a number within the 64-bit floating-point range") from None
            raise wrong(value)
    elif spec.type == "string":
        def check(value: Any) -> Any:
            if type(value) is str:
                return value
            raise wrong(value)
    elif spec.type == "boolean":
        def check(value: Any) -> Any:
            if type(value) is bool:
                return value
            raise wrong(value)
    else:  # datetime
        def check(value: Any) -> Any:
            if type(value) is not str:
                raise wrong(value)
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise _Reject("expected an ISO 8601 date-time string such as 2026-11-01T12:00:00Z") from None
            # Naive times are read as UTC so that one column never mixes naive and aware values.
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return check


def _column_check(spec: ColumnSpec) -> Callable[[Any], Any]:
    """The type check plus the rejecting checks (unseen category under ``reject``, regex)."""
    check = _type_check(spec)
    extra: list[Callable[[Any], None]] = []
    if spec.allowed is not None and spec.unseen == "reject":
        allowed = frozenset(spec.allowed)
        message = f"category not in the contract ({len(allowed)} allowed values)"

        def in_allowed(value: Any) -> None:
            if value not in allowed:
                raise _Reject(message)
        extra.append(in_allowed)
    if spec.regex is not None and spec.type == "string":
        pattern = re.compile(spec.regex)
        message = f"does not match the pattern {spec.regex!r}"

        def matches(value: Any) -> None:
            if pattern.match(value) is None:
                raise _Reject(message)
        extra.append(matches)
    if not extra:
        return check

    def checked(value: Any) -> Any:
        value = check(value)
        for test in extra:
            test(value)
        return value
    return checked


class _Column:
    """One contract column compiled for serving: ``convert`` turns the column's submitted values
    (one per row) into the form the runtime takes and lists the rejected ones.

    Text, boolean and category columns are checked vectorised when ``vectorise``: one ``set`` of
    the values' Python types decides the type check, one set difference the categories. When
    that finds anything wrong (and for small requests, date-times and numeric columns that
    ``_NumericBlock`` could not take) the per-value check closure runs instead, naming each
    problem."""

    def __init__(self, index: int, name: str, spec: ColumnSpec) -> None:
        self.index = index
        self.name = name
        self.spec = spec
        self.check = _column_check(spec)
        self._ok_types = _OK_TYPES[spec.type] | ({NoneType} if spec.nullable else set())
        allowed = frozenset(spec.allowed) if spec.allowed is not None else None
        self._allowed = allowed if spec.unseen == "reject" else None
        self._regex = re.compile(spec.regex) if spec.regex is not None and spec.type == "string" else None

    def convert(self, values: Sequence[Any], vectorise: bool) -> tuple[list[Any], list[tuple[int, str]]]:
        """The converted values and the problems as ``(row, problem)``; ``_NOT_GIVEN`` marks a
        missing value (already reported by the structural pass)."""
        if vectorise and self._passes(values):
            return list(values), []
        nullable, check = self.spec.nullable, self.check
        converted: list[Any] = []
        problems: list[tuple[int, str]] = []
        for i, value in enumerate(values):
            if value is None or value is _NOT_GIVEN:
                if value is None and not nullable:
                    problems.append((i, "null is not allowed (the column is not nullable)"))
                converted.append(None)
                continue
            try:
                converted.append(check(value))
            except _Reject as exc:
                problems.append((i, exc.problem))
                converted.append(None)
        return converted, problems

    def _passes(self, values: Sequence[Any]) -> bool:
        """Whether every value of a text or boolean column is valid as it is."""
        if self.spec.type not in ("string", "boolean") or not self._ok_types.issuperset(map(type, values)):
            return False
        if self._allowed is None and self._regex is None:
            return True
        present = set(values)
        present.discard(None)
        if self._allowed is not None and not present <= self._allowed:
            return False
        return self._regex is None or all(self._regex.match(v) for v in present)


class _NumericBlock:
    """All numeric columns of a contract held as one ``(columns, rows)`` float64 array (NaN for a
    null): the range flags cost a few numpy operations per request whatever the number of
    columns, and ``convert`` checks a large request's values in about a dozen.

    ``convert`` returns None as soon as anything is off (a wrong type, a disallowed null, a
    fraction in an integer column, ...): the columns are then checked one by one, which names
    the problems, and ``assemble`` builds the block from the checked values."""

    def __init__(self, columns: list[_Column]) -> None:
        self.columns = columns
        self.positions = [column.index for column in columns]
        specs = [column.spec for column in columns]
        self._nullable = np.array([spec.nullable for spec in specs])
        self._integer = np.array([spec.type == "integer" for spec in specs])
        nan = float("nan")
        self._low = np.array([[nan if spec.min is None else spec.min] for spec in specs])
        self._high = np.array([[nan if spec.max is None else spec.max] for spec in specs])
        self._zero = np.array([[0.0 if spec.non_negative else nan] for spec in specs])
        self._messages = [(f"below the contract minimum {spec.min:g}" if spec.min is not None else "",
                           f"above the contract maximum {spec.max:g}" if spec.max is not None else "",
                           "negative where the contract expects non-negative values") for spec in specs]

    def convert(self, raw: list[Sequence[Any]]) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        """The numeric columns (``raw``: the submitted values, one sequence per numeric column)
        and the block they are views of, or None."""
        kinds = set(map(type, chain.from_iterable(raw)))
        if not kinds <= _NUMERIC_KINDS:
            return None
        try:
            block = np.array(raw, dtype=np.float64)  # None becomes NaN
        except OverflowError:  # an integer beyond float64
            return None
        nulls = ~np.isfinite(block)
        if nulls.any():  # every non-finite value must be a null, not NaN or infinity
            per_column = nulls.sum(axis=1)
            if NoneType not in kinds or any(raw[j].count(None) != per_column[j] for j in np.flatnonzero(per_column)):
                return None
        return self.checked(block, nulls)

    def checked(self, block: np.ndarray, nulls: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        """The numeric columns of a block of numbers (NaN where ``nulls``) and the block, or None
        when a null is not allowed or an integer column holds a fraction."""
        with_nulls: list[int] = []
        if nulls.any():
            per_column = nulls.any(axis=1)
            if (per_column & ~self._nullable).any():
                return None
            with_nulls = np.flatnonzero(per_column).tolist()
        if self._integer.any():
            whole = block[self._integer]
            exact = (whole == np.floor(whole)) & (np.abs(whole) < _EXACT_FLOAT_INT)
            if with_nulls:
                exact |= nulls[self._integer]
            if not exact.all():
                return None
            for j in with_nulls:  # an integer column with nulls stays float64: -0.0 is the integer 0
                if self._integer[j]:
                    block[j] += 0.0
        return self._split(block, with_nulls), block

    def assemble(self, columns: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The numeric columns and their block from values checked one by one (lists, None for
        a null); an integer column without nulls is converted exactly, not through float64."""
        values = [columns[column.name] for column in self.columns]
        block = np.array(values, dtype=np.float64)
        with_nulls = [j for j, column in enumerate(values) if None in column]
        out = self._split(block, with_nulls)
        for j, column in enumerate(self.columns):
            if self._integer[j] and j not in with_nulls:
                out[column.name] = np.array(values[j], dtype=np.int64)
        return out, block

    def _split(self, block: np.ndarray, with_nulls: list[int]) -> dict[str, np.ndarray]:
        """One array per column: a view of the block, or int64 for an integer column without nulls."""
        out = {}
        for j, column in enumerate(self.columns):
            values = block[j]
            if self._integer[j] and j not in with_nulls:
                values = values.astype(np.int64)
            out[column.name] = values
        return out

    def flags(self, block: np.ndarray) -> list[tuple[int, int, str]]:
        """``(row, contract position, message)`` of every value outside its column's range (the
        first test it breaks: minimum, maximum, non-negative)."""
        below, above, negative = block < self._low, block > self._high, block < self._zero
        hits = below | above | negative  # NaN (a null) compares False
        if not hits.any():
            return []
        found = []
        for j, i in zip(*np.nonzero(hits), strict=True):
            kind = 0 if below[j, i] else 1 if above[j, i] else 2
            found.append((int(i), self.positions[j], self._messages[j][kind]))
        return found


def _unseen_rows(allowed: frozenset[Any], values: list[Any]) -> list[int]:
    """Rows whose (non-null) value is not one of ``allowed``."""
    if allowed.issuperset(values):
        return []
    return [i for i, value in enumerate(values) if value not in allowed and value is not None]


def _python_values(values: np.ndarray | list[Any]) -> list[Any]:
    """A column as Python values, None for a null (NaN in a float array)."""
    if isinstance(values, list):
        return values
    plain = values.tolist()
    return [None if v != v else v for v in plain] if values.dtype.kind == "f" else plain


def _rule_breaks(rule: Rule, columns: dict[str, np.ndarray | list[Any]], n_rows: int) -> list[int]:
    """The rows breaking ``rule`` (rows with a null on either side pass): numpy when both sides
    are numeric, else row by row."""
    op = _OPS[rule.op]
    left = columns[rule.left]
    right = columns[rule.right] if isinstance(rule.right, str) else rule.right
    if isinstance(left, np.ndarray) and isinstance(right, (np.ndarray, int, float)):
        broken = ~op(left, right)  # NaN (a null) compares False without a warning
        if left.dtype.kind == "f":
            broken &= ~np.isnan(left)
        if isinstance(right, np.ndarray) and right.dtype.kind == "f":
            broken &= ~np.isnan(right)
        return np.flatnonzero(broken).tolist()
    left_values = _python_values(left)
    right_values = _python_values(right) if isinstance(right, (list, np.ndarray)) else [right] * n_rows
    return [i for i, (a, b) in enumerate(zip(left_values, right_values, strict=True))
            if a is not None and b is not None and not op(a, b)]


def _getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``row -> tuple of row[name] for name in names`` at C speed (``KeyError`` when one is missing)."""
    if len(names) == 1:
        only = names[0]
        return lambda row: (row[only],)
    return operator.itemgetter(*names)


Problem = tuple[int, int, dict[str, Any]]  # (row, position in the row, the problem as reported)


class RowValidator:
    """A contract compiled for serving: ``validate(rows)`` costs about a microsecond per row."""

    def __init__(self, contract: Contract, max_problems: int = MAX_PROBLEMS) -> None:
        self.contract = contract
        self.max_problems = max_problems
        self.features = list(contract.columns)
        self._feature_set = frozenset(self.features)
        self._reject_unknown = contract.unknown_fields == "reject"
        self._columns = [_Column(i, name, spec) for i, (name, spec) in enumerate(contract.columns.items())]
        numeric = [column for column in self._columns if column.spec.numeric]
        self._block = _NumericBlock(numeric) if numeric else None
        self._unseen = [(column, frozenset(column.spec.allowed)) for column in self._columns
                        if column.spec.allowed is not None and column.spec.unseen == "flag"]
        self._values = _getter(self.features)
        readable = all(column.spec.type in _READABLE_TYPES for column in self._columns)
        self._reader = RowReader(self.features, [not column.spec.numeric for column in self._columns]) \
            if readable and RowReader.built() else None

    def validate(self, rows: Sequence[Any]) -> ValidatedBatch:
        """Check decoded JSON rows; raise ``RequestInvalid`` listing the first problems (in row
        order; within a row, fields in contract order, then unknown fields)."""
        n_rows = len(rows)
        vectorise = n_rows >= VECTORISE_ROWS
        values, problems = self._gather(rows)
        raw_columns = list(zip(*values, strict=True)) if values else [()] * len(self._columns)
        numeric, block = None, None
        if vectorise and not problems and self._block is not None:
            numeric, block = self._block.convert([raw_columns[i] for i in self._block.positions]) or (None, None)
        columns: dict[str, np.ndarray | list[Any]] = {}
        for column, raw in zip(self._columns, raw_columns, strict=True):
            if numeric is not None and column.name in numeric:
                columns[column.name] = numeric[column.name]
                continue
            columns[column.name], found = column.convert(raw, vectorise)
            if found:
                problems.extend((i, column.index, {"row": i, "field": column.name, "problem": p}) for i, p in found)
        if problems:
            self._reject(problems, n_rows)
        if self._block is not None and block is None:
            numeric, block = self._block.assemble(columns)
            columns.update(numeric)  # same keys: the contract order stays
        return ValidatedBatch(columns, self._flag(columns, block, n_rows), n_rows)

    def validate_body(self, body: bytes | bytearray, max_rows: int, key: bytes = b"instances") -> ValidatedBatch | None:
        """Read and check a JSON body ``{key: [rows]}`` with the compiled reader
        (``serein.serve.json_rows``), without decoding it into rows; None when the reader does not
        judge it or something is wrong (``validate`` on the decoded rows then names the problems).
        Raises ``RequestInvalid`` for a field given twice in a row."""
        read = self._read(body, max_rows, True, key)
        if read is None:
            return None
        numeric: dict[str, np.ndarray] = {}
        block = None
        if self._block is not None:
            if (checked := self._block.checked(read.numbers, np.isnan(read.numbers))) is None:
                return None
            numeric, block = checked
        texts = iter(read.texts)
        columns: dict[str, np.ndarray | list[Any]] = {}
        for column in self._columns:
            if column.spec.numeric:
                columns[column.name] = numeric[column.name]
                continue
            columns[column.name], found = column.convert(next(texts), read.n_rows >= VECTORISE_ROWS)
            if found:
                return None
        return ValidatedBatch(columns, self._flag(columns, block, read.n_rows), read.n_rows)

    def refuse_fields_given_twice(self, body: bytes | bytearray, max_rows: int, key: bytes = b"instances") -> None:
        """Raise ``RequestInvalid`` when a row of a JSON body ``{key: [rows]}`` gives a field twice,
        which orjson would let through (keeping the last value): the compiled reader's check
        alone, for bodies too small to be worth reading into columns (a few microseconds)."""
        self._read(body, max_rows, False, key)

    def _read(self, body: bytes | bytearray, max_rows: int, columns: bool, key: bytes) -> Columns | None:
        """``RowReader.read``, a field given twice refused with ``RequestInvalid``."""
        if self._reader is None:
            return None
        try:
            return self._reader.read(body, max_rows, columns, key)
        except GivenTwice as twice:
            raise RequestInvalid([{"row": twice.row, "field": twice.field, "problem": "field given more than once"}]) \
                from None

    def _gather(self, rows: Sequence[Any]) -> tuple[list[tuple[Any, ...]], list[Problem]]:
        """The rows' values in contract order (one tuple per row) and the structural problems
        (not an object, missing and unknown fields)."""
        n_features = len(self.features)
        if set(map(type, rows)) == {dict} and (not self._reject_unknown or set(map(len, rows)) == {n_features}):
            try:  # every row holds every feature and, being of the right size, nothing else
                return list(map(self._values, rows)), []
            except KeyError:
                pass
        values: list[tuple[Any, ...]] = []
        problems: list[Problem] = []
        for i, row in enumerate(rows):
            if type(row) is not dict:
                problems.append((i, 0, {"row": i, "field": None,
                                        "problem": f"expected an object of feature values, got {_kind(row)}"}))
                values.append((_NOT_GIVEN,) * n_features)
                continue
            values.append(tuple(row.get(name, _NOT_GIVEN) for name in self.features))
            problems.extend((i, k, {"row": i, "field": name, "problem": "required field is missing"})
                            for k, name in enumerate(self.features) if name not in row)
            if self._reject_unknown:
                problems.extend(
                    (i, n_features + k, {"row": i, "field": _field_name(key),
                                         "problem": f"unknown field (the contract has {n_features} fields)"})
                    for k, key in enumerate(row) if key not in self._feature_set)
        return values, problems

    def _reject(self, problems: list[Problem], n_rows: int) -> None:
        """Raise ``RequestInvalid`` with the first ``max_problems`` problems, ``more`` when rows
        after the last one listed were not looked at, or it had more problems than listed."""
        problems.sort(key=lambda p: (p[0], p[1]))
        listed = [p[2] for p in problems[: self.max_problems]]
        if len(problems) < self.max_problems:
            raise RequestInvalid(listed)
        last_row = problems[self.max_problems - 1][0]
        through_last_row = sum(1 for p in problems if p[0] <= last_row)
        raise RequestInvalid(listed, more=through_last_row > self.max_problems or last_row + 1 < n_rows)

    def _flag(self, columns: dict[str, np.ndarray | list[Any]], block: np.ndarray | None,
              n_rows: int) -> list[dict[str, Any]]:
        """The flags, by row; within a row by contract order, then the rules' (one flag per value:
        the first test it breaks, range before category)."""
        found = [] if block is None or self._block is None else self._block.flags(block)
        for column, allowed in self._unseen:
            if unseen := _unseen_rows(allowed, _python_values(columns[column.name])):
                found.extend((i, column.index, "unseen category (accepted and flagged for monitoring)") for i in unseen)
        found.sort(key=lambda f: (f[0], f[1]))  # stable: a range flag stays before a category flag
        flags: list[dict[str, Any]] = []
        last = None
        for i, position, message in found:
            if (i, position) != last:
                flags.append({"row": i, "field": self.features[position], "problem": message})
                last = (i, position)
        for rule in self.contract.rules:
            message = f"breaks the contract rule {rule.name!r} ({rule.left} {rule.op} {rule.right})"
            flags.extend({"row": i, "field": rule.left, "problem": message}
                         for i in _rule_breaks(rule, columns, n_rows))
        flags.sort(key=lambda f: f["row"])
        return flags

    def example_columns(self) -> dict[str, np.ndarray | list[Any]]:
        """One row of typical values (first allowed category, lower bound, ...) in the column
        form ``validate`` returns; used to warm a freshly loaded model. Regexes are not
        honoured: the row feeds the runtime directly, never a client."""
        columns: dict[str, Any] = {column.name: [_type_check(column.spec)(_example_value(column.spec))]
                                   for column in self._columns}
        if self._block is not None:
            columns.update(self._block.assemble(columns)[0])
        return columns


def _example_value(spec: ColumnSpec) -> Any:
    if spec.allowed:
        return spec.allowed[0]
    if spec.numeric:
        if spec.min is not None:
            return math.ceil(spec.min) if spec.type == "integer" else float(spec.min)
        if spec.max is not None:
            return math.floor(spec.max) if spec.type == "integer" else float(spec.max)
        return 0 if spec.type == "integer" else 0.0
    return {"string": "", "boolean": False, "datetime": "2026-01-01T00:00:00"}[spec.type]
