"""run_monitor end to end: a real registered model (MLflow sqlite store), its logged traffic in the
operational store with feedback labels, alerts, stored results, reports and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serein.demo.credit import make_credit
from serein.errors import NotFoundError, UsageError
from serein.monitor.monitor import run_monitor
from serein.workspace import Workspace

DAY = 86400.0


def _log(ws: Workspace, frame: pd.DataFrame, prefix: str, ts: float) -> None:
    """Score ``frame`` with the champion and log it as served traffic, with feedback labels."""
    model = ws.registry.load("credit")
    X = frame[model.features]
    proba = model.pipeline.predict_proba(X)
    preds = [model.classes[k] for k in proba.argmax(axis=1)]
    inputs = X.astype(object).where(X.notna(), None).to_dict("records")
    ws.store.log_predictions([
        {"request_id": f"{prefix}{i}", "row": 0, "model": "credit", "version": model.version, "inputs": row,
         "prediction": pred, "probabilities": p.tolist(), "score": float(p[1]), "ts": ts + i}
        for i, (row, pred, p) in enumerate(zip(inputs, preds, proba))
    ])
    ws.store.add_feedback([{"request_id": f"{prefix}{i}", "row": 0, "model": "credit", "label": int(y)}
                           for i, y in enumerate(frame["default"])])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace with one champion trained on the stable regime; 3 days ago it served stable
    traffic, in the last hour drifted traffic (both with feedback)."""
    from serein import api

    workspace = Workspace.init(tmp_path_factory.mktemp("mon") / "ws")
    train = make_credit(3000, seed=0).drop(columns=["applied_at"])
    api.train({"name": "credit", "target": "default", "task": "classification",
               "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}},
              data=train, workspace=workspace)
    now = time.time()
    _log(workspace, make_credit(1500, seed=11), "s", now - 3 * DAY)
    _log(workspace, make_credit(1500, start="2026-07-01", drift=True, seed=12), "d", now - 3600)
    return workspace


def test_drifted_traffic_is_flagged_and_stored(ws: Workspace, tmp_path: Path) -> None:
    result = run_monitor(ws, "credit", since="24h", report=tmp_path / "m.html")
    d = result.to_dict()
    assert d["n_rows"] == 1500 and d["version"] == 1
    assert {"income", "credit_score", "purpose", "loan_amount"} <= set(d["drifted"])
    assert "region" not in d["drifted"] and "home_ownership" not in d["drifted"]  # unchanged by the demo
    assert d["features"]["purpose"]["unseen_examples"] == ["crypto"]
    assert d["prediction_drift"]["drifted"] and d["prediction_drift"]["scores"]["drifted"]
    perf = d["performance"]
    assert perf["n_labelled"] == 1500 and {"accuracy", "roc_auc", "log_loss", "f1"} <= set(perf["metrics"])
    assert "log_loss" in perf["dropped"]  # defaults rise: the calibrated holdout log loss no longer holds
    rules = {(a["rule"], a["feature"]) for a in d["alerts"]}
    assert ("prediction_drift", "") in rules and ("feature_drift", "income") in rules
    assert d["status"] == "critical"
    assert Path(d["report"]).is_file() and "<td>income</td>" in Path(d["report"]).read_text()
    (stored,) = [h for h in ws.store.monitor_history("credit") if h["id"] == result.id]
    assert stored["drifted"] == d["drifted"] and stored["n_rows"] == 1500 and stored["report_path"] == d["report"]
    # a second run updates the same alerts instead of adding new ones
    again = run_monitor(ws, "credit", last=1500).to_dict()
    by_key = {(a["rule"], a["feature"]): a for a in again["alerts"]}
    assert by_key[("feature_drift", "income")]["count"] >= 2 and not by_key[("feature_drift", "income")]["new"]
    open_income = [a for a in ws.alerts.list(model="credit") if a["feature"] == "income"]
    assert len(open_income) == 1


def test_stable_batch_does_not_drift(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    make_credit(2000, seed=21).to_csv(path, index=False)
    d = run_monitor(ws, "credit", current=str(path)).to_dict()
    assert d["window"]["source"] == f"file {path}"
    assert d["drifted"] == [] and not d["prediction_drift"]["drifted"]
    assert d["performance"]["dropped"] == [] and d["status"] == "ok"


def test_a_batch_with_some_labels_is_judged_on_its_labelled_rows(ws: Workspace, tmp_path: Path) -> None:
    from sklearn import metrics

    frame = make_credit(3000, seed=23)
    frame["default"] = frame["default"].astype("Int64")
    frame.loc[frame.index % 3 == 0, "default"] = pd.NA  # a third of the labels have not arrived
    path = tmp_path / "labelled.parquet"
    frame.to_parquet(path, index=False)
    d = run_monitor(ws, "credit", current=str(path), chunk="1000").to_dict()
    known = frame[frame["default"].notna()]
    model = ws.registry.load("credit")
    proba = model.pipeline.predict_proba(known[model.features])[:, 1]
    y = known["default"].astype(int).to_numpy()
    perf = d["performance"]
    assert perf["n_labelled"] == len(known) == 2000
    assert perf["metrics"]["accuracy"]["current"] == pytest.approx(metrics.accuracy_score(y, proba > 0.5))
    assert perf["metrics"]["roc_auc"]["current"] == pytest.approx(metrics.roc_auc_score(y, proba), abs=1e-6)
    assert d["label_drift"]["n"] == 2000  # the missing labels are not a drift of the labels
    assert [c["performance"]["n_labelled"] for c in d["chunks"]] == [666, 667, 667]  # rows 0, 3, ..., 2997 unlabelled


def test_integer_labels_written_as_floats_are_the_classes(ws: Workspace, tmp_path: Path) -> None:
    """pandas writes an integer label column with gaps as floats (1.0, NaN): those labels are the
    classes 0 and 1, judged as the Int64 column is — they used to be compared as the text "1.0"
    with the class "1", every row a miss (accuracy 0, a critical performance drop) and every
    label unseen (label drift)."""
    frame = make_credit(1500, seed=43)
    frame["default"] = frame["default"].astype("Int64")
    frame.loc[frame.index % 3 == 0, "default"] = pd.NA
    frame.to_parquet(tmp_path / "int.parquet", index=False)
    frame.astype({"default": "float64"}).to_parquet(tmp_path / "float.parquet", index=False)
    expected = run_monitor(ws, "credit", current=str(tmp_path / "int.parquet")).to_dict()
    d = run_monitor(ws, "credit", current=str(tmp_path / "float.parquet")).to_dict()
    assert d["performance"]["n_labelled"] == 1000 and d["performance"]["dropped"] == []
    for name, m in expected["performance"]["metrics"].items():
        assert d["performance"]["metrics"][name]["current"] == pytest.approx(m["current"]), name
    assert not d["label_drift"]["drifted"] and d["label_drift"]["score"] == pytest.approx(expected["label_drift"]["score"])


def test_feedback_labels_sent_as_floats_are_the_classes(workspace: Workspace) -> None:
    """Feedback sent as 1.0 for a model of classes 0 and 1 (JSON has one kind of number) counts
    as the class 1 in realized performance, label drift and the error stream's detectors."""
    from serein import api

    api.train({"name": "credit", "target": "default", "task": "classification",
               "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}},
              data=make_credit(1500, seed=0).drop(columns=["applied_at"]), workspace=workspace)
    model = workspace.registry.load("credit")
    frame = make_credit(400, seed=44)
    X = frame[model.features]
    proba = model.pipeline.predict_proba(X)
    now = time.time() - 600
    workspace.store.log_predictions([
        {"request_id": f"f{i}", "row": 0, "model": "credit", "version": model.version, "inputs": row,
         "prediction": model.classes[int(p.argmax())], "probabilities": p.tolist(), "score": float(p[1]), "ts": now + i}
        for i, (row, p) in enumerate(zip(X.astype(object).where(X.notna(), None).to_dict("records"), proba))])
    workspace.store.add_feedback([{"request_id": f"f{i}", "row": 0, "model": "credit", "label": float(y)}
                                  for i, y in enumerate(frame["default"])])
    d = run_monitor(workspace, "credit", since="1h").to_dict()
    accuracy = float(np.mean(proba.argmax(axis=1) == frame["default"].to_numpy()))
    assert d["performance"]["metrics"]["accuracy"]["current"] == pytest.approx(accuracy)
    assert d["performance"]["dropped"] == [] and not d["label_drift"]["drifted"]
    assert not any(a["rule"] == "error_rate_change" for a in d["alerts"])


def test_labels_0_and_1_are_the_classes_of_a_boolean_target(workspace: Workspace, tmp_path: Path) -> None:
    """A model of a True/False target judged on 0/1 labels (a batch's integer column, JSON feedback
    1) counts them as its classes; they used to be compared as "1" with "True": accuracy 0."""
    from serein import api

    train = make_credit(1500, seed=0).drop(columns=["applied_at"])
    api.train({"name": "flag", "target": "default", "task": "classification",
               "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}},
              data=train.astype({"default": bool}), workspace=workspace)
    model = workspace.registry.load("flag")
    assert model.classes == [False, True]
    frame = make_credit(600, seed=45)
    frame.to_parquet(tmp_path / "ints.parquet")
    frame.astype({"default": bool}).to_parquet(tmp_path / "bools.parquet")
    expected = run_monitor(workspace, "flag", current=str(tmp_path / "bools.parquet")).to_dict()
    d = run_monitor(workspace, "flag", current=str(tmp_path / "ints.parquet")).to_dict()
    accuracy = float(np.mean(model.pipeline.predict(frame[model.features]) == frame["default"].astype(bool)))
    assert d["performance"]["metrics"]["accuracy"]["current"] == pytest.approx(accuracy)
    assert d["performance"]["metrics"] == expected["performance"]["metrics"]
    assert not d["label_drift"]["drifted"]


def test_bad_windows_and_inputs(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no logged predictions of credit v1 in the window since 1m"):
        run_monitor(ws, "credit", since="1m")
    with pytest.raises(UsageError, match="bad --since '24x'"):
        run_monitor(ws, "credit", since="24x")
    with pytest.raises(UsageError, match="--until 4d is not after --since 3d: the window is empty"):
        run_monitor(ws, "credit", since="3d", until="4d")
    with pytest.raises(UsageError, match="is not after --since"):
        run_monitor(ws, "credit", since="2026-11-02T00:00", until="2026-11-01T00:00")
    with pytest.raises(UsageError, match="either --since or --last"):
        run_monitor(ws, "credit", since="1h", last=10)
    with pytest.raises(UsageError, match="--last must be a positive"):
        run_monitor(ws, "credit", last=0)
    with pytest.raises(NotFoundError):
        run_monitor(ws, "nosuch", last=10)
    with pytest.raises(UsageError, match="neither a file nor a dataset"):
        run_monitor(ws, "credit", current="missing.csv")
    lacking = tmp_path / "lacking.csv"
    make_credit(100, seed=3).drop(columns=["income"]).to_csv(lacking, index=False)
    with pytest.raises(UsageError, match="lacks the model's feature column\\(s\\) 'income'"):
        run_monitor(ws, "credit", current=str(lacking))


def _cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "serein", *args, "--workspace", str(ws.root)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_a_batch_of_one_row_raises_no_verdict_and_its_json_line_is_strict(ws: Workspace, tmp_path: Path) -> None:
    """One row is news for the log, not for a pager: no completeness breach for its one null, no
    estimated drop from its degenerate intervals; its undefined ROC AUC is JSON null, not NaN."""
    contract = ws.registry.load("credit").contract
    nullable = next(name for name, col in contract.columns.items() if col.completeness and col.completeness < 1)
    row = make_credit(50, seed=31).iloc[[0]].copy()
    row[nullable] = None
    path = tmp_path / "one.parquet"
    row.to_parquet(path)
    out = _cli(ws, "monitor", "credit", "--current", str(path), "--json")
    assert out.returncode == 0, out.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    d = json.loads(out.stdout.strip().splitlines()[-1], parse_constant=refuse)
    assert d["n_rows"] == 1 and d["estimated_performance"]["metrics"]["roc_auc"]["value"] is None
    assert d["estimated_performance"]["dropped"] == [] and d["quality"]["breached"] == []
    assert d["status"] == "ok", d["alerts"]


def test_a_batch_too_small_to_judge_resolves_no_alert(ws: Workspace, tmp_path: Path) -> None:
    """A window too small for a verdict is no evidence that things are back to normal: a one-row
    batch leaves the drifted window's prediction drift and data-quality alerts open (it used to
    resolve both: its outputs were "not drifted" on status insufficient and no check can breach
    on fewer than min_count rows); a stable batch of enough rows still resolves them."""
    drifted = run_monitor(ws, "credit", since="2h").to_dict()
    raised = {(a["rule"], a["feature"]) for a in drifted["alerts"]}
    assert ("prediction_drift", "") in raised and any(rule == "data_quality" for rule, _ in raised)
    path = tmp_path / "one.parquet"
    make_credit(50, seed=41).iloc[[0]].to_parquet(path)
    one = run_monitor(ws, "credit", current=str(path)).to_dict()
    assert one["resolved"] == []
    assert raised <= set(ws.alerts.active("credit"))
    stable = tmp_path / "stable.parquet"
    make_credit(2000, seed=42).to_parquet(stable)
    back = {(a["rule"], a["feature"]) for a in run_monitor(ws, "credit", current=str(stable)).to_dict()["resolved"]}
    assert ("prediction_drift", "") in back and {k for k in raised if k[0] == "data_quality"} <= back


def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(ws: Workspace, tmp_path: Path) -> None:
    """--report naming a folder, or a file under a file, is bad input said before any work (it
    ended the run with an internal error after its alerts were raised and before it was stored)."""
    before = len(ws.store.monitor_history("credit"))
    (tmp_path / "file.txt").write_text("x")
    for report, what in ((tmp_path, "is a folder"), (tmp_path / "file.txt" / "r.html", "cannot be written")):
        with pytest.raises(UsageError, match=what):
            run_monitor(ws, "credit", last=100, report=report)
    assert len(ws.store.monitor_history("credit")) == before
    out = _cli(ws, "monitor", "credit", "--last", "100", "--report", str(tmp_path))
    assert out.returncode == 2 and "is a folder" in out.stderr and "internal error" not in out.stderr


def test_a_report_that_fails_at_write_time_loses_neither_the_run_nor_its_alerts(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report that cannot be written when the run ends (no permission, a full disk) is said
    after the run is stored and its alerts raised: the error used to come before the store, and
    the run's result was lost. The CLI shows the run, then fails naming the path and the fix."""
    from serein.monitor import report as report_module
    from serein.monitor.monitor import ReportNotWritten

    def refused(path: Path, *args: object) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    before = len(ws.store.monitor_history("credit"))
    monkeypatch.setattr(report_module, "write_monitor_report", refused)
    with pytest.raises(ReportNotWritten, match="Permission denied") as caught:
        run_monitor(ws, "credit", since="2h", report=tmp_path / "m.html")
    result = caught.value.result
    stored = ws.store.monitor_history("credit")
    assert len(stored) == before + 1 and stored[0]["id"] == result.id and stored[0]["report_path"] is None
    assert result.alerts and stored[0]["result"]["alerts"] == result.to_dict()["alerts"]
    assert {(a["rule"], a["feature"]) for a in result.alerts} <= set(ws.alerts.active("credit"))
    assert f"#{result.id}" in caught.value.message and "write to" in caught.value.hint
    monkeypatch.undo()
    if Path("/dev/full").exists():  # a full disk, in the CLI: the run's table, then the error
        out = _cli(ws, "monitor", "credit", "--since", "2h", "--report", "/dev/full")
        assert out.returncode == 1 and "status: critical" in out.stdout and "internal error" not in out.stderr
        assert "--report /dev/full could not be written: No space left on device" in out.stderr
        assert "hint:" in out.stderr and len(ws.store.monitor_history("credit")) == before + 2


def test_cli(ws: Workspace) -> None:
    out = _cli(ws, "monitor", "credit", "--last", "300", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["n_rows"] == 300 and "income" in d["drifted"]
    table = _cli(ws, "monitor", "credit", "--since", "2h")
    assert table.returncode == 0 and "income" in table.stdout and "status: critical" in table.stdout
    assert "[critical] predictions of v1 drifted" in table.stdout  # the severity is text, not rich markup
    bad = _cli(ws, "monitor", "credit", "--since", "24x")
    assert bad.returncode == 2 and "bad --since '24x'" in bad.stderr and "Traceback" not in bad.stderr
    unknown = _cli(ws, "monitor", "nosuch")
    assert unknown.returncode == 2 and "no registered model 'nosuch'" in unknown.stderr
    alerts = json.loads(_cli(ws, "alerts", "list", "--model", "credit", "--json").stdout.splitlines()[-1])
    first = alerts[0]["id"]
    assert _cli(ws, "alerts", "ack", str(first)).returncode == 0
    assert _cli(ws, "alerts", "resolve", str(first)).returncode == 0
    again = _cli(ws, "alerts", "resolve", str(first))
    assert again.returncode == 1 and "already resolved" in again.stderr
    resolved = json.loads(_cli(ws, "alerts", "list", "--status", "resolved", "--json").stdout.splitlines()[-1])
    assert first in [a["id"] for a in resolved]  # with the alerts runs found back to normal (auto-resolved)
    assert _cli(ws, "alerts", "list", "--status", "bogus").returncode == 2
    assert np.isfinite(d["features"]["income"]["score"])


def test_dataset_batch(ws: Workspace) -> None:
    ingested = ws.datasets.ingest(make_credit(800, start="2026-07-01", drift=True, seed=31), "july")
    d = run_monitor(ws, "credit", current=f"july@{ingested.version}").to_dict()
    assert d["window"]["source"] == f"dataset july@{ingested.version}" and d["n_rows"] == 800
    assert {"income", "credit_score"} <= set(d["drifted"]) and d["performance"]["n_labelled"] == 800


def test_chunked_series_estimate_and_report(ws: Workspace, tmp_path: Path) -> None:
    result = run_monitor(ws, "credit", cumulative=True, chunk="1500", multivariate=True,
                         report=tmp_path / "chunks.html").to_dict()
    assert result["n_rows"] == 3000 and result["window"]["cumulative"]
    stable, drifted = result["chunks"]
    assert (stable["n_rows"], drifted["n_rows"]) == (1500, 1500) and stable["end"] < drifted["start"]
    assert stable["drifted"] == [] and {"income", "credit_score"} <= set(drifted["drifted"])
    assert not stable["prediction_drift"]["drifted"] and drifted["prediction_drift"]["drifted"]
    # on the stable chunk the estimate (no labels used) brackets the realized accuracy
    est = stable["estimated_performance"]["metrics"]["accuracy"]
    realized = stable["performance"]["metrics"]["accuracy"]
    assert est["low"] <= realized["current"] <= est["high"]
    assert realized["low"] < realized["current"] < realized["high"]
    assert result["multivariate"]["drifted"] and result["label_drift"] is not None
    assert result["estimated_performance"]["metrics"]["accuracy"]["realized"] is not None
    html = Path(result["report"]).read_text()
    for title in ("Drift over time", "Performance over time", "Estimated performance (CBPE)", "Data quality",
                  "Alert timeline"):
        assert title in html, title
    assert "<script src=" not in html  # plotly.js inline, no CDN


def test_time_windows_and_chunks(ws: Workspace, tmp_path: Path) -> None:
    loud = run_monitor(ws, "credit", since="2h").to_dict()
    assert ("data_quality", "purpose: unseen") in {(a["rule"], a["feature"]) for a in loud["alerts"]}
    old = run_monitor(ws, "credit", since="4d", until="2d").to_dict()  # the stable period only
    assert old["n_rows"] == 1500 and old["drifted"] == [] and old["chunks"] is None
    assert ("data_quality", "purpose: unseen") in {(a["rule"], a["feature"]) for a in old["resolved"]}
    hourly = run_monitor(ws, "credit", since="2h", chunk="hourly").to_dict()
    assert sum(c["n_rows"] for c in hourly["chunks"]) == 1500 and 1 <= len(hourly["chunks"]) <= 2
    assert all(c["start"] % 3600 == 0 and c["end"] - c["start"] == 3600 for c in hourly["chunks"])
    with pytest.raises(UsageError, match="--cumulative takes all"):
        run_monitor(ws, "credit", cumulative=True, last=10)
    with pytest.raises(UsageError, match="bad --chunk 'often'"):
        run_monitor(ws, "credit", chunk="often")
    batch = tmp_path / "batch.csv"
    make_credit(300, seed=5).to_csv(batch, index=False)
    with pytest.raises(UsageError, match="time chunks need timestamps"):
        run_monitor(ws, "credit", current=str(batch), chunk="daily")
    rows = run_monitor(ws, "credit", current=str(batch), chunk="100").to_dict()
    assert [c["n_rows"] for c in rows["chunks"]] == [100, 100, 100] and rows["chunks"][0]["start"] is None
    out = _cli(ws, "monitor", "credit", "--last", "300", "--chunk", "100", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(d["chunks"]) == 3 and {"drifted", "features", "prediction_drift", "performance", "alerts",
                                      "quality", "estimated_performance"} <= set(d)
    f = d["features"]["income"]
    assert f["method"] == "ks" and f["drifted"] and f["score"] < f["threshold"]  # 300 rows: the test decides
    bad = _cli(ws, "monitor", "credit", "--chunk", "often")
    assert bad.returncode == 2 and "bad --chunk 'often'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_cli_run_ends_frozen_without_a_pass_over_its_young_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serein monitor`` collects rarely during the run and freezes the heap before restoring the
    collector's thresholds: restoring them first made the next allocation walk every object the
    run had made since its last pass (up to 100,000: 26-38 ms of a one-second run)."""
    import gc

    import serein.cli.monitor as cli

    kept: list[list[int]] = []
    monkeypatch.setattr(cli, "_monitor", lambda *args: kept.extend([i] for i in range(50_000)))
    passes: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    before = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    try:
        cli.monitor("m", as_json=True)
        frozen = gc.get_freeze_count()
    finally:
        gc.callbacks.remove(count)
        gc.unfreeze()
    assert len(kept) == 50_000 and frozen >= 50_000
    assert passes == []  # 50,000 young objects: none collected during the run, none walked at its end
    assert gc.get_threshold() == before


def test_the_table_prints_names_and_messages_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """Column names, reasons and alert messages are the data's text, not rich markup: "[usd]"
    stays, a "[/x]" in a column name no longer ends the command with a MarkupError, and the
    alerts' "[warning]" severity shows (it was swallowed as a style)."""
    from serein.cli.monitor import _print_result

    feature = {"kind": "numeric", "method": "psi", "score": 0.5, "threshold": 0.2, "status": "drift",
               "drifted": True, "reasons": ["psi 0.5 >= 0.2"]}
    result = {"model": "m", "version": 1, "n_rows": 10, "window": {"source": "file [b]batch.csv", "chunk": None},
              "features": {"price [usd]": feature, "odd [/x]": {**feature, "reasons": ["unseen [/y]"]}},
              "prediction_drift": None, "label_drift": None, "performance": None, "report": None, "status": "drift",
              "quality": {"bad_row_rate": 0.5, "checks": [{"name": "odd [/x]: type", "rate": 0.5}]},
              "alerts": [{"id": 3, "severity": "warning", "message": "odd [/x] drifted", "new": True, "count": 1}]}
    _print_result(result)
    out = capsys.readouterr().out
    for text in ("price [usd]", "odd [/x]", "unseen [/y]", "file [b]batch.csv", "odd [/x]: type 50.0%",
                 "alert #3 [warning] odd [/x] drifted"):
        assert text in out, text
