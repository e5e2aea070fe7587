"""Small pieces shared by serein's plain ASGI middlewares."""

from __future__ import annotations

from typing import Any


class StatusRecorder:
    """A ``send`` wrapper that remembers the response status a middleware reports on.

    ``status`` stays 500 unless a response starts: an exception escaped to the server.

    >>> import asyncio
    >>> async def sink(message): pass
    >>> recorder = StatusRecorder(sink)
    >>> asyncio.run(recorder({"type": "http.response.start", "status": 422}))
    >>> recorder.status
    422
    """

    def __init__(self, send: Any) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)
