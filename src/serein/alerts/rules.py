"""Alert rules: thresholds per metric with a ``warning`` and a ``critical`` level, the streaming
detectors' rules, and auto-resolve when a later monitor run finds things back to normal.

Rules come from ``alerts.rules`` in ``serein.yaml``; each names a ``metric`` and its levels::

    alerts:
      rules:
        - metric: psi                 # per feature: psi, js, wasserstein, unseen_rate, null_rate
          warning: 0.1
          critical: 0.25
          features: [income, age]     # default: every feature
        - metric: roc_auc             # a performance metric on labelled rows ...
          below: true                 # ... alerts when it falls below the levels
          warning: 0.75
          critical: 0.7
        - metric: rmse_drop           # METRIC_drop: how far it fell from the holdout's value
          warning: 0.05               # (an error metric: how far it rose)
        - metric: score_psi           # the model's outputs: score_psi, score_wasserstein,
          warning: 0.1                # prediction_psi, prediction_js
          critical: 0.2
        - metric: error_rate_change   # streaming: relative rise of the error level at a change
          warning: 0.1                # (defaults shown; these two rules always apply)
          critical: 0.5
        - metric: score_shift         # streaming: |shift| of the score level, in reference σ
          warning: 0.25
          critical: 0.5

An alert's rule is the rule's ``name`` (default: the metric); features get one alert each. A value
below ``warning`` (above, for ``below`` rules) is normal and resolves the rule's active alert. A
metric without a value in a run (too few rows, no labels) neither raises nor resolves.

The streaming rules follow the detectors of ``serein.monitor.detectors``: ``error_rate_change``
fires on a change of the error stream in the *degrading* direction only (ADWIN also reports a
falling error, which is good news) and resolves once a run with at least ``min_values`` (100) new
errors sees their mean closer to the level before the change than to the level after it;
``score_shift`` fires on a change of the score stream either way and resolves likewise.

The monitor's own verdicts resolve too: ``feature_drift`` for a feature judged and not drifted,
``prediction_drift`` when the outputs were judged (enough rows) and did not drift,
``performance_drop`` when labelled rows were enough and nothing dropped.

>>> [r.name for r in rules_from_config([{"metric": "psi", "warning": 0.1, "critical": 0.25}])]
['psi', 'error_rate_change', 'score_shift']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serein.alerts.alerts import Occurrence
from serein.errors import UsageError
from serein.monitor.performance import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from serein.monitor.monitor import MonitorResult
    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

FEATURE_METRICS = ("psi", "js", "wasserstein", "unseen_rate", "null_rate")
OUTPUT_METRICS = {"score_psi": ("scores", "psi"), "score_wasserstein": ("scores", "wasserstein"),
                  "prediction_psi": ("classes", "psi"), "prediction_js": ("classes", "js")}
PERFORMANCE_METRICS = ("accuracy", "roc_auc", "f1", "log_loss", "calibration_error", "rmse", "mae", "r2")
STREAM_METRICS = {"error_rate_change": "error", "score_shift": "score"}
STREAM_DEFAULTS = {"error_rate_change": (0.1, 0.5), "score_shift": (0.25, 0.5)}
MIN_VALUES = 100  # new stream values a run needs before it may resolve a streaming alert
KEYS = {"name", "metric", "warning", "critical", "features", "below"}


@dataclass(frozen=True)
class Rule:
    """One rule: alert ``name`` on ``metric`` at the ``warning`` / ``critical`` levels."""

    name: str
    metric: str
    warning: float | None
    critical: float | None
    below: bool = False
    features: tuple[str, ...] | None = None

    def severity(self, value: float) -> str | None:
        """``critical``, ``warning`` or None (normal) for ``value``.

        >>> Rule("psi", "psi", 0.1, 0.25).severity(0.3), Rule("auc", "roc_auc", 0.8, 0.7, below=True).severity(0.75)
        ('critical', 'warning')
        """
        def beyond(level: float | None) -> bool:
            return level is not None and (value < level if self.below else value >= level)

        return "critical" if beyond(self.critical) else "warning" if beyond(self.warning) else None

    def describe(self, value: float) -> str:
        level = self.critical if self.severity(value) == "critical" else self.warning
        return f"{self.metric} {value:.4g} {'<' if self.below else '>='} {level:.4g}"


def _number(where: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def _rule(i: int, entry: Any) -> Rule:
    where = f"alerts.rules[{i}]"
    if not isinstance(entry, Mapping) or "metric" not in entry:
        raise UsageError(f"{where} must be a mapping with a 'metric'", hint="e.g. {metric: psi, warning: 0.1, critical: 0.25}")
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=f"known keys are {', '.join(sorted(KEYS))}")
    metric = entry["metric"]
    known = (*FEATURE_METRICS, *OUTPUT_METRICS, *PERFORMANCE_METRICS, *(f"{m}_drop" for m in PERFORMANCE_METRICS),
             *STREAM_METRICS)
    if metric not in known:
        raise UsageError(f"{where}: unknown metric {metric!r}", hint=f"use one of {', '.join(known)}")
    warning, critical = _number(where, "warning", entry.get("warning")), _number(where, "critical", entry.get("critical"))
    if warning is None and critical is None:
        raise UsageError(f"{where}: give a 'warning' and/or a 'critical' level for {metric}")
    below = entry.get("below", False)
    if not isinstance(below, bool):
        raise UsageError(f"{where}: 'below' must be true or false, got {below!r}")
    if warning is not None and critical is not None and (critical > warning if below else critical < warning):
        raise UsageError(f"{where}: 'critical' ({critical:g}) must be {'below' if below else 'above'} "
                         f"'warning' ({warning:g})", hint="a critical level is further from normal than the warning")
    features = entry.get("features")
    if features is not None:
        if metric not in FEATURE_METRICS:
            raise UsageError(f"{where}: 'features' applies to the per-feature metrics ({', '.join(FEATURE_METRICS)}), "
                             f"not {metric}")
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise UsageError(f"{where}: 'features' must be a list of feature names, got {features!r}")
        features = tuple(features)
    name = entry.get("name", metric)
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    return Rule(name, metric, warning, critical, below, features)


def rules_from_config(config: Sequence[Any] | None) -> list[Rule]:
    """The rules of ``alerts.rules``, plus the streaming rules at their defaults when not given;
    a bad entry is a UsageError naming it."""
    if config is not None and not isinstance(config, list):
        raise UsageError("alerts.rules must be a list of rules", hint="e.g. [{metric: psi, warning: 0.1, critical: 0.25}]")
    rules = [_rule(i, entry) for i, entry in enumerate(config or [])]
    names = [r.name for r in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UsageError(f"alerts.rules: more than one rule named {', '.join(duplicated)}",
                         hint="give the rules on the same metric distinct 'name's")
    for metric, (warning, critical) in STREAM_DEFAULTS.items():
        if not any(r.metric == metric for r in rules):
            rules.append(Rule(metric, metric, warning, critical))
    return rules


# -- values of a monitor run ----------------------------------------------------------------------
def _metric_values(rule: Rule, result: MonitorResult) -> dict[str, float | None]:
    """The rule's values in ``result`` by feature ("" for model-level metrics)."""
    if rule.metric in FEATURE_METRICS:
        names = rule.features or tuple(result.features)
        return {name: result.features.get(name, {}).get(rule.metric) for name in names}
    if rule.metric in OUTPUT_METRICS:
        part, key = OUTPUT_METRICS[rule.metric]
        return {"": ((result.prediction_drift or {}).get(part) or {}).get(key)}
    perf = result.performance or {}
    enough = perf.get("n_labelled", 0) >= perf.get("min_labels", 0)
    name = rule.metric.removesuffix("_drop")
    row = (perf.get("metrics") or {}).get(name) if enough else None
    if row is None:
        return {"": None}
    if rule.metric.endswith("_drop"):  # how far performance fell: a score going down, an error going up
        if row.get("change") is None:
            return {"": None}
        return {"": -float(row["change"]) if name in HIGHER_IS_BETTER else float(row["change"])}
    return {"": row.get("current")}


