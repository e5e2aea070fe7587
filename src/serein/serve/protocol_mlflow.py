"""MLflow's scoring protocol (``mlflow models serve``), so MLflow clients work unchanged.

Routes:

* ``GET /ping`` (and ``/health``): 200 once the model ``/invocations`` serves is loaded, else 503;
* ``GET /version``: the MLflow version whose protocol is spoken (the installed one);
* ``POST /invocations``: a JSON body holding exactly one of ``dataframe_split``
  (``{"columns": [...], "data": [[...], ...]}``), ``dataframe_records`` (a list of row objects),
  ``instances`` or ``inputs`` (a list of row objects, or one list per column), or a CSV body
  (``text/csv``, header row) → ``{"predictions": [...]}``: the labels for a classifier, the values
  for a regressor, as MLflow answers for scikit-learn models.

The model is the one named by ``serve.invocations_model`` (``serein serve --model NAME``), else
the only served model; with several and none chosen, ``/invocations`` answers 400 saying how to
choose. Rows go through the same validation, scoring and prediction log as ``/v1`` (the request id
comes from ``X-Request-ID`` or is generated, and is returned in that header).

As MLflow's own server does, a bare ``NaN`` in the JSON is read as a missing value (pandas writes
missing values that way, so ``ScoringServerClient.invoke(df)`` sends them); ``Infinity`` is
refused. Errors are MLflow's ``{"error_code", "message"}`` (plus ``details``, one entry per
problem, without the submitted values): 400 for a bad body or rows that break the contract, 404
for a model that is not served, 413 above the size limits, 415 for another content type, 503
while models load.

>>> invocation_rows({"dataframe_split": {"columns": ["age"], "data": [[41], [7]]}}, max_rows=10)
[{'age': 41}, {'age': 7}]
>>> invocation_rows({"instances": {"age": [41, 7]}}, max_rows=10)
[{'age': 41}, {'age': 7}]
>>> invocation_rows({"inputs": [{"age": 41}], "dataframe_records": []}, max_rows=10)
Traceback (most recent call last):
serein.errors.UsageError: the body holds 2 input formats ('dataframe_records', 'inputs') (send exactly one of dataframe_split, dataframe_records, instances, inputs)
"""

from __future__ import annotations

import json
import re
import time
from importlib.metadata import version as installed_version
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from serein.errors import NotFoundError, SereinError, UsageError
from serein.serve.models import ModelsLoading
from serein.serve.answers import Answer, after_logged
from serein.serve.asgi_routes import RequestRoute
from serein.serve.payloads import (
    THREADED_DECODE_BYTES,
    HttpError,
    JsonInstances,
    media_type,
    read_body,
    request_id,
)
from serein.serve.tabular import (
    CSV_MEDIA,
    ScoreRows,
    check_charset,
    check_row_count,
    csv_rows,
    rows_from_columns,
    rows_from_split,
)
from serein.serve.validation import _field_name as field_name

if TYPE_CHECKING:
    from serein.serve.models import ModelSet, ServedModel
    from serein.serve.settings import ServeSettings

INVOCATIONS_PATH = "/invocations"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
FORMAT_HINT = f"send exactly one of {', '.join(FORMATS)}"
SPLIT_KEYS = frozenset({"columns", "data", "index"})
ERROR_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 409: "RESOURCE_ALREADY_EXISTS",
               413: "REQUEST_LIMIT_EXCEEDED", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}
