"""API-key authentication for the service, on when ``serve.auth: true`` (``SEREIN_SERVE__AUTH=true``).

Off by default so the local demo and notebooks work without keys; ``serein serve`` warns loudly
when it listens on a non-loopback address with auth off. When on, every request except the
health checks needs a valid key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, made with
``serein keys create``): 401 without one or with an unknown or revoked key, 403 with a key
that lacks the route's scope. The rule is keyed on the method and path, before routing, so a
route added later is covered by default (deny by default):

* public: ``/healthz``, ``/readyz``, ``/ping``, ``/v2/health/live``, ``/v2/health/ready``;
* ``predict``: ``POST`` to a path ending in ``/predict`` or ``/infer``, and ``POST /invocations``;
* ``feedback``: ``POST`` to a path ending in ``/feedback``;
* ``admin``: ``/metrics`` and every other ``POST``, ``PUT``, ``PATCH`` or ``DELETE``;
* any valid key: every other ``GET``/``HEAD`` (model listings and metadata, ``/docs``).

An ``admin`` key passes every check. Keys are read from the operational store at most every
``CACHE_SECONDS``, so a revoked key stops working on running servers within that time and a
request costs a dictionary lookup and one sha256. A well-formed key the cache does not know
(one created a moment ago) makes the ring re-read the store at once, at most every
``MISS_REFRESH_SECONDS`` (a request arriving sooner waits for the next read), so unknown keys sent
in a loop cannot flood the store and a new key is never refused.

>>> required_scope("POST", "/v2/models/credit/versions/3/infer"), required_scope("GET", "/v2/health/ready")
('predict', None)
>>> required_scope("GET", "/v1/models"), required_scope("DELETE", "/v1/models/credit")
('any', 'admin')
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson

from serein.errors import UsageError
from serein.keys import TOKEN, active_keys, verify
from serein.serve.protocol_mlflow import INVOCATIONS_PATH

if TYPE_CHECKING:
    from serein.store import OperationalStore
    from serein.workspace import Workspace

log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
MISS_REFRESH_SECONDS = 0.25
CLOCK_MARGIN = 0.01  # asyncio may wake a sleeper up to its clock's resolution early
ANY = "any"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/ping", "/v2/health/live", "/v2/health/ready"})
READ_METHODS = frozenset({"GET", "HEAD"})


def auth_enabled(ws: Workspace) -> bool:
    """``serve.auth`` from the workspace settings (a boolean; default false)."""
    value = ws.config["serve"].get("auth", False)
    if not isinstance(value, bool):
        raise UsageError(f"serve.auth must be true or false, got {value!r}",
                         hint="fix it in serein.yaml or set SEREIN_SERVE__AUTH=true|false")
    return value


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs: None for the public health checks, ``ANY`` for any valid key."""
    path = path.rstrip("/") or "/"
    if path in PUBLIC_PATHS:
        return None
    if method == "POST":
        if path == INVOCATIONS_PATH or path.endswith(("/predict", "/infer")):
            return "predict"
        if path.endswith("/feedback"):
            return "feedback"
    if path == "/metrics" or method not in READ_METHODS:
        return "admin"
    return ANY


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (``Authorization: Bearer KEY`` first, then ``X-API-Key``)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip() or None


class KeyRing:
    """The active keys, re-read from the store when older than ``ttl`` seconds (one reader at a
    time, in a worker thread)."""

    def __init__(self, store: OperationalStore, ttl: float = CACHE_SECONDS) -> None:
        self.store = store
        self.ttl = ttl
        self._keys: Mapping[str, Mapping[str, Any]] = {}
        self._loaded_at = -math.inf
        self._lock = asyncio.Lock()

    async def current(self, max_age: float | None = None) -> Mapping[str, Mapping[str, Any]]:
        """The active keys, re-read when older than ``max_age`` seconds (default: the ring's ttl)."""
        max_age = self.ttl if max_age is None else max_age
        if time.monotonic() - self._loaded_at > max_age:
            async with self._lock:
                if time.monotonic() - self._loaded_at > max_age:
                    self._keys = await anyio.to_thread.run_sync(active_keys, self.store)
                    self._loaded_at = time.monotonic()
        return self._keys

    async def check(self, token: str) -> dict[str, Any] | None:
        """The key ``token`` is (as ``verify`` describes it), or None; a well-formed token whose
        key id the cache lacks triggers an early re-read, so a new key works at once. When the
        store was read less than ``MISS_REFRESH_SECONDS`` ago (another unknown key asked), the
        request waits for the next read rather than being refused: the key may have been made
        since."""
        key = verify(await self.current(), token)
        if key is None:
            match = TOKEN.fullmatch(token)
            if match is not None and match.group(1) not in self._keys:
                wait = self._loaded_at + MISS_REFRESH_SECONDS - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait + CLOCK_MARGIN)
                key = verify(await self.current(MISS_REFRESH_SECONDS), token)
        return key


async def _refuse(send: Any, status: int, error: str, hint: str) -> None:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="serein"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps({"error": error, "hint": hint})})


class AuthMiddleware:
    """Refuses requests without the key their route needs (a plain ASGI wrapper, before routing)."""

    def __init__(self, app: Any, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = required_scope(scope["method"], scope["path"])
        if need is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = presented_key(headers)
        if token is None:
            await _refuse(send, 401, "an API key is required",
                          "send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (`serein keys create`)")
            return
        try:
            key = await self.keys.check(token)
        except Exception:
            log.exception("could not read the API keys from the operational store")
            await _refuse(send, 503, "API keys cannot be checked right now", "retry shortly")
            return
        if key is None:
            await _refuse(send, 401, "the API key is not valid (unknown, revoked or mistyped)",
                          "`serein keys list` shows the active keys; create one with `serein keys create`")
            return
        if need != ANY and need not in key["scopes"] and "admin" not in key["scopes"]:
            await _refuse(send, 403, f"API key {key['key_id']} lacks the {need!r} scope this route needs",
                          f"create a key with `serein keys create --scope {need}`")
            return
        await self.app(scope, receive, send)
