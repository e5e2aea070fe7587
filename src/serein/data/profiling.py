"""Suggesting a contract from a reference frame, with Deequ's constraint-suggestion rules.

The suggestion is a starting point for a human review, never the final word. Per column:

* **type** from the column's dtype: integer, float, boolean, datetime, else string;
* **completeness** (Deequ's ``RetainCompletenessRule``): a complete column gets
  ``nullable: false``; otherwise, when at least 20% of values are present, ``completeness`` is the
  Wilson score lower bound (95%) of the observed non-null share, so a future batch as complete as
  this one passes even though its share wobbles;
* **allowed** categories (Deequ's ``CategoricalRangeRule``): a text column with at most
  ``MAX_CATEGORIES`` distinct values of which at most 10% occur only once; ``unseen: flag``;
* **non_negative** (Deequ's ``NonNegativeNumbersRule``): a numeric column whose minimum is ≥ 0;
* **min**/**max** for numeric columns: the observed range widened by ``RANGE_MARGIN`` times the
  observed span on each side (never below 0 for a non-negative column), then rounded outward, so
  ordinary future data is not quarantined; tighten them in review where the domain says so.

>>> import pandas as pd
>>> df = pd.DataFrame({"n": [1, 2, 3, 5], "x": [0.5, None, 1.5, 2.0], "c": ["a", "b", "a", "b"]})
>>> c = suggest_contract(df, dataset="toy")
>>> c.columns["n"]
ColumnSpec(type='integer', nullable=False, completeness=None, min=0.0, max=9.0, non_negative=True, allowed=None, unseen='flag', regex=None)
>>> c.columns["x"].completeness, c.columns["c"].allowed
(0.3006, ['a', 'b'])
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from serein.data.contract import ColumnSpec, Contract
from serein.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

Z_95 = 1.959963984540054  # two-sided 95% normal quantile, as Deequ uses for completeness
MIN_COMPLETENESS = 0.2  # Deequ suggests no completeness bound for columns sparser than this
MAX_CATEGORIES = 120  # Deequ's profiler keeps a histogram only up to this many distinct values
MAX_SINGLETON_SHARE = 0.1  # Deequ: at most 10% of the categories may occur exactly once
RANGE_MARGIN = 1.0  # min/max widened by the observed span on each side (heavy tails drift far)


def wilson_lower_bound(successes: int, n: int, z: float = Z_95) -> float:
    """Lower end of the Wilson score interval for a proportion ``successes / n``.

    >>> round(wilson_lower_bound(90, 100), 4)
    0.8256
    >>> wilson_lower_bound(0, 0)
    0.0
    """
    if n <= 0:
        return 0.0
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


def column_type(s: pd.Series) -> str:
    """The contract type of a column from its dtype (text columns stay ``string``)."""
    import pandas as pd

    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    present = s.dropna()
    if len(present) and present.map(lambda v: isinstance(v, bool)).all():
        return "boolean"  # booleans with nulls come as object columns
    return "string"


def _round_out(value: float, span: float, down: bool) -> float:
    """``value`` rounded outward to two significant digits of ``span`` (readable bounds)."""
    if span <= 0 or not math.isfinite(span):
        return float(value)
    step = 10.0 ** (math.floor(math.log10(span)) - 1)
    rounded = (math.floor if down else math.ceil)(value / step) * step
    return float(round(rounded, 12))


def _numeric_spec(spec: ColumnSpec, s: pd.Series) -> None:
    present = s.dropna()
    if not len(present):
        return
    low, high = float(present.min()), float(present.max())
    spec.non_negative = low >= 0
    span = high - low if high > low else max(abs(high), 1.0)
    lower = low - RANGE_MARGIN * span
    upper = high + RANGE_MARGIN * span
    if spec.non_negative:
        lower = max(lower, 0.0)
    if spec.type == "integer":
        spec.min, spec.max = float(math.floor(lower)), float(math.ceil(upper))
    else:
        spec.min, spec.max = _round_out(lower, span, down=True), _round_out(upper, span, down=False)
        if spec.non_negative:
            spec.min = max(spec.min, 0.0)


def _categories(s: pd.Series) -> list[str] | None:
    counts = s.dropna().astype("str").value_counts()
    if not len(counts) or len(counts) > MAX_CATEGORIES:
        return None
    if (counts == 1).sum() / len(counts) > MAX_SINGLETON_SHARE:
        return None
    return sorted(counts.index.tolist())


def suggest_column(s: pd.Series) -> ColumnSpec:
    """The suggested spec of one column (see the module doc for the rules)."""
    spec = ColumnSpec(type=column_type(s))
    n, present = len(s), int(s.notna().sum())
    if present == n:
        spec.nullable = False
    elif n and present / n >= MIN_COMPLETENESS:
        # floor to 4 decimals so the written bound never exceeds the computed one
        spec.completeness = math.floor(wilson_lower_bound(present, n) * 10_000) / 10_000
    if spec.numeric:
        _numeric_spec(spec, s)
    elif spec.type == "string":
        spec.allowed = _categories(s)
    return spec


def suggest_contract(df: pd.DataFrame, dataset: str | None = None) -> Contract:
    """A contract for ``df``'s columns, suggested by Deequ's rules, for a human to review."""
    if len(df.columns) == 0:
        raise UsageError("cannot suggest a contract for a frame without columns")
    if len(df) == 0:
        raise UsageError("cannot suggest a contract from 0 rows", hint="profile a dataset with data in it")
    columns = {str(name): suggest_column(col) for name, col in df.items()}
    return Contract(columns=columns, dataset=dataset)
