"""Retraining: labelled traffic joins the dataset once, the gate decides, failures alert."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serein.data.profiling import suggest_contract
from serein.demo.credit import make_credit
from serein.errors import NotFoundError
from serein.retrain.retrain import retrain
from serein.train.recipe import Recipe
from serein.train.trainer import train
from serein.workspace import Workspace

RECIPE = {
    "name": "loans", "data": "loans", "target": "default", "task": "classification",
    "estimator": {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 30}},
    "split": {"method": "time", "column": "applied_at", "test_size": 0.25}, "seed": 3,
    "gate": {"metric": "roc_auc", "min_improvement_over_baseline": 0.05, "max_regression_vs_champion": 0.02},
}
FEATURES = ["age", "income", "employment", "home_ownership", "purpose", "region", "credit_score",
            "term_months", "loan_amount", "debt_to_income"]


def _log_labelled_traffic(ws: Workspace, frame: pd.DataFrame, version: int) -> None:
    records, feedback = [], []
    for i, row in enumerate(frame.to_dict("records")):
        inputs = {k: (None if isinstance(row[k], float) and np.isnan(row[k]) else row[k]) for k in FEATURES}
        records.append({"request_id": f"req{i}", "row": 0, "model": "loans", "version": version,
                        "inputs": inputs, "prediction": 0, "score": 0.2})
        feedback.append({"request_id": f"req{i}", "row": 0, "model": "loans", "label": int(row["default"])})
    ws.store.log_predictions(records)
    ws.store.add_feedback(feedback)


@pytest.fixture(scope="module")
def loop_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.init(tmp_path_factory.mktemp("retrain") / "ws")
    history = make_credit(2500, seed=5)
    suggest_contract(history, dataset="loans").save(ws.datasets.contract_path("loans"))
    ws.datasets.ingest(history, "loans")
    first = train(ws, Recipe.from_dict(RECIPE))
    assert first.alias == "champion", first.gate.reasons
    return ws


def test_retrain_adds_labelled_traffic_once_and_promotes(loop_ws: Workspace) -> None:
    ws = loop_ws
    _log_labelled_traffic(ws, make_credit(400, start="2026-07-01", days=10, drift=True, seed=6), version=1)
    before = len(ws.datasets.load("loans").frame)
    outcome = retrain(ws, "loans")
    assert outcome.feedback_rows == 400
    assert len(ws.datasets.load("loans").frame) == before + 400
    assert outcome.new_version == 2 and outcome.dataset_version == 1
    assert outcome.promoted, outcome.reason
    assert outcome.champion_before == 1 and outcome.champion_after == 2
    assert ws.registry.champion("loans").version == 2

    # nothing new since the watermark: the dataset does not grow again
    again = retrain(ws, "loans", data=None)
    assert again.feedback_rows == 0
    assert len(ws.datasets.load("loans").frame) == before + 400


def test_a_failed_gate_keeps_the_champion_and_alerts(loop_ws: Workspace) -> None:
    ws = loop_ws
    champion = ws.registry.champion("loans").version
    noise = make_credit(2500, seed=8)
    noise["default"] = np.random.default_rng(0).permutation(noise["default"].to_numpy())  # labels carry no signal
    ws.datasets.ingest(noise, "loans", mode="overwrite")
    outcome = retrain(ws, "loans")
    assert not outcome.promoted
    assert outcome.reason
    assert ws.registry.champion("loans").version == champion
    alerts = ws.alerts.list(model="loans")
    assert any(a["rule"] == "retrain_failed" and str(outcome.new_version) in a["message"] for a in alerts)


def test_retrain_needs_a_champion(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError):
        retrain(workspace, "nothing-here")
