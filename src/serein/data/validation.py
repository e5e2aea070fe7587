"""Validating a whole frame against a contract, with pandera, in O(rows) vectorised work.

Used for ingest batches (bad rows are quarantined), training data and production windows.
:func:`validate_arrow` gives the same findings for an Arrow table (batch scoring) at a fraction of
the cost: vectorised Arrow compute finds the rows that *might* break the contract, and only those
go through :func:`validate` for the exact verdict and the reasons.

What is checked, per column of the contract:

* **type**: each column is cast to the contract type (:mod:`serein.data.casting`); a value that
  cannot be cast (``"abc"`` in an integer column) fails the row;
* **missing column**: a failure; when the column is not nullable every row fails, otherwise
  it reads as all null (a dataset-level failure, for completeness to judge);
* **nullability**, **min**/**max**, **non-negative**, **regex**, **allowed** categories
  (``unseen: reject``) and cross-column **rules** (rows with a null on either side pass): pandera
  checks on the cast frame; each failing row is marked bad;
* **completeness** (lowest acceptable non-null share): a dataset-level check, reported as a
  failure but never marking rows bad (no single row is to blame);
* **unknown columns** (when ``unknown_fields: reject``): reported as a dataset-level failure;
* unseen categories under ``unseen: flag`` are only **warnings**: the rows are fine, the news
  is for monitoring.

>>> import pandas as pd
>>> from serein.data.contract import Contract
>>> c = Contract.from_dict({"columns": {
...     "age": {"type": "integer", "nullable": False, "non_negative": True},
...     "city": {"type": "string", "allowed": ["Lyon", "Oslo"], "unseen": "reject"}}})
>>> df = pd.DataFrame({"age": ["31", "abc", None, "-4"], "city": ["Lyon", "Oslo", "Oslo", "Rome"]})
>>> r = validate(df, c)
>>> r.ok, r.bad_rows.tolist()
(False, [False, True, True, True])
>>> r.row_reasons[3]
'age: negative where the contract expects non-negative values; city: category not in the contract'
>>> [(f["column"], f["check"], f["count"], f["examples"]) for f in r.failures]
[('age', 'type', 1, ['abc']), ('age', 'not_null', 1, []), ('age', 'non_negative', 1, [-4]), ('city', 'allowed', 1, ['Rome'])]
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from serein.data.casting import PANDAS_DTYPES, TYPE_PROBLEMS, cast_column
from serein.data.contract import ColumnSpec, Contract, Rule
from serein.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_EXAMPLES = 5
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}


@dataclass
class ValidationReport:
    """The outcome of :func:`validate`.

    ``failures`` and ``warnings`` hold one dict per broken check: ``column`` (None for a rule),
    ``check``, ``count`` (rows), ``examples`` (up to 5 distinct offending values), ``rows``
    (up to 5 row positions) and ``message``. ``bad_rows`` is a bool mask over the rows in order;
    ``row_reasons`` maps each bad row's position to ``"col: problem; ..."``. ``data`` is the frame
    cast to the contract's types (values that failed the type check are null); ``validate_arrow``
    leaves it None.
    """

    n_rows: int
    failures: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    bad_rows: np.ndarray
    row_reasons: dict[int, str]
    data: pd.DataFrame | None = field(repr=False)  # None from validate_arrow (the table is the data)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def n_bad(self) -> int:
        return int(self.bad_rows.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-row detail)."""
        return {
            "ok": self.ok,
            "n_rows": self.n_rows,
            "bad_rows": self.n_bad,
            "failures": self.failures,
            "warnings": self.warnings,
        }


@dataclass
class _Check:
    """One pandera check of a column, with the words and the severity serein reports it with."""

    check: Any  # pandera.Check
    label: str
    message: str
    warning: bool = False


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value for an example."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _examples(values: Any) -> list[Any]:
    out: list[Any] = []
    for value in values:
        plain = _plain(value)
        if plain is not None and plain == plain and plain not in out:  # skip None/NaN
            out.append(plain)
            if len(out) == MAX_EXAMPLES:
                break
    return out


