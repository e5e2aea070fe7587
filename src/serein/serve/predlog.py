"""The prediction log: group-committed appends to a local segment file, shipped to the store.

A request hands ``PredictionLog.write`` one *request record* (``request_record``: its id, model
version and timing, and its rows' inputs and outputs as lists), serialised once, on the event
loop, into one orjson line (a 100-row request is one line, not 100). Once per turn of the event
loop, the lines of every request that turn are appended to the current *segment*
(``.serein/predlog/*.jsonl``) with one ``write`` (into the page cache: microseconds), and a
syncer thread makes them durable with one ``os.fdatasync`` covering every group written meanwhile
(group commit). The event loop never waits for the disk, and no thread is woken per request: a
thread taking the GIL from the busy loop once or twice per request cost about half of the
throughput. When a request is acknowledged depends on ``serve.durability``:

* ``strict`` (default): after the ``fdatasync`` of its group: it survives a power loss. One
  flush cost 0.8-4 ms on the development VM's disk (depending on other writers), which bounds
  latency at concurrency 1; under load one flush serves every request of the group (14-25 records
  per flush measured by ``benchmarks/serving.py``).
* ``written``: once its group is written to the segment (in the kernel's page cache): it
  survives the server being killed (SIGKILL, out of memory); the ``fdatasync`` follows within
  ``RELAXED_SYNC_SECONDS``.
* ``relaxed``: once queued in memory, written at the end of the loop's turn: a killed process
  loses at most that turn.
* ``off``: nothing is logged (load tests, benchmarks; monitoring and feedback see nothing).

Every ``ship_interval`` seconds a shipper thread hands the byte ranges of the durable groups to a
shipper *process* (``serein.serve.predlog_shipper``), which reads them back, expands each record
to one row per predicted row (``expand``: the store, monitoring and feedback see rows) and writes
them with ``store.log_predictions``; the thread then deletes a segment once all of its records
are there. In the serving process SQLite took and released the GIL once per row, against the
event loop; in its own it costs the server a pipe round trip per batch. A batch retried after a
failure (which may have committed: the shipper process died) is shipped with
``log_predictions_once``. Each process holds an exclusive ``flock`` on the segments it owns, so
at start-up ``PredictionLog.start`` ships every segment no live process holds: those a killed server left.
That shipping is idempotent by ``(request_id, row, shadow)`` (a crash between shipping and
deleting never duplicates a row), and a torn last line (written by a process killed mid-write,
never acknowledged) is skipped.

The log is bounded: when ``max_pending`` records are queued or not yet shipped (the store is down
or slow), ``write`` refuses with ``LogBusy`` (HTTP 503 with ``Retry-After``) rather than growing
without limit.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import threading
import time
from contextlib import suppress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from serein.errors import SereinError
from serein.serve.predlog_shipper import ShipperProcess, expand
from serein.store import OperationalStore

log = logging.getLogger(__name__)

DURABILITY_CHOICES = ("strict", "written", "relaxed", "off")
SEGMENT_BYTES = 4 * 1024 * 1024  # a segment is closed (and deleted once shipped) past this size
RETRY_AFTER_SECONDS = 1
RELAXED_SYNC_SECONDS = 0.05  # written/relaxed: one fdatasync per this interval at most (nobody waits on it)


class LogUnavailable(SereinError):
    """The prediction log could not be written, so the prediction is not acknowledged."""

    http_status = 503
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class LogBusy(LogUnavailable):
    """Too many records are waiting to be written or shipped: back-pressure, retry shortly."""


@dataclass(eq=False)  # compared (and hashed) by identity
class _Segment:
    """One segment file owned (and ``flock``-ed) by this process."""

    path: Path
    fd: int
    size: int = 0
    named: bool = False  # its directory entry has been fsync-ed (by the syncer)
    failed: bool = False  # an fdatasync failed: closed for shipping, the next write starts a fresh one


@dataclass
class _Group:
    """What one turn of the event loop wrote: handed to the syncer."""

    segment: _Segment
    entries: list[_Entry]
    start: int  # the group's lines are bytes [start, end) of the segment
    end: int
    closes: bool  # the segment is full: no group follows in it


@dataclass
class _Shipment:
    """Durable records waiting for the shipper: a group's bytes ``[start, end)`` of ``segment``
    and its request records, or (``records`` None) the segment closed, to delete once shipped."""

    segment: _Segment
    start: int = 0
    end: int = 0
    records: list[Mapping[str, Any]] | None = None


@dataclass
class _Entry:
    """One ``write`` call: its record, the record's segment line, and how to tell its waiter."""

    record: Mapping[str, Any]
    line: bytes
    done: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop | None = None


