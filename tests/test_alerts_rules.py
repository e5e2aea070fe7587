"""Alert rules (config errors, levels, auto-resolve), the Slack payload against a real local HTTP
server and email delivery to a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from serein.alerts.rules import Rule, apply_rules, rules_from_config
from serein.errors import UsageError
from serein.workspace import Workspace
from test_alerts_manager import _workspace, hook  # noqa: F401 (the loopback webhook fixture)


@pytest.mark.parametrize("rules, match", [
    ({"metric": "psi"}, r"alerts.rules must be a list"),
    ([{"warning": 0.1}], r"alerts.rules\[0\] must be a mapping with a 'metric'"),
    ([{"metric": "psy", "warning": 0.1}], r"unknown metric 'psy'"),
    ([{"metric": "psi"}], r"give a 'warning' and/or a 'critical' level for psi"),
    ([{"metric": "psi", "warning": "high"}], r"'warning' must be a number"),
    ([{"metric": "psi", "warning": 0.3, "critical": 0.2}], r"'critical' \(0.2\) must be above 'warning' \(0.3\)"),
    ([{"metric": "roc_auc", "below": True, "warning": 0.7, "critical": 0.8}], r"must be below 'warning'"),
    ([{"metric": "roc_auc", "warning": 0.7, "features": ["x"]}], r"'features' applies to the per-feature metrics"),
    ([{"metric": "psi", "warning": 0.1, "level": 2}], r"unknown key\(s\) level"),
    ([{"metric": "psi", "warning": 0.1}, {"metric": "psi", "critical": 0.3}], r"more than one rule named psi"),
])
def test_rule_config_errors(rules: object, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        rules_from_config(rules)  # type: ignore[arg-type]


def _result(psi: float | None, auc: float) -> SimpleNamespace:
    """The parts of a MonitorResult the rules read."""
    return SimpleNamespace(
        model="credit", version=3, drifted=[], alerts=[], resolved=[], detectors=None, prediction_drift=None,
        features={"income": {"psi": psi, "status": "ok" if psi is not None else "insufficient", "drifted": False,
                             "method": "psi", "score": psi}},
        performance={"n_labelled": 500, "min_labels": 100, "dropped": [],
                     "metrics": {"roc_auc": {"current": auc, "reference": 0.8, "change": auc - 0.8}}},
    )


def test_levels_update_then_auto_resolve_once(tmp_path: Path, hook) -> None:  # noqa: F811
    url, handler = hook
    ws = _workspace(tmp_path, [{"type": "webhook", "url": url}])
    config = json.loads((ws.root / "serein.yaml").read_text())
    config["alerts"]["rules"] = [{"metric": "psi", "warning": 0.1, "critical": 0.25, "features": ["income"]},
                                 {"name": "auc_low", "metric": "roc_auc", "below": True, "warning": 0.75, "critical": 0.7}]
    (ws.root / "serein.yaml").write_text(json.dumps(config))
    ws = Workspace(ws.root)

    first = _result(0.15, 0.72)
    apply_rules(ws, None, first, streaming=False)  # type: ignore[arg-type]
    assert sorted((a["rule"], a["feature"], a["severity"]) for a in first.alerts) == [
        ("auc_low", "", "warning"), ("psi", "income", "warning")]
    worse = _result(0.4, 0.72)
    apply_rules(ws, None, worse, streaming=False)  # type: ignore[arg-type]
    psi_alert = next(a for a in worse.alerts if a["rule"] == "psi")
    assert psi_alert["severity"] == "critical" and psi_alert["count"] == 2 and not psi_alert["new"]
    assert "income psi 0.4 >= 0.25" in psi_alert["message"]

    # a window too small for a verdict neither raises nor resolves
    unknown = _result(None, 0.72)
    apply_rules(ws, None, unknown, streaming=False)  # type: ignore[arg-type]
    assert unknown.resolved == [] and len(ws.alerts.list(status="open")) == 2

    back = _result(0.02, 0.9)
    apply_rules(ws, None, back, streaming=False)  # type: ignore[arg-type]
    assert sorted(r["rule"] for r in back.resolved) == ["auc_low", "psi"]
    assert all(r["resolved_at"] for r in back.resolved) and ws.alerts.list(status="open") == []
    again = _result(0.02, 0.9)
    apply_rules(ws, None, again, streaming=False)  # type: ignore[arg-type]
    assert again.resolved == []  # resolved once, told once
    told = [(m["body"]["rule"], m["body"]["status"]) for m in handler.received]
    assert told.count(("psi", "resolved")) == 1 and told.count(("auc_low", "resolved")) == 1
    assert told.count(("psi", "open")) == 2  # opened, then escalated


def test_streaming_rule_alerts_on_a_rise_only() -> None:
    rule = next(r for r in rules_from_config(None) if r.metric == "error_rate_change")
    assert rule == Rule("error_rate_change", "error_rate_change", 0.1, 0.5)


def test_slack_payload(tmp_path: Path, hook) -> None:  # noqa: F811
    url, handler = hook
    ws = _workspace(tmp_path, [{"type": "slack", "url": url}])
    alert = ws.alerts.raise_alert("credit", "feature_drift", "critical", "income psi 0.52", feature="income")
    assert alert["deliveries"] == [{"channel": "slack", "ok": True, "status": 200}]
    ws.alerts.resolve(alert["id"])
    opened, resolved = (m["body"] for m in handler.received)
    assert set(opened) == {"text", "blocks"}
    assert opened["text"] == "[CRITICAL] demo: credit/income feature_drift: income psi 0.52"
    assert [b["type"] for b in opened["blocks"]] == ["header", "section", "section"]
    assert opened["blocks"][1]["text"] == {"type": "mrkdwn", "text": "income psi 0.52"}
    assert {"type": "mrkdwn", "text": f"*alert*\n#{alert['id']}"} in opened["blocks"][2]["fields"]
    assert resolved["text"].startswith("[RESOLVED] demo: credit/income")


@pytest.fixture
def smtp() -> Iterator[tuple[int, list]]:
    """A local SMTP server (aiosmtpd): its port and the messages it received."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list = []

        def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
            self.messages.append(message)

    import socket

    with socket.socket() as s:  # a free port (the controller checks readiness on the port it is given)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox.messages
    finally:
        controller.stop()


