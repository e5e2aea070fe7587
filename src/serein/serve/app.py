"""The HTTP service: every registered model's champion behind one FastAPI app.

Routes (all JSON, bodies decoded with orjson, responses encoded with orjson):

* ``POST /v1/models/{name}/predict`` ``{"instances": [{feature: value, ...}, ...]}`` →
  ``{"model", "version", "request_id", "predictions"}`` plus, for classifiers, ``"classes"`` and
  ``"probabilities"`` (one list per row aligned with ``classes``), and ``"flags"`` when accepted
  values looked suspicious (out of range, unseen category; at most 100 listed). Every row is in
  the prediction log before the response is sent. ``X-Request-ID`` is honoured (1-64 letters,
  digits, ``._:-``); reusing one is refused with 409, since feedback finds rows by that id.
* ``POST /v1/models/{name}/feedback`` ``{"request_id", "label"}`` (``label`` a list with one label
  per row for a multi-row request, or ``{"request_id", "row", "label"}``), or a list of those →
  ``{"stored": n}``.
* ``GET /v1/models``, ``GET /v1/models/{name}``, ``GET /healthz`` (the process is alive),
  ``GET /readyz`` (503 until a model is loaded), ``GET /metrics`` (Prometheus).
* The Open Inference Protocol (``/v2/...``, ``serve.protocol_v2``) and MLflow's scoring protocol
  (``/ping``, ``/version``, ``/invocations``, ``serve.protocol_mlflow``), both predicting through
  the same validation, scoring and log as ``/v1``. The predict route also takes CSV with a header
  row (``text/csv``, ``serve.tabular``).

Bad input never yields a 5xx and is never echoed back: errors are
``{"error": ..., "hint": ..., "details": [{"row", "field", "problem"}]}`` with 400 (malformed
JSON, bad header), 404 (unknown model or request id), 413 (too large), 415 (not JSON) or 422
(valid JSON that breaks the expected shape or the contract).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serein.errors import ConflictError, NotFoundError, SereinError
from serein.serve.answers import Answer, Scored, after_logged
from serein.serve.asgi_routes import RequestRoute, path_parameters, prediction_routes_first
from serein.serve.auth import AuthMiddleware, KeyRing, auth_enabled
from serein.serve.feedback import feedback_entries, feedback_items
from serein.serve.logs import AccessLogMiddleware, access_log, note
from serein.serve.metrics import MetricsMiddleware, ServeMetrics
from serein.serve.models import BatchSettings, ModelSet, ServedModel
from serein.serve.payloads import JsonInstances, read_json, request_id
from serein.serve.predlog import PredictionLog, request_record
from serein.serve.protocol_mlflow import INVOCATIONS_PATH, chosen_model, register_mlflow
from serein.serve.protocol_v2 import register_v2
from serein.serve.runtime import Predictions
from serein.serve.settings import ServeSettings
from serein.serve.tabular import predict_rows
from serein.serve.validation import ValidatedBatch
from serein.workspace import Workspace

log = logging.getLogger(__name__)

MAX_FLAGS_SHOWN = 100
# Threads hand their results to the event loop (the prediction log's writer after each
# fdatasync, ONNX Runtime calls in worker threads). A thread waiting for the GIL held by a busy
# loop forces a switch only after the switch interval: 5 ms by default, longer than the flush
# itself, so every group commit could wait that long. 0.5 ms keeps the hand-offs short.
GIL_SWITCH_INTERVAL = 0.0005


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
                    status_code=status, media_type="application/json", headers=headers)


def error_response(exc: SereinError) -> Response:
    """The ``/v1`` error answer: its status, ``{"error", "hint", "details"}`` and its headers."""
    return json_response(_error_body(exc), exc.http_status, headers=getattr(exc, "headers", None))


def _error_body(exc: SereinError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    problems = getattr(exc, "problems", None)
    if problems:
        body["details"] = problems
    return body


def log_record(served: ServedModel, rid: str, batch: ValidatedBatch, out: Predictions,
               latency_ms: float, shadow: bool = False) -> dict[str, Any]:
    """The prediction-log record of one request (all its rows, as the validated columns: fields
    the contract ignores stay out of the log), stamped with the prediction time. ``latency_ms``
    runs from the request's arrival to its predictions (the log write itself is not included);
    ``shadow`` marks a challenger's predictions that were not returned."""
    return request_record(request_id=rid, model=served.name, version=served.version, inputs=batch.columns,
                          predictions=out.labels, probabilities=out.probabilities, scores=out.scores,
                          latency_ms=latency_ms, shadow=shadow)


