"""Prediction-log shipper benchmark: CPU per table row, from segment bytes to committed store rows.

    .venv/bin/python -m benchmarks.shipper [--prefill 300000] [--runs 5]   (or `make bench-shipper`)

``serein serve`` appends one line per request to a segment file; its shipper process reads
byte spans of those lines back and writes one ``predictions`` row per predicted row into the
operational store, one transaction per span batch (SQLite, WAL, ``synchronous=FULL``: durable on
return). This benchmark does the shipper's work in process, on the same kind of records: 100-row
requests of the serving benchmark's 20 raw features (``benchmarks.serving.benchmark_frame``),
each with a fresh uuid4 request id, probabilities and scores, written to a segment. Each store is
first filled with ``--prefill`` rows (the indexes' cost grows with the table), then every method
ships the same batches (``--requests`` requests each) into its own store:

* ``plain``: the store's generic path, a dict per row (``OperationalStore.log_predictions``) from
  each line holding a whole record as one JSON object (as serein wrote them before
  ``record_line``), into a store with SQLite's default 4 KiB pages (as serein made them before);
* ``shipper, whole-record lines``: the shipper's own path (``predlog_shipper.span_rows``, then
  ``OperationalStore.log_prediction_rows``) on those lines, into a store this serein creates
  (``SQLITE_PAGE_SIZE`` pages): every row's inputs parsed and serialised again;
* ``record_line lines, read back``: lines as the server writes them now
  (``predlog_shipper.record_line``: the inputs as a list per feature), each read back by orjson
  and its record converted in Python (``table_rows``), as the shipper does without the compiled
  reader;
* ``record_line lines, shipper (cut)``: the shipper's own path on the same lines: each row's
  inputs object, prediction and probabilities cut from the line's bytes by the compiled reader
  (``json_rows.record_rows``).

Methods alternate within each of ``--runs`` rounds; CPU is this process's user + system time
(``getrusage``), so the commits' ``fdatasync`` waits do not count but the kernel's copying does.
Prints each method's µs of CPU per row over all runs (a WAL checkpoint, every 4-16 MB, falls in
some runs only) and the ratios against ``plain``.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.serving import benchmark_frame
from serein.serve.predlog import request_record
from serein.serve.predlog_shipper import record_line, span_rows, table_rows
from serein.store import OperationalStore

Span = tuple[int, int]


def request_rows(n: int) -> list[dict[str, Any]]:
    """``n`` rows of the serving benchmark's 20 raw features, as a request carries them."""
    frame = benchmark_frame(n).drop(columns=["applied_at", "default"])
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
            for row in frame.to_dict("records")]


def whole_record_line(record: dict[str, Any]) -> bytes:
    """A request record as serein wrote it to a segment before ``record_line``: one JSON object."""
    return orjson.dumps(record) + b"\n"


def write_segment(path: Path, rows: list[dict[str, Any]], requests: int, line: Callable[[dict[str, Any]], bytes],
                  seed: int = 0, columns: bool = False) -> list[Span]:
    """Write ``requests`` request records to ``path``, one ``line(record)`` each (the server
    writes ``record_line``), their inputs as ``rows`` or (``columns``) as a list per feature (as
    the server writes them); returns each line's byte span."""
    inputs: Any = {name: [row[name] for row in rows] for name in rows[0]} if columns else rows
    rng = np.random.default_rng(seed)
    spans, offset = [], 0
    with open(path, "wb") as segment:
        for _ in range(requests):
            p = rng.random(len(rows))
            record = request_record(request_id=uuid.uuid4().hex, model="credit-default", version=1, inputs=inputs,
                                    predictions=(p > 0.5).astype(int).tolist(),
                                    probabilities=np.column_stack([1 - p, p]).tolist(), scores=p.tolist(),
                                    latency_ms=1.5)
            text = line(record)
            segment.write(text)
            spans.append((offset, offset + len(text)))
            offset += len(text)
    return spans


