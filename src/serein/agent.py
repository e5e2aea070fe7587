"""The agent: monitor every registered model on its new traffic and, when a model has a retraining
policy, retrain it when the policy says so — at intervals, until stopped.

Settings (``serein.yaml``)::

    agent:
      interval: 5m                 # how often each model is monitored (default 5m)
    models:
      credit-default:
        monitor_every: 1h          # this model's own interval (optional)
        retrain:
          on: [schedule, drift, performance_drop]
          every: 7d                # for ``schedule``: retrain when the last retrain is this old
          min_new_labels: 500      # labelled rows not yet used for training, needed by every trigger
          cooldown: 1d             # at least this long between two retrains

Triggers: ``schedule`` (``every`` since the agent's last retrain of the model, or since the agent
first saw it), ``drift`` (the run found drifted features, drifted predictions, or a score shift),
``performance_drop`` (a metric dropped, or the error level rose). Each model's step runs
:func:`serein.monitor.monitor.run_monitor` on traffic since the last run (the first run: the
config's ``monitor.window``) and :func:`serein.retrain.retrain.retrain`; one failing model is
logged and never stops the others. What each model last did (time, status, error, last retrain)
is kept in the operational store (``agent.<model>``), so a restarted agent does not redo work
that is not due. SIGTERM and Ctrl-C stop the loop after the step under way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from serein.errors import SereinError, UsageError
from serein.monitor.window import parse_duration

if TYPE_CHECKING:
    from serein.workspace import Workspace

logger = logging.getLogger("serein.agent")
TRIGGERS = ("schedule", "drift", "performance_drop")
DEFAULT_INTERVAL = "5m"
POLICY_KEYS = {"on", "every", "min_new_labels", "cooldown"}


@dataclass(frozen=True)
class RetrainPolicy:
    """When the agent retrains a model (see the module's docstring)."""

    on: tuple[str, ...]
    every: float | None = None
    min_new_labels: int = 0
    cooldown: float = 0.0

    @classmethod
    def from_config(cls, model: str, config: Any) -> RetrainPolicy | None:
        """The policy of ``models.<model>.retrain`` (None when absent); bad values are named."""
        if config is None:
            return None
        where = f"models.{model}.retrain"
        if not isinstance(config, Mapping):
            raise UsageError(f"{where} must be a mapping", hint="e.g. {on: [drift], min_new_labels: 500}")
        unknown = sorted(set(config) - POLICY_KEYS)
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=f"known keys are {', '.join(sorted(POLICY_KEYS))}")
        on = config.get("on", [])
        on = [on] if isinstance(on, str) else on
        if not isinstance(on, list) or not on or any(t not in TRIGGERS for t in on):
            raise UsageError(f"{where}.on must list triggers among {', '.join(TRIGGERS)}, got {config.get('on')!r}")
        if "schedule" in on and "every" not in config:
            raise UsageError(f"{where}: the schedule trigger needs 'every' (e.g. every: 7d)")
        labels = config.get("min_new_labels", 0)
        if isinstance(labels, bool) or not isinstance(labels, int) or labels < 0:
            raise UsageError(f"{where}.min_new_labels must be a whole number >= 0, got {labels!r}")
        every = parse_duration(config["every"], f"{where}.every") if "every" in config else None
        cooldown = parse_duration(config["cooldown"], f"{where}.cooldown") if "cooldown" in config else 0.0
        return cls(tuple(on), every, labels, cooldown)


def _state_key(model: str) -> str:
    return f"agent.{model}"


def _model_settings(ws: Workspace, model: str) -> Mapping[str, Any]:
    settings = (ws.config.get("models") or {}).get(model) or {}
    if not isinstance(settings, Mapping):
        raise UsageError(f"models.{model} in serein.yaml must be a mapping")
    return settings


def interval_of(ws: Workspace, model: str, default: str | None = None) -> float:
    """Seconds between two monitor runs of ``model``."""
    settings = _model_settings(ws, model)
    if "monitor_every" in settings:
        return parse_duration(settings["monitor_every"], f"models.{model}.monitor_every")
    text = default or (ws.config.get("agent") or {}).get("interval", DEFAULT_INTERVAL)
    return parse_duration(text, "agent.interval")


