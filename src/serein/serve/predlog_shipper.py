"""Shipping prediction-log segments to the store from a separate process.

The serving process writes request records to segment files (``serein.serve.predlog``); turning
them into store rows (one per predicted row, payloads as JSON text, a SQLite ``executemany``)
costs tens of microseconds a row, and in the serving process SQLite hands the GIL back and forth
with the event loop once per row. Here that work runs in a child process
(``python -m serein.serve.predlog_shipper STORE_URI``), so the server only appends and
``fdatasync``s.

Protocol, one JSON line each way over the child's stdin/stdout: the server sends
``{"spans": [[path, start, end], ...], "once": bool}`` (byte ranges of durable, whole lines);
the child ships every record in them in one transaction — ``once``: only rows not in the store
yet (a retry after a failure that may have committed) — and answers ``{"rows": n}`` or
``{"error": "..."}``. Its first line, ``{"ready": true}``, says the store is open. The child exits when its stdin closes (the server stopped or was killed).
"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from serein.errors import SereinError
from serein.serve.child_process import end_child
from serein.serve.json_rows import record_rows
from serein.store import OperationalStore, prediction_table_rows

log = logging.getLogger(__name__)


class ShipperFailed(SereinError):
    """The shipper process could not ship a batch (the store refused it, or the process died)."""


NUMPY = orjson.OPT_SERIALIZE_NUMPY
SEPARATOR = b"\t"  # between the parts of a line an earlier serein wrote (its head, then each row's inputs)


def record_line(record: Mapping[str, Any]) -> bytes:
    """A request record (``predlog.request_record``) as one segment line: one JSON object and a
    newline. Its inputs are columns (the validated arrays and lists), which orjson writes in C in
    one call: writing a 100-row request's rows as a JSON object each was the largest part of
    logging it on the event loop. The shipper turns the columns back into rows
    (``table_rows``). orjson escapes a newline inside a string, so a raw one only ends a line.

    >>> record_line({"request_id": "r", "inputs": {"x": ["a\\nb", None]}})
    b'{"request_id":"r","inputs":{"x":["a\\\\nb",null]}}\\n'
    """
    return orjson.dumps(record, None, NUMPY) + b"\n"


def line_rows(line: bytes) -> list[tuple[Any, ...]]:
    """The store's table rows of one whole segment line (``record_line``, without its newline), or
    of a line an earlier serein wrote (each row's inputs as JSON text after a tab, or the inputs
    as a list of rows). Each row's inputs, prediction and probabilities are cut from the line by
    the compiled reader (``json_rows.record_rows``: 1.9 µs a row for a 100-row request of 20
    features here, against 3.7 µs converting the record read back, which is done without it).
    Raises ``ValueError`` when the line is not such a record (its row count disagrees with its
    predictions)."""
    head, *inputs = line.split(SEPARATOR)
    record = orjson.loads(head)
    if inputs:
        return _table_rows(record, [text.decode() for text in inputs])
    if isinstance(record.get("inputs"), Mapping) and "row" not in record:  # the columns, as record_line writes them
        read = record_rows(head, len(record["predictions"]), list(record["inputs"]))
        if read is not None:  # each row cut from the line by the compiled reader, not decoded and encoded again
            return _table_rows(record, read.inputs, read.labels, read.probabilities)
    return table_rows(record)


def table_rows(record: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The store's table rows of a request record: one per predicted row, in
    ``serein.store.PREDICTION_COLUMNS`` order (``request_id, row, ts, model, version, inputs,
    prediction, probabilities, score, latency_ms, shadow``; payloads as JSON text). Made straight
    from the record, each payload by ``orjson.dumps`` itself: a record read back from its segment
    holds JSON values only, so neither ``serein.store.dumps``'s options (numpy values, non-string
    keys) nor its extra Python call per payload are needed. Each row's inputs are an object of its
    values (``inputs`` is a column per feature; an earlier serein's records hold a list of row
    objects, or one row each, and are converted as they are). Raises ``ValueError`` when the
    columns' lengths disagree with each other or with the predictions.

    >>> table_rows({"request_id": "r", "model": "m", "version": 2, "latency_ms": 0.4, "ts": 1.0,
    ...             "shadow": False, "inputs": {"x": [1, 2], "c": ["a", None]}, "predictions": [0, 1],
    ...             "probabilities": None, "scores": [0.1, 0.9]})[1]
    ('r', 1, 1.0, 'm', 2, '{"x":2,"c":null}', '1', None, 0.9, 0.4, False)
    """
    if "row" in record:
        return prediction_table_rows([record])
    dumps, inputs = orjson.dumps, record["inputs"]
    if isinstance(inputs, Mapping):
        names = list(inputs)
        rows = [dict(zip(names, values, strict=True)) for values in zip(*inputs.values(), strict=True)]
    else:
        rows = inputs
    return _table_rows(record, [dumps(row).decode() for row in rows])


