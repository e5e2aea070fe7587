"""The service's logs: one JSON object per line on stderr, each tied to its request.

Every line, serein's own and uvicorn's (``uvicorn.error``, ``uvicorn.access``), is an object with
``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; a line written while a request is
being handled also has that request's ``request_id`` and, once known, the ``model`` and
``version`` that served it; the access line written when a request ends (logger
``serein.access``) adds ``method``, ``path``, ``status`` and ``latency_ms``; an error adds
``error`` (the exception type) and ``traceback``.

The request's fields live in a context variable (``REQUEST``) opened by
:class:`AccessLogMiddleware`, so any code on the request's path (routes, validation, the
predict call; threads started with ``anyio.to_thread`` copy the context) logs with them without
passing them around; :func:`note` adds fields as they become known.

Logs never carry payloads or secrets: nothing here logs bodies or headers, and a filter
(:class:`Scrub`) replaces anything shaped like an API key (``serein_<id>_<secret>``) or a
``Bearer``/``Authorization`` value with ``[redacted]`` in every message and field, whoever wrote it.

``serve.log_format`` chooses ``json`` (the default) or ``text`` (uvicorn's colourless format plus
the request id, for reading on a terminal); ``serve.access_log`` (default false: a line per
request costs throughput, and a supervisor that does not drain stderr would block the server)
writes the access line.

>>> import logging
>>> record = logging.LogRecord("serein", logging.INFO, __file__, 1, "key %s", ("serein_ab12_0123456789ab",), None)
>>> Scrub().filter(record), record.getMessage()
(True, 'key [redacted]')
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from serein.errors import UsageError
from serein.serve.asgi import StatusRecorder

if TYPE_CHECKING:
    from serein.workspace import Workspace

LOG_FORMATS = ("json", "text")
REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("serein_request", default=None)
SECRET = re.compile(r"serein_[0-9a-fA-F]{4,}_[0-9a-fA-F]{8,}"  # an API key, even a cut or mistyped one
                    r"|(?i:authorization)[\"']?\s*[:=]\s*(?i:bearer\s+)?\S+|(?i:bearer)\s+\S+")
REDACTED = "[redacted]"
# Fields a record may carry (``log.info(..., extra={...})``) that go into the JSON object.
EXTRA_FIELDS = ("request_id", "model", "version", "method", "path", "status", "latency_ms")
ACCESS = logging.getLogger("serein.access")


def note(**fields: Any) -> None:
    """Add fields (``request_id``, ``model``, ``version``) to the current request's log context
    (a no-op outside a request)."""
    current = REQUEST.get()
    if current is not None:
        current.update(fields)


def current() -> dict[str, Any]:
    """The current request's log fields (empty outside a request)."""
    return REQUEST.get() or {}


def scrub(text: str) -> str:
    """``text`` with API keys and authorization values replaced.

    >>> scrub('sent Authorization: Bearer serein_1a2b_s3cr3t to /v1')
    'sent [redacted] to /v1'
    """
    return SECRET.sub(REDACTED, text)


class Scrub(logging.Filter):
    """Removes secrets from a record's message (and from its arguments) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        entry.update(current())
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """uvicorn's plain layout with the request id appended when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        fields = {**current(), **{n: getattr(record, n) for n in EXTRA_FIELDS if getattr(record, n, None) is not None}}
        return line + ("  " + " ".join(f"{k}={v}" for k, v in fields.items()) if fields else "")


def log_format(ws: Workspace) -> str:
    """``serve.log_format`` (default ``json``), checked."""
    value = ws.config["serve"].get("log_format", "json")
    if value not in LOG_FORMATS:
        raise UsageError(f"serve.log_format must be one of {', '.join(LOG_FORMATS)}, got {value!r}",
                         hint="json: one object per line for log collectors; text: for reading on a terminal")
    return str(value)


def access_log(ws: Workspace) -> bool:
    """``serve.access_log`` (default false), checked."""
    value = ws.config["serve"].get("access_log", False)
    if not isinstance(value, bool):
        raise UsageError(f"serve.access_log must be true or false, got {value!r}")
    return value


def log_config(fmt: str = "json") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: uvicorn's loggers and
    serein's write through one stderr handler with the chosen formatter and the secret filter."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"()": f"{__name__}.TextFormatter"}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "serein",
               "filters": ["scrub"]}
    quiet = {"handlers": ["stderr"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"scrub": {"()": f"{__name__}.Scrub"}},
        "formatters": {"serein": formatter},
        "handlers": {"stderr": handler},
        "loggers": {"uvicorn": quiet, "uvicorn.error": {"level": "INFO"}, "uvicorn.access": quiet,
                    "serein": quiet, "py.warnings": quiet},  # warnings, once captured (capture_warnings)
    }


def capture_warnings() -> None:
    """Send Python warnings (a library's RuntimeWarning while scoring) through logging, so they
    become JSON lines like any other instead of raw text on stderr (logger ``py.warnings``)."""
    logging.captureWarnings(True)


class AccessLogMiddleware:
    """Opens each HTTP request's log context (``request_id`` from a well-formed ``X-Request-ID``
    until the route settles it) and, when ``enabled``, writes one access line when it ends."""

    def __init__(self, app: Any, enabled: bool = False) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from serein.serve.payloads import REQUEST_ID

        fields: dict[str, Any] = {}
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                text = value.decode("latin-1")
                if REQUEST_ID.fullmatch(text):
                    fields["request_id"] = text
        token = REQUEST.set(fields)
        start = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            if self.enabled:
                ACCESS.info("%s %s %d", scope["method"], scope["path"][:200], recorder.status,
                            extra={"method": scope["method"], "path": scope["path"][:200], "status": recorder.status,
                                   "latency_ms": round((time.perf_counter() - start) * 1000.0, 3)})
            REQUEST.reset(token)