def _body_doc(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    """OpenAPI text for a JSON body the route decodes itself (so it is documented at /docs)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}}


PREDICT_DOC = _body_doc(
    {"type": "object", "required": ["instances"], "additionalProperties": False,
     "properties": {"instances": {"type": "array", "minItems": 1, "items": {"type": "object"},
                                  "description": "rows of raw feature values; GET /v1/models/{name} gives the schema"}}},
    {"instances": [{"age": 41, "income": 52000.0, "region": "north"}]},
)
PREDICT_PATH = "/v1/models/{name}/predict"


def with_served_rows(document: dict[str, Any], models: list[ServedModel]) -> dict[str, Any]:
    """A copy of the OpenAPI ``document`` whose bodies of rows (``/v1`` predict's ``instances``,
    MLflow's ``dataframe_records``) describe the rows of the ``models`` served
    (``Contract.row_schema``, one component each: ``NAME.row``; a model's name is already a valid
    component key, ``data.refs.check_name``), so that a client generated from it, or
    schemathesis, knows each feature's type."""
    if not models:
        return document
    document = copy.deepcopy(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    rows = []
    for served in models:
        key = f"{served.name}.row"
        schemas[key] = {"title": f"a row for {served.name} v{served.version}", **served.model.contract.row_schema()}
        rows.append({"$ref": f"#/components/schemas/{key}"})
    row = rows[0] if len(rows) == 1 else {"anyOf": rows}
    for path, key in ((PREDICT_PATH, "instances"), (INVOCATIONS_PATH, "dataframe_records")):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["properties"][key] = {**body["properties"][key], "type": "array", "items": row}
    return document


_FEEDBACK_ITEM = {"type": "object", "required": ["request_id", "label"], "additionalProperties": False,
                  "properties": {"request_id": {"type": "string"}, "row": {"type": "integer", "minimum": 0},
                                 "label": {"description": "the true label; a list with one per row for a multi-row "
                                                          "request unless 'row' is given"}}}
FEEDBACK_DOC = _body_doc({"oneOf": [_FEEDBACK_ITEM, {"type": "array", "items": _FEEDBACK_ITEM}]},
                         {"request_id": "3f2a9c0d4b7e4a4f9d1c2b3a4e5f6a7b", "label": 1})


def create_app(ws: Workspace) -> FastAPI:
    """The service for workspace ``ws``; models load in the background once it starts.

    Settings come from ``ws.config["serve"]`` (``ServeSettings``): ``max_body_bytes``,
    ``max_rows``, ``reload_interval`` (seconds between registry checks), ``threads`` (compute
    threads per model) and ``runtime`` (``auto``: ONNX Runtime where a verified export exists;
    ``sklearn``: always the pipeline).
    """
    settings = ServeSettings.from_workspace(ws)
    max_bytes, max_rows = settings.max_body_bytes, settings.max_rows
    metrics = ServeMetrics()
    models = ModelSet(ws, threads=settings.threads, prefer_onnx=settings.runtime == "auto",
                      batching=BatchSettings(settings.batch_max_rows, settings.batch_max_wait_ms / 1000.0),
                      challenger_mode=settings.challenger_mode, canary_share=settings.challenger_share,
                      on_load=metrics.model_loaded)
    predlog = PredictionLog(ws.store, ws.state_dir / "predlog", durability=settings.durability,
                            max_pending=settings.log_max_pending, ship_interval=settings.log_ship_interval,
                            commit_delay=settings.log_commit_delay_ms / 1000,
                            max_pending_requests=settings.log_max_pending_requests)
    shadows: set[asyncio.Task[None]] = set()  # held so running shadow scorings are not collected

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        await anyio.to_thread.run_sync(predlog.start)  # first ships what a killed server left
        watcher = asyncio.create_task(models.watch(settings.reload_interval))
        yield
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        if shadows:
            await asyncio.wait(shadows, timeout=settings.graceful_timeout or None)
        await anyio.to_thread.run_sync(predlog.close)

    # FastAPI's native OpenTelemetry is off: serein reports through Prometheus (/metrics), and
    # with it on every request looks up the global tracer, meter and logger providers.
    app = FastAPI(title="serein", summary="Predictions from every registered model's champion",
                  lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})
    if auth_enabled(ws):  # added before the metrics middleware, which wraps it and so counts refusals
        app.add_middleware(AuthMiddleware, keys=KeyRing(ws.store))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AccessLogMiddleware, enabled=access_log(ws))  # outermost: opens the log context

    @app.exception_handler(SereinError)
    async def _serein_error(request: Request, exc: SereinError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {404: f"no route {request.url.path[:100]!r}",
                   405: f"method {request.method} is not allowed on {request.url.path[:100]!r}"}.get(
            exc.status_code, str(exc.detail))
        return json_response({"error": message, "hint": "the routes are listed at /docs"}, exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response({"error": "internal error; the server log has the details"}, 500)

    @app.get("/healthz")
    async def healthz() -> Response:
        """The process is alive."""
        return json_response({"live": True})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests, latency, batch sizes, log queue depth, load times, rows."""
        metrics.log_pending.set(predlog.pending)
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/readyz")
    async def readyz() -> Response:
        """Ready once at least one model is loaded (503 before)."""
        if models.ready:
            return json_response({"ready": True, "models": models.names()})
        reason = "no registered model has a champion yet" if models.refreshed else "models are loading"
        return json_response({"ready": False, "error": reason}, 503)

    @app.get("/v1/models")
    async def list_models() -> Response:
        """The served models and their versions."""
        return json_response({"models": [m.summary() for m in models.all()]})

    @app.get("/v1/models/{name}")
    async def describe_model(name: str) -> Response:
        """Version, runtime, task, classes and the input schema of one served model, and its
        challenger (version and policy) when one takes traffic."""
        info = models.get(name).describe()
        challenger = models.challenger(name)
        if challenger is not None:
            info["challenger"] = {"version": challenger.version, "mode": models.challenger_mode,
                                  **({"share": models.canary_share} if models.challenger_mode == "canary" else {})}
        return json_response(info)

    async def score(served: ServedModel, rows: list[Any] | JsonInstances, rid: str, start: float,
                    claimed: bool) -> Scored:
        """Validate, predict and submit the log record of decoded rows: the one path every
        protocol's predict route takes (each answers with ``after_logged``). ``claimed``: ``rid``
        came from the client, so it must not have been used before."""
        note(request_id=rid, model=served.name, version=served.version)
        if claimed:  # generated ids (new_request_id) skip this lookup
            known = await anyio.to_thread.run_sync(predlog.known, [rid])
            if known:  # a reused id would make feedback ambiguous
                raise ConflictError(f"request id {rid!r} was already used by an earlier prediction",
                                    hint="send a new id for every request, or omit it to get a generated one")
        with predlog.serving():  # counted until its record is submitted
            batch, out = await served.predict(rows)
            latency_ms = (time.perf_counter() - start) * 1000.0
            logged = predlog.submit(log_record(served, rid, batch, out, latency_ms))
        if not logged.done():
            await asyncio.sleep(0)  # this turn's records are written and their sync asked for first
        metrics.predicted(served.name, served.version, batch)
        metrics.log_pending.set(predlog.pending)
        challenger = models.challenger(served.name) if models.challenger_mode == "shadow" else None
        if challenger is not None:
            task = asyncio.create_task(shadow(challenger, rows, rid, start))
            shadows.add(task)
            task.add_done_callback(shadows.discard)
        return Scored(batch, out, logged)

    async def shadow(challenger: ServedModel, rows: list[Any] | JsonInstances, rid: str, start: float) -> None:
        """Score the rows with the challenger too and log them as shadow predictions (never
        returned; a failure here never touches the answer already sent)."""
        try:
            batch, out = await challenger.predict(rows)
            latency_ms = (time.perf_counter() - start) * 1000.0
            await predlog.submit(log_record(challenger, rid, batch, out, latency_ms, shadow=True))
        except SereinError as exc:
            log.warning("shadow scoring of request %s by %s v%d skipped: %s", rid, challenger.name,
                        challenger.version, exc.message)

    async def predict(request: Request) -> Answer:
        """Predict the instances; the rows are logged before the response is sent."""
        start = time.perf_counter()
        served, by_challenger = models.pick(request.path_params["name"])  # the request finishes on this version
        rid = request_id(request)
        note(request_id=rid, model=served.name, version=served.version)
        rows = await predict_rows(request, served.model.contract, max_bytes, max_rows)
        scored = await score(served, rows, rid, start, claimed="x-request-id" in request.headers)
        batch, out = scored.batch, scored.out
        payload: dict[str, Any] = {"model": served.name, "version": served.version, "request_id": rid,
                                   "predictions": out.labels}
        if by_challenger:
            payload["challenger"] = True
        if served.classes is not None:
            payload["classes"] = served.classes
            if out.probabilities is not None:
                payload["probabilities"] = out.probabilities
        if batch.flags:
            payload["flags"] = batch.flags[:MAX_FLAGS_SHOWN]
        return after_logged(json_response(payload, headers={"X-Request-ID": rid}), scored, error_response)

    app.router.add_api_route(PREDICT_PATH, predict, methods=["POST"], route_class_override=RequestRoute,
                             openapi_extra={**PREDICT_DOC, **path_parameters("name")})

    @app.post("/v1/models/{name}/feedback", openapi_extra=FEEDBACK_DOC)
    async def feedback(name: str, request: Request) -> Response:
        """Store ground-truth labels for earlier predictions, by request id. A row has one label: a
        later label for the same request id and row replaces the stored one (a late correction),
        so monitoring counts the row once, with its latest label; one body labelling a row twice
        is refused with 422. ``stored`` counts the rows labelled, new or replaced."""
        served = models.get(name)
        entries = feedback_entries(await read_json(request, max_bytes), max_rows)
        ids = [entry["request_id"] for entry in entries]
        known = await anyio.to_thread.run_sync(predlog.known, ids)
        if any(rid not in known for rid in ids):  # another worker may not have shipped it yet
            await asyncio.sleep(2 * settings.log_ship_interval)
            known = await anyio.to_thread.run_sync(predlog.known, ids)
        unknown = sorted({rid for rid in ids if rid not in known})
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise NotFoundError(f"unknown request id(s) {shown}",
                                hint="use the request_id a prediction returned (X-Request-ID)")
        items = feedback_items(served, entries, known)
        stored = await anyio.to_thread.run_sync(ws.store.add_feedback, items)
        return json_response({"stored": stored})

    routes_document = app.openapi  # FastAPI's: built once, from the routes
    app.openapi = lambda: with_served_rows(routes_document(), models.all())  # type: ignore[method-assign]
    register_v2(app, models, score, settings)
    register_mlflow(app, models, score, settings, chosen_model(ws.config["serve"]))
    prediction_routes_first(app.router.routes)
    return app
