"""The service end to end: a real uvicorn server on a loopback port, real models trained and
registered in MLflow, the real operational store; driven with httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from serein import tree_kernel
from serein.serve import json_rows
from serein.serve.app import create_app
from serein.serve.server import bind
from serein.workspace import Workspace

MODEL = "credit"
SECRET = "s3cr3t-payload-value"
MAX_ROWS = 50
MAX_BYTES = 20_000


def train_version(ws: Workspace, frame: pd.DataFrame, max_iter: int, promote: bool) -> int:
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    recipe = Recipe.from_dict({"name": MODEL, "target": "default", "task": "classification",
                               "estimator": {"params": {"max_iter": max_iter}}})
    return train(ws, recipe, frame=frame, promote=promote).version


@contextmanager
def running(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_for(check: Any, timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, credit_df: pd.DataFrame) -> Iterator[tuple[str, Workspace, list[dict]]]:
    """v1 (champion) and v2 (registered) of ``credit``, served with a 0.5 s reload interval."""
    ws = Workspace.init(tmp_path_factory.mktemp("serve") / "ws")
    frame = credit_df.iloc[:1500]
    assert train_version(ws, frame, max_iter=20, promote=True) == 1
    assert train_version(ws, frame, max_iter=60, promote=False) == 2
    ws.config["serve"].update(reload_interval=0.5, max_rows=MAX_ROWS, max_body_bytes=MAX_BYTES)
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in frame.drop(columns=["default", "applied_at"]).iloc[:20].to_dict("records")]
    with running(create_app(ws)) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60)
        yield url, ws, rows


def shipped(ws: Workspace, model: str, request_ids: list[str], timeout: float = 5.0) -> list[dict]:
    """The logged rows of these requests, once the prediction log has shipped all of them to the
    store (it does so every ``serve.log_ship_interval``, 0.2 s)."""
    def rows() -> list[dict] | None:
        found = [r for r in ws.store.prediction_rows(model) if r["request_id"] in request_ids]
        return found if {r["request_id"] for r in found} == set(request_ids) else None

    return wait_for(rows, timeout)


def predict(url: str, rows: list[dict], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"instances": rows}, **kwargs)


def test_health_and_model_description(service) -> None:
    url, ws, rows = service
    assert httpx.get(f"{url}/healthz").json() == {"live": True}
    assert httpx.get(f"{url}/readyz").json() == {"ready": True, "models": [MODEL]}
    listed = httpx.get(f"{url}/v1/models").json()["models"]
    assert [(m["name"], m["version"]) for m in listed] == [(MODEL, 1)]
    info = httpx.get(f"{url}/v1/models/{MODEL}").json()
    loaded = ws.registry.load(MODEL, 1)
    assert info["version"] == 1 and info["task"] == "classification" and info["classes"] == [0, 1]
    assert info["runtime"] == ("onnx" if loaded.onnx_path else "sklearn")
    kernel = tree_kernel.library() is not None  # the HistGradientBoosting trees, as compiled tables
    assert info["scorer"] == ("numpy preprocessing, then the trees as look-up tables (compiled kernel)" if kernel
                              else "numpy preprocessing, then the export's estimator part in ONNX Runtime")
    assert info["features"] == loaded.features == list(info["input_schema"]["columns"])
    assert set(rows[0]) == set(loaded.features)


def test_prediction_routes_are_documented_with_their_path_parameters_and_bodies(service) -> None:
    """The prediction routes take the request alone (``RequestRoute``), yet /openapi.json still
    describes their path parameters and request bodies."""
    url, _, _ = service
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    expected = {"/v1/models/{name}/predict": ["name"], "/v2/models/{name}/infer": ["name"],
                "/v2/models/{name}/versions/{version}/infer": ["name", "version"], "/invocations": []}
    for path, parameters in expected.items():
        operation = paths[path]["post"]
        assert [p["name"] for p in operation.get("parameters", [])] == parameters, path
        assert all(p["in"] == "path" and p["required"] for p in operation.get("parameters", [])), path
        assert "application/json" in operation["requestBody"]["content"], path
    assert paths["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "required"] == ["instances"]


def test_sklearn_runtime_serves_the_same_answers(service) -> None:
    """``serve.runtime: sklearn`` runs the pipeline itself; ONNX Runtime agrees with it within the
    float32 tolerance (labels equal)."""
    url, ws, rows = service
    with_sklearn = Workspace(ws.root)
    with_sklearn.config["serve"]["runtime"] = "sklearn"
    with running(create_app(with_sklearn)) as other:
        wait_for(lambda: httpx.get(f"{other}/readyz").status_code == 200, timeout=60)
        info = httpx.get(f"{other}/v1/models/{MODEL}").json()
        assert info["runtime"] == "sklearn" and info["version"] == 1
        reference = predict(other, rows).json()
    served = predict(url, rows).json()
    assert httpx.get(f"{url}/v1/models/{MODEL}").json()["runtime"] == "onnx"
    assert served["predictions"] == reference["predictions"]
    for ours, theirs in zip(served["probabilities"], reference["probabilities"]):
        assert ours == pytest.approx(theirs, abs=1e-3)


def test_unknown_runtime_setting_is_refused(workspace: Workspace) -> None:
    from serein.errors import UsageError

    workspace.config["serve"]["runtime"] = "tensorrt"
    with pytest.raises(UsageError, match="serve.runtime must be one of auto, sklearn"):
        create_app(workspace)


def test_predict_logs_every_acknowledged_row(service) -> None:
    url, ws, rows = service
    response = predict(url, rows[:5], headers={"X-Request-ID": "batch-0001"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "batch-0001" == response.headers["x-request-id"]
    assert (body["model"], body["version"], body["classes"]) == (MODEL, 1, [0, 1])
    assert len(body["predictions"]) == len(body["probabilities"]) == 5
    for label, proba in zip(body["predictions"], body["probabilities"]):
        assert abs(sum(proba) - 1) < 1e-6 and label == [0, 1][proba.index(max(proba))]
    logged = shipped(ws, MODEL, ["batch-0001"])
    assert [r["row"] for r in logged] == list(range(5))
    assert [r["prediction"] for r in logged] == body["predictions"]
    assert [r["inputs"] for r in logged] == rows[:5]
    assert all(r["version"] == 1 and r["score"] == pytest.approx(p[1]) for r, p in zip(logged, body["probabilities"]))

    reused = predict(url, rows[:2], headers={"X-Request-ID": "batch-0001"})
    assert reused.status_code == 409 and "already used" in reused.json()["error"]
    assert ws.store.request_rows(["batch-0001"]) == {"batch-0001": (MODEL, 5)}

    generated = predict(url, rows[:1]).json()["request_id"]
    assert len(generated) == 32 and len(shipped(ws, MODEL, [generated])) == 1


def test_a_prediction_the_log_cannot_write_is_refused_in_each_protocols_format(
        service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every protocol answers once its record is durable; a record the segment refuses (a full
    disk) turns the prediction into that protocol's 503, never a 200, and its request id stays
    unused."""
    url, _, rows = service
    complete = [r for r in rows if None not in r.values()][:2]
    tensors = httpx.get(f"{url}/v2/models/{MODEL}").json()["inputs"]
    v2 = {"inputs": [{"name": t["name"], "datatype": t["datatype"], "shape": [2],
                      "data": [r[t["name"]] for r in complete]} for t in tensors]}

    def full_disk(fd: int, data: Any, offset: int) -> int:
        raise OSError(28, "No space left on device")

    calls = [("v1", f"{url}/v1/models/{MODEL}/predict", {"instances": complete}),
             ("v2", f"{url}/v2/models/{MODEL}/infer", v2),
             ("mlflow", f"{url}/invocations", {"dataframe_records": complete})]
    with monkeypatch.context() as patched:
        patched.setattr("serein.serve.predlog.os.pwrite", full_disk)
        answers = {name: httpx.post(call, json=body, headers={"X-Request-ID": f"refused-{name}"})
                   for name, call, body in calls}
    assert {name: a.status_code for name, a in answers.items()} == {"v1": 503, "v2": 503, "mlflow": 503}
    assert "No space left on device" in answers["v1"].json()["error"] and answers["v1"].headers["retry-after"]
    assert "No space left on device" in answers["v2"].json()["error"]
    assert answers["mlflow"].json()["error_code"] and "No space left" in answers["mlflow"].json()["message"]
    for name, call, body in calls:  # the disk is back: the same ids are new to the log
        again = httpx.post(call, json=body, headers={"X-Request-ID": f"refused-{name}"})
        assert again.status_code == 200, again.text