def _column_checks(name: str, spec: ColumnSpec) -> list[_Check]:
    import pandera.pandas as pa

    checks: list[_Check] = []
    if spec.numeric:
        if spec.min is not None:
            checks.append(_Check(pa.Check.ge(spec.min), "min", f"below the contract minimum {spec.min:g}"))
        if spec.max is not None:
            checks.append(_Check(pa.Check.le(spec.max), "max", f"above the contract maximum {spec.max:g}"))
        if spec.non_negative and (spec.min is None or spec.min < 0):  # else the min check covers it
            checks.append(_Check(pa.Check.ge(0), "non_negative", "negative where the contract expects non-negative values"))
    if spec.allowed is not None:
        flag = spec.unseen == "flag"
        checks.append(_Check(
            pa.Check.isin(list(spec.allowed)), "unseen" if flag else "allowed",
            "unseen category (accepted, flagged)" if flag else "category not in the contract", warning=flag,
        ))
    if spec.regex is not None:
        try:
            re.compile(spec.regex)
        except re.error as exc:
            raise UsageError(f"contract column {name!r}: invalid regex {spec.regex!r}: {exc}") from None
        checks.append(_Check(pa.Check.str_matches(spec.regex), "regex", f"does not match the pattern {spec.regex!r}"))
    return checks


def _rule_check(rule: Rule) -> Any:
    import pandera.pandas as pa

    op = OPS[rule.op]

    def holds(frame: pd.DataFrame) -> pd.Series:
        left = frame[rule.left]
        if isinstance(rule.right, str):
            right = frame[rule.right]
            return (op(left, right).fillna(False) | left.isna() | right.isna()).astype(bool)
        return (op(left, rule.right).fillna(False) | left.isna()).astype(bool)

    return pa.Check(holds, name=f"rule:{rule.name}", ignore_na=False)


class _Findings:
    """Collects failures, warnings, the bad-row mask and the per-row reasons."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.n = n
        self.failures: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.bad = np.zeros(n, dtype=bool)
        self.reasons = np.full(n, "", dtype=object)

    def add(self, column: str | None, check: str, message: str, rows: Any, examples: list[Any],
            warning: bool = False, count: int | None = None, reason: str | None = None) -> None:
        """Record a broken check; ``rows`` are positions (marked bad unless ``warning``)."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        if not (rows[1:] > rows[:-1]).all():  # positions found in order (the Arrow screen's) are unique already
            rows = np.unique(rows)
        entry = {
            "column": column, "check": check, "count": int(len(rows) if count is None else count),
            "examples": examples, "rows": rows[:MAX_EXAMPLES].tolist(), "message": message,
        }
        (self.warnings if warning else self.failures).append(entry)
        if not warning and len(rows):
            self.bad[rows] = True
            self.reasons[rows] = self.reasons[rows] + f"{reason or f'{column}: {message}'}; "

    def report(self, data: pd.DataFrame | None) -> ValidationReport:
        import numpy as np

        positions = np.flatnonzero(self.bad)
        reasons = {int(i): str(self.reasons[i])[:-2] for i in positions}
        return ValidationReport(self.n, self.failures, self.warnings, self.bad, reasons, data)


def _run_pandera(schema: Any, frame: pd.DataFrame) -> Any:
    """The failure cases of ``schema`` on ``frame`` (None when everything passes)."""
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        broken = cases[cases["index"].isna()]
        if len(broken):  # a check raised instead of answering, e.g. comparing text with numbers
            first = broken.iloc[0]
            raise UsageError(
                f"contract check {first['check']} on column {first['column']!r} could not run: {first['failure_case']}",
                hint="make the contract's types and checks agree (e.g. a rule comparing text with a number)",
            ) from None
        return cases
    return None


