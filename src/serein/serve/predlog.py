"""The prediction log: group-committed writes to a local segment file, shipped to the store.

A request hands ``PredictionLog.submit`` one *request record* (``request_record``: its id, model
version and timing, its rows' validated inputs as columns and its outputs as lists), serialised
once, on the event loop, into one line (``predlog_shipper.record_line``: a 100-row request is one
line, not 100).
Once per turn of the event loop, the lines of every request that turn are written after the
last line of the current *segment* (``.serein/predlog/*.jsonl``) with one ``pwrite`` (into the
page cache: microseconds), and a *syncer process* (``serein.serve.predlog_syncer``) makes them
durable with one ``fdatasync`` covering every group written since its previous one (group commit:
one request to it is outstanding at a time).
With ``strict`` a *preparer thread* keeps one spare segment ready: zero-filled to its full size
and synced, then renamed into place when the current segment fills (``_prepare_spare``). Writing
over blocks already on disk changes no file size and allocates nothing, so its ``fdatasync``
waits for no journal commit of the file system (ext4, xfs): as PostgreSQL zero-fills its WAL
segments. A segment's records end at its first zero byte (a record line never holds one).
The event loop reads the syncer's answers from a pipe it watches like a socket, so it never
waits for the disk and no thread of the server wakes per request or per group: a thread taking
the GIL from the busy loop once or twice per request cost about half of the throughput, and
with a syncer thread (a few GIL hand-offs per group) the server spent about 0.2 ms more CPU per
request at concurrency 1.
A lone request's group (``PredictionLog.serving``) is synced by the event loop itself, which has
nothing else to do: that saves it the round trip.
When a request is acknowledged depends on ``serve.durability``:

* ``strict`` (default): after the ``fdatasync`` of its group: it survives a power loss. One
  flush cost 0.8-4 ms on the development VM's disk (depending on other writers), which bounds
  latency at concurrency 1; under load one flush serves every request of the group (14-25 records
  per flush measured by ``benchmarks/serving.py``).
* ``written``: once its group is written to the segment (in the kernel's page cache): it
  survives the server being killed (SIGKILL, out of memory); the syncer pauses
  ``RELAXED_SYNC_SECONDS`` after each ``fdatasync``, so one covers many groups.
* ``relaxed``: once queued in memory, written at the end of the loop's turn: a killed process
  loses at most that turn.
* ``off``: nothing is logged (load tests, benchmarks; monitoring and feedback see nothing).

Every ``ship_interval`` seconds a shipper thread hands the byte ranges of the durable groups to a
shipper *process* (``serein.serve.predlog_shipper``), which reads them back, expands each record
to one table row per predicted row (``table_rows``: the store, monitoring and feedback see rows) and
writes them with ``store.log_prediction_rows``; the thread then deletes a segment once all of its records
are there. In the serving process SQLite took and released the GIL once per row, against the
event loop; in its own it costs the server a pipe round trip per batch. A batch retried after a
failure (which may have committed: the shipper process died) is shipped with
``once=True``. Each process holds an exclusive ``flock`` on the segments it owns, so
at start-up ``PredictionLog.start`` ships every segment no live process holds: those a killed server left.
That shipping is idempotent by ``(request_id, row, shadow)`` (a crash between shipping and
deleting never duplicates a row), and a torn last line (written by a process killed mid-write,
never acknowledged) is skipped.

The log is bounded: when ``max_pending`` rows or ``max_pending_requests`` requests are queued or
not yet shipped (the store is down, or slower than the traffic), ``submit`` refuses with
``LogBusy`` (HTTP 503 with ``Retry-After``) rather than growing without limit. The two bounds
guard different things: until it is shipped, a written request holds about 0.3 KB of memory here
(its id and row count) whatever its size, and each of its rows about 0.2 KB of disk (20
features). So the row bound can be generous: the durable segments absorb a burst, or a stretch
of 100-row traffic faster than the shipper's ~50k rows/s on a small machine, and the store
catches up afterwards (with a bound of 100k rows, 100-row requests at concurrency 4 drew 503s
within 5 s in the serving benchmark). Not unbounded: a restarted server ships what a killed one
left before it answers (``start``), about 100k rows a second here, so a full backlog at the
default of 500k rows (each worker's) delays a restart by about 5 s.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager, suppress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from serein.errors import SereinError
from serein.serve.predlog_shipper import ShipperProcess, line_rows, record_line
from serein.serve.predlog_syncer import SyncerFailed, SyncerProcess, fsync_directory
from serein.store import OperationalStore

log = logging.getLogger(__name__)

DURABILITY_CHOICES = ("strict", "written", "relaxed", "off")
SEGMENT_BYTES = 4 * 1024 * 1024  # a segment is closed (and deleted once shipped) past this size
SPARE_BYTES = SEGMENT_BYTES + 512 * 1024  # a spare's zero-filled length: room for the group that crosses SEGMENT_BYTES
SEGMENT_SUFFIX = ".jsonl"  # a segment's file name ends so
SPARE_SUFFIX = ".spare"  # a spare segment's name until it is put to use (recovery deletes an unused one)
SPARE_RETRY_SECONDS = 5.0  # after a spare could not be made (a full disk): segments are created empty meanwhile
RETRY_AFTER_SECONDS = 1
RELAXED_SYNC_SECONDS = 0.05  # written/relaxed: one fdatasync per this interval at most (nobody waits on it)
SYNCER_RESTARTS = 3  # a syncer that dies this many times in a row without answering: refuse, not retry


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
    failed: bool = False  # an fdatasync failed: closed for shipping, the next write starts a fresh one
    named: bool = False  # its directory entry is durable (synced here or by the syncer)


@dataclass
class _Group:
    """What one turn of the event loop wrote: made durable by the syncer."""

    segment: _Segment
    entries: list[_Entry]
    start: int  # the group's lines are bytes [start, end) of the segment
    end: int
    closes: bool  # the segment is full: no group follows in it
    written_at: float  # time.monotonic() when it was written


class _Logged(NamedTuple):
    """What the log keeps of a written record until it is in the store: enough to count its
    rows and answer ``known``. Not the record itself: its rows' inputs die with their request
    instead of living on for a ship interval (keeping them made the collector walk them, about a
    fifth of a 100-row request's CPU)."""

    request_id: str
    model: str
    rows: int
    shadow: bool


@dataclass
class _Shipment:
    """Durable records waiting for the shipper: a group's bytes ``[start, end)`` of ``segment``
    and what is kept of its records, or (``records`` None) the segment closed, to delete once
    shipped."""

    segment: _Segment
    start: int = 0
    end: int = 0
    records: list[_Logged] | None = None


@dataclass
class _Entry:
    """One ``submit`` call: what is kept of its record, the record's segment line, and how to
    tell its waiter."""

    record: _Logged
    line: bytes
    done: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop | None = None


def request_record(*, request_id: str, model: str, version: int, inputs: Mapping[str, Sequence[Any]],
                   predictions: Sequence[Any], probabilities: Sequence[Any] | None, scores: Sequence[Any],
                   latency_ms: float | None, shadow: bool = False, ts: float | None = None) -> dict[str, Any]:
    """One request's prediction-log record: its rows' ``inputs`` as columns (feature -> one value
    per row, as validated: numpy arrays or lists), ``predictions``, ``probabilities`` (None when
    the model gives none) and ``scores``, aligned by row."""
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
    """Hand ``entries``' outcome to their event loop(s): directly on the loop running this call,
    with one wake-up per other loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Entry]] = {}
    for entry in entries:
        if entry.done is not None and entry.loop is not None:
            by_loop.setdefault(entry.loop, []).append(entry)
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, group in by_loop.items():
        if loop is running:
            _settle(group, error)
            continue
        try:
            loop.call_soon_threadsafe(_settle, group, error)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass


def _notify_all(settled: Sequence[tuple[list[_Entry], BaseException | None]]) -> None:
    """``_notify`` each ``(entries, error)`` pair (after the lock that collected them is released)."""
    for entries, error in settled:
        _notify(entries, error)


def read_segment(path: Path) -> list[tuple[Any, ...]]:
    """The store's table rows of a segment file's records (``line_rows``), which end at its first
    zero byte (the rest of a spare's zeros); a torn last line (the writer was killed mid-write,
    so the record was never acknowledged) is skipped: every whole line ends with a newline."""
    data = path.read_bytes()
    end = data.find(b"\0")
    *lines, torn = (data if end < 0 else data[:end]).split(b"\n")
    if torn:
        log.warning("skipped a torn last record in %s (never acknowledged)", path.name)
    records = []
    for line in lines:
        if line:
            records.extend(line_rows(line))
    return records


class PredictionLog:
    """Group-committed, durable prediction records, shipped to ``store`` in the background."""

    def __init__(self, store: OperationalStore, directory: str | os.PathLike[str], durability: str = "strict",
                 max_pending: int = 500_000, ship_interval: float = 0.2, commit_delay: float = 0.002,
                 max_pending_requests: int = 100_000) -> None:
        if durability not in DURABILITY_CHOICES:
            raise ValueError(f"durability must be one of {DURABILITY_CHOICES}, got {durability!r}")
        self.store = store
        self.directory = Path(directory)
        self.durability = durability
        self.max_pending = max_pending
        self.max_pending_requests = max_pending_requests
        self.ship_interval = ship_interval
        self.commit_delay = commit_delay
        self.stats = {"groups": 0, "records": 0, "rows": 0, "fsync_seconds": 0.0, "shipped": 0, "recovered": 0}
        lock = threading.Lock()
        self._lock = threading.Condition(lock)  # counters, index, syncing and shipping hand-over
        self._spare_taken = threading.Condition(lock)  # wakes the preparer thread
        self._spare: _Segment | None = None  # a zero-filled segment ready to be renamed into place (strict)
        self._preparer: threading.Thread | None = None
        self._buffer: list[_Entry] = []  # written at the end of the event loop's turn
        self._flush_scheduled = False
        self._pending = 0  # rows queued, or written but not yet in the store
        self._pending_requests = 0  # the records holding them
        self._unshipped: dict[str, tuple[str, int]] = {}  # request id -> (model, rows): not in the store yet
        self._to_ship: list[_Shipment] = []  # durable groups, and closed segments
        self._shipper: ShipperProcess | None = None
        self._syncer: SyncerProcess | None = None
        self._unsynced: list[_Group] = []  # written, not yet in a request to the syncer
        self._syncing: list[_Group] = []  # in the syncer's outstanding request (number self._seq)
        self._seq = 0
        self._held_on: asyncio.AbstractEventLoop | None = None  # a sync is held back (``_hold``): the timer's loop
        self._deaths = 0  # syncer deaths since it last answered
        self._serving = 0  # requests in service whose record is not submitted yet (``serving``)
        self._watched: tuple[asyncio.AbstractEventLoop, int, int] | None = None  # (loop, generation, fd) reading answers
        self._segment: _Segment | None = None
        self._serial = 0
        self._stop_shipping = False  # the shipper stops once nothing is left to ship
        self._ship_now = False
        self._thread: threading.Thread | None = None  # the shipper thread

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> int:
        """Ship the segments a previous (killed) process left, then start the syncer and shipper
        processes and the shipper thread. Returns how many recovered records were new to the store."""
        self.directory.mkdir(parents=True, exist_ok=True)
        recovered = self.recover()
        if self.durability == "off":
            return recovered
        self._shipper = ShipperProcess(self.store.uri)
        self._shipper.start()
        self._syncer = SyncerProcess(pause=0.0 if self.durability == "strict" else RELAXED_SYNC_SECONDS)
        self._syncer.start()
        log.info("prediction log: %s durability, fdatasync by a syncer process at %s priority", self.durability,
                 "real-time" if self._syncer.realtime else "normal (real-time not permitted)")
        self._thread = threading.Thread(target=self._ship_loop, name="serein-predlog-shipper", daemon=True)
        self._thread.start()
        if self.durability == "strict":
            self._preparer = threading.Thread(target=self._prepare_loop, name="serein-predlog-preparer", daemon=True)
            self._preparer.start()
        return recovered

    def recover(self) -> int:
        """Ship (idempotently) and delete every segment in the directory that no live process
        holds, and the spare segments such a process left unused. Returns the number of records
        that were not in the store yet."""
        for path in self.directory.glob(f"*{SPARE_SUFFIX}"):
            with _held(path) as ours:
                if ours:
                    path.unlink(missing_ok=True)
        added = 0
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            with _held(path) as ours:
                if not ours:
                    continue
                records = read_segment(path)
                new = self.store.log_prediction_rows(records, once=True)
                path.unlink(missing_ok=True)
                added += new
                log.info("recovered %s: %d record(s), %d new to the store", path.name, len(records), new)
        self.stats["recovered"] += added
        return added

    def close(self, timeout: float = 30.0) -> None:
        """Write and ship everything queued, then stop the threads (blocking; used at shutdown)."""
        self.flush(timeout)
        if self._thread is None:
            return
        with self._lock:
            if self._segment is not None and not self._unsynced and not self._syncing:
                self._to_ship.append(_Shipment(self._segment))  # deleted once shipped
            self._segment = None  # (anything not durable yet stays on disk for the next start)
            self._stop_shipping = True
            self._lock.notify_all()
            self._spare_taken.notify()
        self._thread.join(timeout)  # a store that is down leaves the rest on disk for the next start
        self._thread = None
        if self._preparer is not None:
            self._preparer.join(timeout)
            self._preparer = None
        spare, self._spare = self._spare, None
        if spare is not None:
            _discard(spare)
        self._unwatch()
        for process in (self._syncer, self._shipper):
            if process is not None:
                process.close()
        groups, records = self.stats["groups"], self.stats["records"]
        if groups:
            log.info("prediction log: %d request record(s) (%d rows) in %d group commit(s), %.1f records per "
                     "fdatasync, %.2f ms per fdatasync", records, self.stats["rows"], groups, records / groups,
                     1000 * self.stats["fsync_seconds"] / groups)

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every record written so far is in the store (or ``timeout``); returns
        whether it is."""
        deadline = time.monotonic() + timeout
        while True:
            self._poll(force=True)  # the syncer's answers (the event loop that reads them may have stopped)
            with self._lock:
                if not self._pending or self._thread is None:
                    return self._pending == 0
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ship_now = True
                self._lock.notify_all()
                self._lock.wait(min(left, 0.01))

    # -- the request side --------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Rows queued or not yet shipped to the store (the back-pressure measure)."""
        return self._pending

    def submit(self, record: Mapping[str, Any]) -> asyncio.Future[None]:
        """Queue one request's ``record`` (``request_record``) on the running event loop. The
        returned future resolves once the record is as durable as ``durability`` asks (at once
        for ``relaxed`` and ``off``): answer the request after awaiting it, and do the rest of
        its work before, so that the work overlaps the group's ``fdatasync`` (``serving``).

        Raises ``LogBusy`` when the log is full; the future fails with ``LogUnavailable`` when
        the segment could not be written. Either way the prediction must not be acknowledged."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self.durability == "off":
            done.set_result(None)
            return done
        if self._thread is None:
            raise LogUnavailable("the prediction log is not running", hint="retry once the server has started")
        kept = _Logged(record["request_id"], record["model"], len(record["predictions"]), bool(record["shadow"]))
        line = record_line(record)
        with self._lock:
            if self._pending + kept.rows > self.max_pending or self._pending_requests >= self.max_pending_requests:
                raise LogBusy(f"the prediction log has {self._pending} rows of {self._pending_requests} requests "
                              "waiting; the prediction was not served",
                              hint=f"retry after {RETRY_AFTER_SECONDS} s; if this persists check the operational "
                                   "store (store_uri) or raise serve.log_max_pending (rows) or "
                                   "serve.log_max_pending_requests")
            self._pending += kept.rows
            self._pending_requests += 1
            if not kept.shadow:
                self._unshipped[kept.request_id] = (kept.model, kept.rows)
        if self.durability == "relaxed":
            done.set_result(None)
            self._buffer.append(_Entry(kept, line, None))
        else:
            self._buffer.append(_Entry(kept, line, done, loop))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush, loop)
        return done  # each request's own future: a cancelled request cancels only its own wait

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
        by the syncer, before anything in it is acknowledged as on disk): the spare renamed into
        place when one is ready, else an empty file."""
        with self._lock:
            path = self._segment_path(SEGMENT_SUFFIX)
            spare, self._spare = self._spare, None
            self._spare_taken.notify()
        if spare is not None:
            try:
                os.rename(spare.path, path)
                return _Segment(path, spare.fd)
            except OSError as exc:
                log.warning("could not use the spare prediction-log segment %s: %s", spare.path.name, exc)
                _discard(spare)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _Segment(path, fd)

    def _segment_path(self, suffix: str) -> Path:
        """A new file name in the directory: segments sort in the order they were opened (lock
        held: the loop and the preparer thread both name files)."""
        self._serial += 1
        return self.directory / f"{time.time_ns():020d}-{os.getpid()}-{self._serial}{suffix}"

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write this loop turn's lines to the segment with one ``pwrite`` and ask the syncer to
        make them durable, or make them durable here for a lone request (``serving``; runs on
        the event loop, once per turn)."""
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
                written = os.pwrite(segment.fd, view, segment.size)
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
        settled: list[tuple[list[_Entry], BaseException | None]] = []
        here: list[_Group] = []  # a lone request's groups, synced on this thread
        with self._lock:
            if segment.failed:  # its last sync failed meanwhile (answered to ``flush``): not acknowledged
                settled.append((entries, self._abandon(entries, [], "an earlier write to its segment failed")))
            else:
                self._unsynced.append(_Group(segment, entries, start, segment.size, closes, time.monotonic()))
                if self._alone():
                    here, self._unsynced = self._unsynced, []
                    self._syncing = here  # no request to the syncer meanwhile
                else:
                    self._request_sync(settled)
        if here:
            self._sync_here(here, settled)
        _notify_all(settled)
        self._watch(loop)

    def _refuse(self, entries: list[_Entry], exc: OSError) -> None:
        """The segment could not be written: refuse the group's predictions and start a fresh
        segment (the old one is deleted once its acknowledged records are shipped)."""
        log.error("could not write %d prediction record(s) to %s: %s", len(entries), self.directory, exc)
        with self._lock:
            segment, self._segment = self._segment, None
            if segment is not None:
                segment.failed = True
                self._close_when_synced(segment)
            error = self._abandon(entries, [], exc.strerror or str(exc))
        _notify(entries, error)

    def _abandon(self, entries: list[_Entry], segments: Sequence[_Segment], reason: str) -> LogUnavailable:
        """Give up on ``entries`` (lock held): their rows leave the back-pressure count and the
        ``segments`` close (deleted once their acknowledged records are shipped). Returns the
        error that tells their waiters the predictions must not be acknowledged."""
        records = [entry.record for entry in entries]
        self._to_ship.extend(_Shipment(segment) for segment in segments)
        self._pending -= _rows(records)
        self._pending_requests -= len(records)
        self._forget(records)
        self._lock.notify_all()
        return LogUnavailable(f"the prediction log could not be written ({reason})",
                              hint="check the disk holding .serein/predlog and retry")

    def _close_when_synced(self, segment: _Segment) -> None:
        """Close ``segment`` for shipping (lock held) unless groups of it still wait for the
        syncer: the last of them closes it then (``_synced``)."""
        if not any(group.segment is segment for group in (*self._syncing, *self._unsynced)):
            self._to_ship.append(_Shipment(segment))

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Count a request from its prediction until its record is submitted (wrap the
        prediction and ``submit``). A sync waits for the requests counted here (``_hold``), so
        that it covers their records too; then the work left to those requests (their answers
        built, up to the wait on ``submit``'s future) runs while the syncer works: with every
        one of 16 closed-loop connections waiting on each group, that took the 1-row throughput
        at concurrency 16 from 7 % below the log-off server's to level with it (``benchmarks/
        README.md``).

        And a lone request's ``strict`` group is made durable on the event loop itself, which
        has nothing else to do, instead of by a round trip to the syncer (two wake-ups of an idle
        process: 0.3 ms of its 1.3 on a small VM). With more requests served, blocking the loop
        for an ``fdatasync`` costs more than the round trip: syncing on the loop whenever every
        request served waited on it cost 28-34 % of the 1-row throughput at concurrency 16,
        against 9-15 % through the syncer (interleaved pairs)."""
        self._serving += 1
        try:
            yield
        finally:
            self._serving -= 1

    def _alone(self) -> bool:
        """Whether the one record written is a request's (shadow records are not counted), no
        other request counted by ``serving`` has still to submit its record and no sync is
        outstanding (lock held)."""
        if self.durability != "strict" or self._syncing or self._serving:
            return False
        return self._unsynced_requests() == 1

    def _unsynced_requests(self) -> int:
        """How many records written but not yet sent to a sync are requests counted by
        ``serving`` (shadow records are not; lock held)."""
        return sum(not entry.record.shadow for group in self._unsynced for entry in group.entries)

    def _sync_here(self, groups: list[_Group], settled: list[tuple[list[_Entry], BaseException | None]]) -> None:
        """Make ``groups`` (taken as ``_syncing``) durable on the calling thread (a directory
        entry first, once per segment, as the syncer does), then acknowledge them as the
        syncer's answer would."""
        started = time.perf_counter()
        error = None
        try:
            for segment in dict.fromkeys(group.segment for group in groups):
                if not segment.named:
                    fsync_directory(self.directory)
                    segment.named = True
                os.fdatasync(segment.fd)
        except OSError as exc:
            error = exc.strerror or str(exc)
        with self._lock:
            self._syncing = []
            if error is None:
                self._synced(groups, time.perf_counter() - started, settled)
            else:
                self._failed(groups, error, settled)
            self._request_sync(settled)

    # -- the syncer process ------------------------------------------------------------------
    def _request_sync(self, settled: list[tuple[list[_Entry], BaseException | None]], force: bool = False) -> None:
        """Ask the syncer to make every group written since its last request durable, unless a
        request is outstanding or (unless ``force``) the request is held back (``_hold``) (lock
        held; refusals go to ``settled``)."""
        if self._syncing or not self._unsynced or self._syncer is None:
            return
        if not force and self._hold():
            return
        self._seq += 1
        self._syncing, self._unsynced = self._unsynced, []
        try:
            self._syncer.request(self._seq, list(dict.fromkeys(str(group.segment.path) for group in self._syncing)))
        except SyncerFailed as exc:
            self._restart(exc, settled)

    def _hold(self) -> bool:
        """Whether to hold the next sync back (lock held; ``strict`` only): while requests in
        service (``serving``) have still to write their records and the oldest written group
        is younger than ``commit_delay``, so that one ``fdatasync`` covers them too (as
        PostgreSQL's ``commit_delay``). Each sync round costs the server wake-ups and system
        calls; holding (2 ms at most) took the server's CPU per 1-row request at concurrency 16
        from 268 to 222 µs and its throughput up 14 % (medians of 3 interleaved runs). A timer
        on the running event loop asks again when the delay is over, so a request that fails
        before writing holds the others back no longer than that."""
        if self.durability != "strict":
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop (``flush``): nothing to wait for
            return False
        wait = self.commit_delay - (time.monotonic() - self._unsynced[0].written_at)
        if wait <= 0 or not self._serving:
            return False
        if self._held_on is not loop:
            self._held_on = loop
            loop.call_later(wait, self._release)
        return True

    def _release(self) -> None:
        """The commit delay of a held sync is over: ask again (on the event loop)."""
        settled: list[tuple[list[_Entry], BaseException | None]] = []
        with self._lock:
            self._held_on = None
            self._request_sync(settled)
        _notify_all(settled)

    def _poll(self, force: bool = False) -> None:
        """Take the syncer's answers that have arrived: acknowledge (``strict``) and hand over
        to the shipper the groups they made durable, then ask for the next sync (``force``:
        without holding it back). The event loop calls it when the syncer's pipe is readable;
        ``flush`` too."""
        settled: list[tuple[list[_Entry], BaseException | None]] = []
        with self._lock:
            if self._syncer is None:
                return
            try:
                answers = self._syncer.answers()
            except SyncerFailed as exc:
                answers = []
                self._restart(exc, settled)
            for answer in answers:
                if answer.get("seq") != self._seq or not self._syncing:
                    continue  # a restarted syncer's greeting
                groups, self._syncing = self._syncing, []
                self._deaths = 0
                if "error" in answer:
                    self._failed(groups, answer["error"], settled)
                else:
                    self._synced(groups, answer["seconds"], settled)
            self._request_sync(settled, force)
        _notify_all(settled)

    def _synced(self, groups: list[_Group], seconds: float,
                settled: list[tuple[list[_Entry], BaseException | None]]) -> None:
        """``groups`` are durable (lock held): acknowledge them (``strict``) and queue them for
        the shipper, closing the segments that are full or failed once their last group is in."""
        entries = [entry for group in groups for entry in group.entries]
        self.stats["groups"] += 1
        self.stats["records"] += len(entries)
        self.stats["fsync_seconds"] += seconds
        for group in groups:
            group.segment.named = True
            records = [entry.record for entry in group.entries]
            self.stats["rows"] += _rows(records)
            self._to_ship.append(_Shipment(group.segment, group.start, group.end, records))
            if group.closes:
                self._to_ship.append(_Shipment(group.segment))
        for segment in dict.fromkeys(group.segment for group in groups if group.segment.failed):
            self._close_when_synced(segment)
        if self.durability == "strict":
            settled.append((entries, None))

    def _failed(self, groups: list[_Group], reason: str,
                settled: list[tuple[list[_Entry], BaseException | None]]) -> None:
        """The ``fdatasync`` of ``groups`` failed (lock held): refuse them (``strict``) and every
        group written to their segments since, and close those segments; the next write starts a
        fresh one."""
        failed = list(dict.fromkeys(group.segment for group in groups))
        for segment in failed:
            segment.failed = True
        later = [group for group in self._unsynced if group.segment.failed]
        self._unsynced = [group for group in self._unsynced if not group.segment.failed]
        entries = [entry for group in (*groups, *later) for entry in group.entries]
        log.error("could not make %d prediction record(s) durable in %s: %s", len(entries), self.directory, reason)
        error = self._abandon(entries, failed, reason)
        if self.durability == "strict":
            settled.append((entries, error))

    def _restart(self, exc: SyncerFailed, settled: list[tuple[list[_Entry], BaseException | None]]) -> None:
        """The syncer died (lock held): start a new one and ask it again for what the dead one
        had not answered (written records stay in the page cache; any descriptor's
        ``fdatasync`` makes them durable). After ``SYNCER_RESTARTS`` deaths without an answer,
        refuse those groups instead; their segments stay on disk (recovered at the next start)."""
        assert self._syncer is not None
        self._deaths += 1
        if self._deaths <= SYNCER_RESTARTS:
            log.warning("%s; restarting it", exc.message)
            try:
                self._syncer.start()
            except SyncerFailed as again:
                exc = again
            else:
                self._rewatch()
                self._unsynced[:0], self._syncing = self._syncing, []
                self._request_sync(settled, force=True)
                return
        log.error("%s; refusing %d group(s) of predictions", exc.message, len(self._syncing))
        groups, self._syncing = self._syncing, []
        for group in groups:
            group.segment.failed = True
        if self._segment is not None and self._segment.failed:
            self._segment = None
        self._deaths = 0  # the next write tries a new syncer again
        entries = [entry for group in groups for entry in group.entries]
        settled.append((entries, self._abandon(entries, [], exc.message)))

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have ``loop`` read the syncer's answers (runs on ``loop``; a no-op when it already
        reads the current syncer's)."""
        syncer, watched = self._syncer, self._watched
        if syncer is None or (watched is not None and watched[0] is loop and watched[1] == syncer.generation):
            return
        if watched is not None:
            if watched[0] is loop:
                loop.remove_reader(watched[2])
            elif not watched[0].is_closed():
                watched[0].call_soon_threadsafe(watched[0].remove_reader, watched[2])
        fd = syncer.answers_fd
        loop.add_reader(fd, self._poll)
        self._watched = (loop, syncer.generation, fd)

    def _rewatch(self) -> None:
        """After a restart: the loop reading the answers follows the new syncer's pipe."""
        watched = self._watched
        if watched is None or watched[0].is_closed():
            return
        with suppress(RuntimeError):  # closed meanwhile
            watched[0].call_soon_threadsafe(self._watch, watched[0])

    def _unwatch(self) -> None:
        """Stop the loop reading the syncer's answers before its pipe closes (a running loop on
        another thread is given a second to do it)."""
        watched, self._watched = self._watched, None
        if watched is None or watched[0].is_closed():
            return
        loop, _, fd = watched
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here or not loop.is_running():
            loop.remove_reader(fd)
            return
        removed = threading.Event()

        def remove() -> None:
            loop.remove_reader(fd)
            removed.set()

        with suppress(RuntimeError):  # it closed meanwhile
            loop.call_soon_threadsafe(remove)
            removed.wait(1.0)

    # -- the preparer thread -----------------------------------------------------------------
    def _prepare_loop(self) -> None:
        """Keep one spare segment ready (``strict``) until the log closes."""
        while True:
            with self._lock:
                while self._spare is not None and not self._stop_shipping:
                    self._spare_taken.wait()
                if self._stop_shipping:
                    return
                path = self._segment_path(SPARE_SUFFIX)
            try:
                spare = _prepare_spare(path)
            except OSError as exc:
                log.warning("could not prepare a spare prediction-log segment (%s); new segments start empty, "
                            "whose syncs cost more", exc.strerror or exc)
                with self._lock:  # try again later (close wakes it)
                    self._spare_taken.wait_for(lambda: self._stop_shipping, SPARE_RETRY_SECONDS)
                continue
            with self._lock:
                if not self._stop_shipping:
                    self._spare, spare = spare, None
            if spare is not None:
                _discard(spare)

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
                    _discard(shipment.segment)
            with self._lock:
                self._pending -= _rows(records)
                self._pending_requests -= len(records)
                self._forget(records)
                self._lock.notify_all()

    def _forget(self, records: Sequence[_Logged]) -> None:
        """Drop ``records``' request ids from the not-yet-shipped index (lock held)."""
        for record in records:
            if not record.shadow:
                self._unshipped.pop(record.request_id, None)


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


def _prepare_spare(path: Path) -> _Segment:
    """A spare segment at ``path``: ``flock``-ed, ``SPARE_BYTES`` of zeros, synced (blocking: run
    off the event loop). Its name needs no sync: it is renamed before use, and the syncer syncs
    the directory then."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    spare = _Segment(path, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        zeros, filled = memoryview(bytes(1 << 20)), 0  # sliced without a copy
        while filled < SPARE_BYTES:
            filled += os.write(fd, zeros[:SPARE_BYTES - filled])
        os.fdatasync(fd)
    except OSError:
        _discard(spare)
        raise
    return spare


def _discard(segment: _Segment) -> None:
    """Delete a segment whose records are all in the store (or that holds none: an unused spare)
    and close it."""
    segment.path.unlink(missing_ok=True)
    os.close(segment.fd)


@contextmanager
def _held(path: Path) -> Iterator[bool]:
    """Hold ``path``'s ``flock`` for the block, which is told whether it does: not when a live
    process holds the file, or it is gone (another worker shipped it meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _rows(records: Sequence[_Logged]) -> int:
    """The number of predicted rows of written records."""
    return sum(record.rows for record in records)
