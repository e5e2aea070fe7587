"""Micro-batching: concurrent requests for one model version answered by one inference call.

Each request validates its own rows and hands the resulting columns to the model's
``MicroBatcher``. The batcher never makes a lone request wait: when no call is running, the queue
is dispatched on the event loop's next turn, so a request at concurrency 1 pays nothing, while
requests parsed in the same turn (many at high concurrency) share one call. When a call is already
running in a worker thread (the scikit-learn runtime, or a large batch), newcomers queue and
the next call takes them together as soon as it ends, or after ``max_wait`` seconds, whichever
comes first. A call never takes more than ``max_rows`` rows (a single larger request goes alone).

Each request gets back exactly its own slice of the outputs, so its response and its log records
stay its own. If a combined call fails (a row the pipeline refuses although it passed the
contract), every request of the batch is retried alone, so only the request at fault fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np

from serein.serve.runtime import Columns, Predictions, Runtime

log = logging.getLogger(__name__)

# Calls of up to this many rows run on the event loop, larger ones (and every scikit-learn call,
# ~8 ms) in a worker thread. ONNX Runtime scores ~3 µs per row of a typical pipeline, while a
# hand-off to a thread and back costs 0.1-0.2 ms of wake-ups on a small VM and wins nothing when
# the other core is busy: 100-row requests at concurrency 4 took 1.1 ms of CPU each scored
# inline against 1.4 ms with the call in a thread (in-process medians, benchmarks/README.md).
# 256 rows (~0.8 ms) is as long as the loop is held for one call.
INLINE_ROWS = 256


@dataclass
class _Waiter:
    columns: Columns
    n_rows: int
    done: asyncio.Future[Predictions]


def _combined(waiters: list[_Waiter]) -> Columns:
    """The waiters' columns joined in order: one array (numeric features) or list per feature."""
    if len(waiters) == 1:
        return waiters[0].columns
    return {name: _joined([w.columns[name] for w in waiters]) for name in waiters[0].columns}


def _joined(parts: list[np.ndarray | list[Any]]) -> np.ndarray | list[Any]:
    """One column from the requests' parts (an integer column with nulls in one request and none
    in another joins as float64 with NaN, as a single request with both would be)."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    return [value for part in parts for value in part]


class MicroBatcher:
    """Combines concurrent ``predict`` calls on one runtime, bounded by rows and waiting time."""

    def __init__(self, runtime: Runtime, max_rows: int = 256, max_wait: float = 0.002,
                 inline_rows: int = INLINE_ROWS) -> None:
        self.runtime = runtime
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.inline_rows = inline_rows if runtime.name == "onnx" else 0
        self.calls = 0  # inference calls made
        self.requests = 0  # requests answered (requests / calls = mean batch size in requests)
        self.on_batch: Callable[[int], None] | None = None  # told each call's row count (metrics)
        self._queue: deque[_Waiter] = deque()
        self._queued_rows = 0
        self._running = 0  # calls in progress in worker threads
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None

    async def predict(self, columns: Columns, n_rows: int) -> Predictions:
        """The predictions for these rows, possibly computed together with other requests'."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(columns, n_rows, loop.create_future())
        self._queue.append(waiter)
        self._queued_rows += n_rows
        self._kick(loop)
        return await waiter.done

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Dispatch now-ish when idle or full; otherwise make sure the oldest waiter's deadline is armed."""
        if not self._queue or self._scheduled:
            return
        if self._running == 0 or self._queued_rows >= self.max_rows:
            self._scheduled = True
            loop.call_soon(self._dispatch, loop)
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait, self._deadline, loop)

    def _deadline(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._queue and not self._scheduled:
            self._scheduled = True
            self._dispatch(loop)

    def _take(self) -> list[_Waiter]:
        """The oldest waiters, up to ``max_rows`` rows (at least one waiter)."""
        taken = [self._queue.popleft()]
        rows = taken[0].n_rows
        while self._queue and rows + self._queue[0].n_rows <= self.max_rows:
            rows += self._queue[0].n_rows
            taken.append(self._queue.popleft())
        self._queued_rows -= rows
        return taken

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            taken = self._take()
            rows = sum(w.n_rows for w in taken)
            self.calls += 1
            self.requests += len(taken)
            if self.on_batch is not None:
                self.on_batch(rows)
            if rows <= self.inline_rows:
                self._answer(taken, rows)
            else:
                self._running += 1
                loop.create_task(self._in_thread(taken, rows, loop))
                break  # newcomers wait for this call (or their deadline)
        self._kick(loop)

    async def _in_thread(self, taken: list[_Waiter], rows: int, loop: asyncio.AbstractEventLoop) -> None:
        try:
            outcome = await anyio.to_thread.run_sync(self._run, taken, rows)
        finally:
            self._running -= 1
        for waiter, result in zip(taken, outcome, strict=True):
            _resolve(waiter, result)
        self._kick(loop)

    def _answer(self, taken: list[_Waiter], rows: int) -> None:
        for waiter, result in zip(taken, self._run(taken, rows), strict=True):
            _resolve(waiter, result)

    def _run(self, taken: list[_Waiter], rows: int) -> list[Predictions | BaseException]:
        """One call for the whole batch, split back per request; on failure, one call each."""
        try:
            out = self.runtime.predict(_combined(taken), rows)
        except Exception as exc:  # noqa: BLE001 - each request gets its own outcome below
            if len(taken) == 1:
                return [exc]
            return [self._run([w], w.n_rows)[0] for w in taken]
        results: list[Predictions | BaseException] = []
        start = 0
        for waiter in taken:
            results.append(out.slice(start, start + waiter.n_rows))
            start += waiter.n_rows
        return results


def _resolve(waiter: _Waiter, result: Predictions | BaseException) -> None:
    if waiter.done.done():  # the request was cancelled (client gone)
        return
    if isinstance(result, BaseException):
        waiter.done.set_exception(result)
    else:
        waiter.done.set_result(result)
