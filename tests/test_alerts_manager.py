"""Alerts: dedup and update, status moves, and real channels (a webhook on loopback)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from serein.alerts.alerts import AlertManager
from serein.errors import ConflictError, NotFoundError, UsageError
from serein.workspace import Workspace


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"body": json.loads(body), "auth": self.headers.get("Authorization")})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", handler
    server.shutdown()
    server.server_close()


def _workspace(tmp_path: Path, channels: list[dict], cooldown: str = "1h") -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    settings = {"project": "demo", "alerts": {"channels": channels, "cooldown": cooldown}}
    (ws.root / "serein.yaml").write_text(json.dumps(settings))
    return Workspace(ws.root)


def test_repeats_update_one_alert(workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    alerts = workspace.alerts
    with caplog.at_level(logging.INFO, logger="serein.alerts"):
        first = alerts.raise_alert("credit", "feature_drift", "warning", "psi 0.25", feature="income", details={"psi": 0.25})
        again = alerts.raise_alert("credit", "feature_drift", "warning", "psi 0.27", feature="income", details={"psi": 0.27})
        worse = alerts.raise_alert("credit", "feature_drift", "critical", "psi 0.60", feature="income")
        other = alerts.raise_alert("credit", "feature_drift", "warning", "js 0.2", feature="purpose")
    assert first["new"] and not again["new"] and again["id"] == worse["id"] == first["id"] != other["id"]
    assert worse["count"] == 3 and worse["severity"] == "critical" and worse["message"] == "psi 0.60"
    assert again["details"] == {"psi": 0.27}
    # told when new and when escalated; the plain repeat within the cooldown stays quiet
    assert (first["notified"], again["notified"], worse["notified"]) == (True, False, True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "credit/income feature_drift: psi 0.60 (x3)" in lines[1]
    assert [a["id"] for a in alerts.list(model="credit")] == [other["id"], first["id"]]
    assert alerts.list(model="other") == []


def test_ack_resolve_and_reopen(workspace: Workspace) -> None:
    alerts = workspace.alerts
    a = alerts.raise_alert("m", "performance_drop", "critical", "accuracy -0.1")
    assert alerts.ack(a["id"])["status"] == "acknowledged"
    assert alerts.raise_alert("m", "performance_drop", "critical", "again")["id"] == a["id"]  # still active
    assert alerts.resolve(a["id"])["status"] == "resolved"
    with pytest.raises(ConflictError, match="already resolved"):
        alerts.ack(a["id"])
    fresh = alerts.raise_alert("m", "performance_drop", "warning", "back")
    assert fresh["id"] != a["id"] and fresh["new"]
    assert [x["id"] for x in alerts.list(status="resolved")] == [a["id"]]
    with pytest.raises(NotFoundError, match="no alert #999"):
        alerts.resolve(999)
    with pytest.raises(UsageError, match="unknown alert status 'closed'"):
        alerts.list(status="closed")
    with pytest.raises(UsageError, match="severity 'fatal'"):
        alerts.raise_alert("m", "r", "fatal", "x")


def test_webhook_posts_json(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    ws = _workspace(tmp_path, [{"type": "webhook", "url": url, "timeout": 2, "headers": {"Authorization": "Bearer t"}}])
    alert = ws.alerts.raise_alert("credit", "prediction_drift", "critical", "scores moved", details={"psi": 0.4})
    assert alert["deliveries"] == [{"channel": "webhook", "ok": True, "status": 200}]
    (got,) = handler.received
    assert got["auth"] == "Bearer t"
    assert got["body"]["id"] == alert["id"] and got["body"]["rule"] == "prediction_drift"
    assert got["body"]["details"] == {"psi": 0.4} and got["body"]["project"] == "demo"


def test_failing_webhook_keeps_the_alert(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    handler.status = 500
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    ws = _workspace(tmp_path, [{"type": "webhook", "url": dead, "timeout": 1}, {"type": "webhook", "url": url}])
    alert = ws.alerts.raise_alert("credit", "feature_drift", "warning", "psi 0.3", feature="age")
    refused, server_error = alert["deliveries"]
    assert not refused["ok"] and "ConnectError" in refused["error"]
    assert not server_error["ok"] and "500" in server_error["error"]
    assert [a["id"] for a in ws.alerts.list(status="open")] == [alert["id"]]


def test_cooldown_renotifies(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, [{"type": "log"}], cooldown="0.05s")
    ws.alerts.raise_alert("m", "r", "warning", "x")
    time.sleep(0.06)
    assert ws.alerts.raise_alert("m", "r", "warning", "x")["notified"]


@pytest.mark.parametrize("channels, match", [
    ([{"type": "sms"}], "unknown channel type 'sms'"),
    ([{"type": "webhook"}], r"alerts.channels\[0\]: a webhook needs an http\(s\) 'url'"),
    ([{"type": "webhook", "url": "http://x", "timeout": 0}], "'timeout' must be a positive number"),
    (["log"], r"alerts.channels\[0\] must be a mapping"),
])
def test_bad_channel_config(tmp_path: Path, channels: list, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        AlertManager(_workspace(tmp_path, channels))


def _commits(ws: Workspace) -> list[int]:
    """A list that grows by one at each commit of the workspace's store."""
    from sqlalchemy import event

    seen: list[int] = []
    event.listen(ws.store.engine, "commit", lambda conn: seen.append(1))
    return seen