SETTING = "invocations_model"
# a body that starts as a list of row objects under one of the formats: a JsonInstances, which the
# compiled reader reads where the whole body is that one list (serein.serve.json_rows)
RECORDS = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"(dataframe_records|instances|inputs)"[ \t\n\r]*:[ \t\n\r]*\[')


def mlflow_error(exc: SereinError) -> Response:
    """MLflow's error body; contract violations are a 400 here, as MLflow answers them."""
    from serein.serve.app import json_response

    status = 400 if exc.http_status == 422 else exc.http_status
    body: dict[str, Any] = {"error_code": ERROR_CODES.get(status, "BAD_REQUEST"), "message": str(exc)}
    problems = getattr(exc, "problems", None)
    if problems:
        body["details"] = problems
    return json_response(body, status, headers=getattr(exc, "headers", None))


def _missing(constant: str) -> None:
    if constant != "NaN":
        raise ValueError(f"{constant} is not a number MLflow's protocol can carry")


def loads_with_nan(body: bytes | bytearray) -> Any:
    """JSON where a bare ``NaN`` is a missing value (as pandas writes it); ``Infinity`` refused."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as strict:
        problem = str(strict)
        try:  # the slow path only for bodies orjson refused (NaN is not JSON)
            decoded = json.loads(body, parse_constant=_missing)
            # What orjson refuses besides NaN and this parser takes: a lone surrogate (\ud800) in a
            # string, which no UTF-8 answer or log record can hold.
            orjson.dumps(decoded)
            return decoded
        except RecursionError:
            problem = "arrays or objects nested too deeply"
        except orjson.JSONEncodeError as exc:
            problem = "arrays or objects nested too deeply" if "ecursion" in str(exc) else str(exc)
        except (ValueError, UnicodeDecodeError):
            pass
        raise UsageError(f"the body is not valid JSON: {problem}",
                         hint="Infinity is not a number here; send null (or NaN) for a missing value") from None


def _rows_of(value: Any, key: str, max_rows: int) -> list[Any]:
    """Rows from ``instances``/``inputs``/``dataframe_records``: a list of row objects, or (not
    for records) one list per column."""
    if isinstance(value, dict) and key != "dataframe_records":
        if not all(isinstance(column, list) for column in value.values()):
            raise UsageError(f"'{key}' as an object must map each column to a list of values",
                             hint=f'send {{"{key}": [{{"column": value, ...}}, ...]}} or {{"{key}": {{"column": [...]}}}}')
        return rows_from_columns(value, max_rows)
    if not isinstance(value, list):
        raise UsageError(f"'{key}' must be a list of row objects", hint=f'send {{"{key}": [{{"column": value, ...}}, ...]}}')
    check_row_count(len(value), max_rows)
    return value


async def decoded_rows(body: bytes | bytearray, max_rows: int) -> list[Any]:
    """The rows of a JSON ``/invocations`` body, decoded (in a worker thread when large)."""
    if len(body) > THREADED_DECODE_BYTES:  # megabytes take milliseconds: not on the event loop
        return invocation_rows(await anyio.to_thread.run_sync(loads_with_nan, body), max_rows)
    return invocation_rows(loads_with_nan(body), max_rows)


def invocation_rows(body: Any, max_rows: int) -> list[Any]:
    """The rows of a JSON ``/invocations`` body (see the module text for the formats)."""
    if not isinstance(body, dict):
        raise UsageError(f"the body must be a JSON object, got {'a list' if isinstance(body, list) else type(body).__name__}",
                         hint=f"{FORMAT_HINT}, e.g. {{\"dataframe_records\": [{{...}}]}}")
    given = sorted(k for k in body if k in FORMATS)
    extra = sorted(k for k in body if k not in FORMATS and k != "params")
    if extra:
        raise UsageError(f"unknown key(s) {', '.join(repr(field_name(k)) for k in extra[:5])}",
                         hint=f"{FORMAT_HINT} (and optionally 'params')")
    if len(given) != 1:
        raise UsageError("the body holds no input format" if not given else
                         f"the body holds {len(given)} input formats ({', '.join(map(repr, given))})", hint=FORMAT_HINT)
    if body.get("params"):
        raise UsageError("this model takes no 'params'", hint="send the rows only")
    key = given[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise UsageError("'dataframe_split' must be an object with 'columns' and 'data'",
                             hint='send {"dataframe_split": {"columns": [...], "data": [[...], ...]}}')
        unknown = sorted(set(value) - SPLIT_KEYS)
        if unknown:
            raise UsageError(f"'dataframe_split' has unknown key(s) {', '.join(repr(field_name(k)) for k in unknown[:5])}",
                             hint="it holds 'columns', 'data' and optionally 'index'")
        return rows_from_split(value.get("columns"), value.get("data"), max_rows)
    return _rows_of(value, key, max_rows)


def _check_content_type(request: Request) -> str:
    """The media type of an ``/invocations`` body, refusing (415) what MLflow's server refuses."""
    media = media_type(request)
    if media not in ("application/json", CSV_MEDIA):
        raise HttpError(415, f"content type must be application/json or text/csv, got {media[:60] or 'none'!r}",
                        hint="send JSON (dataframe_split, dataframe_records, instances or inputs) or CSV with a header row")
    check_charset(request)
    for parameter in request.headers.get("content-type", "").split(";")[1:]:
        key = parameter.partition("=")[0].strip().lower()
        if key != "charset":
            raise HttpError(415, f"unrecognized content type parameter {key[:30]!r}",
                            hint="MLflow 2 and later take no format parameter: wrap the data in "
                                 '{"dataframe_split": ...} or another input format instead')
    return media


def invocations_target(models: ModelSet, chosen: str | None) -> ServedModel:
    """The model ``/invocations`` serves: the chosen one, else the only one served."""
    if chosen is not None:
        return models.pick(chosen)[0]
    names = models.names()
    if len(names) == 1:
        return models.pick(names[0])[0]
    if not names:
        if not models.refreshed:
            raise ModelsLoading("models are still loading", hint="retry in a few seconds; GET /ping turns 200 when ready")
        raise NotFoundError("no model is served yet", hint="register a model and promote a champion")
    raise UsageError(f"this server serves {len(names)} models ({', '.join(names[:10])}), so /invocations does not "
                     "know which one to use", hint="start it with `serein serve --model NAME`, or call "
                                                   "POST /v1/models/NAME/predict")


def chosen_model(settings: dict[str, Any]) -> str | None:
    """``serve.invocations_model`` as a name, or None; a non-text value is a ``UsageError``."""
    value = settings.get(SETTING)
    if value is None or isinstance(value, str):
        return value or None
    raise UsageError(f"serve.{SETTING} must be a model name, got {value!r}",
                     hint="set it with `serein serve --model NAME`")


def register_mlflow(app: FastAPI, models: ModelSet, score: ScoreRows, settings: ServeSettings,
                    chosen: str | None) -> None:
    """Add MLflow's scoring routes to ``app``; ``score`` is the ``/v1`` predict path and
    ``chosen`` the model ``/invocations`` serves (None: the only one)."""
    from serein.serve.app import json_response

    mlflow_version = installed_version("mlflow")

    async def ping() -> Response:
        """MLflow health: 200 once the model /invocations serves (any model when none was
        chosen) is loaded; 503 while loading, 404 when the chosen model is not served."""
        try:
            if chosen is not None:
                models.get(chosen)
            elif not models.ready:
                raise ModelsLoading("no model is loaded yet", hint="retry in a few seconds")
        except SereinError as exc:
            return mlflow_error(exc)
        return Response("\n", media_type="application/json")

    app.add_api_route("/ping", ping, methods=["GET"], tags=["mlflow"])
    app.add_api_route("/health", ping, methods=["GET"], tags=["mlflow"])

    @app.get("/version", tags=["mlflow"])
    async def version() -> Response:
        """The MLflow version whose scoring protocol this server speaks."""
        return Response(mlflow_version, media_type="application/json")

    async def invocations(request: Request) -> Answer:
        """MLflow scoring: {"predictions": [...]} for the rows; every row is logged first."""
        start = time.perf_counter()
        try:
            served = invocations_target(models, chosen)
            rid = request_id(request)
            media = _check_content_type(request)
            body = await read_body(request, settings.max_body_bytes)
            rows: list[Any] | JsonInstances
            if media == CSV_MEDIA:
                rows = csv_rows(body, served.model.contract, settings.max_rows)
            elif (records := RECORDS.match(body)) is not None:  # rows as objects: the compiled reader's shape
                rows = JsonInstances(body, settings.max_rows, records.group(1), decoded_rows)
            else:
                rows = await decoded_rows(body, settings.max_rows)
            scored = await score(served, rows, rid, start, "x-request-id" in request.headers)
        except SereinError as exc:
            return mlflow_error(exc)
        return after_logged(json_response({"predictions": scored.out.labels}, headers={"X-Request-ID": rid}),
                            scored, mlflow_error)

    app.router.add_api_route(INVOCATIONS_PATH, invocations, methods=["POST"], tags=["mlflow"],
                             route_class_override=RequestRoute, openapi_extra=INVOCATIONS_DOC)


INVOCATIONS_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {name: {} for name in FORMATS}},
                         "example": {"dataframe_split": {"columns": ["age", "income"], "data": [[41, 52000.0]]}}},
    "text/csv": {"schema": {"type": "string"}, "example": "age,income\n41,52000\n"}}}}