def earlier_store(path: Path) -> OperationalStore:
    """A store as serein created it before ``SQLITE_PAGE_SIZE``: SQLite's default 4 KiB pages."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return OperationalStore(f"sqlite:///{path}")


def prefill(store: OperationalStore, segment: Path, spans: list[Span], rows: int) -> None:
    """Fill ``store`` with about ``rows`` rows (whole requests): the segment's first request again
    and again, each time under a fresh request id, 100 requests a transaction."""
    template = span_rows(segment, *spans[0])
    for _ in range(0, rows, 100 * len(template)):
        ids = [uuid.uuid4().hex for _ in range(100)]
        store.log_prediction_rows([(rid, *row[1:]) for rid in ids for row in template])


def plain(store: OperationalStore, segment: Path, start: int, end: int) -> int:
    """Parse each line, expand it into a dict per row, ``log_predictions`` them."""
    with open(segment, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    records = []
    for line in data.splitlines():
        r = orjson.loads(line)
        records.extend({"request_id": r["request_id"], "row": i, "ts": r["ts"], "model": r["model"],
                        "version": r["version"], "inputs": inputs, "prediction": label,
                        "probabilities": None if r["probabilities"] is None else r["probabilities"][i],
                        "score": score, "latency_ms": r["latency_ms"], "shadow": r["shadow"]}
                       for i, (inputs, label, score) in enumerate(zip(r["inputs"], r["predictions"], r["scores"])))
    return store.log_predictions(records)


def shipper(store: OperationalStore, segment: Path, start: int, end: int) -> int:
    """What the shipper process does with a request's spans."""
    return store.log_prediction_rows(span_rows(segment, start, end))


def read_back(store: OperationalStore, segment: Path, start: int, end: int) -> int:
    """The shipper's work without the compiled reader: each line read back by orjson and its
    record converted in Python (``table_rows``)."""
    with open(segment, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    return store.log_prediction_rows([row for line in data.splitlines() for row in table_rows(orjson.loads(line))])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100, help="rows per request")
    parser.add_argument("--requests", type=int, default=50, help="requests per shipped batch (one transaction)")
    parser.add_argument("--batches", type=int, default=10, help="batches per method and run")
    parser.add_argument("--prefill", type=int, default=300_000, help="rows in each store before timing")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serein-bench-shipper-") as tmp:
        root = Path(tmp)
        rows, requests = request_rows(args.rows), args.runs * args.batches * args.requests
        segments = {}
        for kind, line, columns in (("whole", whole_record_line, False), ("lines", record_line, True)):
            segments[kind] = (root / f"{kind}.log", write_segment(root / f"{kind}.log", rows, requests, line,
                                                                  columns=columns))
        methods: dict[str, tuple[OperationalStore, tuple[Path, list[Span]], Callable[[OperationalStore, Path, int, int], int]]] = {
            "plain (dict per row, 4 KiB store)": (earlier_store(root / "plain.db"), segments["whole"], plain),
            "shipper, whole-record lines": (OperationalStore(f"sqlite:///{root / 'whole.db'}"), segments["whole"], shipper),
            "record_line lines, read back": (OperationalStore(f"sqlite:///{root / 'back.db'}"), segments["lines"],
                                             read_back),
            "record_line lines, shipper (cut)": (OperationalStore(f"sqlite:///{root / 'lines.db'}"), segments["lines"],
                                                 shipper),
        }
        for store, (segment, spans), _ in methods.values():
            prefill(store, segment, spans, args.prefill)
        filled = methods["plain (dict per row, 4 KiB store)"][0].count_predictions()
        cpu: dict[str, list[float]] = {name: [] for name in methods}  # seconds per run
        wall: dict[str, list[float]] = {name: [] for name in methods}
        for run in range(args.runs):
            for name, (store, (segment, spans), ship) in methods.items():
                c0, w0 = cpu_seconds(), time.perf_counter()
                for b in range(args.batches):
                    first = (run * args.batches + b) * args.requests
                    ship(store, segment, spans[first][0], spans[first + args.requests - 1][1])
                cpu[name].append(cpu_seconds() - c0)
                wall[name].append(time.perf_counter() - w0)
        timed = args.runs * args.batches * args.requests * args.rows
        for store, _, _ in methods.values():
            assert store.count_predictions() == filled + timed, "every shipped row is in the store"
            store.engine.dispose()

    per_run = args.batches * args.requests * args.rows
    print(f"shipping {args.rows}-row requests, {args.requests} per transaction, into stores of {filled} rows "
          f"(+{timed} timed, {per_run} per method and run); µs per row: all runs' CPU / all rows, each run's")
    base = sum(cpu[next(iter(methods))])
    for name in methods:
        runs = " ".join(f"{x / per_run * 1e6:.2f}" for x in cpu[name])
        print(f"  {name:34s} CPU {sum(cpu[name]) / timed * 1e6:5.2f}  wall {sum(wall[name]) / timed * 1e6:5.2f}  "
              f"{base / sum(cpu[name]):4.2f}x less CPU than plain  (runs: {runs})")

if __name__ == "__main__":
    main()
