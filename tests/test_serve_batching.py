"""Micro-batching on the real runtimes of the shared trained model: concurrent requests share
inference calls, within the row bound, a lone request never waits, each request gets exactly its
own rows' outputs, and a request the pipeline refuses fails alone."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from serein.serve.batching import INLINE_ROWS, MicroBatcher
from serein.serve.models import prepare
from serein.serve.runtime import Predictions, SklearnRuntime
from serein.workspace import Workspace


class Recording:
    """A real runtime, with the row count of every call it makes noted."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.name = runtime.name
        self.classes = runtime.classes
        self.calls: list[int] = []
        self.threads: list[int] = []  # the thread each call ran in

    def predict(self, columns: dict[str, list[Any]], n_rows: int) -> Predictions:
        self.calls.append(n_rows)
        self.threads.append(threading.get_ident())
        return self.runtime.predict(columns, n_rows)


@pytest.fixture(scope="module")
def served(trained_workspace: Workspace, credit_df):
    model = trained_workspace.registry.load("credit-default")
    served = prepare(model, threads=1)
    assert served.runtime.name == "onnx"
    frame = credit_df[model.features].iloc[:40].astype(object).where(credit_df[model.features].iloc[:40].notna(), None)
    columns = [served.validator.validate(frame.iloc[i:i + 1 + i % 3].to_dict("records")).columns for i in range(30)]
    return served, columns


def n_rows(columns: dict[str, list[Any]]) -> int:
    return len(next(iter(columns.values())))


async def gather(batcher: MicroBatcher, columns: list[dict[str, list[Any]]]) -> list[Any]:
    return await asyncio.gather(*(batcher.predict(c, n_rows(c)) for c in columns), return_exceptions=True)


def test_concurrent_requests_share_calls_and_get_their_own_rows(served) -> None:
    model, columns = served
    runtime = Recording(model.runtime)
    batcher = MicroBatcher(runtime, max_rows=256, max_wait=0.002)
    results = asyncio.run(gather(batcher, columns))
    assert len(runtime.calls) < len(columns) / 4, runtime.calls
    assert sum(runtime.calls) == sum(n_rows(c) for c in columns)
    for cols, got in zip(columns, results):
        alone = model.runtime.predict(cols, n_rows(cols))
        assert got.labels == alone.labels and got.scores == pytest.approx(alone.scores, abs=1e-6)
        assert np.allclose(got.probabilities, alone.probabilities, atol=1e-6)


def test_calls_never_exceed_the_row_bound(served) -> None:
    model, columns = served
    runtime = Recording(model.runtime)
    batcher = MicroBatcher(runtime, max_rows=5)
    asyncio.run(gather(batcher, columns))
    assert max(runtime.calls) <= 5 and sum(runtime.calls) == sum(n_rows(c) for c in columns)
    assert len(runtime.calls) >= sum(n_rows(c) for c in columns) / 5


def test_a_lone_request_does_not_wait_for_company(served) -> None:
    """With a 10 s maximum wait, a request arriving to an idle batcher is answered at once."""
    model, columns = served
    batcher = MicroBatcher(model.runtime, max_wait=10.0)

    async def lone() -> float:
        started = time.perf_counter()
        await batcher.predict(columns[0], n_rows(columns[0]))
        return time.perf_counter() - started

    assert asyncio.run(lone()) < 5.0


def test_requests_queue_behind_a_threaded_call_and_go_together(served) -> None:
    """The scikit-learn runtime computes in a worker thread; requests arriving meanwhile form
    the next call."""
    model, columns = served
    runtime = Recording(SklearnRuntime(model.model.pipeline, model.model.contract, model.model.classes))
    batcher = MicroBatcher(runtime, max_rows=256, max_wait=1.0)

    async def staggered() -> list[Any]:
        tasks = []
        for c in columns:
            tasks.append(asyncio.create_task(batcher.predict(c, n_rows(c))))
            await asyncio.sleep(0.001)
        return await asyncio.gather(*tasks)

    results = asyncio.run(staggered())
    assert len(runtime.calls) < len(columns) / 2, runtime.calls
    for cols, got in zip(columns, results):
        assert got.labels == runtime.runtime.predict(cols, n_rows(cols)).labels


def test_a_refused_row_fails_only_its_own_request(served) -> None:
    model, columns = served
    numeric = next(name for name, dtype in model.runtime._inputs if dtype.__name__ == "float32")
    broken = {**columns[0], numeric: ["not a number"] * n_rows(columns[0])}
    batcher = MicroBatcher(model.runtime)
    results = asyncio.run(gather(batcher, [columns[1], broken, columns[2]]))
    assert isinstance(results[1], ValueError)
    assert results[0].labels == model.runtime.predict(columns[1], n_rows(columns[1])).labels
    assert results[2].labels == model.runtime.predict(columns[2], n_rows(columns[2])).labels


def test_onnx_calls_up_to_inline_rows_run_on_the_event_loop_and_larger_ones_in_a_thread(served) -> None:
    """A 100-row request is scored on the loop (a thread hop costs more than it saves); a call
    over ``inline_rows`` goes to a worker thread, so one huge request never holds the loop."""
    model, columns = served
    rows = {name: np.concatenate([c[name] for c in columns]) if isinstance(columns[0][name], np.ndarray)
            else [v for c in columns for v in c[name]] for name in columns[0]}
    total = n_rows(rows)
    assert 1 < total <= INLINE_ROWS, total

    async def call(inline_rows: int) -> tuple[Recording, int, Predictions]:
        runtime = Recording(model.runtime)
        batcher = MicroBatcher(runtime, inline_rows=inline_rows)
        return runtime, threading.get_ident(), await batcher.predict(rows, total)

    runtime, loop_thread, inline = asyncio.run(call(INLINE_ROWS))
    assert runtime.calls == [total] and runtime.threads == [loop_thread]
    runtime, loop_thread, threaded = asyncio.run(call(total - 1))
    assert runtime.calls == [total] and runtime.threads != [loop_thread]
    assert inline.labels == threaded.labels == model.runtime.predict(rows, total).labels