def test_a_body_read_by_the_compiled_reader_is_answered_and_logged_alike(service) -> None:
    """40 rows (past ``READ_MIN_BYTES``) go through the compiled reader where it is built: the same
    answers as one row at a time (orjson's path), the same logged inputs. A field given twice in a
    row, which orjson would take silently (the last one), is refused naming the row and field, in
    a small body too."""
    from serein.serve.models import READ_MIN_BYTES

    url, ws, rows = service
    rows = rows * 2
    body = orjson.dumps({"instances": rows})
    assert len(body) >= READ_MIN_BYTES
    answer = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=body,
                        headers={"content-type": "application/json", "x-request-id": "reader-0001"})
    assert answer.status_code == 200, answer.text
    one_by_one = [predict(url, [row]).json() for row in rows[:3]]
    assert [a["predictions"][0] for a in one_by_one] == answer.json()["predictions"][:3]
    for alone, together in zip(one_by_one, answer.json()["probabilities"][:3]):
        assert alone["probabilities"][0] == pytest.approx(together, abs=1e-6)
    assert [r["inputs"] for r in shipped(ws, MODEL, ["reader-0001"])] == rows

    name = next(iter(rows[3]))
    texts = [orjson.dumps(row) for row in rows]
    texts[3] = texts[3][:-1] + b', "' + name.encode() + b'": 1}'  # the 4th row gives its first field again
    twice = b'{"instances": [' + b",".join(texts) + b"]}"
    refused = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=twice, headers={"content-type": "application/json"})
    if json_rows.library() is None:
        pytest.skip("the JSON rows reader is not built here: orjson keeps the last value")
    assert refused.status_code == 422, refused.text
    assert refused.json()["details"] == [{"row": 3, "field": name, "problem": "field given more than once"}]
    small = b'{"instances": [' + texts[3] + b"]}"  # below READ_MIN_BYTES: orjson decodes it, after the check
    refused = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=small, headers={"content-type": "application/json"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["details"] == [{"row": 0, "field": name, "problem": "field given more than once"}]

    # MLflow's /invocations: its records go through the reader too, and its errors are 400s
    mlflow = httpx.post(f"{url}/invocations", content=orjson.dumps({"dataframe_records": rows}),
                        headers={"content-type": "application/json"})
    assert mlflow.status_code == 200, mlflow.text
    assert mlflow.json()["predictions"] == answer.json()["predictions"]
    for records in (twice.replace(b'"instances"', b'"dataframe_records"'), small.replace(b'"instances"', b'"inputs"')):
        refused = httpx.post(f"{url}/invocations", content=records, headers={"content-type": "application/json"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["details"][0]["problem"] == "field given more than once"


def test_suspicious_values_are_served_and_flagged(service) -> None:
    url, ws, rows = service
    contract = ws.registry.load(MODEL, 1).contract
    numeric = next(n for n, c in contract.columns.items() if c.numeric and c.max is not None)
    row = {**rows[0], numeric: contract.columns[numeric].max * 10 + 1}
    body = predict(url, [row]).json()
    assert body["flags"] == [{"row": 0, "field": numeric,
                              "problem": f"above the contract maximum {contract.columns[numeric].max:g}"}]
    assert len(body["predictions"]) == 1


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_rows_and_flags(service) -> None:
    url, ws, rows = service
    version = httpx.get(f"{url}/v1/models/{MODEL}").json()["version"]
    contract = ws.registry.load(MODEL, version).contract
    field = next(n for n, c in contract.columns.items() if c.numeric and c.max is not None)
    predict_ok = ("serein_http_requests_total",
                  (("method", "POST"), ("route", "/v1/models/{name}/predict"), ("status", "200")))
    unknown_model = ("serein_http_requests_total",
                     (("method", "POST"), ("route", "/v1/models/{name}/predict"), ("status", "404")))
    unmatched = ("serein_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))
    predicted = ("serein_predicted_rows_total", (("model", MODEL), ("version", str(version))))
    flagged = ("serein_flagged_values_total", (("field", field), ("model", MODEL)))
    before = scrape(url)

    assert predict(url, [rows[0], rows[1], {**rows[2], field: contract.columns[field].max * 10 + 1}]).status_code == 200
    httpx.post(f"{url}/v1/models/nope/predict", json={"instances": [rows[0]]})
    httpx.get(f"{url}/no/such/{SECRET}")
    after = scrape(url)
    for key, delta in [(predict_ok, 1), (unknown_model, 1), (unmatched, 1), (predicted, 3), (flagged, 1)]:
        assert after[key] - before.get(key, 0.0) == delta, key
    assert SECRET not in httpx.get(f"{url}/metrics").text


def _bad_requests(url: str, rows: list[dict]) -> list[tuple[str, httpx.Response, int, str]]:
    """(case, response, expected status, text the error must contain)."""
    target = f"{url}/v1/models/{MODEL}/predict"
    row = rows[0]
    wrong_type = {**row, "income": SECRET}
    return [
        ("not json", httpx.post(target, content=SECRET, headers={"content-type": "text/plain"}), 415, "application/json"),
        ("malformed", httpx.post(target, content=b'{"instances": [' + SECRET.encode(),
                                 headers={"content-type": "application/json"}), 400, "not valid JSON"),
        ("empty body", httpx.post(target, content=b"", headers={"content-type": "application/json"}), 400, "empty"),
        ("array body", httpx.post(target, json=[row]), 422, "JSON object"),
        ("no instances", httpx.post(target, json={"rows": [row]}), 422, "unknown top-level key"),
        ("instances not list", httpx.post(target, json={"instances": row}), 422, "list of objects"),
        ("empty instances", httpx.post(target, json={"instances": []}), 422, "empty"),
        ("row not object", httpx.post(target, json={"instances": [[1, 2]]}), 422, "expected an object"),
        ("wrong type", httpx.post(target, json={"instances": [row, wrong_type]}), 422, "income"),
        ("string number", httpx.post(target, json={"instances": [{**row, "age": "41"}]}), 422, "got a string"),
        ("missing field", httpx.post(target, json={"instances": [{k: v for k, v in row.items() if k != "region"}]}),
         422, "region"),
        ("unknown field", httpx.post(target, json={"instances": [{**row, "zip_code": SECRET}]}), 422, "zip_code"),
        ("nan", httpx.post(target, content=b'{"instances": [{"age": NaN}]}',
                           headers={"content-type": "application/json"}), 400, "NaN"),
        ("too many rows", httpx.post(target, json={"instances": [row] * (MAX_ROWS + 1)}), 413, str(MAX_ROWS)),
        ("too large", httpx.post(target, json={"instances": [{**row, "pad": "x" * MAX_BYTES}]}), 413, "bytes"),
        ("too large, chunked", httpx.post(target, content=iter([b'{"instances": [', b" " * MAX_BYTES, b"]}"]),
                                          headers={"content-type": "application/json"}), 413, "bytes"),
        ("unknown model", httpx.post(f"{url}/v1/models/nope/predict", json={"instances": [row]}), 404, MODEL),
        ("bad request id", predict(url, [row], headers={"X-Request-ID": "a b/" + "x" * 80}), 400, "X-Request-ID"),
        ("unknown route", httpx.get(f"{url}/v2/anything"), 404, "no route"),
        ("wrong method", httpx.get(target), 405, "not allowed"),
    ]


def settled_count(url: str, ws: Workspace, row: dict) -> int:
    """The store's prediction count once every earlier request has reached it: the log ships in
    order, so once a marker request is in the store, every request sent before it is too."""
    request_id = predict(url, [row]).json()["request_id"]
    wait_for(lambda: ws.store.request_rows([request_id]), timeout=15)
    return ws.store.count_predictions(MODEL)


def test_bad_input_gets_a_clear_4xx_and_is_not_echoed(service) -> None:
    url, ws, rows = service
    before = settled_count(url, ws, rows[0])
    for case, response, status, text in _bad_requests(url, rows):
        assert response.status_code == status, (case, response.status_code, response.text)
        body = response.json()
        assert text in body["error"] + str(body.get("details", "")) + body.get("hint", ""), (case, body)
        assert SECRET not in response.text, case
    assert settled_count(url, ws, rows[0]) == before + 1, "a refused request must not be logged"

    details = predict(url, [rows[0], {**rows[1], "income": SECRET, "age": True}]).json()["details"]
    assert details == [{"row": 1, "field": "age", "problem": "expected a number, got a boolean"},
                       {"row": 1, "field": "income", "problem": "expected a number, got a string"}]


ODD_VALUES = [None, True, False, 0, -1, 1.5, 1e308, -1e308, 2**63, -(2**63) - 1, 2**64 - 1, "", "\u0000",
              "nan", "Infinity", "1.5", "employed", [], [1], {}, {"a": None}]


def test_odd_values_in_every_field_never_cause_a_5xx(service) -> None:
    url, _, rows = service
    with httpx.Client(base_url=url) as client:
        for field in rows[0]:
            for value in ODD_VALUES:
                response = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [{**rows[0], field: value}]})
                assert response.status_code in (200, 422), (field, value, response.text)


def test_oversized_content_length_is_refused_before_reading(service) -> None:
    """A declared length over the limit is answered from the header, without waiting for a body."""
    import socket

    url, _, _ = service
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: {host}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {MAX_BYTES * 100}\r\n\r\n{{}}".encode())
        head = conn.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head


def test_feedback_by_request_id(service) -> None:
    url, ws, rows = service
    single = predict(url, rows[:1]).json()["request_id"]
    multi = predict(url, rows[1:4]).json()["request_id"]
    target = f"{url}/v1/models/{MODEL}/feedback"

    assert httpx.post(target, json={"request_id": single, "label": 1}).json() == {"stored": 1}
    assert httpx.post(target, json={"request_id": multi, "label": [0, 1, 0]}).json() == {"stored": 3}
    assert httpx.post(target, json=[{"request_id": multi, "row": 2, "label": 1}]).json() == {"stored": 1}
    labels = {(r["request_id"], r["row"]): r["label"] for r in shipped(ws, MODEL, [single, multi])}
    assert labels[(single, 0)] == 1 and [labels[(multi, i)] for i in range(3)] == [0, 1, 1]

    cases = [
        ({"request_id": "never-seen-1", "label": 1}, 404, "never-seen-1"),
        ({"request_id": single, "label": "yes"}, 422, "classes"),
        ({"request_id": single, "label": True}, 422, "classes"),
        ({"request_id": single, "label": 2}, 422, "classes"),
        ({"request_id": multi, "label": 1}, 422, "3 rows"),
        ({"request_id": multi, "label": [0, 1]}, 422, "3 rows"),
        ({"request_id": multi, "row": 3, "label": 1}, 422, "0 to 2"),
        ({"request_id": single}, 422, "'label'"),
        ({"request_id": single, "label": 1, "note": SECRET}, 422, "unknown key"),
        ([], 422, "empty"),
    ]
    stored = ws.store.count_feedback(MODEL)
    for body, status, text in cases:
        response = httpx.post(target, json=body)
        assert response.status_code == status, (body, response.text)
        assert text in response.json()["error"], (body, response.json())
        assert SECRET not in response.text
    assert ws.store.count_feedback(MODEL) == stored, "a refused feedback must store nothing"


def test_a_later_feedback_label_replaces_the_earlier_one(service) -> None:
    """A late correction replaces the row's label, so monitoring counts the row once; one body
    labelling a row twice is refused, since which label is meant would be a guess."""
    url, ws, rows = service
    rid = predict(url, rows[4:6]).json()["request_id"]
    target = f"{url}/v1/models/{MODEL}/feedback"
    before = ws.store.count_feedback(MODEL)
    assert httpx.post(target, json={"request_id": rid, "label": [0, 0]}).json() == {"stored": 2}
    assert httpx.post(target, json={"request_id": rid, "row": 1, "label": 1}).json() == {"stored": 1}
    assert ws.store.count_feedback(MODEL) == before + 2
    assert [r["label"] for r in shipped(ws, MODEL, [rid])] == [0, 1]

    twice = httpx.post(target, json=[{"request_id": rid, "label": [1, 1]}, {"request_id": rid, "row": 0, "label": 0}])
    assert twice.status_code == 422, twice.text
    assert twice.json()["error"] == f"feedback item 1 (request id {rid!r}): row 0 is labelled by feedback item 0 too"
    assert [r["label"] for r in shipped(ws, MODEL, [rid])] == [0, 1], "a refused feedback must store nothing"


def test_hot_swap_without_failed_requests(service) -> None:
    """Promote v2 while clients keep predicting: no request fails, every response names the
    version that served it (and the log agrees), and v2 serves within 5 s of the alias moving."""
    url, ws, rows = service
    results: list[tuple[float, int, int]] = []
    acknowledged: dict[str, int] = {}
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url) as c:
            while not stop.is_set():
                response = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:3]})
                version = response.json().get("version", -1) if response.status_code == 200 else -1
                results.append((time.monotonic(), response.status_code, version))
                if response.status_code == 200:
                    acknowledged[response.json()["request_id"]] = version

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        promoted_at = time.monotonic()
        ws.registry.promote(MODEL, 2, force=True, reason="hot swap test")
        switched_at = wait_for(lambda: next((t for t, _, v in results if v == 2), None), timeout=5)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert [r for r in results if r[1] != 200] == []
    assert switched_at - promoted_at < 5
    after = [v for t, _, v in results if t > switched_at + 0.2]
    assert after and set(after) == {2}
    assert httpx.get(f"{url}/v1/models/{MODEL}").json()["version"] == 2
    logged = {}
    for r in shipped(ws, MODEL, list(acknowledged)):
        logged.setdefault(r["request_id"], set()).add((r["row"], r["version"]))
    assert logged == {rid: {(0, v), (1, v), (2, v)} for rid, v in acknowledged.items()}
    assert set(acknowledged.values()) == {1, 2}


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(service) -> None:
    from serein.registry.artifacts import SKOPS_FILE
    from serein.registry.tracking import local_path

    url, ws, rows = service
    if httpx.get(f"{url}/v1/models/{MODEL}").json()["version"] != 2:
        ws.registry.promote(MODEL, 2, force=True, reason="failure test")
        wait_for(lambda: httpx.get(f"{url}/v1/models/{MODEL}").json()["version"] == 2, timeout=5)
    folder = local_path(ws.registry.client.get_model_version_download_uri(MODEL, "1"))
    model_file = folder / SKOPS_FILE
    original = model_file.read_bytes()
    try:
        model_file.write_bytes(original + b"tampered")
        ws.registry.rollback(MODEL)  # champion -> v1, whose file no longer matches its sha256
        time.sleep(2.0)  # four reload intervals
        assert httpx.get(f"{url}/v1/models/{MODEL}").json()["version"] == 2
        response = predict(url, rows[:2])
        assert response.status_code == 200 and response.json()["version"] == 2
    finally:
        model_file.write_bytes(original)


