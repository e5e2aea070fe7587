"""The prediction log on real files and a real SQLite store: group commit, acknowledgement only
once durable, shipping to the store, back-pressure, and recovery of what a killed process left."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from serein.serve.predlog import SPARE_BYTES, LogBusy, LogUnavailable, PredictionLog, read_segment, request_record
from serein.serve.predlog_shipper import table_rows
from serein.serve.predlog_syncer import SyncerProcess
from serein.store import PREDICTION_COLUMNS, OperationalStore, prediction_table_rows, predictions


def record(rid: str, rows: int = 1, shadow: bool = False) -> dict:
    """A request record of ``rows`` rows (row i: input x=i, prediction i % 2, score i / 10)."""
    return request_record(request_id=rid, model="m", version=1, inputs={"x": list(range(rows))},
                          predictions=[i % 2 for i in range(rows)],
                          probabilities=[[1 - i / 10, i / 10] for i in range(rows)],
                          scores=[i / 10 for i in range(rows)], latency_ms=0.1, shadow=shadow)


def logged(log: PredictionLog, rec: dict) -> None:
    """Submit ``rec`` from a fresh event loop and wait until it is as durable as asked."""

    async def submitted() -> None:
        await log.submit(rec)

    asyncio.run(submitted())


def row(rid: str, i: int = 0, shadow: bool = False) -> dict:
    """The store row of row ``i`` of a request recorded by ``record``."""
    return {"request_id": rid, "row": i, "model": "m", "version": 1, "inputs": {"x": i}, "prediction": i % 2,
            "probabilities": [1 - i / 10, i / 10], "score": i / 10, "latency_ms": 0.1, "ts": 1.0, "shadow": shadow}


def test_a_request_record_makes_the_same_table_rows_as_its_rows_logged_one_by_one() -> None:
    rec = {**record("r", rows=3), "ts": 1.0}
    assert table_rows(rec) == prediction_table_rows([row("r", 0), row("r", 1), row("r", 2)])
    assert table_rows({**rec, "probabilities": None})[2][PREDICTION_COLUMNS.index("probabilities")] is None
    assert table_rows(row("old", 4)) == prediction_table_rows([row("old", 4)]), "a one-row record of an earlier serein"
    with pytest.raises(ValueError):  # a record whose lists disagree is refused, not truncated
        table_rows({**rec, "scores": [0.1]})


@pytest.fixture
def store(tmp_path: Path) -> OperationalStore:
    return OperationalStore(f"sqlite:///{tmp_path / 'log.db'}")


def segment_text(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.glob("*.jsonl")))


def test_concurrent_writes_share_fsyncs_and_all_reach_the_store(store: OperationalStore, tmp_path: Path) -> None:
    log = PredictionLog(store, tmp_path / "predlog")
    log.start()

    async def main() -> None:
        await asyncio.gather(*(log.submit(record(f"r{i}", rows=2)) for i in range(200)))

    asyncio.run(main())
    assert log.stats["records"] == 200  # one record per request
    assert log.stats["groups"] < 200 / 4, f"{log.stats['groups']} fsyncs for 200 writers"
    assert log.flush(10)
    log.close()
    assert store.count_predictions("m") == 400
    assert store.request_rows(["r0", "r199"]) == {"r0": ("m", 2), "r199": ("m", 2)}
    logged = store.prediction_rows("m", last=2)
    assert [(r["request_id"], r["row"], r["inputs"], r["prediction"], r["score"]) for r in logged] == [
        ("r199", 0, {"x": 0}, 0, 0.0), ("r199", 1, {"x": 1}, 1, 0.1)]
    assert list((tmp_path / "predlog").glob("*.jsonl")) == [], "a shipped, closed segment is deleted"


@pytest.mark.parametrize("durability", ["strict", "written"])
def test_an_acknowledged_record_is_in_the_segment_and_known_before_shipping(
        store: OperationalStore, tmp_path: Path, durability: str) -> None:
    log = PredictionLog(store, tmp_path / "predlog", durability=durability, ship_interval=1.0)
    log.start()

    async def main() -> None:
        await log.submit(record("acked-1", rows=2))
        assert b'"acked-1"' in segment_text(tmp_path / "predlog")
        assert store.request_rows(["acked-1"]) == {}  # not shipped yet (1 s interval) ...
        assert log.known(["acked-1", "other"]) == {"acked-1": ("m", 2)}  # ... but known

    asyncio.run(main())
    log.close()
    assert store.request_rows(["acked-1"]) == {"acked-1": ("m", 2)}


def test_a_store_outage_loses_nothing_and_back_pressure_answers_503(store: OperationalStore, tmp_path: Path) -> None:
    log = PredictionLog(store, tmp_path / "predlog", max_pending=50, ship_interval=0.05)
    log.start()
    predictions.drop(store.engine)  # the store breaks under the running service

    async def main() -> None:
        await asyncio.gather(*(log.submit(record(f"kept{i}")) for i in range(50)))  # on disk: acknowledged
        with pytest.raises(LogBusy) as refused:
            await log.submit(record("refused"))
        assert refused.value.http_status == 503 and refused.value.headers == {"Retry-After": "1"}

    asyncio.run(main())
    assert not log.flush(0.3)
    predictions.create(store.engine)
    assert log.flush(10)
    log.close()
    assert store.count_predictions("m") == 50
    assert "refused" not in store.request_rows(["refused"])


@pytest.mark.parametrize("bounds, written", [({"max_pending": 1_000_000, "max_pending_requests": 4}, 4),
                                              ({"max_pending": 30, "max_pending_requests": 100}, 3)],
                         ids=["requests", "rows"])
def test_back_pressure_bounds_both_the_requests_and_the_rows_waiting(store: OperationalStore, tmp_path: Path,
                                                                    bounds: dict, written: int) -> None:
    """Requests (memory while unshipped) and rows (disk) are bounded apart: four 10-row requests
    fit a bound of 1M rows but not one of 4 requests, and a bound of 30 rows takes three."""
    log = PredictionLog(store, tmp_path / "predlog", ship_interval=0.05, **bounds)
    log.start()
    predictions.drop(store.engine)  # nothing is shipped meanwhile

    async def main() -> None:
        for i in range(written):
            await log.submit(record(f"kept{i}", rows=10))
        with pytest.raises(LogBusy, match=f"{10 * written} rows of {written} requests"):
            await log.submit(record("refused", rows=10))

    asyncio.run(main())
    predictions.create(store.engine)
    assert log.flush(10)
    log.close()
    assert store.count_predictions("m") == 10 * written


def test_a_record_submitted_before_start_is_refused(store: OperationalStore, tmp_path: Path) -> None:
    log = PredictionLog(store, tmp_path / "predlog")
    with pytest.raises(LogUnavailable, match="not running"):
        logged(log, record("early"))


def test_a_disk_that_refuses_writes_refuses_the_prediction_and_keeps_no_count(
        store: OperationalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed segment write (a full disk) refuses the prediction (not acknowledged), frees its
    back-pressure count, and the next write, on a fresh segment, goes through."""
    import errno

    from serein.serve import predlog

    log = PredictionLog(store, tmp_path / "predlog")
    log.start()
    real_pwrite = os.pwrite

    def full_disk(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def main() -> None:
        monkeypatch.setattr(predlog.os, "pwrite", full_disk)
        with pytest.raises(LogUnavailable, match="No space left on device"):
            await log.submit(record("lost"))
        assert log.pending == 0 and log.known(["lost"]) == {}
        monkeypatch.setattr(predlog.os, "pwrite", real_pwrite)
        await log.submit(record("kept"))

    asyncio.run(main())
    assert log.flush(10)
    log.close()
    assert store.request_rows(["lost", "kept"]) == {"kept": ("m", 1)}


def test_a_failed_fdatasync_refuses_the_prediction_and_later_writes_reach_the_store(
        store: OperationalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The syncer process reports a failed ``fdatasync`` (as ``serve`` answers one, tested
    below): the group is refused, and the next write, on a fresh segment, goes through."""
    log = PredictionLog(store, tmp_path / "predlog")
    log.start()
    real_answers = SyncerProcess.answers

    def failed_fdatasync(self: SyncerProcess) -> list[dict]:
        return [{"seq": a["seq"], "error": "Input/output error"} for a in real_answers(self)]

    async def main() -> None:
        monkeypatch.setattr(SyncerProcess, "answers", failed_fdatasync)
        with log.serving(), pytest.raises(LogUnavailable, match="Input/output error"):
            await log.submit(record("lost"))  # another request in service: the syncer makes it durable
        assert log.pending == 0 and log.known(["lost"]) == {}
        monkeypatch.setattr(SyncerProcess, "answers", real_answers)
        await log.submit(record("kept"))

    asyncio.run(main())
    assert log.flush(10)
    log.close()
    assert store.request_rows(["lost", "kept"]) == {"kept": ("m", 1)}
    assert os.listdir(tmp_path / "predlog") == [], "the failed segment is closed, shipped and deleted too"


def test_the_syncer_answers_each_request_after_fdatasync_or_with_its_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from serein.serve import predlog_syncer

    segment = tmp_path / "a.jsonl"
    segment.write_bytes(b"{}\n")
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        if len(synced) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real_fdatasync(fd)
        synced.append(fd)

    monkeypatch.setattr(predlog_syncer.os, "fdatasync", fdatasync)
    requests = io.BytesIO(b'{"seq": 1, "paths": ["%s"]}\n{"seq": 2, "paths": ["%s"]}\n' % (
        str(segment).encode(), str(segment).encode()))
    replies = io.BytesIO()
    predlog_syncer.serve(requests, replies, pause=0.0, realtime=False)
    greeting, first, second = (orjson.loads(line) for line in replies.getvalue().splitlines())
    assert greeting == {"ready": True, "realtime": False}
    assert first["seq"] == 1 and first["seconds"] >= 0 and len(synced) == 1
    assert second == {"seq": 2, "error": "Input/output error"}


def test_a_killed_syncer_is_restarted_and_strict_writes_still_wait_for_fdatasync(
        store: OperationalStore, tmp_path: Path) -> None:
    log = PredictionLog(store, tmp_path / "predlog", ship_interval=0.05)
    log.start()
    syncer = log._syncer._proc
    assert syncer is not None and syncer.poll() is None, "segments are fdatasync-ed by a separate process"
    policy = os.SCHED_FIFO if log._syncer.realtime else os.SCHED_OTHER
    assert os.sched_getscheduler(syncer.pid) == policy, "it runs at the priority its greeting reports"

    async def write(prefix: str) -> None:
        await asyncio.gather(*(log.submit(record(f"{prefix}{i}")) for i in range(20)))

    asyncio.run(write("before"))
    syncer.kill()
    syncer.wait()
    asyncio.run(write("after"))  # acknowledged only once a new syncer has made them durable
    assert log._syncer._proc is not syncer and log.stats["records"] == 40
    assert log.flush(10)
    log.close()
    assert store.count_predictions("m") == 40


KILLED_WRITER = """
import asyncio, os, signal, sys, time
from serein.serve.predlog import PredictionLog, request_record
from serein.store import OperationalStore

store = OperationalStore(sys.argv[1])
log = PredictionLog(store, sys.argv[2], ship_interval=60.0)  # killed before any shipment: only the segment
log.start()                                                   # holds the records
while log._spare is None:  # the segment is a zero-filled spare, renamed into place
    time.sleep(0.01)

async def main():
    for i in range(30):
        await log.submit(request_record(request_id=f"k{i}", model="m", version=1, inputs={"x": [i]}, predictions=[0],
                                       probabilities=None, scores=[None], latency_ms=None, ts=1.0))
    print("acknowledged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_segments_left_by_a_killed_process_are_shipped_once(store: OperationalStore, tmp_path: Path) -> None:
    directory = tmp_path / "predlog"
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), store.uri, str(directory)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL and "acknowledged" in child.stdout, child.stderr
    (segment,) = directory.glob("*.jsonl")
    assert len(read_segment(segment)) == 30
    assert segment.stat().st_size == SPARE_BYTES
    with open(segment, "r+b") as torn:  # a write cut short by the kill: never acknowledged
        torn.seek(segment.read_bytes().index(b"\0"))
        torn.write(b'{"request_id": "half')
    (directory / "1-2-3.spare").write_bytes(bytes(100))  # a spare it left unused
    store.log_prediction_rows(read_segment(segment)[:10])  # shipped before the crash, not yet deleted

    live = PredictionLog(store, directory)
    live.start()  # a live process's own segment is not touched by another's recovery
    logged(live, record("live"))
    assert live.stats["recovered"] == 20
    assert PredictionLog(store, directory).recover() == 0
    assert live.flush(10)
    live.close()
    assert store.count_predictions("m") == 31
    assert sorted(store.request_rows([f"k{i}" for i in range(30)])) == sorted(f"k{i}" for i in range(30))
    assert os.listdir(directory) == []


def test_strict_segments_are_spares_zero_filled_in_advance(store: OperationalStore, tmp_path: Path) -> None:
    """With ``strict`` a spare segment is kept ready (``SPARE_BYTES`` of zeros, synced) and
    renamed into place, so the log's writes overwrite blocks already on disk; its records end at
    the first zero byte. A live process's spare survives another's recovery; a stray one does not."""
    directory = tmp_path / "predlog"
    log = PredictionLog(store, directory, ship_interval=60.0)
    log.start()
    deadline = time.monotonic() + 30
    while log._spare is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first = log._spare
    assert first is not None and first.path.stat().st_size == SPARE_BYTES and first.path.suffix == ".spare"
    logged(log, record("a", rows=3))
    (segment,) = directory.glob("*.jsonl")
    assert os.path.samestat(os.fstat(first.fd), segment.stat()), "the spare became the segment"
    assert segment.stat().st_size == SPARE_BYTES and b'"a"' in segment.read_bytes()
    assert [r[0] for r in read_segment(segment)] == ["a", "a", "a"]
    while log._spare is None and time.monotonic() < deadline:  # the next one is prepared meanwhile
        time.sleep(0.01)
    (stray := directory / "1-2-3.spare").write_bytes(bytes(10))
    assert PredictionLog(store, directory).recover() == 0
    assert sorted(p.suffix for p in directory.iterdir()) == [".jsonl", ".spare"] and not stray.exists()
    log.close()
    assert store.count_predictions("m") == 3
    assert os.listdir(directory) == [], "the segment is shipped and deleted, the unused spare deleted"


def test_a_spare_that_cannot_be_made_leaves_the_log_writing_plain_segments(
        store: OperationalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A full disk while zero-filling a spare: the partial spare is deleted, a warning says so, and
    segments start empty meanwhile (records acknowledged and shipped as before); closing does not
    wait for the next attempt."""
    import errno

    from serein.serve import predlog

    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        real_write(fd, data[:4096])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predlog.os, "write", full_disk)  # only the spare's zeros are written with os.write
    directory = tmp_path / "predlog"
    log = PredictionLog(store, directory)
    with caplog.at_level("WARNING", logger="serein.serve.predlog"):
        log.start()
        logged(log, record("plain", rows=2))
        deadline = time.monotonic() + 10
        while "could not prepare a spare" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "No space left on device" in caplog.text and log._spare is None
    (segment,) = directory.glob("*.jsonl")
    assert list(directory.glob("*.spare")) == [] and segment.stat().st_size == len(segment.read_bytes().rstrip(b"\0"))
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < predlog.SPARE_RETRY_SECONDS
    assert store.count_predictions("m") == 2 and os.listdir(directory) == []


def test_written_and_relaxed_segments_are_not_zero_filled(store: OperationalStore, tmp_path: Path) -> None:
    """Nobody waits on their syncs, so no spare is made (zero-filling doubles the disk's writes)."""
    log = PredictionLog(store, tmp_path / "predlog", durability="written")
    log.start()
    logged(log, record("w"))
    (segment,) = (tmp_path / "predlog").glob("*.jsonl")
    assert segment.stat().st_size == len(segment.read_bytes().rstrip(b"\0")) > 0
    assert list((tmp_path / "predlog").glob("*.spare")) == []
    log.close()


def test_shipping_again_never_duplicates(store: OperationalStore) -> None:
    batch = [row("a"), row("a", 1), row("a", shadow=True), row("b")]
    assert store.log_predictions_once(batch) == 4
    assert store.log_predictions_once(batch + [row("c")]) == 1
    assert store.count_predictions("m") == 5


def test_relaxed_returns_at_once_and_the_loop_turn_writes_it(store: OperationalStore, tmp_path: Path) -> None:
    log = PredictionLog(store, tmp_path / "predlog", durability="relaxed", ship_interval=0.05)
    log.start()

    async def main() -> None:
        await log.submit(record("quick", rows=3))
        assert segment_text(tmp_path / "predlog") == b"", "written at the end of the loop's turn"
        await asyncio.sleep(0)
        assert segment_text(tmp_path / "predlog").count(b"\n") == 1, "one line for the 3-row request"

    asyncio.run(main())
    assert log.flush(10)
    log.close()
    assert store.request_rows(["quick"]) == {"quick": ("m", 3)}


def test_a_dead_shipper_process_is_restarted_and_ships_every_row_once(store: OperationalStore, tmp_path: Path) -> None:
    log = PredictionLog(store, tmp_path / "predlog", ship_interval=0.05)
    log.start()
    shipper = log._shipper._proc
    assert shipper is not None and shipper.poll() is None, "the store rows are written by a separate process"

    async def write(prefix: str) -> None:
        await asyncio.gather(*(log.submit(record(f"{prefix}{i}", rows=2)) for i in range(20)))

    asyncio.run(write("before"))
    assert log.flush(10)
    shipper.kill()
    shipper.wait()
    asyncio.run(write("after"))
    assert log.flush(30), "the next batch starts a new shipper process"
    assert log._shipper._proc is not shipper
    log.close()
    assert store.count_predictions("m") == 80
    assert store.request_rows(["before0", "after19"]) == {"before0": ("m", 2), "after19": ("m", 2)}


def test_a_sync_waits_for_requests_still_in_service_up_to_the_commit_delay(
        store: OperationalStore, tmp_path: Path) -> None:
    """strict: a record written while another request is still in service waits for that one's
    record, so that one fdatasync covers both; a request that fails before writing holds the
    other back for the commit delay only."""
    log = PredictionLog(store, tmp_path / "predlog", commit_delay=0.5)
    log.start()

    async def in_service(rid: str, release: asyncio.Event, fails: bool = False) -> None:
        with log.serving():
            await release.wait()  # still being scored
            if fails:
                raise ValueError("the model refused the rows")
            done = log.submit(record(rid))
        await done

    async def fast_and_slow() -> None:
        release = asyncio.Event()
        slow = asyncio.create_task(in_service("slow", release))
        await asyncio.sleep(0)
        fast_release = asyncio.Event()
        fast = asyncio.create_task(in_service("fast", fast_release))
        fast_release.set()
        await asyncio.sleep(0.1)
        assert not fast.done(), "the fast record was synced without waiting for the slow one"
        release.set()
        await asyncio.gather(slow, fast)

    async def with_failing() -> float:
        release = asyncio.Event()
        failing = asyncio.create_task(in_service("never", release, fails=True))
        await asyncio.sleep(0)
        started = time.monotonic()
        fast_release = asyncio.Event()
        fast = asyncio.create_task(in_service("alone", fast_release))
        fast_release.set()
        await asyncio.sleep(0.05)
        release.set()
        with pytest.raises(ValueError):
            await failing
        await fast
        return time.monotonic() - started

    asyncio.run(fast_and_slow())
    assert (log.stats["groups"], log.stats["records"]) == (1, 2)
    assert 0.4 < asyncio.run(with_failing()) < 5
    assert log.stats["records"] == 3 and log.flush(10)
    log.close()
    assert store.count_predictions("m") == 3


def test_a_lone_request_is_made_durable_on_the_loop_and_others_by_the_syncer(
        store: OperationalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone request counted by ``serving`` has its group fdatasync-ed in the server process
    before the write returns; while another request is being served, the syncer process makes
    them durable (fdatasync calls of this process's event loop are counted; not those of the
    thread preparing spare segments)."""
    calls: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        if threading.current_thread() is threading.main_thread():
            calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    log = PredictionLog(store, tmp_path / "predlog")
    log.start()

    async def lone() -> int:
        with log.serving():
            done = log.submit(record("lone"))
        await done
        return len(calls)

    async def two() -> int:
        release = asyncio.Event()

        async def slow() -> None:
            with log.serving():
                await release.wait()  # still being scored
                done = log.submit(record("slow"))
            await done

        task = asyncio.create_task(slow())
        await asyncio.sleep(0)
        with log.serving():
            done = log.submit(record("fast"))
        await done
        during = len(calls)
        release.set()
        await task
        return during

    assert asyncio.run(lone()) == 1
    assert asyncio.run(two()) == 1, "the fast request's group went to the syncer"
    assert len(calls) == 2, "the slow one, alone by then, was made durable here"
    assert log.stats["records"] == 3 and log.flush(10)
    log.close()
    assert store.count_predictions("m") == 3
