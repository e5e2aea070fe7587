"""Third-party clients against a real ``serein`` server on loopback: tritonclient (Open Inference
Protocol over HTTP, JSON tensors), kserve's ``InferenceRESTClient`` (protocol v2) and MLflow's
own ``ScoringServerClient``, each unchanged. Their answers must equal the native ``/v1`` ones,
and every acknowledged row must be in the prediction log.

The server serves a copy of the shared ``trained_workspace`` (so its prediction log starts
empty and the shared fixture is not touched). kserve pins pandas < 3 and protobuf >= 6, which
serein's environment cannot take, so its client runs from a venv of its own, built once under
the user's cache folder (skipped with the reason when it cannot be built).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import TRAINED_MODEL
from test_serve_app import running, wait_for

from serein.serve.app import create_app
from serein.workspace import Workspace

MAX_ROWS = 50
MAX_BYTES = 64_000
BUILT = "serein-kserve-client-ready"  # written once kserve is installed: a half-built venv is rebuilt
KSERVE_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "serein-tests" / "kserve-venv"


@dataclass
class Service:
    url: str
    ws: Workspace
    frame: pd.DataFrame  # raw feature columns, with missing values, never seen in training

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rows(self, n: int, complete: bool = False) -> list[dict[str, Any]]:
        """The first ``n`` rows (of those without a missing value when ``complete``) as JSON
        objects, missing values as null."""
        frame = (self.frame.dropna() if complete else self.frame).head(n)
        return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]

    def native(self, n: int, complete: bool = False) -> dict[str, Any]:
        """The /v1 answer for those rows: the reference every protocol must match."""
        response = httpx.post(f"{self.url}/v1/models/{TRAINED_MODEL}/predict",
                              json={"instances": self.rows(n, complete)})
        assert response.status_code == 200, response.text
        self.wait_request(response.json()["request_id"], len(response.json()["predictions"]))
        return response.json()

    def wait_request(self, rid: str, n_rows: int) -> None:
        """Request ``rid``'s rows reach the store (the log ships them within a second)."""
        wait_for(lambda: self.ws.store.request_rows([rid]), timeout=15)
        assert self.ws.store.request_rows([rid])[rid] == (TRAINED_MODEL, n_rows)

    def logged(self) -> int:
        return self.ws.store.count_predictions(TRAINED_MODEL)

    def wait_logged(self, expected: int) -> None:
        """The log reaches ``expected`` rows (records reach the store within a second) and stays there."""
        wait_for(lambda: self.logged() >= expected, timeout=15)
        assert self.logged() == expected


