"""Prometheus ``/metrics`` of a real server (uvicorn on loopback, the shared trained model, its
own prediction store): requests by model, version and status, latency histograms, rows per
inference call, the prediction log's queue depth and model load times, parsed with
prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest
from conftest import TRAINED_MODEL
from test_serve_app import running, scrape, wait_for

from serein.workspace import Workspace


@pytest.fixture(scope="module")
def server(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory,
           credit_df: pd.DataFrame) -> Iterator[tuple[str, int, list[dict]]]:
    """The shared model served in-process; predictions go to a store of this module's own."""
    from serein.serve.app import create_app

    store = tmp_path_factory.mktemp("metrics") / "serein.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEREIN_STORE_URI", f"sqlite:///{store}")  # the shared workspace's log stays untouched
        ws = Workspace(trained_workspace.root)
        with running(create_app(ws)) as url:
            wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60)
            loaded = ws.registry.load(TRAINED_MODEL)
            rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                    for r in credit_df[loaded.features].iloc[:8].to_dict("records")]
            yield url, loaded.version, rows


def _delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_requests_latency_and_batch_sizes_by_model_and_version(server) -> None:
    url, version, rows = server
    v = str(version)
    before = scrape(url)
    bodies = [rows[:2], rows[2:7], [{**rows[0], "age": "old"}]]  # the last breaks the contract: 422
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda b: httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/predict",
                                                     json={"instances": b}), bodies))
    assert [a.status_code for a in answers] == [200, 200, 422]
    httpx.post(f"{url}/v1/models/nope/predict", json={"instances": rows[:1]})  # no model: not counted per model
    after = scrape(url)

    labels = {"model": TRAINED_MODEL, "version": v}
    assert _delta(after, before, "serein_model_requests_total", **labels, status="200") == 2
    assert _delta(after, before, "serein_model_requests_total", **labels, status="422") == 1
    assert not any(k[0] == "serein_model_requests_total" and ("model", "nope") in k[1] for k in after)
    assert _delta(after, before, "serein_model_request_duration_seconds_count", **labels) == 3
    assert _delta(after, before, "serein_model_request_duration_seconds_bucket", **labels, le="+Inf") == 3
    # every row that passed the contract went through exactly one inference call
    assert _delta(after, before, "serein_batch_rows_sum", **labels) == 7
    assert 1 <= _delta(after, before, "serein_batch_rows_count", **labels) <= 2
    assert _delta(after, before, "serein_predicted_rows_total", **labels) == 7
    assert 0 < after[("serein_model_load_seconds", tuple(sorted(labels.items())))] < 120
    depth = ("serein_prediction_log_pending_records", ())
    assert after[depth] >= 0
    wait_for(lambda: scrape(url)[depth] == 0, timeout=10)  # shipped to the store: nothing waits


def test_exposition_parses_and_names_every_family(server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    url, _, _ = server
    answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(answer.text)}
    assert families | {
        "serein_http_requests": "counter", "serein_http_request_duration_seconds": "histogram",
        "serein_model_requests": "counter", "serein_model_request_duration_seconds": "histogram",
        "serein_batch_rows": "histogram", "serein_model_load_seconds": "gauge",
        "serein_prediction_log_pending_records": "gauge", "serein_predicted_rows": "counter",
    } == families
