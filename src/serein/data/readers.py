"""Reading tabular files (CSV, Parquet, JSON Lines) into pandas, with timestamps made UTC.

Files are read with pyarrow (fast, multi-threaded, infers ISO 8601 timestamps in CSV); JSON Lines
go through pandas because pyarrow refuses a field whose JSON type changes between rows, which is
exactly the kind of dirty batch a contract should judge rather than a reader reject. Every
problem (missing file, unsupported suffix, unparsable content, no rows) becomes one
``UsageError``/``NotFoundError`` naming the file.

A CSV file is read with commas between fields. One written with semicolons (spreadsheets where the
decimal mark is a comma) or tabs is refused, naming the separator it uses and how to convert it:
read with a separator guessed from its look, such a file would often lose its numbers silently
(``1,5`` stays text), so it is never guessed.

Timestamps always come out tz-aware UTC in microseconds (Delta's unit): aware values are converted, naive ones are taken to be
UTC already, and text columns that hold nothing but ISO 8601 date-times are parsed.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = p.write_text("at,x\\n2026-01-01T10:00:00+02:00,1\\n2026-01-02T00:00:00+00:00,\\n")
>>> df = read_table(p)
>>> str(df["at"].dtype), df["at"].iloc[0].isoformat(), df["x"].isna().tolist()
('datetime64[us, UTC]', '2026-01-01T08:00:00+00:00', [False, True])
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from serein.data.casting import TIME_DTYPE
from serein.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
ISO_SAMPLE = 100  # rows looked at before trying to parse a text column as date-times
OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs"}
"""Separators CSV files are written with instead of commas, which a reading with commas takes for
text inside one column."""


def file_format(path: str | os.PathLike[str]) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name, else a UsageError listing suffixes.

    >>> file_format("batch.csv.gz"), file_format("x.PQ")
    ('csv', 'parquet')
    """
    name = Path(path).name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise UsageError(
        f"{path}: unsupported file type",
        hint=f"use one of {', '.join(SUFFIXES)}",
    )


def other_separator(header: str) -> str | None:
    """The separator of ``OTHER_SEPARATORS`` a CSV header line is written with, when it is one
    field read with commas and several read with that separator; None when it is not clearly so.

    >>> other_separator("age;city;income"), other_separator("age\\tcity"), other_separator("age,city")
    (';', '\\t', None)
    >>> other_separator('"age;city"'), other_separator("age;city,income")  # one quoted name; commas too
    (None, None)
    """
    if len(next(csv.reader([header]), [])) != 1:
        return None
    widths = {sep: len(next(csv.reader([header], delimiter=sep))) for sep in OTHER_SEPARATORS if sep in header}
    widest = max(widths, key=widths.__getitem__, default=None)
    return widest if widest is not None and widths[widest] > 1 else None


def separator_problem(separator: str) -> str:
    """What is wrong with a CSV whose header is written with ``separator`` (see ``other_separator``)."""
    return (f"its header row is one field holding {OTHER_SEPARATORS[separator]}: the columns look separated "
            f"by {separator!r}, not by commas")


def _refuse_other_separator(path: Path) -> None:
    """Refuse a CSV file whose header row is written with another separator than commas."""
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as stream:  # .csv.gz too
        head = stream.read(1 << 16).decode("utf-8-sig", errors="replace")
    separator = other_separator(head.split("\n", 1)[0].rstrip("\r"))
    if separator is not None:
        example = f"pandas.read_csv(path, sep={separator!r}).to_csv(new_path, index=False)"
        decimals = " (add decimal=',' where numbers are written 1,5)" if separator == ";" else ""
        raise UsageError(f"{path} is not comma-separated: {separator_problem(separator)}",
                         hint=f"save it with commas between fields, or convert it, e.g. {example}{decimals}")


def _read_csv(path: Path, text: Sequence[str] = ()) -> pd.DataFrame:
    """A comma-separated file; one that a header written with another separator makes one column
    (or unreadable) is refused by ``_refuse_other_separator``."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # Empty text in a text column is a missing value, as it is in numeric columns. The ``text``
    # columns stay text: type inference would make codes such as "07" the number 7.
    options = pcsv.ConvertOptions(strings_can_be_null=True, column_types={c: pa.string() for c in text})
    try:
        table = pcsv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid:  # rows holding commas have more fields than the one-field header
        _refuse_other_separator(path)
        raise
    if table.num_columns == 1:
        _refuse_other_separator(path)
    return table.to_pandas()


def _read_parquet(path: Path, text: Sequence[str] = ()) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()  # typed: nothing is inferred


def _read_jsonl(path: Path, text: Sequence[str] = ()) -> pd.DataFrame:
    import pandas as pd

    # dtype=False: no guessing from column names; ISO text is parsed below for every column.
    return pd.read_json(path, lines=True, dtype=False)


READERS: dict[str, Callable[[Path, Sequence[str]], pd.DataFrame]] = {
    "csv": _read_csv,
    "parquet": _read_parquet,
    "jsonl": _read_jsonl,
}


def _looks_iso(values: pd.Series) -> bool:
    sample = values.dropna().head(ISO_SAMPLE)
    return len(sample) > 0 and all(isinstance(v, str) and ISO_DATETIME.match(v) for v in sample)


def normalise_times(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every date-time column tz-aware UTC (microseconds) and ISO 8601 text parsed.

    Naive date-times are taken to be UTC. A text column is parsed only when its first values look
    like ISO date-times and every value then parses; otherwise it stays text.
    """
    import pandas as pd

    changed: dict[str, pd.Series] = {}
    for name, col in df.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            if col.dtype != TIME_DTYPE:
                changed[name] = col.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(col.dtype):
            changed[name] = col.dt.tz_localize("UTC")
        elif (pd.api.types.is_string_dtype(col.dtype) or col.dtype == object) and _looks_iso(col):
            parsed = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
            if parsed.notna().sum() == col.notna().sum():
                changed[name] = parsed
    if not changed:
        return df
    out = df.copy()
    for name, col in changed.items():
        out[name] = col.astype(TIME_DTYPE)
    return out


def read_table(path: str | os.PathLike[str], text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``), Parquet (``.parquet``, ``.pq``) or JSON Lines
    (``.jsonl``, ``.ndjson``) file; refuse a missing, unreadable or empty one with a clear error.
    ``text``: columns a CSV file holds as text whatever they look like (a contract's string
    columns)."""
    p = Path(path)
    kind = file_format(p)
    if not p.exists():
        raise NotFoundError(f"file {p} not found", hint="check the path (relative paths start from the current folder)")
    if not p.is_file():
        raise UsageError(f"{p} is not a file")
    if p.stat().st_size == 0:
        raise UsageError(f"{p} is empty (0 bytes)", hint="ingest a file with a header and at least one row")
    try:
        df = READERS[kind](p, text)
    except PermissionError:
        raise UsageError(f"{p} cannot be read (permission denied)") from None
    except UsageError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for malformed content
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{p} is not a readable {kind} file: {detail}", hint=f"check that it is valid {kind}") from None
    if len(df) == 0:
        raise UsageError(f"{p} has no rows", hint="ingest a file with at least one row")
    return normalise_times(df)
