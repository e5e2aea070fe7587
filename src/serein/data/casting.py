"""Casting a column to its contract type, vectorised, remembering which values could not be cast.

Read-time type inference is a guess: one ``"abc"`` turns a CSV number column into text, one
``null`` turns a JSON integer column into floats. The contract is the authority, so every column
is cast to the contract's type here; a value that does not fit (``"abc"`` for an integer,
``2.5`` for an integer, ``"maybe"`` for a boolean, ``inf`` for a number) becomes a null in the cast
column and a ``True`` in the returned mask, for validation to report as a type failure.

Target dtypes: integer → ``Int64`` (nullable), float → ``float64``, string → ``str``,
boolean → ``boolean`` (nullable), datetime → ``datetime64[us, UTC]`` (naive values are UTC).

>>> import pandas as pd
>>> cast, bad = cast_column(pd.Series(["1", "abc", None, "2.5"], dtype=object), "integer")
>>> cast.tolist(), bad.tolist()
([1, <NA>, <NA>, <NA>], [False, True, False, True])
>>> cast_column(pd.Series(["yes", "0", "maybe"]), "boolean")[0].tolist()
[True, False, <NA>]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TIME_DTYPE = "datetime64[us, UTC]"  # Delta stores microseconds: one unit everywhere
PANDAS_DTYPES = {
    "integer": "Int64",
    "float": "float64",
    "string": "str",
    "boolean": "boolean",
    "datetime": TIME_DTYPE,
}
BOOLEAN_TEXT = {
    "true": True, "t": True, "yes": True, "y": True, "1": True, "1.0": True,
    "false": False, "f": False, "no": False, "n": False, "0": False, "0.0": False,
}
TYPE_PROBLEMS = {
    "integer": "not an integer",
    "float": "not a (finite) number",
    "string": "not text",
    "boolean": "not a boolean (true/false, yes/no, 1/0)",
    "datetime": "not an ISO 8601 date-time",
}


def _numbers(s: pd.Series) -> pd.Series:
    """``s`` as float64: numbers kept, numeric text parsed, anything else (and booleans) NaN."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(s.dtype):
        return pd.Series(float("nan"), index=s.index)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    is_bool = s.map(lambda v: isinstance(v, bool), na_action="ignore").fillna(False).astype(bool)
    return pd.to_numeric(s.mask(is_bool), errors="coerce").astype("float64")


def cast_column(s: pd.Series, type_name: str) -> tuple[pd.Series, np.ndarray]:
    """``s`` cast to the contract type ``type_name`` and a bool mask of values that did not fit.

    Nulls stay null and are never counted as type failures (nullability is a separate check).
    """
    import numpy as np
    import pandas as pd

    present = s.notna().to_numpy()
    if type_name == "integer":
        if pd.api.types.is_integer_dtype(s.dtype):
            return s.astype("Int64"), np.zeros(len(s), dtype=bool)
        num = _numbers(s)
        values = num.to_numpy()
        with np.errstate(invalid="ignore"):
            fits = np.isfinite(values) & (values == np.round(values))
        bad = present & ~fits
        return num.where(fits).astype("Int64"), bad
    if type_name == "float":
        num = _numbers(s)
        fits = np.isfinite(num.to_numpy())
        return num.where(fits), present & ~fits
    if type_name == "string":
        return s.astype("str"), np.zeros(len(s), dtype=bool)
    if type_name == "boolean":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.astype("boolean"), np.zeros(len(s), dtype=bool)
        text = s.astype("str").str.strip().str.lower()
        mapped = text.map(BOOLEAN_TEXT).astype("boolean")
        return mapped, present & mapped.isna().to_numpy()
    if type_name == "datetime":
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            return s.dt.tz_convert("UTC").astype(TIME_DTYPE), np.zeros(len(s), dtype=bool)
        if pd.api.types.is_datetime64_dtype(s.dtype):
            return s.dt.tz_localize("UTC").astype(TIME_DTYPE), np.zeros(len(s), dtype=bool)
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            return pd.Series(pd.NaT, index=s.index, dtype=TIME_DTYPE), present
        text = s.astype("str")
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").astype(TIME_DTYPE)
        return parsed, present & parsed.isna().to_numpy()
    raise ValueError(f"unknown contract type {type_name!r}")
