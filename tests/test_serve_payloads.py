"""Reading request bodies: the large-body path (decoded off the event loop) and the limits, on a
real Starlette request fed through the ASGI receive channel in chunks."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.requests import Request

from serein.errors import UsageError
from serein.serve.payloads import THREADED_DECODE_BYTES, HttpError, read_json


def request_with(body: bytes, content_type: str = "application/json", chunk: int = 65536,
                 declared: bool = True) -> Request:
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        return messages.pop(0)

    headers = [(b"content-type", content_type.encode())]
    if declared:
        headers.append((b"content-length", str(len(body)).encode()))
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


def test_a_large_body_is_decoded_in_full() -> None:
    instances = [{"income": float(i), "region": "north"} for i in range(12_000)]
    body = orjson.dumps({"instances": instances})
    assert len(body) > THREADED_DECODE_BYTES
    decoded = asyncio.run(read_json(request_with(body), max_bytes=len(body)))
    assert decoded["instances"] == instances


@pytest.mark.parametrize("declared", [True, False])
def test_the_size_limit_holds_with_and_without_content_length(declared: bool) -> None:
    body = orjson.dumps({"instances": [{"x": "y" * 5000}]})
    with pytest.raises(HttpError) as caught:
        asyncio.run(read_json(request_with(body, chunk=1000, declared=declared), max_bytes=len(body) - 1))
    assert caught.value.http_status == 413 and str(len(body) - 1) in caught.value.message


def test_content_type_and_syntax_are_checked() -> None:
    with pytest.raises(HttpError) as caught:
        asyncio.run(read_json(request_with(b"{}", content_type="text/csv"), max_bytes=100))
    assert caught.value.http_status == 415 and "'text/csv'" in caught.value.message
    assert asyncio.run(read_json(request_with(b"{}", content_type="application/vnd.api+json"), max_bytes=100)) == {}
    with pytest.raises(UsageError, match="line 1 column 2") as caught:
        asyncio.run(read_json(request_with(b"{,}"), max_bytes=100))
    assert "NaN" not in (caught.value.hint or "")  # a hint about NaN only where NaN was sent
    with pytest.raises(UsageError) as caught:
        asyncio.run(read_json(request_with(b'{"instances": [{"x": NaN}]}'), max_bytes=100))
    assert "send null for a missing value" in (caught.value.hint or "")
