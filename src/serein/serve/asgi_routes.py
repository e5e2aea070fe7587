"""Prediction routes called with the ``Request`` alone, without FastAPI's parameter resolution.

For every request FastAPI resolves an endpoint's parameters (path parameters validated through
pydantic, the ``Request`` injected) and opens two exit stacks for dependencies with ``yield``:
about 7 % of the CPU time of a 100-row prediction served in process. The prediction routes read
their path parameters, headers and body themselves and use no dependencies, so a
``RequestRoute`` hands them the request as Starlette would, while FastAPI still lists them at
``/docs`` (their path parameters are declared in ``openapi_extra``, see ``path_parameters``).
Route matching, the app's exception handlers and every middleware stay as for any route.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import request_response


class RequestRoute(APIRoute):
    """An ``APIRoute`` whose endpoint is ``async def endpoint(request) -> answer``, the answer a
    ``Response`` or any ASGI callable (``serve.answers.AfterLogged``): FastAPI makes no response
    model of its annotation."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **{**kwargs, "response_model": None})
        self.app = request_response(endpoint)


def prediction_routes_first(routes: list[Any]) -> None:
    """Move the ``RequestRoute`` routes (the prediction routes) to the front of ``routes``, in
    place. Starlette tries an app's routes in order, one regular expression each, and these
    take nearly all of the traffic: behind the docs, health and metadata routes an MLflow
    ``/invocations`` call spent 20 µs finding its route, 1-2 µs first. No other route answers
    their paths and methods, so no request changes hands; ``/docs`` lists them first."""
    routes[:] = [r for r in routes if isinstance(r, RequestRoute)] + [r for r in routes if not isinstance(r, RequestRoute)]


def path_parameters(*names: str) -> dict[str, Any]:
    """The ``openapi_extra`` entry documenting string path parameters ``names``.

    >>> path_parameters("name")["parameters"][0]["in"]
    'path'
    """
    return {"parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                           for name in names]}