def _triggers(policy: RetrainPolicy, result: Mapping[str, Any] | None, state: Mapping[str, Any], now: float) -> list[str]:
    fired = []
    if "schedule" in policy.on and policy.every is not None:
        since = state.get("last_retrain") or state.get("first_seen") or now
        if now - since >= policy.every:
            fired.append("schedule")
    rules = {a["rule"] for a in (result or {}).get("alerts", [])}
    if "drift" in policy.on and result and (result["drifted"] or rules & {"prediction_drift", "score_shift"}):
        fired.append("drift")
    if "performance_drop" in policy.on and rules & {"performance_drop", "error_rate_change"}:
        fired.append("performance_drop")
    return fired


def step(ws: Workspace, model: str, now: float | None = None) -> dict[str, Any]:
    """One agent step for ``model``: monitor its traffic since the last step, then retrain when its
    policy says so. Returns (and stores) what happened; errors are reported, not raised."""
    from serein.monitor.monitor import run_monitor
    from serein.retrain.retrain import pending_feedback, retrain

    now = time.time() if now is None else now
    state = dict(ws.store.get_state(_state_key(model)) or {})
    state.setdefault("first_seen", now)
    record: dict[str, Any] = {"model": model, "ran_at": now, "monitor": None, "retrain": None, "error": None}
    result = None
    try:
        policy = RetrainPolicy.from_config(model, _model_settings(ws, model).get("retrain"))
        since = datetime.fromtimestamp(state["last_monitor"], timezone.utc).isoformat() if state.get("last_monitor") else None
        try:
            result = run_monitor(ws, model, since=since).to_dict()
            record["monitor"] = {"status": result["status"], "n_rows": result["n_rows"], "id": result["id"],
                                 "alerts": len(result["alerts"]), "resolved": len(result["resolved"])}
        except UsageError as exc:
            if not str(exc.message).startswith("no logged predictions"):
                raise
            record["monitor"] = {"status": "no new traffic"}
        state["last_monitor"] = now
        if policy is not None:
            fired = _triggers(policy, result, state, now)
            labels = pending_feedback(ws, model) if fired else 0
            cooling = state.get("last_retrain") is not None and now - state["last_retrain"] < policy.cooldown
            if fired and labels >= policy.min_new_labels and not cooling:
                outcome = retrain(ws, model).to_dict()
                state["last_retrain"] = now
                record["retrain"] = {"triggers": fired, "new_labels": labels, **{k: outcome[k] for k in (
                    "new_version", "promoted", "champion_after", "reason")}}
            elif fired:
                why = "cooldown" if cooling else f"{labels} new labels < min_new_labels {policy.min_new_labels}"
                record["retrain"] = {"triggers": fired, "skipped": why}
    except SereinError as exc:
        record["error"] = exc.message + (f" ({exc.hint})" if exc.hint else "")
    except Exception as exc:  # one model's failure must not stop the others
        logger.exception("agent: %s failed", model)
        record["error"] = f"{type(exc).__name__}: {exc}"
    state["last_run"] = record
    ws.store.set_state(_state_key(model), state)
    return record


def models(ws: Workspace) -> list[str]:
    """Registered models that have a champion."""
    return [m["name"] for m in ws.registry.list_models() if m["champion"] is not None]


def run(ws: Workspace, once: bool = False, interval: str | None = None, stop: threading.Event | None = None,
        report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Step every model when due (``once``: every model now, one pass), until ``stop`` is set.
    Returns the records of the steps taken (``once``) or of the last pass."""
    if interval is not None:
        parse_duration(interval, "--interval")
    stop = stop or threading.Event()
    say = report or (lambda _r: None)
    records: list[dict[str, Any]] = []
    while not stop.is_set():
        records = []
        now = time.time()
        wake = now + parse_duration(interval or (ws.config.get("agent") or {}).get("interval", DEFAULT_INTERVAL), "agent.interval")
        for model in models(ws):
            if stop.is_set():
                break
            every = interval_of(ws, model, interval)
            last = (ws.store.get_state(_state_key(model)) or {}).get("last_monitor")
            if once or last is None or now - last >= every:
                record = step(ws, model)
                records.append(record)
                say(record)
                wake = min(wake, time.time() + every)
            else:
                wake = min(wake, last + every)
        if once:
            break
        stop.wait(max(1.0, wake - time.time()))
    return records