def request_record(*, request_id: str, model: str, version: int, inputs: Sequence[Mapping[str, Any]],
                   predictions: Sequence[Any], probabilities: Sequence[Any] | None, scores: Sequence[Any],
                   latency_ms: float | None, shadow: bool = False, ts: float | None = None) -> dict[str, Any]:
    """One request's prediction-log record: its rows' ``inputs``, ``predictions``,
    ``probabilities`` (None when the model gives none) and ``scores``, aligned by row."""
    return {"request_id": request_id, "model": model, "version": version,
            "ts": time.time() if ts is None else ts, "latency_ms": latency_ms, "shadow": shadow,
            "inputs": inputs, "predictions": predictions, "probabilities": probabilities, "scores": scores}


def _settle(entries: list[_Entry], error: BaseException | None) -> None:
    """Resolve the waiters of ``entries`` (runs on their event loop)."""
    for entry in entries:
        if entry.done is not None and not entry.done.done():
            if error is None:
                entry.done.set_result(None)
            else:
                entry.done.set_exception(error)


def _notify(entries: list[_Entry], error: BaseException | None = None) -> None:
    """Hand ``entries``' outcome to their event loop(s), one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Entry]] = {}
    for entry in entries:
        if entry.done is not None and entry.loop is not None:
            by_loop.setdefault(entry.loop, []).append(entry)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, group, error)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass


def read_segment(path: Path) -> list[dict[str, Any]]:
    """The rows of a segment file's records (``expand``); a torn last line (the writer was
    killed mid-write, so the record was never acknowledged) is skipped."""
    records = []
    lines = path.read_bytes().split(b"\n")
    for n, line in enumerate(lines):
        if not line:
            continue
        try:
            records.extend(expand(orjson.loads(line)))
        except orjson.JSONDecodeError:
            if n < len(lines) - 1:  # only the very last line can be torn
                raise
            log.warning("skipped a torn last record in %s (never acknowledged)", path.name)
    return records


class PredictionLog:
    """Group-committed, durable prediction records, shipped to ``store`` in the background."""

    def __init__(self, store: OperationalStore, directory: str | os.PathLike[str], durability: str = "strict",
                 max_pending: int = 100_000, ship_interval: float = 0.2) -> None:
        if durability not in DURABILITY_CHOICES:
            raise ValueError(f"durability must be one of {DURABILITY_CHOICES}, got {durability!r}")
        self.store = store
        self.directory = Path(directory)
        self.durability = durability
        self.max_pending = max_pending
        self.ship_interval = ship_interval
        self.stats = {"groups": 0, "records": 0, "rows": 0, "fsync_seconds": 0.0, "shipped": 0, "recovered": 0}
        self._lock = threading.Condition(threading.Lock())  # counters, index and shipping hand-over
        self._queue: queue.SimpleQueue[_Group | None] = queue.SimpleQueue()  # written groups; None: stop
        self._buffer: list[_Entry] = []  # written at the end of the event loop's turn
        self._flush_scheduled = False
        self._pending = 0  # rows queued, or written but not yet in the store
        self._unshipped: dict[str, tuple[str, int]] = {}  # request id -> (model, rows): not in the store yet
        self._to_ship: list[_Shipment] = []  # durable groups, and closed segments
        self._shipper: ShipperProcess | None = None
        self._segment: _Segment | None = None
        self._serial = 0
        self._stop_shipping = False  # the shipper stops once nothing is left to ship
        self._ship_now = False
        self._threads: list[threading.Thread] = []

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> int:
        """Ship the segments a previous (killed) process left, then start the writer and shipper
        threads. Returns how many recovered records were new to the store."""
        self.directory.mkdir(parents=True, exist_ok=True)
        recovered = self.recover()
        if self.durability == "off":
            return recovered
        self._shipper = ShipperProcess(self.store.uri)
        self._shipper.start()
        self._threads = [threading.Thread(target=self._sync_loop, name="serein-predlog-syncer", daemon=True),
                         threading.Thread(target=self._ship_loop, name="serein-predlog-shipper", daemon=True)]
        for thread in self._threads:
            thread.start()
        return recovered

    def recover(self) -> int:
        """Ship (idempotently) and delete every segment in the directory that no live process
        holds. Returns the number of records that were not in the store yet."""
        added = 0
        for path in sorted(self.directory.glob("*.jsonl")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # shipped by another worker meanwhile
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a live process owns it
                    continue
                records = read_segment(path)
                new = self.store.log_predictions_once(records)
                path.unlink(missing_ok=True)
                added += new
                log.info("recovered %s: %d record(s), %d new to the store", path.name, len(records), new)
            finally:
                os.close(fd)
        self.stats["recovered"] += added
        return added

    def close(self, timeout: float = 30.0) -> None:
        """Write and ship everything queued, then stop the threads (blocking; used at shutdown)."""
        self.flush(timeout)
        if not self._threads:
            return
        writer, shipper = self._threads
        self._queue.put(None)
        writer.join(timeout)
        with self._lock:
            self._stop_shipping = True
            self._lock.notify_all()
        shipper.join(timeout)  # a store that is down leaves the rest on disk for the next start
        self._threads = []
        if self._shipper is not None:
            self._shipper.close()
        groups, records = self.stats["groups"], self.stats["records"]
        if groups:
            log.info("prediction log: %d request record(s) (%d rows) in %d group commit(s), %.1f records per "
                     "fdatasync, %.2f ms per fdatasync", records, self.stats["rows"], groups, records / groups,
                     1000 * self.stats["fsync_seconds"] / groups)

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every record written so far is in the store (or ``timeout``); returns
        whether it is."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._ship_now = True
            self._lock.notify_all()
            while self._pending and self._threads:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
                self._ship_now = True
                self._lock.notify_all()
        return self._pending == 0

    # -- the request side --------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Rows queued or not yet shipped to the store (the back-pressure measure)."""
        return self._pending

    async def write(self, record: Mapping[str, Any]) -> None:
        """Queue one request's ``record`` (``request_record``); return once it is as durable as
        ``durability`` asks.

        Raises ``LogBusy`` when the log is full and ``LogUnavailable`` when the segment could not
        be written: either way the prediction must not be acknowledged."""
        if self.durability == "off":
            return
        if not self._threads:
            raise LogUnavailable("the prediction log is not running", hint="retry once the server has started")
        n_rows = len(record["predictions"])
        line = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        loop = asyncio.get_running_loop()
        entry = _Entry(record, line, None if self.durability == "relaxed" else loop.create_future(), loop)
        with self._lock:
            if self._pending + n_rows > self.max_pending:
                raise LogBusy(f"the prediction log has {self._pending} rows waiting; the prediction was not served",
                              hint=f"retry after {RETRY_AFTER_SECONDS} s; if this persists check the operational "
                                   "store (store_uri) or raise serve.log_max_pending")
            self._pending += n_rows
            if not record["shadow"]:
                self._unshipped[record["request_id"]] = (record["model"], n_rows)
        self._buffer.append(entry)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if entry.done is not None:
            await entry.done  # its own future: a cancelled request cancels only its own wait

    def known(self, request_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """For each known request id, logged or still on its way to the store: its model and
        number of rows (blocking: call from a worker thread)."""
        with self._lock:
            waiting = {rid: self._unshipped[rid] for rid in request_ids if rid in self._unshipped}
        rest = [rid for rid in request_ids if rid not in waiting]
        return {**self.store.request_rows(rest), **waiting} if rest else waiting

    # -- writing, on the event loop ---------------------------------------------------------
    def _open_segment(self) -> _Segment:
        """A new segment, ``flock``-ed until it is shipped and deleted (its name is made durable
        by the syncer, before anything in it is acknowledged as on disk)."""
        self._serial += 1
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}-{self._serial}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _Segment(path, fd)

    def _flush(self) -> None:
        """Write this loop turn's lines to the segment with one ``write`` and hand the group to
        the syncer (runs on the event loop, once per turn)."""
        self._flush_scheduled = False
        entries, self._buffer = self._buffer, []
        if not entries:
            return
        try:
            if self._segment is None or self._segment.failed:
                self._segment = self._open_segment()
            segment = self._segment
            start = segment.size
            view = memoryview(b"".join([entry.line for entry in entries]))
            while view:
                written = os.write(segment.fd, view)
                segment.size += written
                view = view[written:]
        except OSError as exc:
            self._refuse(entries, exc)
            return
        if self.durability == "written":
            _notify(entries)
        closes = segment.size >= SEGMENT_BYTES
        if closes:
            self._segment = None
        self._queue.put(_Group(segment, entries, start, segment.size, closes))  # wakes the syncer

    def _refuse(self, entries: list[_Entry], exc: OSError) -> None:
        """The segment could not be written: refuse the group's predictions and start a fresh
        segment (the old one is deleted once its acknowledged records are shipped)."""
        log.error("could not write %d prediction record(s) to %s: %s", len(entries), self.directory, exc)
        with self._lock:
            segments = [] if self._segment is None else [self._segment]
            self._segment = None
        self._abandon(entries, segments, exc, refuse=True)

    def _abandon(self, entries: list[_Entry], segments: Sequence[_Segment], exc: OSError, refuse: bool) -> None:
        """Give up on ``entries`` after ``exc``: their rows leave the back-pressure count, the
        ``segments`` close (deleted once their acknowledged records are shipped), and, when
        ``refuse``, their waiters learn the predictions must not be acknowledged."""
        records = [entry.record for entry in entries]
        with self._lock:
            self._to_ship.extend(_Shipment(segment) for segment in segments)
            self._pending -= _rows(records)
            self._forget(records)
            self._lock.notify_all()
        if refuse:
            _notify(entries, LogUnavailable(f"the prediction log could not be written ({exc.strerror or exc})",
                                            hint="check the disk holding .serein/predlog and retry"))

    # -- the syncer thread -------------------------------------------------------------------
    def _sync_loop(self) -> None:
        """Make the written groups durable: one ``fdatasync`` per segment for every group
        written since the last one, then acknowledge (``strict``) and pass them to the shipper."""
        stopping = False
        while not stopping:
            first = self._queue.get()
            groups = [] if first is None else [first]
            stopping = first is None
            with suppress(queue.Empty):
                while not stopping:
                    group = self._queue.get_nowait()
                    if group is None:
                        stopping = True
                    else:
                        groups.append(group)
            if groups:
                self._sync(groups)
            if self.durability != "strict" and not stopping:
                time.sleep(RELAXED_SYNC_SECONDS)  # nobody waits: gather more groups per fdatasync
        if self._segment is not None:
            with self._lock:
                self._to_ship.append(_Shipment(self._segment))
                self._lock.notify_all()
            self._segment = None

    def _sync(self, groups: list[_Group]) -> None:
        entries = [entry for group in groups for entry in group.entries]
        try:
            started = time.perf_counter()
            for segment in dict.fromkeys(group.segment for group in groups):  # in order, once each
                if not segment.named:
                    dir_fd = os.open(self.directory, os.O_RDONLY)
                    try:
                        os.fsync(dir_fd)  # the new file's name is durable too
                    finally:
                        os.close(dir_fd)
                    segment.named = True
                os.fdatasync(segment.fd)
            self.stats["fsync_seconds"] += time.perf_counter() - started
        except OSError as exc:
            log.exception("could not make %d prediction record(s) durable in %s", len(entries), self.directory)
            failed = list(dict.fromkeys(group.segment for group in groups))
            for segment in failed:
                segment.failed = True
            self._abandon(entries, failed, exc, refuse=self.durability == "strict")
            return
        self.stats["groups"] += 1
        self.stats["records"] += len(entries)
        if self.durability == "strict":
            _notify(entries)
        with self._lock:
            for group in groups:
                records = [entry.record for entry in group.entries]
                self.stats["rows"] += _rows(records)
                self._to_ship.append(_Shipment(group.segment, group.start, group.end, records))
                if group.closes:
                    self._to_ship.append(_Shipment(group.segment))
            self._lock.notify_all()

    # -- the shipper thread ------------------------------------------------------------------
    def _ship_loop(self) -> None:
        backoff = self.ship_interval
        retrying = False  # the last attempt failed, perhaps after its commit: ship only what is new
        while True:
            with self._lock:  # every ship interval, unless asked sooner (flush, shutdown)
                deadline = time.monotonic() + backoff
                while not (self._ship_now or self._stop_shipping) and (left := deadline - time.monotonic()) > 0:
                    self._lock.wait(left)
                self._ship_now = False
                batch, self._to_ship = self._to_ship, []
            if not batch:
                if self._stop_shipping:
                    return
                continue
            records = [r for shipment in batch if shipment.records for r in shipment.records]
            spans = _spans(batch)
            try:
                if spans:
                    assert self._shipper is not None
                    self._shipper.ship(spans, once=retrying)
            except Exception:
                log.exception("could not ship %d prediction record(s) to the store; they are safe in %s, retrying",
                              len(records), self.directory)
                with self._lock:
                    self._to_ship[:0] = batch
                if self._stop_shipping:  # shutting down: the segments stay on disk for the next start
                    return
                backoff = min(backoff * 2, 5.0)
                retrying = True
                continue
            backoff, retrying = self.ship_interval, False
            self.stats["shipped"] += _rows(records)
            for shipment in batch:
                if shipment.records is None:  # closed, and everything before it is in the store
                    shipment.segment.path.unlink(missing_ok=True)
                    os.close(shipment.segment.fd)
            with self._lock:
                self._pending -= _rows(records)
                self._forget(records)
                self._lock.notify_all()

    def _forget(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Drop ``records``' request ids from the not-yet-shipped index (lock held)."""
        for record in records:
            if not record["shadow"]:
                self._unshipped.pop(record["request_id"], None)


def _spans(batch: Sequence[_Shipment]) -> list[tuple[Path, int, int]]:
    """The byte ranges holding ``batch``'s records, adjacent groups of a segment merged (a
    segment's groups are written, and synced, in order)."""
    spans: list[tuple[Path, int, int]] = []
    for shipment in batch:
        if shipment.records is None:
            continue
        if spans and spans[-1][0] == shipment.segment.path and spans[-1][2] == shipment.start:
            spans[-1] = (spans[-1][0], spans[-1][1], shipment.end)
        else:
            spans.append((shipment.segment.path, shipment.start, shipment.end))
    return spans


def _rows(records: Sequence[Mapping[str, Any]]) -> int:
    """The number of predicted rows in request records."""
    return sum(len(record["predictions"]) for record in records)
