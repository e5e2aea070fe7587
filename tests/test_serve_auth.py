"""API keys on a real uvicorn server over loopback: every route family answers 401 without a
valid key, 403 without the route's scope, and a revoked key stops working within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from serein.keys import create_key, revoke_key
from serein.serve.app import create_app
from serein.workspace import Workspace
from conftest import TRAINED_MODEL
from test_serve_app import running, wait_for


@pytest.fixture(scope="module")
def secured(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory,
            credit_df: pd.DataFrame) -> Iterator[tuple[str, Workspace, dict[str, str], list[dict]]]:
    """The shared trained model served with ``serve.auth: true`` and an operational store of its
    own (the shared workspace's log stays untouched); one key per scope."""
    ws = Workspace(trained_workspace.root)
    ws.config["store_uri"] = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'serein.db'}"
    ws.config["serve"].update(auth=True, reload_interval=0.5)
    tokens = {scope: create_key(ws.store, [scope], name=scope)[1] for scope in ("predict", "feedback", "admin")}
    features = ws.registry.load(TRAINED_MODEL).features
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in credit_df[features].iloc[:2].to_dict("records")]
    with running(create_app(ws)) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60)
        yield url, ws, tokens, rows


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_checks_stay_open_everything_else_needs_a_key(secured) -> None:
    url, _, tokens, rows = secured
    for path in ("/healthz", "/readyz"):
        assert httpx.get(url + path).status_code == 200
    refused = [
        httpx.get(f"{url}/v1/models"), httpx.get(f"{url}/v1/models/{TRAINED_MODEL}"), httpx.get(f"{url}/metrics"),
        httpx.get(f"{url}/docs"), httpx.get(f"{url}/openapi.json"), httpx.get(f"{url}/no/such/route"),
        httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/predict", json={"instances": rows}),
        httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/feedback", json={"request_id": "x", "label": 1}),
        httpx.post(f"{url}/v2/models/{TRAINED_MODEL}/infer", json={"inputs": []}),
        httpx.post(f"{url}/invocations", json={"instances": rows}),
        httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/predict", json={"instances": rows},
                   headers=bearer("serein_0123456789abcdef_" + "0" * 64)),
        httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/predict", json={"instances": rows},
                   headers=bearer(tokens["predict"][:-1] + ("1" if tokens["predict"].endswith("0") else "0"))),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    assert refused[0].json()["error"] == "an API key is required" and refused[0].headers["www-authenticate"]
    assert refused[-1].json()["error"].startswith("the API key is not valid")


def test_scopes_per_route_family(secured) -> None:
    url, _, tokens, rows = secured
    predict_url = f"{url}/v1/models/{TRAINED_MODEL}/predict"
    made = httpx.post(predict_url, json={"instances": rows}, headers=bearer(tokens["predict"]))
    assert made.status_code == 200, made.text
    rid = made.json()["request_id"]
    with_header = httpx.post(predict_url, json={"instances": rows}, headers={"X-API-Key": tokens["predict"]})
    assert with_header.status_code == 200

    wrong = httpx.post(predict_url, json={"instances": rows}, headers=bearer(tokens["feedback"]))
    assert wrong.status_code == 403 and "lacks the 'predict' scope" in wrong.json()["error"]
    label = {"request_id": rid, "label": [0, 1]}
    assert httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/feedback", json=label,
                      headers=bearer(tokens["predict"])).status_code == 403
    assert httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/feedback", json=label,
                      headers=bearer(tokens["feedback"])).status_code == 200

    assert httpx.get(f"{url}/metrics", headers=bearer(tokens["predict"])).status_code == 403
    assert httpx.get(f"{url}/metrics", headers=bearer(tokens["admin"])).status_code == 200
    for scope in ("predict", "feedback"):  # any valid key reads model metadata
        assert httpx.get(f"{url}/v1/models", headers=bearer(tokens[scope])).status_code == 200
    assert httpx.post(predict_url, json={"instances": rows}, headers=bearer(tokens["admin"])).status_code == 200
    # An unknown mutating route needs admin (deny by default); with admin it is a plain 404.
    assert httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/retrain", headers=bearer(tokens["predict"])).status_code == 403
    assert httpx.post(f"{url}/v1/models/{TRAINED_MODEL}/retrain", headers=bearer(tokens["admin"])).status_code in (404, 405)


def test_revocation_reaches_the_running_server(secured) -> None:
    url, ws, _, rows = secured
    info, token = create_key(ws.store, ["predict"], name="short-lived")
    predict_url = f"{url}/v1/models/{TRAINED_MODEL}/predict"
    assert httpx.post(predict_url, json={"instances": rows}, headers=bearer(token)).status_code == 200
    revoke_key(ws.store, info["key_id"])
    wait_for(lambda: httpx.post(predict_url, json={"instances": rows}, headers=bearer(token)).status_code == 401,
             timeout=5)


def test_a_new_key_works_right_after_an_unknown_one_made_the_server_reread_its_keys(secured) -> None:
    """An unknown key makes the server re-read the store; a key created just after that read,
    within the flood guard's interval, must still be accepted on its first request."""
    url, ws, _, rows = secured
    predict_url = f"{url}/v1/models/{TRAINED_MODEL}/predict"
    ghost = create_key(ws.store, ["predict"], name="ghost")
    revoke_key(ws.store, ghost[0]["key_id"])  # well formed, never active: a miss on every server
    for _ in range(5):
        assert httpx.post(predict_url, json={"instances": rows}, headers=bearer(ghost[1])).status_code == 401
        _, token = create_key(ws.store, ["predict"], name="fresh")
        assert httpx.post(predict_url, json={"instances": rows}, headers=bearer(token)).status_code == 200


def test_a_bad_auth_setting_is_named(trained_workspace: Workspace, tmp_path: Path) -> None:
    from serein.errors import UsageError

    ws = Workspace(trained_workspace.root)
    ws.config["serve"]["auth"] = "yes please"
    with pytest.raises(UsageError, match="serve.auth must be true or false, got 'yes please'"):
        create_app(ws)