def validate(df: pd.DataFrame, contract: Contract) -> ValidationReport:
    """Check ``df`` against ``contract``; never raises for bad data (see the report)."""
    import pandas as pd
    import pandera.pandas as pa

    frame = df.reset_index(drop=True)
    n = len(frame)
    found = _Findings(n)
    cast: dict[str, pd.Series] = {}
    column_checks: dict[str, list[_Check]] = {}
    type_failures: dict[str, np.ndarray] = {}

    for name, spec in contract.columns.items():
        if name not in frame.columns:
            if not spec.nullable:
                found.add(name, "missing_column", "column missing from the data (the column is not nullable)",
                          range(n), [], reason=f"{name}: column missing")
                continue
            # A nullable column may be absent: it reads as all null, for completeness to judge.
            found.add(name, "missing_column", "column missing from the data (read as all null)", [], [], count=n)
            cast[name] = pd.Series(None, index=frame.index, dtype=PANDAS_DTYPES[spec.type])
            continue
        raw = frame[name]
        cast[name], type_bad = cast_column(raw, spec.type)
        type_failures[name] = type_bad
        if type_bad.any():
            found.add(name, "type", f"{TYPE_PROBLEMS[spec.type]} (contract type {spec.type})",
                      type_bad.nonzero()[0], _examples(raw[type_bad]))
        column_checks[name] = _column_checks(name, spec)
    extra = [c for c in frame.columns if c not in contract.columns]
    if extra and contract.unknown_fields == "reject":
        for name in extra:
            found.add(str(name), "unknown_column", "column not in the contract (unknown_fields: reject)", [], [])
    data = pd.DataFrame(cast, index=frame.index)
    for name in extra:
        data[name] = frame[name]

    schema = pa.DataFrameSchema({
        name: pa.Column(nullable=contract.columns[name].nullable, checks=[c.check for c in checks])
        for name, checks in column_checks.items()
    })
    cases = _run_pandera(schema, data[list(column_checks)])
    if cases is not None:
        for (column, number), group in cases.groupby(["column", cases["check_number"].fillna(-1)], sort=False):
            if number == -1:  # pandera's not_nullable; a value that failed the cast is not news twice
                rows = group["index"].to_numpy()
                rows = rows[~type_failures[column][rows]]
                if len(rows):
                    found.add(column, "not_null", "null where the column is not nullable", rows, [])
                continue
            c = column_checks[column][int(number)]
            found.add(column, c.label, c.message, group["index"].to_numpy(), _examples(group["failure_case"]),
                      warning=c.warning)

    _check_rules(contract, data, found)
    _check_completeness(contract, data, found)
    return found.report(data)


def _check_rules(contract: Contract, data: pd.DataFrame, found: _Findings) -> None:
    import pandera.pandas as pa

    for rule in contract.rules:
        sides = [rule.left] + ([rule.right] if isinstance(rule.right, str) else [])
        if any(side not in data.columns for side in sides):
            continue  # the missing column already failed every row
        cases = _run_pandera(pa.DataFrameSchema(checks=[_rule_check(rule)]), data[sides])
        if cases is not None:
            rows = cases["index"].unique()
            left_values = data[rule.left].iloc[rows[:MAX_EXAMPLES]]
            found.add(None, f"rule:{rule.name}", f"breaks {rule.left} {rule.op} {rule.right}", rows,
                      _examples(left_values), reason=f"rule {rule.name}: {rule.left} {rule.op} {rule.right} broken")


def _check_completeness(contract: Contract, data: pd.DataFrame, found: _Findings) -> None:
    if not len(data):
        return
    for name, spec in contract.columns.items():
        if spec.completeness is None or name not in data.columns:
            continue
        nulls = int(data[name].isna().sum())
        share = 1 - nulls / len(data)
        if share < spec.completeness:
            found.add(name, "completeness",
                      f"non-null share {share:.4f} is below the contract's completeness {spec.completeness:g}",
                      [], [], count=nulls)


# -- Arrow tables: a vectorised pre-screen, the exact verdict only for suspects -----------------
@functools.cache
def _arrow_kinds() -> dict[str, Callable[[Any], bool]]:
    """Contract type -> a test of the Arrow types read without a cast."""
    import pyarrow.types as t

    return {
        "float": lambda a: t.is_floating(a) or t.is_integer(a),
        "integer": t.is_integer,
        "string": lambda a: t.is_string(a) or t.is_large_string(a) or (
            t.is_dictionary(a) and (t.is_string(a.value_type) or t.is_large_string(a.value_type))),
        "boolean": t.is_boolean,
        "datetime": t.is_timestamp,
    }


