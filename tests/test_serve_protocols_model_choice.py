"""Which model MLflow's ``/invocations`` serves when a server holds several: none unless chosen
(400 saying how), or the one ``serein serve --model NAME`` names — through a real ``serein serve``
process, so the choice reaches the worker that builds the app."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from conftest import TRAINED_MODEL
from test_serve_app import running, wait_for

from serein.serve.app import create_app
from serein.workspace import Workspace

COPY = "credit-copy"


@pytest.fixture(scope="module")
def two_models(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A copy of ``trained_workspace`` whose registry also holds ``credit-copy`` v1 (champion),
    a copy of ``credit-default`` v1."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("two-models") / "ws"
    shutil.copytree(trained_workspace.root, root)
    ws = Workspace(root)
    client = MlflowClient(tracking_uri=ws.tracking_uri, registry_uri=ws.tracking_uri)  # not the global registry
    version = client.copy_model_version(f"models:/{TRAINED_MODEL}/1", COPY)
    client.set_registered_model_alias(COPY, "champion", version.version)
    return ws


def rows(ws: Workspace) -> list[dict]:
    from serein.demo.credit import make_credit

    frame = make_credit(4, seed=5)[ws.registry.load(TRAINED_MODEL).features].dropna()
    return frame.to_dict("records")


def test_invocations_asks_which_model_when_several_are_served(two_models: Workspace) -> None:
    with running(create_app(two_models)) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").json().get("models") == [COPY, TRAINED_MODEL], timeout=60)
        assert httpx.get(f"{url}/ping").status_code == 200
        answer = httpx.post(f"{url}/invocations", json={"dataframe_records": rows(two_models)})
        assert answer.status_code == 400
        assert "serves 2 models" in answer.json()["message"] and "--model NAME" in answer.json()["message"]


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


def serve(ws: Workspace, port: int, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEREIN_")}
    return subprocess.Popen([sys.executable, "-m", "serein", "serve", "--port", str(port), "-w", str(ws.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_serve_model_option_chooses_the_invocations_model(two_models: Workspace, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    process = serve(two_models, free_port, "--model", COPY)
    try:
        def pinged() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                return httpx.get(f"{url}/ping").status_code == 200
            except httpx.TransportError:
                return False
        wait_for(pinged, timeout=90, step=0.3)
        before = two_models.store.count_predictions(COPY)
        answer = httpx.post(f"{url}/invocations", json={"dataframe_records": rows(two_models)},
                            headers={"X-Request-ID": "chosen-1"})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(rows(two_models))
        wait_for(lambda: two_models.store.request_rows(["chosen-1"]), timeout=15)
        assert two_models.store.request_rows(["chosen-1"])["chosen-1"][0] == COPY
        assert two_models.store.count_predictions(COPY) == before + len(rows(two_models))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_serve_model_option_must_name_a_served_model(two_models: Workspace, free_port: int) -> None:
    process = serve(two_models, free_port, "--model", "no-such-model")
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2
    error = out.strip().splitlines()[0]
    assert error.startswith("error: --model 'no-such-model' has no champion") and COPY in error, out
