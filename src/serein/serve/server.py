"""Running the service with uvicorn: one process, or several workers sharing one socket.

uvicorn picks uvloop and httptools when they are installed (``loop="auto"``, ``http="auto"``).
With ``workers > 1`` each worker process builds its app from the factory ``app_factory``, which
opens the workspace named by ``$SEREIN_WORKSPACE``. Each worker's compute pools (OpenMP, BLAS,
ONNX Runtime intra-op) get ``serve.threads`` threads, default 1: single-row predictions gain
nothing from more, and with default OpenMP threads on a small shared machine scikit-learn's p99
latency passed one second. Scale with ``--workers`` instead. Their Prometheus metrics are written to a shared temporary folder so ``/metrics`` reports the
whole server. SIGINT/SIGTERM stop accepting connections, let requests in flight finish (up to
``serve.graceful_timeout`` seconds) and flush the prediction log.
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from serein.errors import ConflictError, NotFoundError, UsageError
from serein.serve.logs import capture_warnings, log_config, log_format
from serein.serve.settings import ServeSettings
from serein.workspace import Workspace

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client in each worker
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def app_factory() -> FastAPI:
    """The app of the workspace in ``$SEREIN_WORKSPACE`` (uvicorn's ``--factory`` entry)."""
    from serein.serve.app import create_app

    capture_warnings()  # in each worker process
    return create_app(Workspace())


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or ``ConflictError`` when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConflictError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                            hint="pick another --port, or stop the process that holds it") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("::")
    (True, True, False, False)
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def served_models(ws: Workspace) -> list[str]:
    """Names of the registered models that have a champion; ``NotFoundError`` when none has."""
    names = [m["name"] for m in ws.registry.list_models() if m["champion"] is not None]
    if not names:
        raise NotFoundError("no registered model has a champion to serve",
                            hint="train one with `serein train RECIPE.yaml`, or promote a version with "
                                 "`serein models promote NAME VERSION`")
    return names


@contextmanager
def metrics_shared_across_workers() -> Iterator[None]:
    """A fresh ``$PROMETHEUS_MULTIPROC_DIR`` for the workers' metric files, removed at exit (an
    operator's own setting is kept as it is)."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="serein-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def run(ws: Workspace, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Serve every champion of ``ws`` until interrupted (defaults from ``ws.config["serve"]``)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = ServeSettings.from_workspace(ws)
    fmt = log_format(ws)
    logging.config.dictConfig(log_config(fmt))  # this process's lines too (the workers get log_config)
    host = host or settings.host
    port = settings.port if port is None else port
    workers = settings.workers if workers is None else workers
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if not 0 <= port <= 65535:
        raise UsageError(f"port must lie in 0..65535, got {port}")
    from serein.serve.auth import auth_enabled

    if not auth_enabled(ws) and not is_loopback(host):
        log.warning("AUTH IS OFF on %s: anyone who can reach this address can predict, send feedback and read "
                    "/metrics. Set serve.auth: true in serein.yaml and create keys with `serein keys create`.", host)
    sock = bind(host, port)
    try:
        names = served_models(ws)
    except BaseException:
        sock.close()
        raise
    threads = settings.threads
    os.environ["SEREIN_WORKSPACE"] = str(ws.root)
    for name in THREAD_ENV:  # before the workers import numpy, sklearn and onnxruntime
        os.environ.setdefault(name, str(threads))
    config = uvicorn.Config(
        "serein.serve.server:app_factory", factory=True, host=host, port=port, workers=workers,
        loop="auto", http="auto", access_log=False, log_config=log_config(fmt),
        timeout_graceful_shutdown=settings.graceful_timeout,
    )
    server = uvicorn.Server(config)  # the Config above has set up logging
    bound_port = sock.getsockname()[1]
    log.info("serving %s on http://%s:%d with %d worker(s), %d compute thread(s) each; API docs at /docs",
             ", ".join(names), host, bound_port, workers, threads)
    try:
        if workers > 1:
            with metrics_shared_across_workers():
                Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
