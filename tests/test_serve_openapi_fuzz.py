"""Schemathesis against the server's own OpenAPI document: requests generated from every route's
documented parameters and bodies never get a 5xx.

A real ``serein`` server on loopback serves a copy of the trained workspace, and its document
describes the served model's rows (``Contract.row_schema``): three cases in four that name a
model are pointed at the served one, so generated rows reach its validation, the model and the
prediction log, not a 404. Hypothesis is derandomized: CI runs the same cases every time.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from conftest import TRAINED_MODEL
from test_serve_app import running, wait_for

from serein.serve.app import create_app
from serein.workspace import Workspace

EXAMPLES = 40  # per route and generation mode


@pytest.fixture(scope="module")
def api(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A copy of ``trained_workspace`` served on loopback (small limits, so large bodies meet
    them); yields its base URL and its OpenAPI document as schemathesis loads it."""
    root = tmp_path_factory.mktemp("openapi-fuzz") / "ws"
    shutil.copytree(trained_workspace.root, root)
    ws = Workspace(root)
    ws.config["serve"].update(max_rows=20, max_body_bytes=32_000)
    with running(create_app(ws)) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60)
        yield url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_the_document_describes_the_served_models_rows(api: tuple[str, Any], trained_workspace: Workspace) -> None:
    url, schema = api
    contract = trained_workspace.registry.load(TRAINED_MODEL).contract
    row = schema.raw_schema["components"]["schemas"][f"{TRAINED_MODEL}.row"]
    assert row["required"] == list(contract.columns) and row["additionalProperties"] is False
    body = schema.raw_schema["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["instances"]["items"]
    assert items == {"$ref": f"#/components/schemas/{TRAINED_MODEL}.row"}


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda mode: mode.value)
def test_no_generated_request_gets_a_server_error(api: tuple[str, Any], mode: Any) -> None:
    """Every route of the document, ``EXAMPLES`` cases each: ``positive`` cases follow the
    document (rows of the served model's types, mostly predicted and logged), ``negative`` ones
    break it (wrong types, missing and extra fields, bodies that are not the documented shape)."""
    url, schema = api
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def check(case: Any) -> None:
            if "name" in (case.path_parameters or {}) and zlib.crc32(repr(case.body).encode()) % 4:
                case.path_parameters["name"] = TRAINED_MODEL
            case.call_and_validate(base_url=url, checks=[schemathesis.checks.not_a_server_error], timeout=30)

        try:
            check()
        except hypothesis.errors.Unsatisfiable:  # negative: a route with nothing to break (no parameter, no body)
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed.append(operation.label)
    assert "POST /v1/models/{name}/predict" in fuzzed and "POST /invocations" in fuzzed, fuzzed
