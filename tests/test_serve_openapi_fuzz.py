"""Schemathesis against the server's own OpenAPI document: requests generated from every route's
documented parameters and bodies never get a 5xx.

A real ``serein`` server on loopback serves a copy of the trained workspace. Three cases in four
that name a model are pointed at the served one, so their bodies reach its request parsing and
contract validation rather than a 404 (the document describes bodies, not one model's features,
so generated rows are refused there: predictions from valid rows are the other suites' work, the
protocol catalogues and the load tests). Hypothesis is derandomized: CI runs the same cases every
time.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from conftest import TRAINED_MODEL
from test_serve_app import running, wait_for

from serein.serve.app import create_app
from serein.workspace import Workspace

EXAMPLES = 40  # per route and phase: ~20 s for the whole document here


@pytest.fixture(scope="module")
def api(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A copy of ``trained_workspace`` served on loopback (small limits, so large bodies meet
    them); yields its base URL, after checking that it serves the document the cases come from."""
    root = tmp_path_factory.mktemp("openapi-fuzz") / "ws"
    shutil.copytree(trained_workspace.root, root)
    ws = Workspace(root)
    ws.config["serve"].update(max_rows=20, max_body_bytes=32_000)
    with running(create_app(ws)) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60)
        assert httpx.get(f"{url}/openapi.json").json()["paths"] == schema.raw_schema["paths"]
        yield url


def _document() -> dict[str, Any]:
    """The server's OpenAPI document, as ``/openapi.json`` serves it: the routes do not depend on
    the models served, so an empty workspace's app describes them (loaded when the module is
    collected, as schemathesis's ``parametrize`` needs)."""
    with tempfile.TemporaryDirectory() as tmp:
        return create_app(Workspace.init(Path(tmp) / "ws")).openapi()


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_no_generated_request_gets_a_server_error(case: Any, api: str) -> None:
    if "name" in (case.path_parameters or {}) and zlib.crc32(repr(case.body).encode()) % 4:
        case.path_parameters["name"] = TRAINED_MODEL
    case.call_and_validate(base_url=api, checks=[schemathesis.checks.not_a_server_error], timeout=30)