def _threshold_alerts(ws: Workspace, rule: Rule, result: MonitorResult) -> tuple[list[Occurrence], list[dict]]:
    """The rule's alerts to raise in ``result`` (one per feature beyond a level) and the alerts it
    resolved (its features back within the levels)."""
    raised, normal = [], []
    for feature, value in _metric_values(rule, result).items():
        if value is None:
            continue
        severity = rule.severity(float(value))
        where = f"{feature} " if feature else ""
        if severity:
            raised.append(Occurrence(
                rule.name, severity, f"{where}{rule.describe(float(value))} in v{result.version} traffic",
                feature=feature, details={rule.metric: value, "warning": rule.warning, "critical": rule.critical},
            ))
        else:
            normal.append((rule.name, feature, f"{where}{rule.metric} {float(value):.4g}"))
    return raised, [done for done in ws.alerts.auto_resolve_all(result.model, normal) if done is not None]


def _stream_alerts(ws: Workspace, rule: Rule, result: MonitorResult, streams: Mapping[str, Any]
                   ) -> tuple[list[Occurrence], list[dict]]:
    stream = streams.get(STREAM_METRICS[rule.metric])
    if not stream:
        return [], []
    raised = []
    if rule.metric == "error_rate_change":
        changes = [c for c in stream["changes"] if c["direction"] == "up"]
        sizes = [(c["after"] - c["before"]) / c["before"] if c["before"] > 0 else float("inf") for c in changes]
        what = "error level rose"
    else:
        changes = list(stream["changes"])
        scale = stream.get("reference_std") or None
        sizes = [abs(c["after"] - c["before"]) / scale if scale else float("inf") for c in changes]
        what = "score level moved"
    if changes:  # the largest change of the run speaks for it
        size, change = max(zip(sizes, changes, strict=True), key=lambda sc: sc[0])
        severity = rule.severity(size)
        if severity:
            raised.append(Occurrence(
                rule.name, severity,
                f"{what} {change['before']:.4g} -> {change['after']:.4g} ({change['detector']}, value "
                f"#{change['index']}) in v{result.version} traffic", details={**change, "size": size},
            ))
    if raised or stream["values"] < MIN_VALUES:
        return raised, []
    alert = ws.alerts.active(result.model).get((rule.name, ""))
    details = (alert or {}).get("details") or {}
    if alert is None or "before" not in details:
        return [], []
    mean = stream["mean"]
    if abs(mean - details["before"]) < abs(mean - details["after"]):
        done = ws.alerts.auto_resolve(result.model, rule.name, "", f"level {mean:.4g} over {stream['values']} new values "
                                      f"(before the change {details['before']:.4g})")
        return [], [done] if done else []
    return [], []


