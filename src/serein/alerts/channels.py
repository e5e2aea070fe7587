"""Where alerts are sent: ``log`` (Python logging), ``webhook`` (the alert as JSON), ``slack`` (a
Slack-compatible incoming webhook: ``{"text": ..., "blocks": [...]}``) and ``email`` (SMTP).

Channels come from ``alerts.channels`` in ``serein.yaml``::

    alerts:
      channels:
        - type: log
        - type: webhook
          url: https://hooks.example.com/serein
          timeout: 3          # seconds (default 5)
          headers: {Authorization: Bearer ...}
        - type: slack
          url: https://hooks.slack.com/services/T000/B000/XXXX
        - type: email
          host: smtp.example.com
          port: 587           # default 587 with starttls, 465 with ssl, else 25
          security: starttls  # starttls, ssl or none (default starttls)
          username: alerts@example.com
          password_env: SEREIN_SMTP_PASSWORD   # the password is read from this variable
          sender: alerts@example.com
          to: [oncall@example.com]

Each channel is told when an alert opens, escalates or repeats after the cooldown, and once when
it is resolved (``status: resolved``, with ``resolved_at``).

A channel that fails is reported in the delivery result and logged; it never raises, because the
alert is already stored and must stay so.

An e-mail's headers are one line each: the subject, built from the alert (model and feature names,
the message), has its control characters and line breaks replaced by spaces, so data cannot end
the header and add another (header injection); addresses with such characters are refused in
``serein.yaml``.

>>> [type(c).__name__ for c in channels_from_config([{"type": "log"}])]
['LogChannel']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from serein.errors import UsageError

logger = logging.getLogger("serein.alerts")
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
# control characters (CR, LF among them) and Unicode line breaks
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
SUBJECT_LENGTH = 200


class LogChannel:
    """One log line per alert on the ``serein.alerts`` logger, at the alert's severity."""

    name = "log"

    def send(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        if alert.get("status") == "resolved":
            logger.info("alert #%s resolved: %s", alert["id"], summary(alert))
        else:
            logger.log(LEVELS.get(alert["severity"], logging.WARNING), "alert #%s [%s] %s (x%s)",
                       alert["id"], alert["severity"], summary(alert), alert["count"])
        return {"channel": self.name, "ok": True}


def summary(alert: Mapping[str, Any]) -> str:
    """One line naming the model (and feature), the rule and the message.

    >>> summary({"model": "credit", "feature": "income", "rule": "feature_drift", "message": "psi 0.3"})
    'credit/income feature_drift: psi 0.3'
    """
    where = f"{alert['model']}" + (f"/{alert['feature']}" if alert.get("feature") else "")
    return f"{where} {alert['rule']}: {alert['message']}"


def headline(alert: Mapping[str, Any]) -> str:
    """``[CRITICAL] credit/income feature_drift: ...`` or ``[RESOLVED] ...``."""
    tag = "RESOLVED" if alert.get("status") == "resolved" else str(alert["severity"]).upper()
    project = f"{alert['project']}: " if alert.get("project") else ""
    return f"[{tag}] {project}{summary(alert)}"


def header_line(text: str, limit: int = SUBJECT_LENGTH) -> str:
    """``text`` as one header line of at most ``limit`` characters: each run of control characters
    or line breaks becomes a space, so that data cannot end the header and start another.

    >>> header_line("[WARNING] credit/in\\r\\nBcc: x@example.com feature_drift: psi 0.3")
    '[WARNING] credit/in Bcc: x@example.com feature_drift: psi 0.3'
    """
    return CONTROL.sub(" ", text)[:limit]


class WebhookChannel:
    """POST the alert as JSON to ``url`` with a short timeout; any answer but 2xx is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.timeout = float(timeout)
        self.headers = dict(headers or {})

    def body(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        return dict(alert)

    def send(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = httpx.post(self.url, json=self.body(alert), timeout=self.timeout, headers=self.headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("alert #%s: webhook %s failed: %s", alert["id"], self.url, exc)
            return {"channel": self.name, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"channel": self.name, "ok": True, "status": response.status_code}


class SlackChannel(WebhookChannel):
    """A Slack-compatible incoming webhook: ``text`` (the headline, for notifications) and
    ``blocks`` (headline, message, and the alert's fields)."""

    name = "slack"

    def body(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        fields = [("severity", alert["severity"]), ("status", alert.get("status")), ("count", alert.get("count")),
                  ("alert", f"#{alert['id']}")]
        return {
            "text": headline(alert),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": headline(alert)[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": str(alert["message"])[:3000]}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
            ],
        }


class EmailChannel:
    """Send the alert as a plain-text email over SMTP (``starttls``, ``ssl`` or ``none``)."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, to: Sequence[str], security: str = "starttls",
                 username: str | None = None, password: str | None = None, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender, self.to = host, int(port), sender, list(to)
        self.security, self.username, self.password, self.timeout = security, username, password, float(timeout)

    def message(self, alert: Mapping[str, Any]) -> Any:
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"] = header_line(headline(alert))
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        lines = [str(alert["message"]), ""] + [f"{k}: {alert.get(k)}" for k in
                                              ("id", "model", "rule", "feature", "severity", "status", "count")]
        if alert.get("details"):
            lines += ["", "details:"] + [f"  {k}: {v}" for k, v in dict(alert["details"]).items()]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        import smtplib
        import ssl

        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:
            logger.warning("alert #%s: email via %s:%s failed: %s", alert["id"], self.host, self.port, exc)
            return {"channel": self.name, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"channel": self.name, "ok": True, "to": self.to}


Channel = LogChannel | WebhookChannel | EmailChannel
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def _http(where: str, entry: Mapping[str, Any]) -> tuple[str, float]:
    url = entry.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UsageError(f"{where}: a {entry['type']} needs an http(s) 'url', got {url!r}")
    return url, _positive(where, entry, "timeout", 5.0)


def _positive(where: str, entry: Mapping[str, Any], key: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UsageError(f"{where}: '{key}' must be a positive number, got {value!r}")
    return float(value)


def _address(value: Any) -> bool:
    """Whether ``value`` can be an address header's value: text with an ``@``, on one line."""
    return isinstance(value, str) and "@" in value and not CONTROL.search(value)


def _email(where: str, entry: Mapping[str, Any]) -> EmailChannel:
    import os

    unknown = sorted(set(entry) - {"type", "host", "port", "security", "username", "password_env", "sender", "to",
                                   "timeout"})
    if unknown:
        raise UsageError(f"{where}: unknown email setting(s) {', '.join(unknown)}",
                         hint="the password is never written in serein.yaml: name a variable with password_env")
    security = entry.get("security", "starttls")
    if security not in SECURITY_PORTS:
        raise UsageError(f"{where}: 'security' must be starttls, ssl or none, got {security!r}")
    host, sender, to = entry.get("host"), entry.get("sender"), entry.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(host, str) or not host:
        raise UsageError(f"{where}: an email channel needs the SMTP 'host'")
    if not _address(sender):
        raise UsageError(f"{where}: 'sender' must be an email address, got {sender!r}")
    if not isinstance(to, list) or not to or not all(_address(a) for a in to):
        raise UsageError(f"{where}: 'to' must be a list of email addresses, got {to!r}")
    port = entry.get("port", SECURITY_PORTS[security])
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise UsageError(f"{where}: 'port' must be a TCP port number, got {port!r}")
    password = None
    if entry.get("password_env"):
        password = os.environ.get(str(entry["password_env"]))
        if password is None:
            raise UsageError(f"{where}: the environment variable {entry['password_env']} (password_env) is not set")
    return EmailChannel(host, port, sender, to, security, entry.get("username"), password,
                        _positive(where, entry, "timeout", 10.0))


def channels_from_config(config: Sequence[Mapping[str, Any]] | None) -> list[Channel]:
    """Channel objects from ``alerts.channels``; a bad entry is a UsageError naming it."""
    out: list[Channel] = []
    for i, entry in enumerate(config or []):
        where = f"alerts.channels[{i}]"
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise UsageError(f"{where} must be a mapping with a 'type'", hint="e.g. {type: log} or {type: webhook, url: ...}")
        kind = entry["type"]
        if kind == "log":
            out.append(LogChannel())
        elif kind in ("webhook", "slack"):
            url, timeout = _http(where, entry)
            out.append((WebhookChannel if kind == "webhook" else SlackChannel)(url, timeout, entry.get("headers")))
        elif kind == "email":
            out.append(_email(where, entry))
        else:
            raise UsageError(f"{where}: unknown channel type {kind!r}", hint="use log, webhook, slack or email")
    return out
