"""One monitoring run: a window of a model's traffic (or a given batch) against its reference
profile, stored as a MonitorResult, with alerts raised and optionally an HTML report.

The window is the champion version's logged predictions, each joined with its feedback label
where one arrived (late labels count: the join happens at monitoring time), read straight from the
store with only that version's rows in the window selected:

- *sliding* (default): from ``since`` (a duration ago or an ISO time; default the config's
  ``monitor.window``) up to ``until`` (default now), or the ``last`` N rows;
- *cumulative* (``cumulative=True``): all of the version's traffic up to ``until``;

or a batch (``current``: a dataset ref or a file) that the champion scores. Nothing reads the
training data again: the profile holds all that is needed.

Every window is assessed the same way (``assess``): feature drift (distances, or corrected tests
on small windows), prediction and label drift, realized performance with intervals on labelled
rows, the CBPE estimate from calibrated scores (classifiers; beside the realized values where
labels arrived), and the contract's checks (data quality). With ``chunk`` (``hourly``,
``daily``, a duration or N rows) the window is also cut into chunks, each assessed on its own —
the series behind the report's charts. ``multivariate=True`` adds the domain classifier
(``serein.monitor.multivariate``) on the whole window.

Alerts (through ``ws.alerts``, deduplicated there; a run stores all of its alerts in one transaction):

- ``feature_drift`` per drifted feature: ``warning``, or ``critical`` when at least
  ``monitor.critical_share`` (default 0.3) of the features drifted at once;
- ``prediction_drift`` when the output distribution moved: ``critical``;
- ``performance_drop`` when a metric on labelled rows fell beyond its tolerance: ``critical``;
- ``estimated_performance_drop`` when even the top of the CBPE interval of accuracy, F1 or ROC AUC
  is below the holdout value minus ``monitor.performance.tolerance``: ``warning`` (labels will tell);
- ``label_drift`` when the labels that arrived are distributed unlike the holdout's: ``warning``;
- ``data_quality`` per contract check whose violation rate is breached (``monitor.quality``):
  ``warning``;
- ``multivariate_drift`` when the domain classifier separates window and reference: ``warning``.

Each of the last four is resolved by the next run that finds its (rule, feature) normal.

Settings (``serein.yaml``, all optional)::

    monitor:
      window: 24h
      critical_share: 0.3
      thresholds: {psi: 0.2, js: 0.1, wasserstein: 0.1, min_count: 50, ...}
      performance: {tolerance: 0.05, tolerance_relative: 0.1, min_labels: 100, z: 2.33}
      quality: {max_rate: 0.01, min_count: 5}
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from serein.errors import SereinError, UsageError
from serein.monitor.drift import (
    Thresholds,
    features_drift,
    label_drift,
    prediction_drift,
)
from serein.monitor.performance import (
    HIGHER_IS_BETTER,
    MIN_LABELS,
    TOLERANCE,
    Labelled,
    compare_performance,
    intervals,
)
from serein.monitor.window import parse_chunk, parse_since

if TYPE_CHECKING:
    import pandas as pd

    from serein.alerts.alerts import Occurrence
    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

CRITICAL_SHARE = 0.3
PERFORMANCE_KEYS = ("tolerance", "tolerance_relative", "min_labels", "z")
Progress = Callable[[str, int, int], None]  # (what, done, total)


def _pick(values: Sequence[Any] | pa.ChunkedArray, rows: np.ndarray) -> Sequence[Any] | pa.ChunkedArray:
    """``values`` at positions ``rows``, of the same kind (list, numpy array or Arrow column)."""
    if isinstance(values, pa.ChunkedArray):
        return values.take(pa.array(rows))
    return values[rows] if isinstance(values, np.ndarray) else [values[i] for i in rows]


@dataclass
class Window:
    """The rows under test: features, the model's outputs, and labels where known. Logged
    traffic comes as a pandas frame and lists; a batch as an Arrow table, numpy arrays and its
    label column (a million rows never become Python objects)."""

    X: pd.DataFrame | pa.Table
    predictions: Sequence[Any]
    scores: Sequence[Any] | None
    labels: list[Any] | pa.ChunkedArray | None  # a null (None) where no label arrived
    source: str
    start: float | None = None
    end: float | None = None
    ts: np.ndarray | None = None  # each row's log time (None for a batch)
    proba: np.ndarray | None = None  # class probabilities, columns following the model's classes

    def take(self, rows: np.ndarray) -> Window:
        """The sub-window of the rows at positions ``rows``."""
        return Window(
            X=self.X.take(rows) if isinstance(self.X, pa.Table) else self.X.iloc[rows].reset_index(drop=True),
            predictions=_pick(self.predictions, rows),
            scores=None if self.scores is None else _pick(self.scores, rows),
            labels=None if self.labels is None else _pick(self.labels, rows), source=self.source,
            ts=None if self.ts is None else self.ts[rows], proba=None if self.proba is None else self.proba[rows],
        )

    def frame(self) -> pd.DataFrame:
        """The features as a pandas frame (for the domain classifier)."""
        return self.X.to_pandas() if isinstance(self.X, pa.Table) else self.X


@dataclass
class MonitorResult:
    """What a run found; ``to_dict()`` is what is stored and what ``--json`` prints."""

    model: str
    version: int
    n_rows: int
    window: dict[str, Any]
    features: dict[str, dict[str, Any]]
    drifted: list[str]
    prediction_drift: dict[str, Any] | None
    performance: dict[str, Any] | None
    thresholds: dict[str, Any]
    label_drift: dict[str, Any] | None = None
    estimated_performance: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    multivariate: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    detectors: dict[str, Any] | None = None  # streaming detectors on new traffic (serein.monitor.detectors)
    resolved: list[dict[str, Any]] = field(default_factory=list)  # alerts this run found back to normal
    report: str | None = None
    id: int | None = None

    @property
    def status(self) -> str:
        """``critical`` if any critical alert was raised, ``drift`` if anything drifted, else ``ok``."""
        if any(a["severity"] == "critical" for a in self.alerts):
            return "critical"
        return "drift" if self.alerts else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


class ReportNotWritten(SereinError):
    """The run's HTML report could not be written (no permission, a full disk) after the run was
    stored and its alerts raised: the run is kept as ``result``, which the CLI still shows."""

    def __init__(self, path: Path, error: OSError, result: MonitorResult) -> None:
        super().__init__(f"--report {path} could not be written: {error.strerror or error}; the run is stored "
                         f"(#{result.id}) and its {len(result.alerts)} alert(s) raised, without a report",
                         hint="give --report a file in a folder you can write to (or free disk space there) "
                              "and run again for the report")
        self.result = result


def _label_as_class(value: Any, kind: type) -> Any:
    """One label as ``kind`` (int or bool) when it is the same number in another type."""
    if kind is int and isinstance(value, (bool, float)) and float(value).is_integer():
        return int(value)
    if kind is bool and isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


def _labels_as_classes(labels: list[Any] | pa.ChunkedArray | None,
                       classes: Sequence[Any] | None) -> list[Any] | pa.ChunkedArray | None:
    """``labels`` in the type of the model's classes where they are the same numbers in another:
    whole floats as integers (pandas writes an integer label column with gaps as floats, and JSON
    feedback may say 1.0), 0/1 as booleans and booleans as 0/1 — the class, not a miss and an
    unseen label (labels are compared with the classes as text). A column holding any other value
    is left as it is."""
    if labels is None or not classes:
        return labels
    if all(isinstance(c, bool) for c in classes):
        kind: type = bool
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        kind = int
    else:
        return labels
    if isinstance(labels, list):
        return [_label_as_class(v, kind) for v in labels]
    numbers = pa.types.is_floating(labels.type) or (pa.types.is_integer(labels.type) and kind is bool)
    if not (numbers or (pa.types.is_boolean(labels.type) and kind is int)):
        return labels
    from serein.data.arrow_arrays import arrow_floats

    values = arrow_floats(labels)
    missing = np.isnan(values)
    known = values[~missing]
    if kind is bool:
        if not np.isin(known, (0.0, 1.0)).all():
            return labels
        return pa.chunked_array([pa.array(np.where(missing, 0, values) != 0, mask=missing)])
    if not (np.isfinite(known) & (known == np.trunc(known))).all():
        return labels
    return pa.chunked_array([pa.array(np.where(missing, 0, values).astype(np.int64), mask=missing)])


def _window_from_log(ws: Workspace, loaded: LoadedModel, since: str | None, until: str | None,
                     last: int | None, cumulative: bool) -> Window:
    import pandas as pd

    start = None
    if last is None and not cumulative:
        start = parse_since(since) if since else parse_since(str(ws.config["monitor"]["window"]), what="monitor.window")
    end = parse_since(until, what="--until") if until else None
    rows = ws.store.prediction_rows(loaded.name, since=start, until=end, last=last, version=loaded.version)
    if last is not None:
        what = f"the last {last} predictions"
    elif cumulative:
        what = "all its traffic"
    else:
        what = f"the window since {since or ws.config['monitor']['window']}"
    what += f" until {until}" if until else ""
    if not rows:
        raise UsageError(
            f"no logged predictions of {loaded.name} v{loaded.version} in {what}",
            hint="widen the window (--since 7d, --last N, --cumulative), check the service is serving the model, "
                 "or monitor a batch with --current DATASET|FILE",
        )
    X = pd.DataFrame.from_records([r["inputs"] for r in rows]).reindex(columns=loaded.features)
    scores = [r["score"] for r in rows]
    labels = _labels_as_classes([r["label"] for r in rows], loaded.classes)
    proba = [r["probabilities"] for r in rows]
    width = len(loaded.classes or [])
    complete = width > 1 and all(p is not None and len(p) == width for p in proba)
    return Window(
        X=X, predictions=[r["prediction"] for r in rows],
        scores=None if all(s is None for s in scores) else scores,
        labels=None if all(lab is None for lab in labels) else labels,
        source=f"log: {what}", start=rows[0]["ts"], end=rows[-1]["ts"],
        ts=np.array([r["ts"] for r in rows], dtype=float), proba=np.array(proba, dtype=float) if complete else None,
    )


def _window_from_batch(ws: Workspace, loaded: LoadedModel, current: str, progress: Progress | None = None) -> Window:
    from serein.batch import plan_path
    from serein.monitor.batch_window import carried_outputs, output_columns, read_batch, score_batch, scores_of

    text = [name for name, col in loaded.contract.columns.items() if col.type == "string" and name in loaded.features]
    if loaded.classes and all(isinstance(c, str) for c in loaded.classes):
        text += [loaded.target, "prediction"]  # labels and carried predictions such as "01" are classes, not 1
    table, source = read_batch(ws, current, loaded.features, optional=[loaded.target, *output_columns(loaded)], text=text)
    X = table.select(loaded.features)
    carried = carried_outputs(table, loaded)
    if carried is None:
        predictions, proba = score_batch(loaded, X, progress, plan_file=plan_path(ws, loaded))
    else:
        predictions, proba = carried
        source += f" (its v{loaded.version} predictions)"
    scores = None if proba is None else scores_of(proba)
    labels = table.column(loaded.target) if loaded.target in table.schema.names else None
    labels = _labels_as_classes(labels, loaded.classes)
    return Window(X=X, predictions=predictions, scores=scores, labels=labels, source=source, proba=proba)


def _settings(ws: Workspace) -> dict[str, Any]:
    """The monitor's checked settings: thresholds, performance and quality keys."""
    from serein.monitor.quality import quality_settings

    config = ws.config["monitor"]
    performance = dict(config.get("performance") or {})
    unknown = sorted(set(performance) - set(PERFORMANCE_KEYS))
    if unknown:
        raise UsageError(f"monitor.performance: unknown key(s) {', '.join(unknown)}",
                         hint=f"known keys are {', '.join(PERFORMANCE_KEYS)}")
    return {"thresholds": Thresholds.from_config(config.get("thresholds")), "performance": performance,
            "quality": quality_settings(config.get("quality"))}