def _reads_as(table: Any, contract: Contract) -> bool:
    """Whether every contract column is in ``table`` with an Arrow type of the contract's kind
    (no value can then fail the type check, and the pre-screen below is exact enough)."""
    kinds = _arrow_kinds()
    names = set(table.schema.names)
    return all(name in names and kinds[spec.type](table.schema.field(name).type)
               for name, spec in contract.columns.items())


def _nulls(column: Any) -> Any:
    import pyarrow.compute as pc
    import pyarrow.types as t

    return pc.is_null(column, nan_is_null=True) if t.is_floating(column.type) else pc.is_null(column)


def _text_codes(column: Any) -> tuple[list[Any], np.ndarray]:
    """A text column's distinct values and each row's position among them (-1 where null), from
    Arrow's dictionary encoding (the column's own when it is dictionary-encoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from serein.data.arrow_arrays import arrow_integers

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    return encoded.dictionary.to_pylist(), arrow_integers(encoded.indices, missing=-1)


def _per_value(values: list[Any], codes: np.ndarray, test: Callable[[Any], bool]) -> np.ndarray:
    """``test`` (a text value -> bool) as a row mask over a column encoded as ``values`` and
    ``codes`` (:func:`_text_codes`), computed once per distinct value; False where null."""
    import numpy as np

    return np.array([v is not None and bool(test(v)) for v in values] + [False])[codes]  # code -1: the last


def _unseen(values: list[Any], codes: np.ndarray, allowed: list[Any]) -> np.ndarray:
    """True where a text value is not among ``allowed`` (False where the value is null)."""
    known = {str(v) for v in allowed}
    return _per_value(values, codes, lambda value: value not in known)


def _mismatches(values: list[Any], codes: np.ndarray, regex: str) -> np.ndarray:
    """True where a text value does not match ``regex`` (``re.match``, as pandera's check)."""
    pattern = re.compile(regex)
    return _per_value(values, codes, lambda value: pattern.match(value) is None)


def _range_tests(column: Any, spec: ColumnSpec) -> list[Any]:
    """Arrow tests of a numeric column against the contract's range: non-finite values, below
    ``min`` (or 0 when ``non_negative``), above ``max``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from serein.data.arrow_arrays import arrow_scalar

    low = max(spec.min, 0.0) if spec.non_negative and spec.min is not None else (0.0 if spec.non_negative else spec.min)
    tests = [pc.is_inf(column)] if pa.types.is_floating(column.type) else []
    if low is not None:
        tests.append(pc.less(column, arrow_scalar(low)))
    if spec.max is not None:
        tests.append(pc.greater(column, arrow_scalar(spec.max)))
    return tests


def _suspects(table: Any, contract: Contract) -> np.ndarray:
    """A bool mask that is True for every row that may break a row-level check of ``contract``
    (a superset: some suspects pass once checked exactly). Arrow computes the tests and ORs them
    (Kleene logic: a test that could not answer a row adds nothing to it); the result is read
    from Arrow's buffers once, and limits enter as Arrow scalars made from numpy
    (:mod:`serein.data.arrow_arrays`), so a table that breaks nothing never imports pandas."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from serein.data.arrow_arrays import arrow_mask, arrow_scalar

    tests: list[Any] = []  # Arrow boolean columns
    suspect = np.zeros(table.num_rows, dtype=bool)  # the text tests, computed per distinct value
    for name, spec in contract.columns.items():
        column = table.column(name)
        if not spec.nullable and (column.null_count or pa.types.is_floating(column.type)):  # NaN reads as null
            tests.append(_nulls(column))
        if spec.numeric:
            tests += _range_tests(column, spec)
        unseen_rejected = spec.allowed is not None and spec.unseen == "reject"
        if unseen_rejected or spec.regex is not None:
            values, codes = _text_codes(column)  # encoded once for both tests
            if unseen_rejected:
                suspect |= _unseen(values, codes, spec.allowed)
            if spec.regex is not None:
                suspect |= _mismatches(values, codes, spec.regex)
    for rule in contract.rules:
        if any(side not in table.schema.names for side in (rule.left, rule.right) if isinstance(side, str)):
            continue  # as in validate: a rule on a column the data lacks is not checked
        right = table.column(rule.right) if isinstance(rule.right, str) else arrow_scalar(rule.right)
        compare = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal,
                   "==": pc.equal, "!=": pc.not_equal}[rule.op]
        try:
            tests.append(pc.invert(compare(table.column(rule.left), right)))
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):  # the exact check explains
            return np.ones(table.num_rows, dtype=bool)
    if tests:
        suspect |= arrow_mask(functools.reduce(pc.or_kleene, tests))
    return suspect