def _email_workspace(tmp_path: Path, port: int) -> Workspace:
    return _workspace(tmp_path, [{"type": "email", "host": "127.0.0.1", "port": port, "security": "none",
                                  "sender": "serein@example.com", "to": ["oncall@example.com"]}])


def test_email_reaches_a_local_smtp_server(tmp_path: Path, smtp: tuple[int, list]) -> None:
    port, inbox = smtp
    ws = _email_workspace(tmp_path, port)
    alert = ws.alerts.raise_alert("credit", "performance_drop", "critical", "roc_auc 0.80 -> 0.70",
                                  details={"roc_auc": 0.7})
    assert alert["deliveries"] == [{"channel": "email", "ok": True, "to": ["oncall@example.com"]}]
    (msg,) = inbox
    assert msg["Subject"] == "[CRITICAL] demo: credit performance_drop: roc_auc 0.80 -> 0.70"
    assert msg["To"] == "oncall@example.com" and msg["From"] == "serein@example.com"
    body = msg.get_payload()
    assert "roc_auc 0.80 -> 0.70" in body and "roc_auc: 0.7" in body and f"id: {alert['id']}" in body


def test_line_breaks_in_alert_data_stay_out_of_the_email_headers(tmp_path: Path, smtp: tuple[int, list]) -> None:
    """A feature name or message holding CR/LF (data: a column name, a category) cannot end the
    subject and add a header such as Bcc: its line breaks become spaces. Such a subject made
    building the e-mail raise, out of the channel that must never raise, and no e-mail left."""
    port, inbox = smtp
    ws = _email_workspace(tmp_path, port)
    feature = "income\r\nBcc: intruder@example.com\n\u2028X-Extra: 1"
    alert = ws.alerts.raise_alert("credit", "feature_drift", "warning", f"{feature} drifted\r\nTo: more@example.com",
                                  feature=feature)
    assert alert["deliveries"] == [{"channel": "email", "ok": True, "to": ["oncall@example.com"]}]
    (msg,) = inbox
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", msg["Subject"])  # a long header is folded onto indented lines
    assert unfolded == ("[WARNING] demo: credit/income Bcc: intruder@example.com X-Extra: 1 feature_drift: "
                        "income Bcc: intruder@example.com X-Extra: 1 drifted To: more@example.com")
    assert msg["Bcc"] is None and msg["X-Extra"] is None and msg.get_all("To") == ["oncall@example.com"]
    assert msg["X-RcptTo"] == "oncall@example.com"  # the envelope's recipients, as the server saw them
    assert "intruder@example.com" in msg.get_payload()  # the body keeps the message as it was