def _verdict_resolves(ws: Workspace, result: MonitorResult) -> list[dict[str, Any]]:
    """Resolve the monitor's own alerts where this run found the (rule, feature) normal."""
    normal: list[tuple[str, str, str]] = [
        ("feature_drift", name, f"{name} {f.get('method')} {f.get('score', 0) or 0:.4g} within threshold")
        for name, f in result.features.items() if f["status"] not in ("insufficient", "skipped") and not f["drifted"]
    ]
    pred = result.prediction_drift
    if pred is not None and not pred["drifted"] and all(
            p["status"] not in ("insufficient", "skipped") for p in pred.values() if isinstance(p, dict)):
        normal.append(("prediction_drift", "", "predictions within thresholds"))
    perf = result.performance
    if perf and perf["n_labelled"] >= perf["min_labels"] and not perf["dropped"]:
        normal.append(("performance_drop", "", f"no metric dropped on {perf['n_labelled']} labelled rows"))
    return [r for r in ws.alerts.auto_resolve_all(result.model, normal) if r is not None]


def rule_alerts(ws: Workspace, loaded: LoadedModel, result: MonitorResult, streaming: bool = True) -> list[Occurrence]:
    """After a monitor run: feed the streaming detectors (when ``streaming``, i.e. on logged
    traffic) and resolve what is back to normal, updating ``result``'s ``detectors`` and
    ``resolved``; returns the rules' alerts to raise (see :func:`raise_run_alerts`). Resolving
    first is safe: a run finds each (rule, feature) either normal or not, never both."""
    rules = rules_from_config((ws.config.get("alerts") or {}).get("rules"))
    if streaming:
        from serein.monitor.detectors import run_detectors

        result.detectors = run_detectors(ws, loaded)
    raised: list[Occurrence] = []
    resolved = _verdict_resolves(ws, result)
    for rule in rules:
        if rule.metric in STREAM_METRICS:
            more, done = _stream_alerts(ws, rule, result, result.detectors or {})
        else:
            more, done = _threshold_alerts(ws, rule, result)
        raised += more
        resolved += done
    result.resolved = [{k: a[k] for k in ("id", "rule", "feature", "message", "resolved_at")} for a in resolved]
    return raised


def raise_run_alerts(ws: Workspace, result: MonitorResult, occurrences: Sequence[Occurrence]) -> None:
    """Store a run's alerts in one transaction (:meth:`AlertManager.raise_alerts`) and add their
    summaries to ``result.alerts``."""
    raised = ws.alerts.raise_alerts(result.model, occurrences)
    result.alerts += [{k: a[k] for k in ("id", "rule", "feature", "severity", "count", "new", "message")} for a in raised]


def apply_rules(ws: Workspace, loaded: LoadedModel, result: MonitorResult, streaming: bool = True) -> None:
    """:func:`rule_alerts`, then its alerts raised: updates ``result``'s ``detectors``,
    ``alerts`` (appended) and ``resolved``."""
    raise_run_alerts(ws, result, rule_alerts(ws, loaded, result, streaming))
