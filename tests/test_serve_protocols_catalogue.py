"""Malformed and hostile payloads for the Open Inference Protocol, MLflow's scoring protocol and
CSV on ``/v1``, against the live server of ``test_serve_protocols_clients``: every one gets the
protocol's own 4xx error naming what is wrong (the field, the input, the row), never a 5xx and
never the submitted value; and nothing of a rejected request reaches the prediction log.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from conftest import TRAINED_MODEL
from test_serve_protocols_clients import (  # noqa: F401 (_protocol_service: the shared server fixture)
    MAX_BYTES,
    MAX_ROWS,
    Service,
    _protocol_service,
)

SECRET = "s3cr3t-value"  # planted in bad payloads: it must never come back
V2_URL = f"/v2/models/{TRAINED_MODEL}/infer"


def v2_body(service: Service, n: int = 3) -> dict[str, Any]:
    """A valid V2 request for ``n`` complete rows, one input per column."""
    rows = service.rows(n, complete=True)
    metadata = httpx.get(f"{service.url}/v2/models/{TRAINED_MODEL}").json()
    return {"inputs": [{"name": spec["name"], "datatype": spec["datatype"], "shape": [n],
                        "data": [row[spec["name"]] for row in rows]} for spec in metadata["inputs"]]}


def edit(body: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    change(changed)
    return changed


def column(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(tensor for tensor in body["inputs"] if tensor["name"] == name)


def set_column(name: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: column(body, name).update(values)


def without(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.__setitem__("inputs", [t for t in body["inputs"] if t["name"] != name])


JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}

# (case, path suffix or None, body: dict (JSON) | bytes, headers, expected status, text the error must hold)
V2Case = tuple[str, str | None, Any, dict[str, str], int, str]


def v2_cases(service: Service) -> list[V2Case]:
    good = v2_body(service)
    big = v2_body(service, MAX_ROWS + 1) if len(service.frame.dropna()) > MAX_ROWS else None
    cases: list[V2Case] = [
        ("invalid JSON", None, b'{"inputs": [', JSON, 400, "not valid JSON"),
        ("empty body", None, b"", JSON, 400, "empty"),
        ("non-UTF-8 body", None, b'{"inputs": "\xff\xfe"}', JSON, 400, "not valid JSON"),
        ("array body", None, [good["inputs"]], JSON, 400, "JSON object"),
        ("unknown top-level key", None, {**good, "inptus": []}, JSON, 400, "'inptus'"),
        ("no inputs", None, {"id": "x"}, JSON, 400, "'inputs'"),
        ("empty inputs", None, {"inputs": []}, JSON, 400, "'inputs'"),
        ("inputs not a list", None, {"inputs": {"age": [41.0]}}, JSON, 400, "'inputs'"),
        ("input not an object", None, edit(good, lambda b: b["inputs"].insert(0, SECRET)), JSON, 400, "inputs[0]"),
        ("input without name", None, edit(good, lambda b: b["inputs"][0].pop("name")), JSON, 400, "inputs[0] has no 'name'"),
        ("unknown key in an input", None, edit(good, set_column("age", contents=[1])), JSON, 400, "'contents'"),
        ("BYTES for a float column", None, edit(good, set_column("age", datatype="BYTES")), JSON, 400, "'age' has datatype BYTES"),
        ("FP64 for an integer column", None, edit(good, set_column("term_months", datatype="FP64")), JSON, 400, "'term_months'"),
        ("unknown datatype", None, edit(good, set_column("age", datatype="FLOAT")), JSON, 400, "unknown datatype"),
        ("INT64 holding fractions", None, edit(good, set_column("income", datatype="INT64")), JSON, 400, "'income' is declared INT64"),
        ("shape larger than data", None, edit(good, set_column("age", shape=[5])), JSON, 400, "'age': 'shape' [5]"),
        ("two-column shape", None, edit(good, set_column("age", shape=[3, 2])), JSON, 400, "'age': 'shape'"),
        ("negative shape", None, edit(good, set_column("age", shape=[-3])), JSON, 400, "'age': 'shape'"),
        ("shape not a list", None, edit(good, set_column("age", shape=3)), JSON, 400, "'age': 'shape'"),
        ("shape of floats", None, edit(good, set_column("age", shape=[3.0])), JSON, 400, "'age': 'shape'"),
        ("shape [n, true]", None, edit(good, set_column("age", shape=[3, True])), JSON, 400, "'age': 'shape'"),
        ("a list inside flat data", None, edit(good, set_column("age", data=[41.0, [30.0], 50.0])), JSON, 400,
         "field 'age'"),
        ("data not a list", None, edit(good, set_column("age", data=41.0)), JSON, 400, "'age': 'data'"),
        ("missing column", None, edit(good, without("region")), JSON, 400, "missing input(s) 'region'"),
        ("unknown column", None, edit(good, lambda b: b["inputs"].append(
            {"name": "zip_code", "datatype": "BYTES", "shape": [3], "data": [SECRET] * 3})), JSON, 400, "'zip_code'"),
        ("column given twice", None, edit(good, lambda b: b["inputs"].append(copy.deepcopy(column(b, "age")))),
         JSON, 400, "'age' is given twice"),
        ("ragged columns", None, edit(good, set_column("age", shape=[2], data=[41.0, 30.0])), JSON, 400,
         "different lengths"),
        ("string in a number column", None, edit(good, set_column("age", data=["41", 30.0, 50.0])), JSON, 400,
         "field 'age': expected a number, got a string"),
        ("boolean in a number column", None, edit(good, set_column("age", data=[True, 30.0, 50.0])), JSON, 400,
         "field 'age': expected a number, got a boolean"),
        ("null in a non-nullable column", None, edit(good, set_column("credit_score", data=[None, 600.0, 700.0])),
         JSON, 400, "field 'credit_score': null is not allowed"),
        ("NaN literal", None, orjson.dumps(good).replace(b'"data":[', b'"data":[NaN,', 1),
         JSON, 400, "not valid JSON"),
        ("number beyond float range", None, orjson.dumps(good).replace(b'"data":[', b'"data":[1e400,', 1),
         JSON, 400, "not valid JSON"),
        ("integer beyond 64 bits", None, edit(good, set_column("term_months", data=[2**70, 12, 24])), JSON, 400,
         "field 'term_months': expected an integer within the 64-bit range"),
        ("nested object in data", None, edit(good, set_column("region", data=[{"x": SECRET}, "north", "south"])),
         JSON, 400, "field 'region': expected a string, got an object"),
        ("binary tensor header", None, good, {**JSON, "Inference-Header-Content-Length": "10"}, 400, "binary_data=False"),
        ("octet-stream body", None, orjson.dumps(good), {"content-type": "application/octet-stream"}, 400, "binary"),
        ("binary_data_size parameter", None, edit(good, set_column("age", parameters={"binary_data_size": 24})),
         JSON, 400, "binary_data=False"),
        ("input without data", None, edit(good, lambda b: column(b, "age").pop("data")), JSON, 400, "'age' has no JSON 'data'"),
        ("id not a string", None, {**good, "id": 42}, JSON, 400, "'id' must be a string"),
        ("model_name differs", None, {**good, "model_name": "other"}, JSON, 400, "'model_name'"),
        ("unknown output", None, {**good, "outputs": [{"name": "scores"}]}, JSON, 400, "unknown output 'scores'"),
        ("outputs not objects", None, {**good, "outputs": ["predictions"]}, JSON, 400, "'outputs'"),
        ("parameters not an object", None, {**good, "parameters": [1]}, JSON, 400, "'parameters'"),
        ("unknown model", "/v2/models/no-such-model/infer", good, JSON, 404, "'no-such-model' is not served"),
        ("version not served", f"/v2/models/{TRAINED_MODEL}/versions/7/infer", good, JSON, 404,
         "version '7' is not served; version 1 is"),
        ("body over the size limit", None, {**good, "parameters": {"pad": "x" * MAX_BYTES}}, JSON, 413, "limit"),
    ]
    if big is not None:
        cases.append(("rows over the limit", None, big, JSON, 413, "limit"))
    return cases


def post(service: Service, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()  # json: integers beyond 64 bits
    return httpx.post(f"{service.url}{path}", content=content, headers=headers)


def assert_nothing_logged(service: Service, send: Callable[[], None]) -> None:
    """``send`` adds nothing to the log: a good request sent after it is the only new entry.

    The log ships in order, so once a marker request is in the store every earlier one is too:
    one marker before ``send`` settles what earlier tests sent, one after it closes the window."""
    def mark() -> int:
        marker = httpx.post(f"{service.url}/v1/models/{TRAINED_MODEL}/predict", json={"instances": service.rows(1)})
        service.wait_request(marker.json()["request_id"], 1)
        return service.logged()

    before = mark()
    send()
    assert mark() == before + 1


def test_v2_catalogue_of_bad_requests(protocol_service: Service) -> None:
    service = protocol_service
    cases = v2_cases(service)
    assert len(cases) >= 30

    def send() -> None:
        for case, path, body, headers, status, text in cases:
            response = post(service, path or V2_URL, body, headers)
            assert response.status_code == status, (case, response.status_code, response.text)
            error = response.json()
            assert set(error) == {"error"} and text in error["error"], (case, error)
            assert SECRET not in response.text, case
    assert_nothing_logged(service, send)


def test_v2_reused_id_is_refused_and_other_ids_are_echoed(protocol_service: Service) -> None:
    service = protocol_service
    body = v2_body(service, 2)
    first = post(service, V2_URL, {**body, "id": "v2-once"}, JSON)
    assert first.status_code == 200 and first.headers["x-request-id"] == "v2-once"
    service.wait_request("v2-once", 2)
    assert_nothing_logged(service, lambda: _expect(post(service, V2_URL, {**body, "id": "v2-once"}, JSON), 409,
                                                   "already used"))
    odd = post(service, V2_URL, {**body, "id": "not a usable id!"}, JSON)
    assert odd.status_code == 200 and odd.json()["id"] == "not a usable id!"
    service.wait_request(odd.headers["x-request-id"], 2)  # logged under a generated id, returned in the header


def _expect(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status and text in response.text, response.text


def test_v2_accepts_nulls_nested_columns_and_small_integer_types(protocol_service: Service) -> None:
    service = protocol_service
    body = v2_body(service, 2)
    reference = httpx.post(f"{service.url}{V2_URL}", json=body).json()
    nested = edit(body, set_column("age", shape=[2, 1], data=[[v] for v in column(body, "age")["data"]]))
    nested = edit(nested, set_column("term_months", datatype="INT32"))
    answer = post(service, V2_URL, nested, {})  # tritonclient sends no content type
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == reference["outputs"]
    with_null = post(service, V2_URL, edit(body, set_column("income", data=[None, 1000.0])), JSON)
    assert with_null.status_code == 200 and with_null.json()["outputs"][0]["shape"] == [2]
    only = post(service, V2_URL, {**body, "outputs": [{"name": "probabilities"}]}, JSON).json()["outputs"]
    assert [o["name"] for o in only] == ["probabilities"] and only[0]["shape"] == [2, 2]


# -- MLflow's scoring protocol -------------------------------------------------------------------

MlflowCase = tuple[str, Any, dict[str, str], int, str]


def mlflow_cases(service: Service) -> list[MlflowCase]:
    rows = service.rows(3, complete=True)
    columns = list(rows[0])
    split = {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}
    csv_text = service.frame.dropna().head(3).to_csv(index=False)
    header, first, *rest = csv_text.splitlines()

    def csv(*lines: str) -> bytes:
        return "\n".join(lines).encode()

    def records(**change: Any) -> dict[str, Any]:
        return {"dataframe_records": [{**rows[0], **change}, *rows[1:]]}

    return [
        ("invalid JSON", b'{"dataframe_split": ', JSON, 400, "not valid JSON"),
        ("empty body", b"", JSON, 400, "empty"),
        ("non-UTF-8 JSON", b'{"inputs": "\xff"}', JSON, 400, "not valid JSON"),
        ("list body", [rows], JSON, 400, "got a list"),
        ("no input format", {}, JSON, 400, "no input format"),
        ("two input formats", {"inputs": rows, "instances": rows}, JSON, 400, "2 input formats"),
        ("unknown key", {"inputs": rows, "data": SECRET}, JSON, 400, "unknown key(s) 'data'"),
        ("params given", {"inputs": rows, "params": {"k": 1}}, JSON, 400, "no 'params'"),
        ("dataframe_split not an object", {"dataframe_split": [split]}, JSON, 400, "'dataframe_split' must be an object"),
        ("dataframe_split without columns", {"dataframe_split": {"data": split["data"]}}, JSON, 400, "'columns'"),
        ("dataframe_split ragged row", {"dataframe_split": {**split, "data": [split["data"][0], split["data"][1][:-1]]}},
         JSON, 400, "row 1 of 'data' has"),
        ("dataframe_split row not a list", {"dataframe_split": {**split, "data": [rows[0]]}}, JSON, 400, "row 0 of 'data'"),
        ("dataframe_split column twice", {"dataframe_split": {**split, "columns": [*columns[:-1], columns[0]]}},
         JSON, 400, f"'{columns[0]}' is given twice"),
        ("dataframe_split unknown key", {"dataframe_split": {**split, "dtypes": SECRET}}, JSON, 400, "'dtypes'"),
        ("dataframe_records not a list", {"dataframe_records": rows[0]}, JSON, 400, "'dataframe_records' must be a list"),
        ("missing column", {"dataframe_records": [{k: v for k, v in rows[0].items() if k != "region"}]}, JSON, 400,
         "field 'region': required field is missing"),
        ("unknown column", records(zip_code=SECRET), JSON, 400, "'zip_code': unknown field"),
        ("string for a number", records(age="41"), JSON, 400, "field 'age': expected a number, got a string"),
        ("null in a non-nullable column", records(credit_score=None), JSON, 400, "field 'credit_score': null"),
        ("NaN in a non-nullable column", orjson.dumps(records(credit_score=0.5)).replace(b"0.5", b"NaN"), JSON, 400,
         "field 'credit_score': null"),
        ("Infinity literal", orjson.dumps(records(age=0.5)).replace(b"0.5", b"Infinity"), JSON, 400, "Infinity"),
        ("number beyond float range", orjson.dumps(records(age=0.5)).replace(b"0.5", b"1e400"), JSON, 400,
         "field 'age': expected a finite number"),
        # A body holding NaN is read by the standard library's parser, which takes what orjson refuses.
        ("NaN and a lone surrogate in a field name", orjson.dumps(records(age=0.5, zip_code=1)).replace(b"0.5", b"NaN")
         .replace(b'"zip_code"', b'"\\ud800"'), JSON, 400, "surrogates not allowed"),
        ("NaN and a lone surrogate in a text value", orjson.dumps(records(age=0.5, region="@@")).replace(b"0.5", b"NaN")
         .replace(b'"@@"', b'"\\udc00"'), JSON, 400, "surrogates not allowed"),
        ("NaN and lists nested 5,000 deep", orjson.dumps(records(age=0.5, region="@@")).replace(b"0.5", b"NaN")
         .replace(b'"@@"', b"[" * 5000 + b"]" * 5000), JSON, 400, "nested too deeply"),
        ("integer beyond 64 bits", records(term_months=2**70), JSON, 400, "field 'term_months'"),
        ("nested object", records(region={"x": SECRET}), JSON, 400, "field 'region': expected a string, got an object"),
        ("instances columns of different lengths", {"instances": {"age": [1.0, 2.0], "region": ["north"]}}, JSON, 400,
         "different lengths"),
        ("inputs object of scalars", {"inputs": rows[0]}, JSON, 400, "'inputs' as an object"),
        ("inputs rows as lists", {"inputs": split["data"]}, JSON, 400, "row 0: expected an object"),
        ("empty instances", {"instances": []}, JSON, 400, "no rows"),
        ("text/plain", orjson.dumps({"inputs": rows}), {"content-type": "text/plain"}, 415, "application/json or text/csv"),
        ("no content type", orjson.dumps({"inputs": rows}), {}, 415, "got 'none'"),
        ("parquet", b"PAR1", {"content-type": "application/vnd.apache.parquet"}, 415, "text/csv"),
        ("format parameter", {"inputs": rows}, {"content-type": "application/json; format=pandas-split"}, 415, "'format'"),
        ("latin-1 charset", csv_text.encode(), {"content-type": "text/csv; charset=latin-1"}, 415, "charset"),
        ("CSV without header", csv(first, *rest), CSV, 400, "header row"),
        ("CSV row with extra fields", csv(header, first, rest[0] + ",1"), CSV, 400, "row 1: has"),
        ("CSV row with missing fields", csv(header, first.rsplit(",", 1)[0]), CSV, 400, "row 0: has"),
        ("CSV unterminated quote", csv(header, '"north' + first), CSV, 400, "malformed"),
        ("CSV text in a number column", csv(header, "x" + first), CSV, 400, "row 0, field 'age': expected a number"),
        ("CSV nan in a number column", csv(header, first, "nan" + rest[0][rest[0].index(","):]), CSV, 400,
         "row 1, field 'age'"),
        ("CSV not UTF-8", csv(header, first).replace(b"north", b"n\xf6rth").replace(b"south", b"s\xf6uth")
         .replace(b"east", b"\xe9ast").replace(b"west", b"w\xe9st"), CSV, 400, "not UTF-8"),
        ("CSV header only", csv(header), CSV, 400, "no rows"),
        ("CSV column twice", csv(header + ",age", first + ",1"), CSV, 400, "'age' is given twice"),
        ("CSV unnamed column", csv(header + ",", first + ",1"), CSV, 400, "has no name"),
        ("CSV separated by semicolons", csv(header.replace(",", ";"), first.replace(",", ";")), CSV, 400,
         "the columns look separated by ';', not by commas"),
        ("CSV separated by tabs", csv(header.replace(",", "\t"), first.replace(",", "\t")), CSV, 400,
         "the columns look separated by '\\t', not by commas"),
        ("rows over the limit", {"instances": service.rows(1) * (MAX_ROWS + 1)}, JSON, 413, "limit"),
        ("body over the size limit", {"inputs": rows, "params": None, "pad": "x" * MAX_BYTES}, JSON, 413, "limit"),
    ]


def test_mlflow_catalogue_of_bad_requests(protocol_service: Service) -> None:
    service = protocol_service
    cases = mlflow_cases(service)
    assert len(cases) >= 30

    def send() -> None:
        for case, body, headers, status, text in cases:
            response = post(service, "/invocations", body, headers)
            assert response.status_code == status, (case, response.status_code, response.text)
            error = response.json()
            assert error["error_code"] and text in error["message"], (case, error)
            assert SECRET not in response.text, case
    assert_nothing_logged(service, send)


@pytest.mark.parametrize("case", ["CSV text in a number column", "CSV row with extra fields", "CSV without header",
                                  "CSV not UTF-8", "CSV nan in a number column", "CSV separated by semicolons",
                                  "CSV separated by tabs"])
def test_csv_on_v1_names_the_row_and_field(protocol_service: Service, case: str) -> None:
    """The same CSV mistakes on ``/v1``: the contract's 422 (400 for undecodable text) with
    ``details`` naming the row and field."""
    service = protocol_service
    _, body, headers, _, text = next(c for c in mlflow_cases(service) if c[0] == case)

    def send() -> None:
        response = post(service, f"/v1/models/{TRAINED_MODEL}/predict", body, headers)
        assert response.status_code == (400 if case == "CSV not UTF-8" else 422), response.text
        assert text in response.json()["error"]
        if "field" in text:
            detail = response.json()["details"][0]
            assert (detail["row"], detail["field"]) == (int(text.split()[1].rstrip(",")), "age")
    assert_nothing_logged(service, send)