def test_email_failure_is_reported_not_raised(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = _workspace(tmp_path, [{"type": "email", "host": "127.0.0.1", "port": port, "sender": "a@b.c", "to": "d@e.f",
                                "timeout": 2}])
    (delivery,) = ws.alerts.raise_alert("m", "r", "warning", "x")["deliveries"]
    assert not delivery["ok"] and "Connection" in delivery["error"]
    assert len(ws.alerts.list(status="open")) == 1


@pytest.mark.parametrize("entry, match", [
    ({"type": "email", "host": "h", "sender": "a@b.c", "to": ["d@e.f"], "security": "tls"}, "starttls, ssl or none"),
    ({"type": "email", "sender": "a@b.c", "to": ["d@e.f"]}, "needs the SMTP 'host'"),
    ({"type": "email", "host": "h", "sender": "a@b.c", "to": []}, "'to' must be a list of email addresses"),
    ({"type": "email", "host": "h", "sender": "a@b.c", "to": ["d@e.f"], "password": "x"}, "unknown email setting"),
    ({"type": "email", "host": "h", "sender": "a@b.c", "to": ["d@e.f"], "password_env": "SEREIN_NO_SUCH_VAR"},
     "SEREIN_NO_SUCH_VAR"),
    ({"type": "email", "host": "h", "sender": "a@b.c\r\nBcc: x@y.z", "to": ["d@e.f"]}, "'sender' must be an email address"),
    ({"type": "email", "host": "h", "sender": "a@b.c", "to": ["d@e.f\nBcc: x@y.z"]}, "'to' must be a list of email"),
    ({"type": "slack", "url": "hooks.slack.com"}, "a slack needs an http"),
])
def test_channel_config_errors(tmp_path: Path, entry: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        _workspace(tmp_path, [entry]).alerts  # noqa: B018


def test_alerts_show_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    ws = _workspace(tmp_path, [])
    alert = ws.alerts.raise_alert("credit", "psi", "warning", "income psi 0.3", feature="income", details={"psi": 0.3})
    run = [sys.executable, "-m", "serein", "alerts", "show", "--workspace", str(ws.root)]
    shown = subprocess.run([*run, str(alert["id"]), "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and json.loads(shown.stdout.splitlines()[-1])["details"] == {"psi": 0.3}
    missing = subprocess.run([*run, "99"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no alert #99" in missing.stderr


def test_a_drop_rule_on_an_error_metric_fires_when_the_error_rises(tmp_path: Path) -> None:
    """``rmse_drop`` is how far performance fell: RMSE rising 0.1 above the holdout. It used to be
    minus the change for every metric, so an error metric's drop rule fired when the error fell
    and never when it rose; ``roc_auc_drop`` keeps its sign."""
    from serein.alerts.rules import _metric_values

    def result(metric: str, current: float, reference: float) -> SimpleNamespace:
        return SimpleNamespace(performance={"n_labelled": 500, "min_labels": 100, "metrics": {
            metric: {"current": current, "reference": reference, "change": current - reference}}})

    rmse_drop = Rule("rmse_drop", "rmse_drop", 0.05, 0.2)
    assert _metric_values(rmse_drop, result("rmse", 0.62, 0.52)) == {"": pytest.approx(0.1)}
    assert rmse_drop.severity(_metric_values(rmse_drop, result("rmse", 0.62, 0.52))[""]) == "warning"
    assert rmse_drop.severity(_metric_values(rmse_drop, result("rmse", 0.42, 0.52))[""]) is None
    auc_drop = Rule("roc_auc_drop", "roc_auc_drop", 0.05, 0.2)
    assert _metric_values(auc_drop, result("roc_auc", 0.7, 0.8)) == {"": pytest.approx(0.1)}
