"""Reading what a client sent: the JSON body (type, size and syntax checked before decoding
anything), the ``instances`` of a predict call and the ``X-Request-ID`` header.

Each refusal names what was wrong and what to send instead, and never quotes the body back.

>>> instances({"instances": [{"age": 41}]}, max_rows=10)
[{'age': 41}]
>>> instances({"rows": []}, max_rows=10)
Traceback (most recent call last):
serein.errors.ValidationFailed: unknown top-level key(s) 'rows' (the only key is 'instances'; send {"instances": [{"feature": value, ...}, ...]})
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request

from serein.errors import SereinError, UsageError, ValidationFailed

REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
THREADED_DECODE_BYTES = 256 * 1024


class HttpError(SereinError):
    """An HTTP-level refusal (413, 415) with the status it maps to."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.http_status = status


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-cased (``""`` when not given)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


async def read_json(request: Request, max_bytes: int) -> Any:
    """The decoded JSON body, refusing non-JSON (415), oversized (413) and malformed (400) ones."""
    media = media_type(request)
    if not is_json(media):
        raise HttpError(415, f"content type must be application/json, got {media[:60] or 'none'!r}",
                        hint="send the body as JSON with the header Content-Type: application/json")
    return await decode_json(await read_body(request, max_bytes))


async def read_body(request: Request, max_bytes: int) -> bytearray:
    """The raw body, refusing oversized (413) and empty (400) ones before anything is decoded."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    if not body:
        raise UsageError("the body is empty", hint="send the rows to predict; GET /v1/models/{name} shows the input schema")
    return body


async def decode_json(body: bytes | bytearray) -> Any:
    """``body`` decoded with orjson (in a worker thread when large); 400 when it is not JSON."""
    try:
        if len(body) > THREADED_DECODE_BYTES:  # megabytes take milliseconds: not on the event loop
            return await anyio.to_thread.run_sync(orjson.loads, body)
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ("NaN and Infinity are not JSON; send null for a missing value" if b"NaN" in body or b"Infinity" in body
                else "send one complete JSON document, encoded as UTF-8 without a byte order mark")
        raise UsageError(f"the body is not valid JSON: {exc}", hint=hint) from None


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, f"the body is larger than the limit of {max_bytes} bytes",
                     hint="split the instances over several requests (serve.max_body_bytes sets the limit)")


def instances(body: Any, max_rows: int) -> list[Any]:
    """The ``instances`` list of a predict body, or a 422/413 saying what shape was expected."""
    example = 'send {"instances": [{"feature": value, ...}, ...]}'
    if not isinstance(body, dict):
        raise ValidationFailed(f"the body must be a JSON object, got {type(body).__name__}", hint=example)
    extra = sorted(set(body) - {"instances"})
    if extra:
        raise ValidationFailed(f"unknown top-level key(s) {', '.join(repr(k[:64]) for k in extra[:5])}",
                               hint=f"the only key is 'instances'; {example}")
    rows = body.get("instances")
    if not isinstance(rows, list):
        raise ValidationFailed("'instances' is missing" if rows is None else "'instances' must be a list of objects",
                               hint=example)
    if not rows:
        raise ValidationFailed("'instances' is empty", hint=example)
    if len(rows) > max_rows:
        raise HttpError(413, f"{len(rows)} instances exceed the limit of {max_rows} per request",
                        hint="split them over several requests (serve.max_rows sets the limit)")
    return rows


class JsonInstances:
    """A JSON predict body of rows under ``key`` (``{"instances": [...]}`` for ``/v1``), not
    decoded yet: each model that scores it reads it into columns itself where it can
    (``RowValidator.validate_body``), and ``rows`` decodes it (once) for the general path, with
    ``decode(body, max_rows)`` (``/v1``'s by default)."""

    def __init__(self, body: bytes | bytearray, max_rows: int, key: bytes = b"instances",
                 decode: Callable[[bytes | bytearray, int], Awaitable[list[Any]]] | None = None) -> None:
        self.body, self.max_rows, self.key = body, max_rows, key
        self._decode = decode or _instances_of
        self._rows: list[Any] | None = None

    async def rows(self) -> list[Any]:
        """The body's rows; 400, 413 or 422 when it is not a predict body."""
        if self._rows is None:
            self._rows = await self._decode(self.body, self.max_rows)
        return self._rows


async def _instances_of(body: bytes | bytearray, max_rows: int) -> list[Any]:
    """The ``instances`` of a ``/v1`` JSON body (``instances``)."""
    return instances(await decode_json(body), max_rows)


def new_request_id() -> str:
    """A new request id: 32 hex digits, the milliseconds since the epoch (12) then 80 random
    bits (20), as UUIDv7 orders them. Ids made later sort later, so the store's ``request_id``
    index grows at its end instead of splitting a random page per request (a fifth of a logged
    row's insert into a large table).

    >>> a, b = new_request_id(), new_request_id()
    >>> len(a) == 32 and a != b and a[:8] <= b[:8]
    True
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def request_id(request: Request) -> str:
    """The client's ``X-Request-ID`` when it is well formed, else a new one (``new_request_id``)."""
    given = request.headers.get("x-request-id")
    if given is None:
        return new_request_id()
    if REQUEST_ID.fullmatch(given) is None:
        raise UsageError("the X-Request-ID header must be 1-64 letters, digits, '.', '_', ':' or '-' "
                         "starting with a letter or digit", hint="omit it to get a generated id")
    return given