def test_a_newly_registered_regressor_appears_and_serves(service, credit_df: pd.DataFrame) -> None:
    """A model registered while the server runs is picked up; regression answers carry values,
    no classes or probabilities, and take numeric feedback."""
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    url, ws, _ = service
    recipe = Recipe.from_dict({"name": "loan-amount", "target": "loan_amount", "task": "regression",
                               "features": ["income", "term_months", "employment"],
                               "estimator": {"class": "sklearn.linear_model.Ridge"}})
    result = train(ws, recipe, frame=credit_df.iloc[:800], promote=True)
    assert result.alias == "champion", result.gate
    registered_at = time.monotonic()
    wait_for(lambda: "loan-amount" in httpx.get(f"{url}/readyz").json()["models"], timeout=5)
    assert time.monotonic() - registered_at < 5

    rows = [{"income": 52000.0, "term_months": 36, "employment": "employed"},
            {"income": None, "term_months": 12, "employment": None}]
    response = httpx.post(f"{url}/v1/models/loan-amount/predict", json={"instances": rows})
    body = response.json()
    assert response.status_code == 200 and set(body) == {"model", "version", "request_id", "predictions"}
    assert all(isinstance(p, float) for p in body["predictions"])
    logged = shipped(ws, "loan-amount", [body["request_id"]])
    assert [r["score"] for r in logged] == body["predictions"] and logged[0]["probabilities"] is None

    target = f"{url}/v1/models/loan-amount/feedback"
    ok = httpx.post(target, json={"request_id": body["request_id"], "label": [9000, 1500.5]})
    assert ok.json() == {"stored": 2}
    wrong = httpx.post(target, json={"request_id": body["request_id"], "row": 0, "label": "9000"})
    assert wrong.status_code == 422 and "finite number" in wrong.json()["error"]
    elsewhere = httpx.post(f"{url}/v1/models/{MODEL}/feedback", json={"request_id": body["request_id"], "label": 1})
    assert elsewhere.status_code == 404 and "loan-amount/feedback" in elsewhere.json()["hint"]


def test_serein_serve_with_two_workers_answers_and_stops_gracefully(service) -> None:
    """The CLI path: ``serein serve --workers 2`` (uvicorn factory, shared socket), a prediction
    logged by a worker process, then SIGTERM and a clean exit."""
    import signal
    import subprocess
    import sys

    _, ws, rows = service
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([sys.executable, "-m", "serein", "serve", "-w", str(ws.root), "--port", str(port),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def answered() -> httpx.Response | None:
            try:
                response = predict(base, rows[:2], headers={"X-Request-ID": "from-worker"})
            except httpx.TransportError:
                return None
            assert response.status_code in (200, 503), response.text  # 503 only while loading
            return response if response.status_code == 200 else None

        response = wait_for(answered, timeout=90, step=0.5)
        assert response.json()["version"] == ws.registry.champion(MODEL).version
        assert len(shipped(ws, MODEL, ["from-worker"])) == 2
        for _ in range(4):  # whichever worker answers, the scrape aggregates both
            rows_total = sum(v for (name, _), v in scrape(base).items() if name == "serein_predicted_rows_total")
            assert rows_total >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"on http://127.0.0.1:{port} with 2 worker(s)" in stderr and f"serving {MODEL} v" in stderr
    assert "Traceback" not in stderr
