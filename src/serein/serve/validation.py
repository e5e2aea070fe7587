"""Per-request validation, compiled once per model from its contract.

Pandera costs ~10 ms per call, far too much for a single-row request, so serving compiles the
contract into one small check closure per column that works on the decoded JSON rows directly.
A request's rows come out *column-wise* (one list per feature), ready for the runtime to build its
input once per request.

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

>>> from serein.data.contract import Contract
>>> v = RowValidator(Contract.from_dict({"columns": {
...     "age": {"type": "integer", "nullable": False, "min": 18},
...     "city": {"type": "string", "allowed": ["Lyon", "Oslo"], "unseen": "reject"}}}))
>>> batch = v.validate([{"age": 30.0, "city": "Oslo"}, {"age": 16, "city": None}])
>>> batch.columns
{'age': [30, 16], 'city': ['Oslo', None]}
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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serein.data.contract import ColumnSpec, Contract, Rule
from serein.errors import ValidationFailed

MAX_PROBLEMS = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_FIELD_CHARS = 64

_JSON_KINDS: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    dict: "an object",
    list: "a list",
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
    """Rows that passed: one list per feature (contract order) and the flags raised."""

    columns: dict[str, list[Any]]
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
                return float(value)
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


def _column_flags(spec: ColumnSpec) -> Callable[[Any], str | None] | None:
    """A closure naming the first accepted-but-suspicious property of a (valid, non-null) value."""
    tests: list[tuple[Callable[[Any], bool], str]] = []
    if spec.numeric:
        if spec.min is not None:
            low = spec.min
            tests.append((lambda v: v < low, f"below the contract minimum {low:g}"))
        if spec.max is not None:
            high = spec.max
            tests.append((lambda v: v > high, f"above the contract maximum {high:g}"))
        if spec.non_negative:
            tests.append((lambda v: v < 0, "negative where the contract expects non-negative values"))
    if spec.allowed is not None and spec.unseen == "flag":
        allowed = frozenset(spec.allowed)
        tests.append((lambda v: v not in allowed, "unseen category (accepted and flagged for monitoring)"))
    if not tests:
        return None

    def flag(value: Any) -> str | None:
        for broken, message in tests:
            if broken(value):
                return message
        return None
    return flag


def _rule_check(rule: Rule) -> Callable[[dict[str, list[Any]], int], bool]:
    """True when row ``i`` breaks ``rule`` (rows with a null on either side pass)."""
    op = _OPS[rule.op]
    right = rule.right

    def broken(columns: dict[str, list[Any]], i: int) -> bool:
        left_value = columns[rule.left][i]
        right_value = columns[right][i] if isinstance(right, str) else right
        if left_value is None or right_value is None:
            return False
        return not op(left_value, right_value)
    return broken


class RowValidator:
    """A contract compiled for serving: ``validate(rows)`` costs a few microseconds per row."""

    def __init__(self, contract: Contract, max_problems: int = MAX_PROBLEMS) -> None:
        self.contract = contract
        self.max_problems = max_problems
        self.features = list(contract.columns)
        self._feature_set = frozenset(self.features)
        self._reject_unknown = contract.unknown_fields == "reject"
        self._checks = [
            (name, spec.nullable, _column_check(spec)) for name, spec in contract.columns.items()
        ]
        self._flags = [
            (name, flag) for name, spec in contract.columns.items()
            if (flag := _column_flags(spec)) is not None
        ]
        self._rules = [(rule, _rule_check(rule)) for rule in contract.rules]

    def validate(self, rows: Sequence[Any]) -> ValidatedBatch:
        """Check decoded JSON rows; raise ``RequestInvalid`` listing the first problems."""
        columns: dict[str, list[Any]] = {name: [] for name in self.features}
        appenders = [(name, nullable, check, columns[name].append) for name, nullable, check in self._checks]
        problems: list[dict[str, Any]] = []
        n_features = len(self.features)
        for i, row in enumerate(rows):
            if type(row) is not dict:
                problems.append({"row": i, "field": None,
                                 "problem": f"expected an object of feature values, got {_kind(row)}"})
            else:
                present = n_features
                for name, nullable, check, append in appenders:
                    try:
                        value = row[name]
                    except KeyError:
                        present -= 1
                        problems.append({"row": i, "field": name, "problem": "required field is missing"})
                        continue
                    if value is None:
                        if not nullable:
                            problems.append({"row": i, "field": name,
                                             "problem": "null is not allowed (the column is not nullable)"})
                        append(None)
                        continue
                    try:
                        append(check(value))
                    except _Reject as exc:
                        problems.append({"row": i, "field": name, "problem": exc.problem})
                if self._reject_unknown and len(row) > present:
                    problems.extend(
                        {"row": i, "field": _field_name(key),
                         "problem": f"unknown field (the contract has {n_features} fields)"}
                        for key in row if key not in self._feature_set
                    )
            if len(problems) >= self.max_problems:
                more = len(problems) > self.max_problems or i + 1 < len(rows)
                raise RequestInvalid(problems[: self.max_problems], more=more)
        if problems:
            raise RequestInvalid(problems)
        n_rows = len(rows)
        return ValidatedBatch(columns, self._flag(columns, n_rows), n_rows)

    def _flag(self, columns: dict[str, list[Any]], n_rows: int) -> list[dict[str, Any]]:
        flags: list[dict[str, Any]] = []
        for name, flag in self._flags:
            for i, value in enumerate(columns[name]):
                if value is not None and (message := flag(value)) is not None:
                    flags.append({"row": i, "field": name, "problem": message})
        for rule, broken in self._rules:
            for i in range(n_rows):
                if broken(columns, i):
                    flags.append({"row": i, "field": rule.left,
                                  "problem": f"breaks the contract rule {rule.name!r} "
                                             f"({rule.left} {rule.op} {rule.right})"})
        flags.sort(key=lambda f: f["row"])
        return flags

    def example_columns(self) -> dict[str, list[Any]]:
        """One row of typical values (first allowed category, lower bound, ...) in the column
        form ``validate`` returns; used to warm a freshly loaded model. Regexes are not
        honoured: the row feeds the runtime directly, never a client."""
        return {name: [_type_check(spec)(_example_value(spec))] for name, spec in self.contract.columns.items()}


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
