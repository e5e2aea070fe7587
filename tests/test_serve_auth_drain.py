"""SIGTERM on a real ``serein serve`` process under keyed load: requests in flight finish, and
every prediction acknowledged with a 200 is in the prediction log afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

from conftest import TRAINED_MODEL
from serein.keys import create_key
from serein.serve.server import bind
from serein.store import OperationalStore
from serein.workspace import Workspace
from test_serve_app import wait_for


def test_sigterm_drains_and_keeps_every_acknowledged_prediction(trained_workspace: Workspace, tmp_path: Path,
                                                                 credit_df: pd.DataFrame) -> None:
    store_uri = f"sqlite:///{tmp_path / 'serein.db'}"  # the shared workspace's log stays untouched
    store = OperationalStore(store_uri)
    _, token = create_key(store, ["predict"])
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    env = {**os.environ, "SEREIN_STORE_URI": store_uri, "SEREIN_SERVE__AUTH": "true"}
    server = subprocess.Popen([sys.executable, "-m", "serein", "serve", "-w", str(trained_workspace.root),
                               "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    features = trained_workspace.registry.load(TRAINED_MODEL).features
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in credit_df[features].iloc[:5].to_dict("records")]

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    acknowledged: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
            while not stop.is_set():
                try:
                    answer = http.post(f"{url}/v1/models/{TRAINED_MODEL}/predict", json={"instances": rows})
                except httpx.TransportError:
                    return  # the server stopped accepting connections
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 200:
                    acknowledged.append(answer.json()["request_id"])

    try:
        wait_for(ready, timeout=90, step=0.2)
        clients = [threading.Thread(target=client) for _ in range(6)]
        for thread in clients:
            thread.start()
        wait_for(lambda: len(acknowledged) >= 30, timeout=30, step=0.05)
        server.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has drained, so the exit reads as SIGTERM.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
    for thread in clients:
        thread.join(30)
    err = server.stderr.read()
    assert "Traceback" not in err and token not in err, err
    logged = store.request_rows(acknowledged)
    assert len(acknowledged) >= 30 and set(logged) == set(acknowledged)
    assert all(n == len(rows) for _, n in logged.values())