@pytest.fixture(scope="session", name="protocol_service")
def _protocol_service(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A copy of ``trained_workspace`` served by uvicorn on loopback (limits: 50 rows, 64 kB)."""
    from serein.demo.credit import make_credit

    root = tmp_path_factory.mktemp("protocols") / "ws"
    shutil.copytree(trained_workspace.root, root)
    ws = Workspace(root)
    ws.config["serve"].update(max_rows=MAX_ROWS, max_body_bytes=MAX_BYTES)
    features = ws.registry.load(TRAINED_MODEL).features
    frame = make_credit(60, start="2026-08-01", days=5, seed=11)[features]
    assert frame.isna().any().any(), "the rows should hold missing values"
    with running(create_app(ws)) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60)
        yield Service(url, ws, frame)


# -- tritonclient ------------------------------------------------------------------------------

def test_tritonclient_json_tensors(protocol_service: Service) -> None:
    http = pytest.importorskip("tritonclient.http")
    service = protocol_service
    reference = service.native(7, complete=True)
    before = service.logged()
    client = http.InferenceServerClient(url=service.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(TRAINED_MODEL) and client.is_model_ready(TRAINED_MODEL, model_version="1")
    assert not client.is_model_ready(TRAINED_MODEL, model_version="9")
    metadata = client.get_model_metadata(TRAINED_MODEL)
    assert metadata["versions"] == ["1"]
    assert [i["name"] for i in metadata["inputs"]] == list(service.frame.columns)
    assert {o["name"]: o["shape"] for o in metadata["outputs"]} == {"predictions": [-1], "probabilities": [-1, 2]}

    # JSON cannot carry NaN, so tritonclient gets complete rows (null support is in the catalogue).
    frame = service.frame.dropna().head(7)
    dtypes = {"FP64": np.float64, "INT64": np.int64, "BYTES": object}
    inputs = []
    for spec in metadata["inputs"]:
        tensor = http.InferInput(spec["name"], [len(frame)], spec["datatype"])
        tensor.set_data_from_numpy(frame[spec["name"]].to_numpy(dtype=dtypes[spec["datatype"]]), binary_data=False)
        inputs.append(tensor)
    outputs = [http.InferRequestedOutput(name, binary_data=False) for name in ("predictions", "probabilities")]
    result = client.infer(TRAINED_MODEL, inputs, outputs=outputs, request_id="triton-req-1")
    assert result.get_response()["id"] == "triton-req-1"
    assert result.as_numpy("predictions").tolist() == reference["predictions"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), reference["probabilities"], rtol=0, atol=1e-12)

    # No outputs requested: tritonclient asks for binary outputs; the answer stays JSON and decodes.
    plain = client.infer(TRAINED_MODEL, inputs, model_version="1")
    assert plain.as_numpy("predictions").tolist() == reference["predictions"]
    assert plain.as_numpy("probabilities").shape == (7, 2)
    # Binary input tensors are refused with a message saying how to send them.
    binary = http.InferInput("age", [7], "FP64")
    binary.set_data_from_numpy(frame["age"].to_numpy(np.float64), binary_data=True)
    with pytest.raises(Exception, match="binary_data=False"):
        client.infer(TRAINED_MODEL, [binary])
    # Two inferences of 7 rows; the first one's V2 id is its request id in the log.
    service.wait_request("triton-req-1", 7)
    service.wait_logged(before + 2 * 7)


# -- kserve --------------------------------------------------------------------------------------

KSERVE_CLIENT = textwrap.dedent("""
    import asyncio, json, sys
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def main(url, model, columns):
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            out = {"server_ready": await client.is_server_ready(url),
                   "server_live": await client.is_server_live(url),
                   "model_ready": await client.is_model_ready(url, model),
                   "unknown_ready": await client.is_model_ready(url, "no-such-model")}
            inputs = [InferInput(c["name"], [len(c["data"])], c["datatype"], c["data"]) for c in columns]
            response = await client.infer(url, InferRequest(model, inputs, request_id="kserve-req-1"),
                                          model_name=model)
            out["id"] = response.id
            out["outputs"] = {o.name: o.as_numpy().tolist() for o in response.outputs}
            bad = [InferInput(c["name"], [len(c["data"])], c["datatype"], c["data"]) for c in columns[1:]]
            try:
                await client.infer(url, InferRequest(model, bad), model_name=model)
                out["missing_column"] = "accepted"
            except Exception as exc:
                out["missing_column"] = str(exc)
        finally:
            await client.close()
        print(json.dumps(out))

    asyncio.run(main(*json.loads(sys.stdin.read())))
""")


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    """The Python of a venv holding kserve, built once under the cache folder (~2 min)."""
    python = KSERVE_VENV / "bin" / "python"
    if (KSERVE_VENV / BUILT).exists():
        return python
    building = KSERVE_VENV.with_name(f"kserve-venv.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "-q", "kserve>=0.14"],
                       check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"could not build a venv with kserve (its pins conflict with serein's, so it needs one): {exc}")
    (building / BUILT).touch()
    shutil.rmtree(KSERVE_VENV, ignore_errors=True)
    building.rename(KSERVE_VENV)
    return python


def test_kserve_inference_rest_client_v2(protocol_service: Service, kserve_python: Path) -> None:
    service = protocol_service
    rows = service.rows(5)
    reference = service.native(5)
    before = service.logged()
    metadata = httpx.get(f"{service.url}/v2/models/{TRAINED_MODEL}").json()
    columns = [{"name": spec["name"], "datatype": spec["datatype"], "data": [row[spec["name"]] for row in rows]}
               for spec in metadata["inputs"]]
    run = subprocess.run([str(kserve_python), "-c", KSERVE_CLIENT], input=json.dumps([service.url, TRAINED_MODEL, columns]),
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["server_ready"] is True and out["server_live"] is True
    assert out["model_ready"] is True and out["unknown_ready"] is False
    assert out["id"] == "kserve-req-1"
    assert out["outputs"]["predictions"] == reference["predictions"]
    np.testing.assert_allclose(out["outputs"]["probabilities"], reference["probabilities"], rtol=0, atol=1e-12)
    assert "missing input(s) 'age'" in out["missing_column"] and "400" in out["missing_column"]
    service.wait_request("kserve-req-1", 5)
    service.wait_logged(before + 5)


# -- MLflow ----------------------------------------------------------------------------------------

def test_mlflow_scoring_server_client(protocol_service: Service) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    service = protocol_service
    reference = service.native(9)
    before = service.logged()
    client = ScoringServerClient("127.0.0.1", service.port)
    client.wait_server_ready(timeout=10)
    assert client.get_version() == __import__("mlflow").__version__
    frame = service.frame.head(9)
    assert frame.isna().any().any()  # pandas sends these as NaN, which MLflow's protocol reads as missing
    response = client.invoke(frame)
    assert response.get_predictions(predictions_format="ndarray").ravel().tolist() == reference["predictions"]
    assert list(response.get_predictions()[0]) == reference["predictions"]
    # The same rows as records, column lists (instances/inputs) and CSV give the same labels.
    rows = service.rows(9)
    columnar = {name: [row[name] for row in rows] for name in frame.columns}
    for body in ({"dataframe_records": rows}, {"instances": rows}, {"inputs": columnar}):
        answer = httpx.post(f"{service.url}/invocations", json=body)
        assert answer.status_code == 200 and answer.json() == {"predictions": reference["predictions"]}, answer.text
    csv = httpx.post(f"{service.url}/invocations", content=frame.to_csv(index=False),
                     headers={"content-type": "text/csv"})
    assert csv.json() == {"predictions": reference["predictions"]}
    service.wait_logged(before + 5 * 9)


def test_csv_on_the_native_predict_route(protocol_service: Service) -> None:
    service = protocol_service
    reference = service.native(12)
    before = service.logged()
    answer = httpx.post(f"{service.url}/v1/models/{TRAINED_MODEL}/predict",
                        content=service.frame.head(12).to_csv(index=False).encode(),
                        headers={"content-type": "text/csv; charset=utf-8", "X-Request-ID": "csv-req-1"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == reference["predictions"]
    assert answer.json()["probabilities"] == reference["probabilities"]  # CSV floats round-trip exactly
    service.wait_request("csv-req-1", 12)
    service.wait_logged(before + 12)


def test_versions_health_and_server_metadata(protocol_service: Service) -> None:
    url = protocol_service.url
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2").json() == {"name": "serein", "version": __import__("serein").__version__,
                                             "extensions": []}
    assert httpx.get(f"{url}/v2/models/{TRAINED_MODEL}/versions/1").json()["name"] == TRAINED_MODEL
    other = httpx.get(f"{url}/v2/models/{TRAINED_MODEL}/versions/2/ready")
    assert other.status_code == 404 and "version 1 is" in other.json()["error"]
    assert httpx.get(f"{url}/ping").status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200
