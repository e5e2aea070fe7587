"""`serein agent --once` on a small workspace: monitors on new traffic, retrains by policy, keeps
going past a failing model, and a second pass sees no new traffic. Also the streaming detectors
through run_monitor: the watermark means each logged value is fed once."""

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
import yaml

from serein.agent import RetrainPolicy
from serein.data.profiling import suggest_contract
from serein.demo.credit import make_credit
from serein.errors import UsageError
from serein.train.recipe import Recipe
from serein.train.trainer import train
from serein.workspace import Workspace

RECIPE = {
    "name": "loans", "data": "loans", "target": "default", "task": "classification",
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
    "split": {"method": "random", "test_size": 0.25}, "seed": 3,
    "gate": {"metric": "roc_auc", "min_improvement_over_baseline": 0.0, "max_regression_vs_champion": 1.0},
}


def _log(ws: Workspace, frame: pd.DataFrame, prefix: str) -> None:
    model = ws.registry.load("loans")
    X = frame[model.features]
    proba = model.pipeline.predict_proba(X)
    inputs = X.astype(object).where(X.notna(), None).to_dict("records")
    now = time.time()
    ws.store.log_predictions([
        {"request_id": f"{prefix}{i}", "model": "loans", "version": model.version, "inputs": row,
         "prediction": model.classes[int(p.argmax())], "score": float(p[1]), "ts": now - 60 + i * 1e-3}
        for i, (row, p) in enumerate(zip(inputs, proba, strict=True))
    ])
    ws.store.add_feedback([{"request_id": f"{prefix}{i}", "model": "loans", "label": int(y)}
                           for i, y in enumerate(frame["default"])])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = Workspace.init(tmp_path_factory.mktemp("agent") / "ws")
    history = make_credit(2000, seed=5).drop(columns=["applied_at"])
    suggest_contract(history, dataset="loans").save(workspace.datasets.contract_path("loans"))
    workspace.datasets.ingest(history, "loans")
    assert train(workspace, Recipe.from_dict(RECIPE)).alias == "champion"
    config = yaml.safe_load((workspace.root / "serein.yaml").read_text())
    config["models"] = {"loans": {"retrain": {"on": ["drift", "performance_drop"], "min_new_labels": 300}},
                        "ghost": {"retrain": {"on": ["drift"]}}}
    (workspace.root / "serein.yaml").write_text(yaml.safe_dump(config))
    workspace = Workspace(workspace.root)
    _log(workspace, make_credit(600, start="2026-07-01", drift=True, seed=6).drop(columns=["applied_at"]), "d")
    return workspace


def _cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serein", *args, "--workspace", str(ws.root)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=240)


def test_agent_once_monitors_then_retrains_then_sees_nothing_new(ws: Workspace) -> None:
    out = _cli(ws, "agent", "--once", "--json")
    assert out.returncode == 0, out.stderr
    (record,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert record["model"] == "loans" and record["error"] is None
    assert record["monitor"]["n_rows"] == 600 and record["monitor"]["status"] in ("drift", "critical")
    assert "drift" in record["retrain"]["triggers"] and record["retrain"]["new_version"] == 2
    assert ws.registry.get("loans", 2).version == 2
    state = ws.store.get_state("agent.loans")
    assert state["last_retrain"] == state["last_monitor"] == record["ran_at"]
    detectors = ws.store.monitor_history("loans")
    streams = detectors[0]["result"]["detectors"]
    assert streams["score"]["values"] == 600 and streams["error"]["values"] == 600

    again = _cli(ws, "agent", "--once")  # the champion moved: v2 has no traffic since the last run
    assert again.returncode == 0, again.stderr
    assert "loans: monitor no new traffic" in again.stdout


def test_detectors_feed_each_logged_value_once(ws: Workspace) -> None:
    from serein.monitor.detectors import run_detectors

    loaded = ws.registry.load("loans", 1)
    key_state = ws.store.get_state(f"detectors.loans.v{loaded.version}.score")
    assert key_state["watermark"] > 0 and key_state["detectors"]["n"] == 600
    again = run_detectors(ws, loaded)
    assert again["score"]["values"] == again["error"]["values"] == 0 and again["score"]["seen"] == 600


def test_failing_model_does_not_stop_the_others(ws: Workspace, tmp_path: Path) -> None:
    from serein.agent import step

    config = yaml.safe_load((ws.root / "serein.yaml").read_text())
    config["models"]["loans"]["retrain"] = {"on": ["lunar_phase"]}
    (ws.root / "serein.yaml").write_text(yaml.safe_dump(config))
    try:
        record = step(Workspace(ws.root), "loans")
        assert "models.loans.retrain.on must list triggers" in record["error"]
        assert step(Workspace(ws.root), "nosuch")["error"].startswith("no registered model")
    finally:
        config["models"]["loans"]["retrain"] = {"on": ["drift"], "min_new_labels": 300}
        (ws.root / "serein.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("config, match", [
    ({"on": []}, "must list triggers"),
    ({"on": ["schedule"]}, "needs 'every'"),
    ({"on": ["drift"], "min_new_labels": -1}, "min_new_labels must be a whole number"),
    ({"on": ["drift"], "cooldown": "soon"}, "bad models.m.retrain.cooldown"),
    ({"on": ["drift"], "when": 1}, "unknown key"),
])
def test_policy_errors(config: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        RetrainPolicy.from_config("m", config)


def test_policy_parses() -> None:
    policy = RetrainPolicy.from_config("m", {"on": ["schedule", "drift"], "every": "7d", "min_new_labels": 500,
                                             "cooldown": "1d"})
    assert policy == RetrainPolicy(("schedule", "drift"), 7 * 86400.0, 500, 86400.0)
    assert np.isclose(policy.every, 604800)