def _arrow_warnings(table: Any, contract: Contract, found: _Findings) -> None:
    """Unseen categories under ``unseen: flag``: warnings over the whole table."""
    import numpy as np

    for name, spec in contract.columns.items():
        if spec.allowed is None or spec.unseen != "flag":
            continue
        values, codes = _text_codes(table.column(name))
        rows = np.flatnonzero(_unseen(values, codes, spec.allowed))
        if len(rows):
            found.add(name, "unseen", "unseen category (accepted, flagged)", rows,
                      _examples(values[code] for code in codes[rows[:1000]]), warning=True)


def validate_arrow(table: Any, contract: Contract) -> ValidationReport:
    """:func:`validate` for an Arrow table or record batch, with the same findings, at Arrow speed.

    When every contract column already has an Arrow type of its contract kind (float/int for
    numbers, text or dictionary-of-text for strings, timestamps for date-times), vectorised Arrow
    compute screens the rows (nulls, non-finite or fractional numbers, ranges, unseen categories,
    regexes once per distinct value, rules) and only the suspects are converted to pandas and
    checked by :func:`validate`, which gives the exact verdict and the reasons; completeness,
    unknown columns and ``unseen: flag`` warnings are computed over the whole table. Otherwise
    (a number column read as text, a missing column) the whole table goes through :func:`validate`.
    ``data`` is None on the fast path: the table itself is the data.

    >>> import pyarrow as pa
    >>> from serein.data.contract import Contract
    >>> c = Contract.from_dict({"columns": {
    ...     "age": {"type": "integer", "nullable": False, "non_negative": True},
    ...     "city": {"type": "string", "allowed": ["Lyon", "Oslo"], "unseen": "reject"}}})
    >>> r = validate_arrow(pa.table({"age": [31, None, -4], "city": ["Lyon", "Oslo", "Rome"]}), c)
    >>> r.bad_rows.tolist(), r.row_reasons[2]
    ([False, True, True], 'age: negative where the contract expects non-negative values; city: category not in the contract')
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from serein.data.arrow_arrays import arrow_mask

    if not _reads_as(table, contract):
        return validate(table.to_pandas(), contract)
    n = table.num_rows
    found = _Findings(n)
    suspects = np.flatnonzero(_suspects(table, contract))
    if len(suspects):
        exact = validate(table.take(suspects).to_pandas(), contract)
        for entry in exact.failures:
            if entry["check"] in ("completeness", "unknown_column", "missing_column"):
                continue  # dataset-level: judged on the whole table below
            found.failures.append({**entry, "rows": suspects[entry["rows"]].tolist()})
        bad = suspects[exact.bad_rows]
        found.bad[bad] = True
        found.reasons[bad] = [exact.row_reasons[int(i)] + "; " for i in np.flatnonzero(exact.bad_rows)]
    extra = [c for c in table.schema.names if c not in contract.columns]
    if extra and contract.unknown_fields == "reject":
        for name in extra:
            found.add(str(name), "unknown_column", "column not in the contract (unknown_fields: reject)", [], [])
    _arrow_warnings(table, contract, found)
    for name, spec in contract.columns.items():
        if spec.completeness is None or not n:
            continue
        column = table.column(name)
        missing = arrow_mask(_nulls(column))
        if pa.types.is_floating(column.type):  # infinities fail the type check: null once cast
            missing |= arrow_mask(pc.is_inf(column))
        nulls = int(missing.sum())
        share = 1 - nulls / n
        if share < spec.completeness:
            found.add(name, "completeness",
                      f"non-null share {share:.4f} is below the contract's completeness {spec.completeness:g}",
                      [], [], count=nulls)
    return found.report(None)
