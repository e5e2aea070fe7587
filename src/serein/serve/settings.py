"""The ``serve`` section of ``serein.yaml``, checked once at start-up.

A wrong value (``threads: many``, ``port: -1``) stops the server with one line naming the setting
and what it must be, instead of failing later inside a worker.

>>> import tempfile
>>> from serein.workspace import Workspace
>>> ws = Workspace.init(tempfile.mkdtemp())
>>> ServeSettings.from_workspace(ws).reload_interval
2.0
>>> ws.config["serve"]["runtime"] = "gpu"
>>> ServeSettings.from_workspace(ws)
Traceback (most recent call last):
serein.errors.UsageError: serve.runtime must be one of auto, sklearn, got 'gpu' (auto uses ONNX Runtime where a verified export exists; sklearn always runs the pipeline)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serein.errors import UsageError
from serein.serve.predlog import DURABILITY_CHOICES

if TYPE_CHECKING:
    from serein.workspace import Workspace

RUNTIME_CHOICES = ("auto", "sklearn")
CHALLENGER_MODES = ("off", "canary", "shadow")
# Settings added after the workspace template: their defaults when serein.yaml does not name them.
DEFAULTS: dict[str, Any] = {
    "durability": "strict",  # strict: fdatasync before the answer; written: in the OS; relaxed: queued
    "log_max_pending": 500_000,  # rows queued or not yet shipped before predictions get a 503 (~0.2 KB of disk each)
    "log_max_pending_requests": 100_000,  # requests queued or not yet shipped: the same (~0.3 KB of memory each)
    "log_ship_interval": 0.2,  # seconds between moves of the prediction log into the store
    "log_commit_delay_ms": 2.0,  # strict: longest a written record waits for requests in service to share its fdatasync
    "batch_max_rows": 256,  # rows one micro-batched inference call may combine
    "batch_max_wait_ms": 2.0,  # longest a request waits behind a running call before getting its own
    "challenger": {"mode": "off", "share": 0.1},  # canary: share of requests; shadow: scored, never returned
}


def _choice(settings: dict[str, Any], key: str, choices: tuple[str, ...], why: str) -> str:
    value = settings.get(key)
    if value is False and "off" in choices:  # YAML 1.1 reads a bare `off` as false
        value = "off"
    if value not in choices:
        raise UsageError(f"serve.{key} must be one of {', '.join(choices)}, got {value!r}", hint=why)
    return str(value)


def _number(settings: dict[str, Any], key: str, kind: type, minimum: float, maximum: float | None = None) -> Any:
    value = settings.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        in_range = minimum <= value and (maximum is None or value <= maximum)
        if in_range and (kind is float or float(value).is_integer()):
            return kind(value)
    bound = f"from {minimum:g} to {maximum:g}" if maximum is not None else f">= {minimum:g}"
    raise UsageError(f"serve.{key} must be {'an integer' if kind is int else 'a number'} {bound}, got {value!r}",
                     hint=f"fix it in serein.yaml or set SEREIN_SERVE__{key.upper().replace('.', '__')}")


@dataclass(frozen=True)
class ServeSettings:
    """Checked serving settings (see ``serein.workspace.TEMPLATE`` for their meaning)."""

    host: str
    port: int
    workers: int
    reload_interval: float
    max_body_bytes: int
    max_rows: int
    threads: int
    runtime: str
    graceful_timeout: int
    durability: str = "strict"
    log_max_pending: int = 500_000
    log_max_pending_requests: int = 100_000
    log_ship_interval: float = 0.2
    log_commit_delay_ms: float = 2.0
    batch_max_rows: int = 256
    batch_max_wait_ms: float = 2.0
    challenger_mode: str = "off"
    challenger_share: float = 0.1

    @classmethod
    def from_workspace(cls, ws: Workspace) -> ServeSettings:
        s = {**DEFAULTS, **ws.config["serve"]}
        runtime = _choice(s, "runtime", RUNTIME_CHOICES,
                          "auto uses ONNX Runtime where a verified export exists; sklearn always runs the pipeline")
        durability = _choice(s, "durability", DURABILITY_CHOICES,
                             "strict: on disk (fdatasync) before the answer; written: handed to the OS, survives "
                             "a killed server; relaxed: queued in memory; off: no prediction log")
        challenger = s["challenger"] if isinstance(s["challenger"], dict) else {"mode": s["challenger"]}
        challenger = {**DEFAULTS["challenger"], **challenger}
        mode = _choice({"challenger.mode": challenger["mode"]}, "challenger.mode", CHALLENGER_MODES,
                       "canary answers a share of requests with the challenger; shadow scores every request "
                       "with it in the background")
        return cls(
            host=str(s.get("host")),
            port=_number(s, "port", int, 0, 65535),
            workers=_number(s, "workers", int, 1),
            reload_interval=_number(s, "reload_interval", float, 0.05),
            max_body_bytes=_number(s, "max_body_bytes", int, 1),
            max_rows=_number(s, "max_rows", int, 1),
            threads=_number(s, "threads", int, 1),
            runtime=runtime,
            graceful_timeout=_number(s, "graceful_timeout", int, 0),
            durability=durability,
            log_max_pending=_number(s, "log_max_pending", int, 1),
            log_max_pending_requests=_number(s, "log_max_pending_requests", int, 1),
            log_ship_interval=_number(s, "log_ship_interval", float, 0.01, 1.0),
            log_commit_delay_ms=_number(s, "log_commit_delay_ms", float, 0.0, 100.0),
            batch_max_rows=_number(s, "batch_max_rows", int, 1),
            batch_max_wait_ms=_number(s, "batch_max_wait_ms", float, 0.0),
            challenger_mode=mode,
            challenger_share=_number({"challenger.share": challenger["share"]}, "challenger.share", float, 0.0, 1.0),
        )