def _table_rows(record: Mapping[str, Any], inputs: Sequence[str], labels_text: Sequence[str] | None = None,
                probabilities_text: Sequence[str | None] | None = None) -> list[tuple[Any, ...]]:
    """``table_rows`` with each row's inputs given as JSON text (and, when given, each label's and
    each row's probabilities')."""
    labels, probabilities = record["predictions"], record["probabilities"]
    dumps = orjson.dumps
    if labels_text is None:
        labels_text = [dumps(label).decode() for label in labels]
    if probabilities_text is None:
        probabilities_text = ([None] * len(labels) if probabilities is None
                              else [dumps(p).decode() for p in probabilities])
    rid, ts, model, version = record["request_id"], float(record["ts"]), record["model"], int(record["version"])
    latency_ms, shadow = record["latency_ms"], bool(record["shadow"])
    return [(rid, i, ts, model, version, text, label, proba, score, latency_ms, shadow)
            for i, text, label, proba, score in zip(
                range(len(labels)), inputs, labels_text, probabilities_text, record["scores"], strict=True)]


def span_rows(path: Path, start: int, end: int) -> list[tuple[Any, ...]]:
    """The store's table rows of the records in bytes ``[start, end)`` of a segment (whole lines)."""
    with open(path, "rb") as segment:
        segment.seek(start)
        data = segment.read(end - start)
    if len(data) != end - start:
        raise ShipperFailed(f"{path.name} holds {start + len(data)} bytes, {end} expected")
    return [row for line in data.split(b"\n") if line for row in line_rows(line)]


class ShipperProcess:
    """The server's handle on one shipper child process (started on first use, restarted after
    it dies). ``ship`` blocks the calling thread, not the GIL, while the child works."""

    def __init__(self, store_uri: str) -> None:
        self.store_uri = store_uri
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the child, if it is not running, and wait until its store is open."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close()
        self._proc = subprocess.Popen([sys.executable, "-m", __name__, self.store_uri],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._call(None)

    def ship(self, spans: Sequence[tuple[Path, int, int]], once: bool) -> int:
        """Ship the records in ``spans``; returns the rows written. Raises ``ShipperFailed``."""
        self.start()
        answer = self._call({"spans": [[str(p), s, e] for p, s, e in spans], "once": once})
        if "error" in answer:
            raise ShipperFailed(f"the store refused the prediction records: {answer['error']}")
        return int(answer["rows"])

    def _call(self, request: dict[str, Any] | None) -> dict[str, Any]:
        """Send ``request`` (None: nothing, read the greeting) and read the child's answer."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            if request is not None:
                proc.stdin.write(orjson.dumps(request) + b"\n")
                proc.stdin.flush()
            reply = proc.stdout.readline()
        except OSError as exc:
            self.close()
            raise ShipperFailed(f"the prediction-log shipper process failed: {exc}") from exc
        if not reply:
            self.close()
            raise ShipperFailed("the prediction-log shipper process exited")
        answer: dict[str, Any] = orjson.loads(reply)
        return answer

    def close(self) -> None:
        """End the child (it exits when its stdin closes)."""
        proc, self._proc = self._proc, None
        end_child(proc)


def serve(store_uri: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: ship each request's spans, answer, until ``requests`` closes."""
    store = OperationalStore(store_uri)
    # what is alive now (the modules, the store) lives as long as the process: frozen, the garbage
    # collector stops walking it each time the records' rows fill a generation (about half of
    # turning a 100-row record into table rows)
    gc.freeze()
    replies.write(b'{"ready": true}\n')
    replies.flush()
    for line in requests:
        try:
            request = orjson.loads(line)
            rows = [row for path, start, end in request["spans"] for row in span_rows(Path(path), start, end)]
            written = store.log_prediction_rows(rows, once=request["once"])
            answer: dict[str, Any] = {"rows": written}
        except Exception as exc:  # the server retries; the records are safe in their segments
            log.warning("could not ship prediction records: %s", exc)
            answer = {"error": str(exc)[:500]}
        replies.write(orjson.dumps(answer) + b"\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
