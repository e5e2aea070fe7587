"""Reading a predict body straight into columns with the compiled reader (``json_rows.c``).

orjson turns a 100-row body into 100 dicts and 2,000 Python values, which the validator then walks
into columns; the reader writes the numbers into one float64 block and finds each text value's
bytes, and Python decodes each distinct text once (a categorical column of 100 rows holds a handful).
It reads only the common body: ``{"instances": [...]}`` (``/v1``; MLflow's ``/invocations`` names
its rows ``dataframe_records``, ``instances`` or ``inputs``) whose every row holds exactly the given
fields, once each, named without escapes, numbers in numeric fields, strings or null in the others
(a text holding an escape, as Python's ``json.dumps`` writes every non-ASCII character, is
unescaped by orjson, once per distinct spelling). For
anything else it answers None and the body takes the general path (orjson, then the validator),
which names what is wrong; only a field given twice in one row is refused here, as orjson would
silently keep the last value.

Without the library (no compiler at install, or built from other source: :mod:`serein.native`,
whose ``python -m serein.native`` tells; ``SEREIN_JSON_ROWS=0`` turns it off) every body takes
the general path.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson

from serein.native import INT64, POINTER, library_path, load

SOURCE = Path(__file__).parents[1] / "json_rows.c"
LIBRARY = library_path(SOURCE)
ABI = 3  # SEREIN_JSON_ROWS_ABI in json_rows.c
GIVEN_TWICE = -2
log = logging.getLogger(__name__)


@cache
def library() -> ctypes.CDLL | None:
    """The built reader, or None (the reason is logged at debug level)."""
    lib, why = _load()
    log.debug("JSON rows reader: %s", why)
    return lib


def _load() -> tuple[ctypes.CDLL | None, str]:
    """The reader (or None) and what was found."""
    return load(LIBRARY, SOURCE, ABI, switch="SEREIN_JSON_ROWS",
                fallback="reading predict bodies and log records with orjson",
                functions={"serein_json_rows": [ctypes.c_char_p, INT64, ctypes.c_char_p, INT64, POINTER, POINTER,
                                                POINTER, INT64, INT64, POINTER, POINTER, POINTER, POINTER, POINTER,
                                                POINTER],
                           "serein_record_rows": [ctypes.c_char_p, INT64, INT64, INT64, POINTER, POINTER, INT64,
                                                  POINTER]})


class GivenTwice(ValueError):
    """A field given twice in one row (``row``, ``field``): refused, as JSON leaves the meaning open."""

    def __init__(self, row: int, field: str) -> None:
        super().__init__(f"row {row} gives field {field!r} more than once")
        self.row, self.field = row, field


class Columns(NamedTuple):
    """A body's rows read as columns: ``numbers`` (numeric fields in order, one row of the block
    each, NaN for a null) and ``texts`` (the other fields in order: a list of str or None each)."""

    numbers: np.ndarray
    texts: list[list[str | None]]
    n_rows: int


class RowReader:
    """The compiled reader set up for one contract's ``fields`` (``text[k]``: field k holds text,
    else a number).

    >>> reader = RowReader(["age", "city"], [False, True])
    >>> read = reader.read(b'{"instances": [{"age": 41, "city": "Oslo"}, {"city": null, "age": 7}]}', 10)
    >>> read is None or (read.numbers.tolist(), read.texts) == ([[41.0, 7.0]], [["Oslo", None]])
    True
    >>> reader.read(b'{"instances": [{"age": "41", "city": "Oslo"}]}', 10) is None  # the general path names it
    True
    """

    def __init__(self, fields: Sequence[str], text: Sequence[bool]) -> None:
        self.fields = list(fields)
        self._lib = library()
        names = [name.encode() for name in self.fields]
        self._names = (ctypes.c_char_p * len(names))(*names)  # kept: the reader points into them
        self._name_sizes = np.array([len(name) for name in names], dtype=np.int64)
        self._text = np.array(text, dtype=np.uint8)
        self._addresses = (ctypes.addressof(self._names), self._name_sizes.ctypes.data, self._text.ctypes.data)
        self._n_texts = int(self._text.sum())
        self._n_numbers = len(self.fields) - self._n_texts

    @staticmethod
    def built() -> bool:
        """Whether the compiled reader is here (else every body takes the general path)."""
        return library() is not None

    def read(self, body: bytes | bytearray, max_rows: int, columns: bool = True,
             key: bytes = b"instances") -> Columns | None:
        """The rows of ``{key: [...]}`` as columns, or None when the reader does not judge this
        body (or is not built). Raises ``GivenTwice`` for the first field given twice in a row.
        ``columns`` False: that check alone (nothing is decoded; None)."""
        if self._lib is None or not self.fields:
            return None
        capacity = min(body.count(b"{") - 1, max_rows)  # every row opens one object
        if capacity < 1:
            return None
        # one buffer: the numbers' block, each text value's start, size and first equal row, the
        # reader's hash table, and where a field was given twice
        n_numbers, n_spans = self._n_numbers * capacity, 3 * self._n_texts * capacity
        scratch = np.empty(n_numbers + n_spans + 2 * capacity + 2, dtype=np.int64)
        base = scratch.ctypes.data
        starts, step = base + 8 * n_numbers, 8 * self._n_texts * capacity
        rows = self._lib.serein_json_rows(bytes(body), len(body), key, len(key), *self._addresses, len(self.fields),
                                          capacity, base, starts, starts + step, starts + 2 * step, starts + 3 * step,
                                          base + 8 * (len(scratch) - 2))
        if rows == GIVEN_TWICE:
            row, field = scratch[-2:].tolist()
            raise GivenTwice(row, self.fields[field])
        if rows < 1 or not columns:
            return None
        spans = scratch[n_numbers:n_numbers + n_spans].reshape(3, self._n_texts, capacity)
        texts = self._texts(body, spans, rows)
        if texts is None:
            return None
        return Columns(scratch[:n_numbers].view(np.float64).reshape(self._n_numbers, capacity)[:, :rows], texts, rows)

    def _texts(self, body: bytes | bytearray, spans: np.ndarray, rows: int) -> list[list[str | None]] | None:
        """Each text field's values: each distinct spelling decoded once (None when one is not
        UTF-8 or holds a malformed escape: the general path refuses the body)."""
        starts, sizes, firsts = spans[0, :, :rows].tolist(), spans[1, :, :rows].tolist(), spans[2, :, :rows].tolist()
        out = []
        for start, size, first in zip(starts, sizes, firsts, strict=True):
            decoded: dict[int, str | None] = {-1: None}
            try:
                for i in set(first):
                    if i >= 0:
                        text = body[start[i]:start[i] + size[i]]
                        decoded[i] = orjson.loads(b'"%s"' % text) if b"\\" in text else text.decode()
            except (UnicodeDecodeError, orjson.JSONDecodeError):
                return None
            out.append(list(map(decoded.__getitem__, first)))
        return out


class RecordRows(NamedTuple):
    """A prediction-log record's rows as the store holds them: each row's ``inputs`` as a JSON
    object, each ``label`` (prediction) and each row's ``probabilities`` as JSON (None: the model
    gives none)."""

    inputs: list[str]
    labels: list[str]
    probabilities: list[str] | None


def record_rows(line: bytes, n_rows: int, names: Sequence[str]) -> RecordRows | None:
    """The rows of a prediction-log record line (``predlog_shipper.record_line``, without its
    newline), whose record orjson has read (``names``: its inputs, ``n_rows``: its predictions),
    cut from the line by the compiled reader: each row's inputs object is the line's own bytes of
    its names and values (what ``orjson.dumps`` makes of the row read back), so no value is
    decoded and encoded again. None when the reader is not built or does not read the line (an
    earlier serein's): the caller converts the record in Python.

    >>> line = b'{"request_id":"r","inputs":{"x":[1,2.5],"c":["a",null]},"predictions":[0,1],"probabilities":null}'
    >>> read = record_rows(line, 2, ["x", "c"])
    >>> read is None or read == (['{"x":1,"c":"a"}', '{"x":2.5,"c":null}'], ['0', '1'], None)
    True
    """
    lib = library()
    if lib is None or not names or n_rows < 1:
        return None
    n_columns = len(names)
    quoted = sum(len(name.encode()) + 2 for name in names)  # escapes make it longer: then the reader declines
    out_size = len(line) + n_rows * (quoted + 2 * n_columns + 1)  # the values and outputs are the line's own bytes
    out = np.empty(out_size, dtype=np.uint8)
    at = 2 * n_columns * (n_rows + 1) + 4 * n_rows  # the reader's scratch space, then the pieces' offsets
    ints = np.empty(at + 3 * n_rows + 1, dtype=np.int64)
    pieces = lib.serein_record_rows(line, len(line), n_rows, n_columns, ints.ctypes.data, out.ctypes.data,
                                    out_size, ints.ctypes.data + 8 * at)
    if pieces < 0:
        return None
    offsets = ints[at:at + pieces + 1].tolist()
    data = out[:offsets[-1]].tobytes()
    if data.isascii():  # byte and character offsets agree: one decode, then slices
        text = data.decode("ascii")
        texts = [text[a:b] for a, b in zip(offsets, offsets[1:])]
    else:
        texts = [data[a:b].decode() for a, b in zip(offsets, offsets[1:])]
    return RecordRows(texts[:n_rows], texts[n_rows:2 * n_rows], texts[2 * n_rows:] if pieces > 2 * n_rows else None)
