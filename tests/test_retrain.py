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


def test_labels_arriving_late_for_early_predictions_join_the_next_retrain(tmp_path) -> None:
    """The watermark counts labels, not logged rows: rows logged before the last retrain that
    are labelled after it join the next one, and none joins twice. A workspace whose watermark an
    earlier serein kept as a log id takes none of the rows up to it again."""
    from serein.retrain.retrain import _append_feedback, feedback_frame, pending_feedback

    ws = Workspace.init(tmp_path / "ws")
    history = make_credit(300, seed=5)
    suggest_contract(history, dataset="loans").save(ws.datasets.contract_path("loans"))
    ws.datasets.ingest(history, "loans")
    recipe = Recipe.from_dict(RECIPE)
    traffic = make_credit(40, start="2026-07-01", days=2, seed=6)
    _log_labelled_traffic(ws, traffic.iloc[:20], version=1)  # req0..req19, labelled
    late = traffic.iloc[20:]
    ws.store.log_predictions([{"request_id": f"late{i}", "row": 0, "model": "loans", "version": 1,
                               "inputs": {k: (None if isinstance(v, float) and np.isnan(v) else v)
                                          for k, v in row.items() if k in FEATURES}, "prediction": 0, "score": 0.2}
                              for i, row in enumerate(late.to_dict("records"))])  # not labelled yet
    ws.store.log_predictions([{"request_id": "newest", "row": 0, "model": "loans", "version": 1,
                               "inputs": ws.store.prediction_rows("loans", last=1)[0]["inputs"],
                               "prediction": 1, "score": 0.9}])
    ws.store.add_feedback([{"request_id": "newest", "row": 0, "model": "loans", "label": 1}])
    assert pending_feedback(ws, "loans") == 21
    assert _append_feedback(ws, "loans", recipe, "loans") == 21  # what a retrain takes
    assert pending_feedback(ws, "loans") == 0

    ws.store.add_feedback([{"request_id": f"late{i}", "row": 0, "model": "loans", "label": int(label)}
                           for i, label in enumerate(late["default"])])  # labels for rows logged before "newest"
    frame, _ = feedback_frame(ws, "loans", recipe)
    assert len(frame) == 20 and frame["default"].tolist() == [int(v) for v in late["default"]]
    assert _append_feedback(ws, "loans", recipe, "loans") == 20
    assert pending_feedback(ws, "loans") == 0

    ws.store.set_state("retrain.label_watermark.loans", None)  # as an earlier serein left it: a log id,
    first_20 = ws.store.prediction_rows("loans")[19]["id"]  # after taking req0..req19
    ws.store.set_state("retrain.feedback_watermark.loans", first_20)
    assert pending_feedback(ws, "loans") == 21  # the late rows and "newest", not req0..req19 again
