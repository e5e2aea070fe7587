"""Making prediction-log segments durable from a separate process.

``fdatasync`` makes a *file* durable (every page written to it, through any descriptor), so the
serving process need not call it itself. A syncer thread in the server cost little CPU, but it
had to take the GIL back from the busy event loop after every flush (and once more to wake the
loop): a few GIL hand-offs per group commit, each a pair of context switches against the loop
(the server process spent 0.77-0.88 ms of CPU per strict request at concurrency 1 with the
thread, 0.59-0.68 ms with this process; p50 0.90 -> 0.84 ms). Here a child process
(``python -m serein.serve.predlog_syncer [PAUSE]``) calls ``fdatasync`` on its own descriptors,
and the event loop reads the answers from a pipe it watches like any socket: no thread of the
server wakes per group.

Protocol, one JSON line each way over the child's stdin/stdout: the server sends
``{"seq": n, "paths": [...]}`` (the segments written since its previous request); the child
``fdatasync``s each of them (and ``fsync``s the directory the first time it meets a segment, so
that a new segment's name is durable too) and answers ``{"seq": n, "seconds": s}`` (the time the
syncs took) or ``{"seq": n, "error": "..."}``. Its first line, ``{"ready": true, "realtime": bool}``,
says it runs, and whether at real-time priority (``request_realtime``: where permitted, so that
busy cores do not delay the flushes every strict answer waits on).
After each answer it waits ``PAUSE`` seconds (``written`` and ``relaxed``: nobody waits on the
flush, so one ``fdatasync`` covers more groups). It exits when its stdin closes (the server
stopped or was killed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

import orjson

from serein.errors import SereinError
from serein.serve.child_process import end_child


class SyncerFailed(SereinError):
    """The syncer process could not be started, or died."""


class SyncerProcess:
    """The server's handle on one syncer child. ``request`` and ``answers`` never block: the
    caller watches ``answers_fd`` (an event loop's reader) or polls it."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.generation = 0  # bumped by each (re)start: a watcher of answers_fd must follow it
        self.realtime = False  # the child runs at real-time priority (its greeting says)
        self._proc: subprocess.Popen[bytes] | None = None
        self._partial = b""  # the start of an answer whose end has not arrived yet

    @property
    def answers_fd(self) -> int:
        """The descriptor to read the child's answers from (readable when one has arrived)."""
        assert self._proc is not None and self._proc.stdout is not None
        return self._proc.stdout.fileno()

    def start(self) -> None:
        """(Re)start the child and wait for its greeting. Raises ``SyncerFailed``."""
        self.close()
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, repr(self.pause)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise SyncerFailed(f"could not start the prediction-log syncer: {exc}") from exc
        assert self._proc.stdout is not None
        greeting = self._proc.stdout.readline()
        if not greeting:
            self.close()
            raise SyncerFailed("the prediction-log syncer exited at start")
        os.set_blocking(self.answers_fd, False)
        self.realtime = bool(orjson.loads(greeting).get("realtime"))
        self.generation += 1

    def request(self, seq: int, paths: Sequence[str]) -> None:
        """Ask the child to make ``paths`` durable and answer ``seq``. Raises ``SyncerFailed``
        when the child is gone (restart it and ask again)."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(orjson.dumps({"seq": seq, "paths": list(paths)}) + b"\n")
        except OSError as exc:  # BrokenPipeError: it died
            raise SyncerFailed(f"the prediction-log syncer died: {exc}") from exc

    def answers(self) -> list[dict[str, Any]]:
        """The answers that have arrived (none: an empty list). Raises ``SyncerFailed`` when the
        child has exited."""
        assert self._proc is not None and self._proc.stdout is not None
        chunks = []
        while True:
            try:
                chunk = os.read(self.answers_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                raise SyncerFailed("the prediction-log syncer exited")
            chunks.append(chunk)
        if not chunks:
            return []
        *lines, self._partial = (self._partial + b"".join(chunks)).split(b"\n")
        return [orjson.loads(line) for line in lines]

    def close(self) -> None:
        """End the child (it exits when its stdin closes)."""
        proc, self._proc = self._proc, None
        self._partial = b""
        end_child(proc)


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` durable (a new segment's name, before anything in
    the segment is acknowledged)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def request_realtime() -> bool:
    """Move this process to the lowest real-time priority (``SCHED_FIFO``); returns whether that
    was permitted (it needs ``CAP_SYS_NICE``).

    On a machine whose cores are busy, a woken process waits milliseconds for one: measured at
    concurrency 1 under a load of 4-5 on 2 cores, a group's ``fdatasync`` took 2.5 ms at normal
    priority against 0.4 ms at real-time priority (p50 4.0 ms against 1.8 ms). The syncer only
    waits on pipes and on the disk (microseconds of CPU per request), so it cannot starve the
    machine; the kernel's real-time throttling bounds it in any case."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_get_priority_min(os.SCHED_FIFO)))
    except (OSError, AttributeError):  # not permitted, or not Linux: stay at normal priority
        return False
    return True


def serve(requests: IO[bytes], replies: IO[bytes], pause: float, realtime: bool) -> None:
    """The child's loop: make each request's segments durable, answer, until ``requests`` closes.
    A segment's descriptor stays open while the server keeps writing to it. ``realtime`` (the
    priority it runs at) is reported in the greeting."""
    files: dict[str, int] = {}
    replies.write(orjson.dumps({"ready": True, "realtime": realtime}) + b"\n")
    replies.flush()
    for line in requests:
        request = orjson.loads(line)
        paths: list[str] = request["paths"]
        try:
            started = time.perf_counter()
            for path in paths:
                if path not in files:
                    files[path] = os.open(path, os.O_RDONLY)
                    fsync_directory(os.path.dirname(path))  # its name, before anything in it is acknowledged
                os.fdatasync(files[path])
            answer: dict[str, Any] = {"seq": request["seq"], "seconds": time.perf_counter() - started}
        except OSError as exc:  # the server refuses (strict) or closes these segments
            answer = {"seq": request["seq"], "error": str(exc.strerror or exc)}
        for path in [p for p in files if p not in paths]:  # segments the server no longer writes to
            os.close(files.pop(path))
        replies.write(orjson.dumps(answer) + b"\n")
        replies.flush()
        if pause:
            time.sleep(pause)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer, float(sys.argv[1]) if len(sys.argv) > 1 else 0.0, request_realtime())
