"""Alerts: stored in the operational store, deduplicated, and sent to the configured channels.

There is at most one *active* (``open`` or ``acknowledged``) alert per (model, rule, feature): a
repeat updates it (count, severity, message, details, updated_at) instead of adding a row, so a
drift that persists over 48 hourly monitor runs is one alert with ``count: 48``, not 48 alerts.
Channels are told when the alert is new, when its severity rises, and otherwise at most once per
``alerts.cooldown`` (default ``1h``). The alert is stored before any channel runs, so a failing
webhook never loses it. Resolving an alert (by hand, or automatically when a later monitor run
finds its model, rule and feature back to normal: ``auto_resolve``) stores ``resolved_at`` and
tells the channels once.

>>> import tempfile
>>> from serein.workspace import Workspace
>>> ws = Workspace.init(tempfile.mkdtemp())
>>> a = ws.alerts.raise_alert("credit", "feature_drift", "warning", "psi 0.31", feature="income")
>>> b = ws.alerts.raise_alert("credit", "feature_drift", "critical", "psi 0.52", feature="income")
>>> (a["id"] == b["id"], b["count"], b["severity"], len(ws.alerts.list(status="open")))
(True, 2, 'critical', 1)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from serein.alerts.channels import channels_from_config
from serein.errors import ConflictError, NotFoundError, UsageError
from serein.monitor.window import parse_duration
from serein.store import alerts as alerts_table
from serein.store import dumps, loads

if TYPE_CHECKING:
    from serein.workspace import Workspace

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("open", "acknowledged", "resolved")
ACTIVE = ("open", "acknowledged")


@dataclass(frozen=True)
class Occurrence:
    """One alert to raise for a model: its rule, severity and message, the feature it concerns
    ("" for the model as a whole) and its details."""

    rule: str
    severity: str
    message: str
    feature: str = ""
    details: Mapping[str, Any] | None = None


def _row(mapping: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(mapping)
    out["details"] = loads(out["details"])
    return out


def _write_lock(conn: Any) -> None:
    """Take the store's write lock at the start of ``conn``'s transaction, so that two processes
    raising the same alert at once (two monitor runs, the agent and a CLI run) cannot both find no
    active alert and both open one: the second waits, then finds the first's. SQLite reads outside
    a write transaction (Python's driver begins one only at the first write): a write that changes
    no row takes the lock first. PostgreSQL: a lock on the alerts table that excludes itself."""
    t = alerts_table
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.execute(update(t).where(t.c.id == -1).values(count=t.c.count))
    elif dialect == "postgresql":
        conn.exec_driver_sql("LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE")


class AlertManager:
    """Raise, list, acknowledge and resolve the alerts of a workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        config = ws.config.get("alerts") or {}
        self.channels = channels_from_config(config.get("channels"))
        self.cooldown = parse_duration(config.get("cooldown", "1h"), "alerts.cooldown")

    @property
    def _engine(self) -> Any:
        return self.ws.store.engine

    def raise_alert(self, model: str, rule: str, severity: str, message: str, feature: str = "",
                    details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Store the alert (new, or an update of the active one with the same model, rule and
        feature) and notify the channels when due. Returns the stored alert with ``new``,
        ``notified`` and ``deliveries`` (one result per channel)."""
        return self.raise_alerts(model, [Occurrence(rule, severity, message, feature, details)])[0]

    def raise_alerts(self, model: str, occurrences: Sequence[Occurrence]) -> list[dict[str, Any]]:
        """Store several alerts of ``model`` in one transaction (a monitor run's: one commit, not
        one per alert), each exactly as :meth:`raise_alert` would in turn — an occurrence whose
        (rule, feature) an earlier one of the batch opened updates it — then notify the channels
        of those due, once all are committed. Returns them as :meth:`raise_alert` does, in order."""
        for occurrence in occurrences:  # nothing is stored when any is malformed
            if occurrence.severity not in SEVERITIES:
                raise UsageError(f"unknown alert severity {occurrence.severity!r}", hint=f"use one of {', '.join(SEVERITIES)}")
            if not model or not occurrence.rule:
                raise UsageError("an alert needs a model and a rule name")
        if not occurrences:
            return []
        now = time.time()
        with self._engine.begin() as conn:
            _write_lock(conn)
            stored = [self._store(conn, model, occurrence, now) for occurrence in occurrences]
        return [{**alert, "new": new, "notified": due, "deliveries": self._notify(alert) if due else []}
                for alert, new, due in stored]

    def _store(self, conn: Any, model: str, occurrence: Occurrence, now: float) -> tuple[dict[str, Any], bool, bool]:
        """Insert the alert or update the active one of its (model, rule, feature) on ``conn``:
        ``(stored alert, new, due for notification)``."""
        t = alerts_table
        feature = occurrence.feature or ""
        key = (t.c.model == model) & (t.c.rule == occurrence.rule) & (t.c.feature == feature)
        active = conn.execute(
            select(t).where(key, t.c.status.in_(ACTIVE)).order_by(t.c.id.desc()).limit(1)
        ).first()
        values = {"severity": occurrence.severity, "message": occurrence.message,
                  "details": dumps(dict(occurrence.details or {})), "updated_at": now}
        if active is None:
            alert_id = conn.execute(insert(t).values(
                model=model, rule=occurrence.rule, feature=feature, status="open", count=1, created_at=now, **values,
            )).inserted_primary_key[0]
            due = True
        else:
            alert_id = active.id
            conn.execute(update(t).where(t.c.id == alert_id).values(count=t.c.count + 1, **values))
            escalated = SEVERITIES.index(occurrence.severity) > SEVERITIES.index(active.severity)
            due = escalated or active.notified_at is None or now - active.notified_at >= self.cooldown
        if due:
            conn.execute(update(t).where(t.c.id == alert_id).values(notified_at=now))
        return _row(conn.execute(select(t).where(t.c.id == alert_id)).one()._mapping), active is None, due

    def _notify(self, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
        payload = {**alert, "project": self.ws.config.get("project")}
        return [channel.send(payload) for channel in self.channels]

    def list(self, status: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first, optionally of one ``status`` and/or ``model``."""
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown alert status {status!r}", hint=f"use one of {', '.join(STATUSES)}")
        query = select(alerts_table).order_by(alerts_table.c.id.desc())
        if status is not None:
            query = query.where(alerts_table.c.status == status)
        if model is not None:
            query = query.where(alerts_table.c.model == model)
        with self._engine.connect() as conn:
            return [_row(r._mapping) for r in conn.execute(query)]

    def get(self, alert_id: int) -> dict[str, Any]:
        """One alert by id; NotFoundError if there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(select(alerts_table).where(alerts_table.c.id == int(alert_id))).first()
        if row is None:
            raise NotFoundError(f"no alert #{alert_id}", hint="see `serein alerts list`")
        return _row(row._mapping)

    def _move(self, alert_id: int, status: str, message: str | None = None) -> dict[str, Any]:
        alert = self.get(alert_id)
        if alert["status"] == "resolved":
            raise ConflictError(f"alert #{alert_id} is already resolved",
                                hint="a new occurrence opens a new alert")
        now = time.time()
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "resolved":
            values["resolved_at"] = now
        if message:
            values["message"] = message
        with self._engine.begin() as conn:
            conn.execute(update(alerts_table).where(alerts_table.c.id == alert["id"]).values(**values))
        moved = self.get(alert_id)
        if status == "resolved":
            moved["deliveries"] = self._notify(moved)
        return moved

    def ack(self, alert_id: int) -> dict[str, Any]:
        """Mark an alert as seen: it stays active (repeats update it) but is no longer ``open``."""
        return self._move(alert_id, "acknowledged")

    def resolve(self, alert_id: int) -> dict[str, Any]:
        """Close an alert (channels are told once); the next occurrence of its rule opens a new one."""
        return self._move(alert_id, "resolved")

    def auto_resolve(self, model: str, rule: str, feature: str = "", reason: str = "") -> dict[str, Any] | None:
        """Resolve the active alert of (model, rule, feature), if any, because a monitor run found
        it back to normal; ``reason`` becomes its message. Returns the resolved alert or None."""
        return self.auto_resolve_all(model, [(rule, feature, reason)])[0]

    def auto_resolve_all(self, model: str, normal: Sequence[tuple[str, str, str]]) -> list[dict[str, Any] | None]:
        """:meth:`auto_resolve` for each (rule, feature, reason) of ``normal``, with one query for
        the model's active alerts (a run judges every feature normal or not: most have none).
        Returns the resolved alert or None for each, in order."""
        if not normal:
            return []
        t = alerts_table
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.id, t.c.rule, t.c.feature).where(
                t.c.model == model, t.c.status.in_(ACTIVE)).order_by(t.c.id)).all()
        active = {(row.rule, row.feature): row.id for row in rows}  # the newest per key, as before
        resolved: list[dict[str, Any] | None] = []
        for rule, feature, reason in normal:
            alert_id = active.pop((rule, feature or ""), None)
            resolved.append(None if alert_id is None else
                            self._move(alert_id, "resolved", message=f"back to normal: {reason}" if reason else None))
        return resolved

    def active(self, model: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The active alerts of ``model`` by (rule, feature)."""
        rows = [a for a in self.list(model=model) if a["status"] in ACTIVE]
        return {(a["rule"], a["feature"]): a for a in reversed(rows)}