def _performance(loaded: LoadedModel, window: Window, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """Realized performance on the labelled rows, each metric with its 95 % interval, against the
    holdout with the drop verdict."""
    if window.labels is None:
        return None
    binary = loaded.is_classifier and loaded.classes is not None and len(loaded.classes) == 2
    rows = Labelled.of(loaded.task, window.labels, window.predictions,
                       scores=window.scores if binary else None, classes=loaded.classes)
    if not rows.n:
        return None
    current = rows.metrics()
    current_se = rows.standard_errors()
    out = compare_performance(current, loaded.profile.get("performance") or {}, rows.n,
                              current_se=current_se, reference_se=loaded.profile.get("performance_se"), **settings)
    for name, ci in intervals(current, current_se).items():
        out["metrics"][name].update(se=ci["se"], low=ci["low"], high=ci["high"])
    return out


def _estimated(loaded: LoadedModel, window: Window, settings: Mapping[str, Any],
               performance: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The CBPE estimate of the window (all rows), beside the holdout value and, where labels
    arrived, the realized value on the labelled rows; ``dropped`` names the metrics whose whole
    interval lies below the holdout value minus the tolerance, and stays empty on windows of
    fewer than ``min_labels`` rows (a handful of rows has degenerate intervals: one row predicted
    negative has an F1 of 0 in every draw, which is no sign of a drop)."""
    calibration = loaded.profile.get("calibration")
    if not loaded.is_classifier or not calibration:
        return None
    from serein.monitor.cbpe import estimate_performance

    raw = window.proba if window.proba is not None else (
        window.scores if window.scores is not None and len(calibration["classes"]) == 2 else None)
    if raw is None:
        return None
    estimate = estimate_performance(calibration, raw, window.predictions)
    if estimate is None:
        return None
    realized = {name: row["current"] for name, row in (performance or {}).get("metrics", {}).items()}
    reference = loaded.profile.get("performance") or {}
    tolerance = float(settings.get("tolerance", TOLERANCE))
    enough = estimate["n"] >= int(settings.get("min_labels", MIN_LABELS))  # as many rows as realized performance needs labels
    dropped = []
    for name, m in estimate["metrics"].items():
        m["reference"] = reference.get(name)
        m["realized"] = realized.get(name)
        if enough and name in HIGHER_IS_BETTER and m["reference"] is not None and m["high"] is not None \
                and m["high"] < m["reference"] - tolerance:
            dropped.append(name)
    return {**estimate, "n_labelled": (performance or {}).get("n_labelled", 0), "tolerance": tolerance, "dropped": dropped}


def assess(loaded: LoadedModel, window: Window, settings: Mapping[str, Any], quality: bool = True) -> dict[str, Any]:
    """Everything judged on one window (or chunk): drift of features, outputs and labels,
    realized and estimated performance, and (``quality``) the contract's checks. The CBPE
    estimate and the outputs' drift run one after the other in one thread, beside the features'
    drift (on the other cores) then the contract's checks: all spend their time in numpy, Arrow and
    compiled code that release the GIL, and on a million rows each side takes about as long (the
    estimate 0.29 s; the features 0.22 s with ``serein.column_stats``, the checks 0.12 s). With a
    thread for each of them and one per core for the features (five threads on two cores), a 1M-row
    run took 12 % longer (paired median of 10 runs): the threads contend for the cores, the GIL and
    memory bandwidth."""
    from serein.monitor.quality import window_quality

    t = settings["thresholds"]
    profile = loaded.profile
    performance = _performance(loaded, window, settings["performance"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        estimated = pool.submit(_estimated, loaded, window, settings["performance"], performance)
        outputs = pool.submit(prediction_drift, profile["prediction"], window.predictions, window.scores, t, profile)
        features = features_drift(profile, window.X, t, threads=max(1, (os.cpu_count() or 1) - 1))
        checked = window_quality(window.X, loaded.contract, **settings["quality"]) if quality else None
        return {
            "features": features,
            "drifted": [name for name, f in features.items() if f["drifted"]],
            "prediction_drift": outputs.result(),
            "label_drift": label_drift(profile, window.labels, t),
            "performance": performance,
            "estimated_performance": estimated.result(),
            "quality": checked,
        }


def _chunk_series(loaded: LoadedModel, window: Window, chunk: str, settings: Mapping[str, Any],
                  progress: Progress | None) -> list[dict[str, Any]]:
    """Each chunk assessed on its own; data quality as the share of each chunk's rows breaking the
    contract, from one validation of the whole window (pandera's fixed cost per call would
    otherwise dominate a chunk's assessment; per-check rates are the whole window's)."""
    from serein.monitor.chunks import split_chunks, summarise_chunk
    from serein.monitor.quality import validate_window

    chunks = split_chunks(window.ts, parse_chunk(chunk), n=len(window.X))
    bad = validate_window(window.X, loaded.contract).bad_rows
    series = []
    for i, c in enumerate(chunks):
        part = assess(loaded, window.take(c.rows), settings, quality=False)
        part["quality"] = {"bad_row_rate": float(bad[c.rows].mean())}
        series.append(summarise_chunk(c, part))
        if progress:
            progress("chunks", i + 1, len(chunks))
    return series


def _verdict_alerts(ws: Workspace, result: MonitorResult) -> list[Occurrence]:
    """The alerts of the run's own verdicts: drifted features, drifted outputs, dropped
    performance, and the window's other abnormal parts (:func:`_window_verdicts`)."""
    from serein.alerts.alerts import Occurrence

    share = float(ws.config["monitor"].get("critical_share", CRITICAL_SHARE))
    judged = [f for f in result.features.values() if f["status"] not in ("insufficient", "skipped")]
    many = bool(judged) and len(result.drifted) / len(judged) >= share
    raised = []
    for name in result.drifted:
        f = result.features[name]
        details = {k: f.get(k) for k in ("method", "score", "threshold", "psi", "js", "wasserstein",
                                          "unseen_rate", "null_rate_ref", "null_rate") if f.get(k) is not None}
        raised.append(Occurrence(
            "feature_drift", "critical" if many else "warning",
            f"{name} drifted in v{result.version} traffic: {'; '.join(f['reasons'])}", feature=name, details=details,
        ))
    pred = result.prediction_drift
    if pred and pred["drifted"]:
        reasons = [f"{part}: {'; '.join(p['reasons'])}" for part, p in pred.items() if isinstance(p, dict) and p["drifted"]]
        raised.append(Occurrence("prediction_drift", "critical",
                                 f"predictions of v{result.version} drifted: {' | '.join(reasons)}"))
    perf = result.performance
    if perf and perf["dropped"]:
        text = ", ".join(f"{m} {perf['metrics'][m]['reference']:.4g} -> {perf['metrics'][m]['current']:.4g}"
                         for m in perf["dropped"])
        raised.append(Occurrence(
            "performance_drop", "critical",
            f"v{result.version} performance dropped on {perf['n_labelled']} labelled rows: {text}",
            details={m: perf["metrics"][m] for m in perf["dropped"]},
        ))
    raised += [Occurrence(rule, "warning", message, feature=feature, details=details)
               for rule, feature, message, details in _window_verdicts(result) if message is not None]
    return raised


def _window_verdicts(result: MonitorResult, ws_active: Collection[tuple[str, str]] = ()
                     ) -> list[tuple[str, str, str | None, dict[str, Any] | None]]:
    """(rule, feature, message when abnormal else None, details) for the estimate, the labels,
    data quality and the domain classifier; only parts that were judged appear. A contract check
    is normal when not breached; among them only those with an active alert (``ws_active``, the
    (rule, feature) pairs of the model's active alerts) are listed."""
    v = f"v{result.version}"
    out: list[tuple[str, str, str | None, dict[str, Any] | None]] = []
    est = result.estimated_performance
    if est is not None and est["n"] >= int((result.performance or {}).get("min_labels", 100)):
        text = ", ".join(f"{m} ~{est['metrics'][m]['value']:.3g} [{est['metrics'][m]['low']:.3g}, "
                         f"{est['metrics'][m]['high']:.3g}] vs holdout {est['metrics'][m]['reference']:.3g}"
                         for m in est["dropped"])
        out.append(("estimated_performance_drop", "",
                    f"estimated (CBPE) performance of {v} fell on {est['n']} rows: {text}" if est["dropped"] else None,
                    {m: est["metrics"][m] for m in est["dropped"]}))
    lab = result.label_drift
    if lab is not None and lab["status"] not in ("insufficient", "skipped"):
        out.append(("label_drift", "", f"labels of {v} traffic drifted: {'; '.join(lab['reasons'])}" if lab["drifted"] else None,
                    {k: lab.get(k) for k in ("method", "score", "threshold")}))
    quality = result.quality
    if quality is not None:
        breached = {c["name"]: c for c in quality["checks"] if c["breached"]}
        for name, c in breached.items():
            message = (f"{name} failed on {c['count']} of {quality['n_rows']} rows "
                       f"({c['rate']:.1%} >= {quality['max_rate']:.1%}) in {v} traffic: {c['message']}")
            out.append(("data_quality", name, message, {k: c[k] for k in ("count", "rate", "examples")}))
        if quality["n_rows"] >= quality["min_count"]:  # fewer rows cannot breach a check: no evidence of normal
            active = [feature for rule, feature in ws_active if rule == "data_quality"]
            out += [("data_quality", name, None, None) for name in active if name not in breached]
    multi = result.multivariate
    if multi is not None:
        out.append(("multivariate_drift", "", f"{v} traffic drifted jointly: {'; '.join(multi['reasons'])}"
                    if multi["drifted"] else None, {k: multi[k] for k in ("score", "threshold")}))
    return out


def _resolve_window_alerts(ws: Workspace, result: MonitorResult) -> list[dict[str, Any]]:
    """Resolve this module's own alerts whose (rule, feature) this run judged normal."""
    normal = [(rule, feature, f"{' '.join(filter(None, (rule, feature)))} normal in v{result.version} traffic")
              for rule, feature, message, _ in _window_verdicts(result, ws.alerts.active(result.model)) if message is None]
    done = ws.alerts.auto_resolve_all(result.model, normal)  # one query for the model's active alerts
    return [{k: a[k] for k in ("id", "rule", "feature", "message", "resolved_at")} for a in done if a is not None]


def _check_window_args(since: str | None, until: str | None, last: int | None, current: str | None,
                       cumulative: bool, chunk: str | None) -> None:
    """Refuse contradictory or malformed window arguments before any model is loaded."""
    if current is not None and (since is not None or last is not None or until is not None or cumulative):
        raise UsageError("give either --current or a window of logged traffic (--since/--until/--last/--cumulative), not both")
    if since is not None and last is not None:
        raise UsageError("give either --since or --last, not both")
    if cumulative and (since is not None or last is not None):
        raise UsageError("--cumulative takes all the version's traffic: drop --since/--last (--until still applies)")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last <= 0):
        raise UsageError(f"--last must be a positive number of rows, got {last!r}")
    if since is not None:
        parse_since(since)
    if until is not None:
        parse_since(until, what="--until")
    if since is not None and until is not None:
        now = time.time()
        if parse_since(until, now, what="--until") <= parse_since(since, now):
            raise UsageError(f"--until {until} is not after --since {since}: the window is empty",
                             hint="a duration counts back from now: --since 4d --until 2d runs from four days ago to two days ago")
    if chunk is not None:
        parse_chunk(chunk)


def _check_report_path(report: str | Path | bool | None) -> None:
    """Refuse a ``report`` path that cannot be written (a folder, or a file under a file) before
    any work is done: the report is written after the run's alerts are raised."""
    if report is None or isinstance(report, bool):
        return
    path = Path(report)
    if path.is_dir():
        raise UsageError(f"--report {path} is a folder", hint="give the report a file name, such as monitor.html")
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--report {path} cannot be written: {existing} is a file, not a folder",
                         hint="give the report a path in a folder")