def test_a_batch_is_one_transaction_with_the_outcome_of_raising_one_by_one(tmp_path: Path) -> None:
    from serein.alerts.alerts import Occurrence

    batch = [
        Occurrence("feature_drift", "warning", "psi 0.3", feature="age", details={"psi": 0.3}),
        Occurrence("prediction_drift", "critical", "scores moved"),
        Occurrence("feature_drift", "critical", "psi 0.6", feature="age"),  # repeats the first, escalated
        Occurrence("feature_drift", "critical", "psi 0.7", feature="age"),  # repeats again: within the cooldown
    ]
    one_by_one, batched = _workspace(tmp_path / "a", [{"type": "log"}]), _workspace(tmp_path / "b", [{"type": "log"}])
    singles = [one_by_one.alerts.raise_alert("m", o.rule, o.severity, o.message, o.feature, o.details) for o in batch]
    commits = _commits(batched)
    together = batched.alerts.raise_alerts("m", batch)
    assert len(commits) == 1
    keys = ("id", "rule", "feature", "severity", "status", "count", "message", "details", "new", "notified")
    assert [{k: a[k] for k in keys} for a in together] == [{k: a[k] for k in keys} for a in singles]
    assert [(a["count"], a["new"], a["notified"]) for a in together] == [(1, True, True), (1, True, True),
                                                                        (2, False, True), (3, False, False)]
    assert [len(a["deliveries"]) for a in together] == [1, 1, 1, 0]
    stored = {(a["rule"], a["feature"]): a for a in batched.alerts.list()}
    assert len(stored) == 2 and stored[("feature_drift", "age")]["message"] == "psi 0.7"
    # a second run's batch updates the stored alerts: counts go on, nothing new, cooldown holds
    again = batched.alerts.raise_alerts("m", batch[:2])
    assert [(a["count"], a["new"], a["notified"]) for a in again] == [(4, False, False), (2, False, False)]
    assert batched.alerts.raise_alerts("m", []) == [] and len(commits) == 2


def test_a_malformed_occurrence_stores_nothing_of_its_batch(workspace: Workspace) -> None:
    from serein.alerts.alerts import Occurrence

    with pytest.raises(UsageError, match="unknown alert severity 'fatal'"):
        workspace.alerts.raise_alerts("m", [Occurrence("r", "warning", "fine"), Occurrence("r2", "fatal", "x")])
    assert workspace.alerts.list() == []


def test_resolving_several_reads_the_active_alerts_once(workspace: Workspace) -> None:
    alerts = workspace.alerts
    age = alerts.raise_alert("m", "feature_drift", "warning", "psi 0.3", feature="age")
    scores = alerts.raise_alert("m", "prediction_drift", "critical", "scores moved")
    other = alerts.raise_alert("other", "feature_drift", "warning", "psi 0.3", feature="age")
    done = alerts.auto_resolve_all("m", [("feature_drift", "income", "psi 0.01"), ("feature_drift", "age", "psi 0.02"),
                                         ("prediction_drift", "", ""), ("feature_drift", "age", "psi 0.02")])
    assert [d and (d["id"], d["status"], d["message"]) for d in done] == [
        None, (age["id"], "resolved", "back to normal: psi 0.02"), (scores["id"], "resolved", "scores moved"), None]
    assert [a["id"] for a in alerts.list(status="open")] == [other["id"]]
    assert alerts.auto_resolve_all("m", []) == []


def test_alerts_list_and_show_print_a_feature_with_brackets_as_text(workspace: Workspace) -> None:
    """A column named like rich markup ("odd [/x]") is listed and shown as written; `serein
    alerts list` ended with a MarkupError."""
    import os
    import subprocess
    import sys

    alert = workspace.alerts.raise_alert("m", "feature_drift", "warning", "odd [/x] drifted: [bold]", feature="odd [/x]")
    env = {**os.environ, "COLUMNS": "200"}
    for args in (["alerts", "list"], ["alerts", "show", str(alert["id"])]):
        out = subprocess.run([sys.executable, "-m", "serein", *args, "--workspace", str(workspace.root)],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "odd [/x]" in out.stdout and "[bold]" in out.stdout, out.stdout


def _raise_many(root: str, start: float, worker: int) -> None:
    ws = Workspace(root)
    _ = ws.alerts, ws.store.engine
    while time.time() < start:  # all processes raise at once
        pass
    for k in range(30):
        ws.alerts.raise_alert("m", "feature_drift", "warning", f"from {worker}", feature=f"f{k}")


def test_processes_raising_the_same_alert_at_once_keep_one_active_alert(workspace: Workspace) -> None:
    """Two monitor runs at once (the agent and a CLI run) raise the same alerts: each (model, rule,
    feature) keeps one active alert counting every occurrence. Both used to find no active alert
    and both open one (SQLite read outside the write transaction): duplicates, each notified."""
    import multiprocessing

    _ = workspace.store.engine, workspace.alerts  # the store's tables exist before the processes start
    context = multiprocessing.get_context("spawn")
    start = time.time() + 4
    workers = [context.Process(target=_raise_many, args=(str(workspace.root), start, i)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    active = workspace.alerts.list(status="open")
    assert sorted(a["feature"] for a in active) == sorted(f"f{k}" for k in range(30))
    assert sum(a["count"] for a in active) == 4 * 30
