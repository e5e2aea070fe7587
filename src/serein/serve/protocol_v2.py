"""The Open Inference Protocol (KServe V2 / Triton HTTP), so V2 clients work unchanged.

Routes (``{v}`` optional: ``/v2/models/{m}/versions/{v}/...``):

* ``GET /v2/health/live`` → ``{"live": true}``; ``GET /v2/health/ready`` → ``{"ready": true}``
  (503 until a model is loaded);
* ``GET /v2`` → server metadata (name, version, extensions);
* ``GET /v2/models/{m}`` → model metadata: one input per feature column (``datatype`` INT64,
  FP64, BOOL or BYTES, ``shape [-1]``) and the outputs ``predictions`` (``[-1]``) and, for
  classifiers, ``probabilities`` (``[-1, k]``, aligned with the model's classes);
* ``GET /v2/models/{m}/ready``;
* ``POST /v2/models/{m}/infer`` with one input tensor per column (the ``pd`` convention of
  KServe), JSON data only (tritonclient: ``binary_data=False``). Integer columns take any INT/UINT
  tensor, float columns FP16/32/64 or integer tensors; ``null`` in ``data`` is a missing value.

An inference is validated, scored and logged by the same function as ``/v1`` (the contract's
checks, the prediction log before the answer). Its V2 ``id`` becomes the log's request id when it
is 1-64 letters, digits or ``._:-`` (an id used before is refused with 409, as on ``/v1``); any
other id is echoed back while a generated request id goes to the log. Either way the log's id is
in the ``X-Request-ID`` response header, for feedback.

Errors are ``{"error": "..."}``: 400 for a malformed request or rows that break the contract,
404 for an unknown model or a version that is not the one served, 413 above the size limits,
503 while models load.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from serein import __version__
from serein.errors import NotFoundError, SereinError, UsageError, ValidationFailed
from serein.serve.answers import Answer, after_logged
from serein.serve.asgi_routes import RequestRoute, path_parameters
from serein.serve.payloads import (
    REQUEST_ID,
    decode_json,
    is_json,
    media_type,
    read_body,
    request_id,
)
from serein.serve.tabular import ScoreRows, rows_from_columns
from serein.serve.validation import _field_name as field_name

if TYPE_CHECKING:
    from serein.serve.models import ModelSet, ServedModel
    from serein.serve.settings import ServeSettings

# The datatype a contract column type is described with, and the tensor datatypes it accepts.
DATATYPES = {"integer": "INT64", "float": "FP64", "string": "BYTES", "boolean": "BOOL", "datetime": "BYTES"}
_INTEGER_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
ACCEPTED = {
    "integer": _INTEGER_TYPES,
    "float": _INTEGER_TYPES | {"FP16", "FP32", "FP64"},
    "string": frozenset({"BYTES"}),
    "boolean": frozenset({"BOOL"}),
    "datetime": frozenset({"BYTES"}),
}
ALL_DATATYPES = frozenset({"BOOL", "BYTES", "FP16", "FP32", "FP64", "BF16"}) | _INTEGER_TYPES
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
INPUT_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_INTEGER_VALUE_TYPES = frozenset({int, type(None)})
BINARY_HINT = "send tensors as JSON data (tritonclient: set_data_from_numpy(array, binary_data=False))"
ONE_INPUT_PER_COLUMN = ('send one input per feature column: {"name": column, "datatype": ..., "shape": [n], '
                        '"data": [...]}; GET /v2/models/{name} lists them')


def v2_error(exc: SereinError) -> Response:
    """A V2 error body; contract violations are a 400 here (V2 clients know 400, 404, 503)."""
    from serein.serve.app import json_response

    status = 400 if exc.http_status == 422 else exc.http_status
    return json_response({"error": str(exc)}, status, headers=getattr(exc, "headers", None))


def _v2_errors(route: Callable[..., Awaitable[Answer]]) -> Callable[..., Awaitable[Answer]]:
    @wraps(route)
    async def answer(*args: Any, **kwargs: Any) -> Answer:
        try:
            return await route(*args, **kwargs)
        except SereinError as exc:
            return v2_error(exc)
    return answer


def served_version(models: ModelSet, name: str, version: str | None) -> ServedModel:
    """The served model ``name``; ``NotFoundError`` when ``version`` is given and not the one served."""
    served = models.get(name)
    if version is not None and version != str(served.version):
        raise NotFoundError(f"model {name[:200]!r} version {version[:20]!r} is not served; version "
                            f"{served.version} is", hint=f"omit the version or ask for version {served.version}")
    return served


def prediction_datatype(served: ServedModel) -> str:
    """The V2 datatype of the ``predictions`` output: the classes' type, or FP64 for a regressor."""
    classes = served.classes
    if classes is None:
        return "FP64"
    for datatype, kind in (("BOOL", bool), ("INT64", int), ("FP64", float)):
        if all(type(c) is kind for c in classes):
            return datatype
    return "BYTES"