def _open_store(ws: Workspace) -> None:
    """Open the workspace's store and alert manager (both are opened once and kept)."""
    _ = ws.store, ws.alerts


def run_monitor(ws: Workspace, model: str, since: str | None = None, last: int | None = None,
                current: str | None = None, report: str | Path | bool | None = None, *,
                until: str | None = None, cumulative: bool = False, chunk: str | None = None,
                multivariate: bool = False, progress: Progress | None = None) -> MonitorResult:
    """Compare a window of ``model``'s champion traffic (or the batch ``current``) with its
    reference profile; store the result, raise alerts, and write an HTML report when ``report``
    is a path (or True: a dated file in the workspace's reports folder). ``chunk`` adds the
    chunked series; ``progress(what, done, total)`` hears about long steps. A report that cannot
    be written raises :class:`ReportNotWritten` after the run is stored, its alerts raised."""
    _check_window_args(since, until, last, current, cumulative, chunk)
    _check_report_path(report)
    settings = _settings(ws)
    with ThreadPoolExecutor(max_workers=1) as opener:
        # the store opens (SQLAlchemy's import, the engine, the tables' check: a fifth of a second)
        # while the model loads and the window is read and judged, which mostly wait on I/O or
        # run in numpy and Arrow without the GIL
        opened = opener.submit(_open_store, ws)
        loaded = ws.registry.load(model, "champion", pipeline=False)  # the ONNX export scores when there is one
        if not loaded.profile or "features" not in loaded.profile:
            raise UsageError(f"{model} v{loaded.version} has no reference profile to compare with",
                             hint="register the model again with `serein train` (the profile is built at registration)")
        window = (_window_from_batch(ws, loaded, current, progress) if current
                  else _window_from_log(ws, loaded, since, until, last, cumulative))
        whole = assess(loaded, window, settings)
        opened.result()
    profile = loaded.profile
    result = MonitorResult(
        model=model, version=loaded.version, n_rows=len(window.X),
        window={"source": window.source, "start": window.start, "end": window.end, "ran_at": time.time(),
                "cumulative": cumulative, "chunk": chunk},
        thresholds=settings["thresholds"].to_dict(), **whole,
    )
    if multivariate:
        from serein.monitor.multivariate import domain_classifier_drift

        result.multivariate = domain_classifier_drift(profile, window.frame())
    if chunk:
        result.chunks = _chunk_series(loaded, window, chunk, settings, progress)
    from serein.alerts.rules import raise_run_alerts, rule_alerts

    raising = _verdict_alerts(ws, result)
    raising += rule_alerts(ws, loaded, result, streaming=current is None)  # detectors, rules, auto-resolve
    result.resolved += _resolve_window_alerts(ws, result)
    raise_run_alerts(ws, result, raising)  # all in one transaction
    failed = None
    if report:
        from serein.monitor.report import write_monitor_report

        path = (ws.reports_dir / f"monitor-{model}-v{loaded.version}-{time.strftime('%Y%m%dT%H%M%S')}.html"
                if report is True else Path(report))
        try:
            result.report = str(write_monitor_report(path, result, profile, ws.alerts.list(model=model)))
        except OSError as exc:  # what _check_report_path cannot foresee: permissions, a full disk
            failed = exc
    result.id = ws.store.add_monitor_result(
        model, loaded.version, result.to_dict(), result.n_rows, result.drifted,
        window.start, window.end, result.report,
    )
    if failed is not None:  # said once the run is stored: a report is never worth the run's result
        raise ReportNotWritten(path, failed, result) from failed
    return result
