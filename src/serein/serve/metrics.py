"""Prometheus metrics of the service, exposed at ``GET /metrics``.

* ``serein_http_requests_total{route, method, status}`` and
  ``serein_http_request_duration_seconds{route}``: every HTTP request, labelled by its route
  *template* (``/v1/models/{name}/predict``), so arbitrary URLs cannot blow up the label set;
* ``serein_model_requests_total{model, version, status}`` and
  ``serein_model_request_duration_seconds{model, version}``: the requests that reached a model
  (whatever the protocol), by the version that answered them (``serve.logs.note`` tells which);
* ``serein_predicted_rows_total{model, version}``: rows predicted (counted while their log record
  is made durable: a prediction the log then refuses is answered 503, and counted here too);
* ``serein_batch_rows{model, version}``: rows per inference call (micro-batching combines
  concurrent requests' rows into one call);
* ``serein_model_load_seconds{model, version}``: how long loading and warming a version took;
* ``serein_prediction_log_pending_records``: records queued or written but not yet in the store
  (the log's queue depth; predictions get a 503 at ``serve.log_max_pending`` rows
  or ``serve.log_max_pending_requests`` requests);
* ``serein_flagged_values_total{model, field}``: values accepted but flagged by the contract (out of
  range, unseen category), the earliest sign of drift.

With several workers each process writes its samples to files in ``$PROMETHEUS_MULTIPROC_DIR``
(``server.run`` sets it up) and a scrape aggregates them, whichever worker answers: counters and
histograms add up, the queue depth is the sum over live workers and a load time the longest.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from serein.serve.asgi import StatusRecorder
from serein.serve.logs import current
from serein.serve.validation import ValidatedBatch

if TYPE_CHECKING:
    from serein.serve.models import ServedModel

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServeMetrics:
    """The service's metrics, in a registry of their own (one per app)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("serein_http_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("serein_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("serein_predicted_rows", "Rows predicted by model and version",
                            ["model", "version"], registry=self.registry)
        self.flags = Counter("serein_flagged_values", "Values accepted but flagged by the contract",
                             ["model", "field"], registry=self.registry)
        self.model_requests = Counter("serein_model_requests", "Requests that reached a model, by the version "
                                      "that answered and the status", ["model", "version", "status"],
                                      registry=self.registry)
        self.model_latency = Histogram("serein_model_request_duration_seconds", "Time to answer a request that "
                                       "reached a model", ["model", "version"], buckets=LATENCY_BUCKETS,
                                       registry=self.registry)
        self.batch_rows = Histogram("serein_batch_rows", "Rows per inference call (micro-batches)",
                                    ["model", "version"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.load_seconds = Gauge("serein_model_load_seconds", "Seconds to load and warm a model version",
                                  ["model", "version"], multiprocess_mode="max", registry=self.registry)
        self.log_pending = Gauge("serein_prediction_log_pending_records", "Prediction-log records queued or "
                                 "not yet in the store", multiprocess_mode="livesum", registry=self.registry)

    def model_loaded(self, served: ServedModel, seconds: float) -> None:
        """Record a version's load time and start counting its inference calls' sizes."""
        version = str(served.version)
        self.load_seconds.labels(served.name, version).set(seconds)
        served.batcher.on_batch = self.batch_rows.labels(served.name, version).observe

    def predicted(self, model: str, version: int, batch: ValidatedBatch) -> None:
        self.rows.labels(model, str(version)).inc(batch.n_rows)
        for flag in batch.flags:
            self.flags.labels(model, flag["field"]).inc()

    def render(self) -> bytes:
        """The exposition text: this process's samples, or every worker's in multi-process mode."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request (a plain ASGI wrapper: a few microseconds each); runs
    inside ``serve.logs.AccessLogMiddleware``, whose request context names the model."""

    def __init__(self, app: Any, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            seconds = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(template, scope["method"], str(recorder.status)).inc()
            self.metrics.latency.labels(template).observe(seconds)
            fields = current()  # the model and version the route noted, if it got that far
            if "model" in fields:
                model, version = fields["model"], str(fields.get("version", ""))
                self.metrics.model_requests.labels(model, version, str(recorder.status)).inc()
                self.metrics.model_latency.labels(model, version).observe(seconds)