def output_names(served: ServedModel) -> list[str]:
    """The outputs ``served`` answers with: ``predictions``, and ``probabilities`` for a classifier
    that gives them (one without ``predict_proba`` answers labels only)."""
    if served.classes is None or not getattr(served.runtime, "gives_probabilities", True):
        return ["predictions"]
    return ["predictions", "probabilities"]


def model_metadata(served: ServedModel) -> dict[str, Any]:
    columns = served.model.contract.columns
    shapes = {"predictions": (prediction_datatype(served), [-1]),
              "probabilities": ("FP64", [-1, len(served.classes or ())])}
    outputs = [{"name": name, "datatype": shapes[name][0], "shape": shapes[name][1]} for name in output_names(served)]
    return {
        "name": served.name,
        "versions": [str(served.version)],
        "platform": "onnxruntime_onnx" if served.runtime.name == "onnx" else "scikit-learn",
        "inputs": [{"name": name, "datatype": DATATYPES[spec.type], "shape": [-1]} for name, spec in columns.items()],
        "outputs": outputs,
    }


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major values of a JSON tensor: nested when its first value is a list (``[[1], [2]]``
    for shape ``[2, 1]``), else taken as flat (a list further in is a value the validator refuses
    by name, and a count that differs from the shape is refused here)."""
    if not data or type(data[0]) is not list:
        return data
    flat: list[Any] = []
    for value in data:
        flat.extend(_flatten(value) if type(value) is list else [value])
    return flat


def _input_column(tensor: Any, position: int) -> tuple[str, list[Any]]:
    """Name and values of one input tensor (one column), checked against V2's rules (the common,
    valid case first: a request holds one tensor per feature, so this runs once per column)."""
    if not isinstance(tensor, dict):
        raise UsageError(f"inputs[{position}] must be an object", hint=ONE_INPUT_PER_COLUMN)
    name, data, shape = tensor.get("name"), tensor.get("data"), tensor.get("shape")
    if not isinstance(name, str) or not name:
        raise UsageError(f"inputs[{position}] has no 'name'", hint=ONE_INPUT_PER_COLUMN)
    if not tensor.keys() <= INPUT_KEYS:
        extra = sorted(set(tensor) - INPUT_KEYS)
        raise UsageError(f"{_where(name)} has unknown key(s) {', '.join(repr(field_name(k)) for k in extra[:5])}",
                         hint=f"an input has only {', '.join(sorted(INPUT_KEYS))}")
    parameters = tensor.get("parameters")
    if parameters and not isinstance(parameters, dict):
        raise UsageError(f"{_where(name)}: 'parameters' must be an object")
    if data is None or (parameters and "binary_data_size" in parameters):
        raise UsageError(f"{_where(name)} has no JSON 'data' (binary tensor data is not supported)", hint=BINARY_HINT)
    if not isinstance(data, list):
        raise UsageError(f"{_where(name)}: 'data' must be a list of values")
    if not (type(shape) is list and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
            and type(shape[0]) is int and shape[0] >= 0 and (len(shape) == 1 or type(shape[1]) is int)):
        raise UsageError(f"{_where(name)}: 'shape' must be [n] or [n, 1] for n rows",
                         hint="one input holds one column: a value per row")
    values = _flatten(data)
    if len(values) != shape[0]:
        raise UsageError(f"{_where(name)}: 'shape' {shape} holds {shape[0]} value(s) but 'data' has {len(values)}",
                         hint="make the shape match the data")
    return name, values


def _where(name: str) -> str:
    """How an error names input ``name`` (formatted only when there is an error to report)."""
    return f"input {field_name(name)!r}"


def _check_datatype(name: str, datatype: Any, values: list[Any], kind: str | None) -> None:
    """The declared ``datatype`` is a V2 type that fits the column and, for an integer tensor,
    holds integers only (the validator then checks each value against the column)."""
    if datatype not in ALL_DATATYPES:
        raise UsageError(f"{_where(name)}: unknown datatype {str(datatype)[:20]!r}",
                         hint=f"use one of {', '.join(sorted(ALL_DATATYPES))}")
    if kind is None:  # not a feature: the contract's unknown_fields setting decides
        return
    if datatype not in ACCEPTED[kind]:
        raise UsageError(f"{_where(name)} has datatype {datatype}, which does not fit its {kind} column",
                         hint=f"send it as {DATATYPES[kind]}")
    if datatype in _INTEGER_TYPES and not {type(v) for v in values} <= _INTEGER_VALUE_TYPES and not all(
            type(v) is int or v is None or (type(v) is float and v.is_integer())
            for v in values):  # JSON decoders read huge integers as floats
        raise UsageError(f"{_where(name)} is declared {datatype} but holds values that are not integers",
                         hint="send integers" if kind == "integer" else f"declare it {DATATYPES[kind]}")


def _requested_outputs(body: dict[str, Any], available: list[str]) -> list[str]:
    requested = body.get("outputs")
    if requested is None:
        return available
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                  for o in requested):
        raise UsageError("'outputs' must be a list of objects with a 'name'",
                         hint=f"ask for any of {', '.join(available)}, or omit 'outputs' for all")
    names = [o["name"] for o in requested]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UsageError(f"unknown output {field_name(unknown[0])!r}", hint=f"the outputs are {', '.join(available)}")
    return names


def infer_rows(body: Any, served: ServedModel, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a V2 inference request, one dict per row, ready for the validator."""
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object with 'inputs'", hint=ONE_INPUT_PER_COLUMN)
    extra = sorted(set(body) - REQUEST_KEYS)
    if extra:
        raise UsageError(f"unknown top-level key(s) {', '.join(repr(field_name(k)) for k in extra[:5])}",
                         hint=f"a V2 inference request has only {', '.join(sorted(REQUEST_KEYS))}")
    if "model_name" in body and body["model_name"] != served.name:
        raise UsageError("'model_name' in the body differs from the model in the URL",
                         hint="omit it or make it match")
    if not isinstance(body.get("parameters", {}), dict):
        raise UsageError("'parameters' must be an object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise UsageError("'inputs' must be a non-empty list of input tensors", hint=ONE_INPUT_PER_COLUMN)
    columns = served.model.contract.columns
    tensors: dict[str, list[Any]] = {}
    for position, tensor in enumerate(inputs):
        name, values = _input_column(tensor, position)
        if name in tensors:
            raise UsageError(f"input {field_name(name)!r} is given twice", hint="send each column once")
        spec = columns.get(name)
        _check_datatype(name, tensor.get("datatype"), values, None if spec is None else spec.type)
        tensors[name] = values
    missing = [name for name in columns if name not in tensors]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise UsageError(f"missing input(s) {shown}", hint=ONE_INPUT_PER_COLUMN)
    return rows_from_columns(tensors, max_rows)  # refuses inputs of different lengths


def _outputs(served: ServedModel, labels: list[Any], probabilities: list[list[float]] | None,
             wanted: list[str]) -> list[dict[str, Any]]:
    n = len(labels)
    datatype = prediction_datatype(served)
    tensors = {"predictions": {"name": "predictions", "datatype": datatype, "shape": [n],
                               "data": [str(v) for v in labels] if datatype == "BYTES" else labels}}
    if probabilities is not None:
        tensors["probabilities"] = {"name": "probabilities", "datatype": "FP64",
                                    "shape": [n, len(probabilities[0]) if n else 0],
                                    "data": [p for row in probabilities for p in row]}
    return [tensors[name] for name in wanted if name in tensors]


def register_v2(app: FastAPI, models: ModelSet, score: ScoreRows, settings: ServeSettings) -> None:
    """Add the Open Inference Protocol routes to ``app``; ``score`` is the ``/v1`` predict path."""
    from serein.serve.app import json_response

    @app.get("/v2/health/live", tags=["v2"])
    async def v2_live() -> Response:
        """V2 liveness: the process answers."""
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["v2"])
    async def v2_ready() -> Response:
        """V2 readiness: 200 once a model is loaded, 503 before."""
        return json_response({"ready": models.ready}, 200 if models.ready else 503)

    @app.get("/v2", tags=["v2"])
    async def v2_server() -> Response:
        """V2 server metadata."""
        return json_response({"name": "serein", "version": __version__, "extensions": []})

    @_v2_errors
    async def v2_model(name: str, version: str | None = None) -> Response:
        """V2 model metadata: one input per feature column, the outputs and the served version."""
        return json_response(model_metadata(served_version(models, name, version)))

    @_v2_errors
    async def v2_model_ready(name: str, version: str | None = None) -> Response:
        """V2 model readiness (404 for a model or version that is not served)."""
        served = served_version(models, name, version)
        return json_response({"name": served.name, "ready": True})

    @_v2_errors
    async def v2_infer(request: Request) -> Answer:
        """V2 inference with one input per feature column; every row is logged before the answer."""
        start = time.perf_counter()
        name, version = request.path_params["name"], request.path_params.get("version")
        if version is None:
            served, _ = models.pick(name)  # the traffic policy (canary) applies as on /v1
        else:
            served = served_version(models, name, version)
        media = media_type(request)
        if "inference-header-content-length" in request.headers or (media and not is_json(media)):
            raise UsageError("binary tensor data is not supported", hint=BINARY_HINT)
        body = await decode_json(await read_body(request, settings.max_body_bytes))
        rows = infer_rows(body, served, settings.max_rows)
        wanted = _requested_outputs(body, output_names(served))
        given = body.get("id")
        if given is not None and not isinstance(given, str):
            raise ValidationFailed("'id' must be a string")
        if given is not None and REQUEST_ID.fullmatch(given):
            rid, claimed = given, True
        else:
            rid, claimed = request_id(request), "x-request-id" in request.headers
        scored = await score(served, rows, rid, start, claimed)
        outputs = _outputs(served, scored.out.labels, scored.out.probabilities, wanted)
        answer = {"model_name": served.name, "model_version": str(served.version),
                  "id": rid if given is None else given, "outputs": outputs}
        return after_logged(json_response(answer, headers={"X-Request-ID": rid}), scored, v2_error)

    for prefix, parameters in (("/v2/models/{name}", ["name"]), ("/v2/models/{name}/versions/{version}", ["name", "version"])):
        app.add_api_route(prefix, v2_model, methods=["GET"], tags=["v2"])
        app.add_api_route(f"{prefix}/ready", v2_model_ready, methods=["GET"], tags=["v2"])
        app.router.add_api_route(f"{prefix}/infer", v2_infer, methods=["POST"], tags=["v2"],
                                 route_class_override=RequestRoute,
                                 openapi_extra={**INFER_DOC, **path_parameters(*parameters)})


INFER_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string"}, "data": {"type": "array"}}}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}}}},
    "example": {"inputs": [{"name": "age", "datatype": "FP64", "shape": [1], "data": [41.0]}]}}}}}
