"""JSON logs of a real ``serein serve`` process (two workers, API keys and access lines on): every stderr line is a
JSON object, uvicorn's own lines included; a request's id, model, version and status appear on its
lines; API keys and payload values never do. Also the pieces alone: formatters, the scrub filter
and the settings."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import TRAINED_MODEL
from test_serve_app import wait_for

from serein.errors import UsageError
from serein.keys import create_key
from serein.serve.logs import (
    REQUEST,
    JsonFormatter,
    Scrub,
    TextFormatter,
    access_log,
    log_format,
)
from serein.serve.server import bind
from serein.store import OperationalStore
from serein.workspace import Workspace

DISTINCTIVE = 987654.321  # payload values that must never reach a log line
DISTINCTIVE_TEXT = "zq-payload-text"


def test_a_served_request_is_traced_in_json_without_secrets_or_payloads(
        trained_workspace: Workspace, tmp_path: Path, credit_df: pd.DataFrame) -> None:
    store_uri = f"sqlite:///{tmp_path / 'serein.db'}"  # the shared workspace's log stays untouched
    _, token = create_key(OperationalStore(store_uri), ["predict", "admin"])
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    env = {**os.environ, "SEREIN_STORE_URI": store_uri, "SEREIN_SERVE__AUTH": "true", "SEREIN_SERVE__ACCESS_LOG": "true"}
    server = subprocess.Popen([sys.executable, "-m", "serein", "serve", "-w", str(trained_workspace.root),
                               "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    features = trained_workspace.registry.load(TRAINED_MODEL).features
    row = {k: (None if pd.isna(v) else v) for k, v in credit_df[features].iloc[0].to_dict().items()}
    row["income"] = DISTINCTIVE
    keyed = {"Authorization": f"Bearer {token}"}
    try:
        def answered(instance: dict, request_id: str) -> httpx.Response:
            """The answer of a worker that has loaded its models (each of the two loads on its own:
            503 only while loading)."""
            def once() -> httpx.Response | None:
                try:
                    response = httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/predict", json={"instances": [instance]},
                                          headers={**keyed, "X-Request-ID": request_id})
                except httpx.TransportError:
                    return None
                return response if response.status_code != 503 else None
            return wait_for(once, timeout=90, step=0.3)

        assert answered(row, "trace-me-1").status_code == 200
        assert answered({**row, "age": DISTINCTIVE_TEXT}, "trace-me-2").status_code == 422
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {token[:-1]}x"}).status_code == 401
        for _ in range(4):  # whichever worker answers, the scrape has both workers' load times
            loads = {k: v for k, v in scrape_keyed(url, keyed).items() if k[0] == "serein_model_load_seconds"}
            assert len(loads) == 1 and 0 < next(iter(loads.values())) < 120
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # each line parses
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert {"uvicorn.error", "serein.serve.server", "serein.serve.models", "serein.access"} <= {
        line["logger"] for line in lines}
    ok = [line for line in lines if line.get("request_id") == "trace-me-1" and line.get("status") != 503]
    assert ok and all(line["model"] == TRAINED_MODEL and line["version"] == 1 for line in ok)
    assert {"status": 200, "path": f"/v1/models/{TRAINED_MODEL}/predict"}.items() <= ok[-1].items()
    assert ok[-1]["latency_ms"] > 0
    assert any(line.get("request_id") == "trace-me-2" and line.get("status") == 422 for line in lines)
    assert any(line.get("status") == 401 for line in lines)
    assert token not in err and token[:-1] not in err and token.split("_")[2][:16] not in err
    assert "987654" not in err and DISTINCTIVE_TEXT not in err


def scrape_keyed(url: str, headers: dict[str, str]) -> dict:
    """``scrape`` with an API key (``/metrics`` needs the admin scope when auth is on)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers=headers).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("serein.test", logging.ERROR, __file__, 1, message, args, info)


def test_formatters_carry_the_request_fields_and_scrub_secrets() -> None:
    key = "serein_0123456789abcdef_" + "ab" * 32
    token = REQUEST.set({"request_id": "r-1", "model": "m", "version": 3})
    try:
        try:
            raise ValueError(f"bad {key}")
        except ValueError as exc:
            record = _record("failed with Authorization: Bearer %s", key, exc=exc)
        assert Scrub().filter(record)
        entry = json.loads(JsonFormatter().format(record))
        text = TextFormatter().format(_record("plain"))
    finally:
        REQUEST.reset(token)
    assert entry["request_id"] == "r-1" and entry["model"] == "m" and entry["version"] == 3
    assert entry["message"] == "failed with [redacted]" and entry["error"] == "ValueError"
    assert key not in json.dumps(entry) and "[redacted]" in entry["traceback"]
    assert text.endswith("request_id=r-1 model=m version=3") and "plain" in text
    assert "request_id" not in json.loads(JsonFormatter().format(_record("outside")))  # no request, no id


def test_log_settings_are_checked(workspace: Workspace) -> None:
    assert log_format(workspace) == "json" and access_log(workspace) is False
    workspace.config["serve"]["access_log"] = "yes please"
    with pytest.raises(UsageError, match="serve.access_log must be true or false"):
        access_log(workspace)
    workspace.config["serve"]["log_format"] = "xml"
    with pytest.raises(UsageError, match="serve.log_format must be one of json, text, got 'xml'"):
        log_format(workspace)


def test_library_warnings_and_onnx_runtime_messages_are_json_lines_too(workspace: Workspace) -> None:
    """Two sources wrote raw text on the server's stderr: a library's Python warning while scoring
    (scikit-learn's log1p of a negative value, on a pipeline served by scikit-learn) and ONNX
    Runtime's own colour-coded log lines (a nearest-neighbour export whose estimator part cannot
    be cut out, tried when the model loads). Every line is a JSON object, the warning among them."""
    import numpy as np
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    import serein
    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    rng = np.random.default_rng(4)
    n = 400
    frame = pd.DataFrame({"amount": rng.exponential(50, n), "count": rng.integers(0, 20, n).astype(float)})
    frame["y"] = np.where(np.log1p(frame["amount"]) + 0.1 * frame["count"] > 4.5, "yes", "no")
    logged = make_pipeline(make_column_transformer((make_pipeline(FunctionTransformer(np.log1p), StandardScaler()),
                                                    ["amount", "count"])), LogisticRegression())
    assert serein.deploy(logged, name="logged", data=frame, target="y", workspace=workspace).promoted
    three = frame.assign(y=np.where(frame["count"] > 12, "hi", np.where(frame["count"] > 6, "mid", "lo")))
    suggest_contract(three, dataset="knn").save(workspace.datasets.contract_path("knn"))
    workspace.datasets.ingest(three, "knn")
    train(workspace, Recipe.from_dict({"name": "knn", "data": "knn", "target": "y", "task": "classification",
                                       "estimator": {"class": "sklearn.neighbors.KNeighborsClassifier"}}), promote=True)
    port = bind("127.0.0.1", 0)
    number = port.getsockname()[1]
    port.close()
    server = subprocess.Popen([sys.executable, "-m", "serein", "serve", "-w", str(workspace.root), "--port", str(number)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{number}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz").json().get("models") == ["knn", "logged"]
            except httpx.TransportError:
                return False
        assert wait_for(ready, timeout=90, step=0.3)
        refused = httpx.post(f"{url}/v1/models/logged/predict", json={"instances": [{"amount": -5.0, "count": 1.0}]})
        assert refused.status_code == 422, refused.text
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # each line parses
    assert any(line["logger"] == "py.warnings" and "RuntimeWarning" in line["message"] for line in lines)
