"""Answering a prediction only once its log record is as durable as ``serve.durability`` asks.

Every protocol's predict route scores its rows through one path (``score`` in
``serve.app.create_app``), which submits the request's record to the prediction log and returns
a ``Scored``: the predictions and the log's future for that record. The route then builds its
whole answer and returns it wrapped in ``AfterLogged``, which waits on the future before the
first byte is sent. So a ``strict`` answer still leaves only after its ``fdatasync``, while the
work of building it runs during that sync, not after it: under closed-loop load every client
waits on each group commit, and that work, done after the sync, was the server's idle time.

A record that could not be logged is never acknowledged: the route's own error answer (each
protocol has its error format) replaces the prediction, with its status (503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from serein.errors import SereinError

if TYPE_CHECKING:
    from serein.serve.runtime import Predictions
    from serein.serve.validation import ValidatedBatch


class Scored(NamedTuple):
    """One request's validated rows and predictions, and ``logged``: the prediction log's future
    for its record (``PredictionLog.submit``), to await before answering (``after_logged``)."""

    batch: ValidatedBatch
    out: Predictions
    logged: asyncio.Future[None]


class AfterLogged:
    """An ASGI answer that sends ``response`` once ``logged`` resolves, or the response
    ``refuse`` makes of the error it fails with (``LogUnavailable``: 503)."""

    def __init__(self, response: Response, logged: asyncio.Future[None],
                 refuse: Callable[[SereinError], Response]) -> None:
        self.response = response
        self.logged = logged
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.logged
        except SereinError as exc:
            await self.refuse(exc)(scope, receive, send)
            return
        await self.response(scope, receive, send)


Answer = Response | AfterLogged
"""What a predict route returns (``RequestRoute`` sends either)."""


def after_logged(response: Response, scored: Scored, refuse: Callable[[SereinError], Response]) -> Answer:
    """``response``, sent once ``scored``'s record is logged (itself when it already is)."""
    logged = scored.logged
    if logged.done() and not logged.cancelled() and logged.exception() is None:
        return response
    return AfterLogged(response, logged, refuse)
