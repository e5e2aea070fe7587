"""Training data is checked against the dataset's contract: broken rows stop the job,
a batch-level shortfall (completeness under its bound) is only noted."""

from __future__ import annotations

import pandas as pd
import pytest

from serein.data.contract import Contract
from serein.errors import ValidationFailed
from serein.train.recipe import Recipe
from serein.train.trainer import train
from serein.workspace import Workspace

RECIPE = {
    "name": "tiny", "target": "y", "task": "classification",
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 200}},
    "split": {"method": "random", "test_size": 0.3}, "seed": 1,
    "gate": {"metric": "roc_auc", "min_improvement_over_baseline": 0.0},
}


def _frame(n: int = 400) -> pd.DataFrame:
    x = pd.Series(range(n), dtype="float64") / n
    frame = pd.DataFrame({"x": x, "y": (x > 0.5).astype("int64")})
    frame.loc[frame.index % 10 == 0, "x"] = None  # 10% missing
    frame.loc[frame.index % 7 == 0, "y"] = 1 - frame.loc[frame.index % 7 == 0, "y"]  # some noise
    return frame


def _contract(completeness: float) -> Contract:
    return Contract.from_dict({"columns": {
        "x": {"type": "float", "completeness": completeness, "non_negative": True},
        "y": {"type": "integer", "nullable": False},
    }})


def test_row_level_violations_stop_training(workspace: Workspace) -> None:
    _contract(0.5).save(workspace.datasets.contract_path("tinydata"))
    frame = _frame()
    frame.loc[3, "x"] = -5.0
    workspace.datasets.ingest(frame.drop(index=3), "tinydata")
    with pytest.raises(ValidationFailed, match="breaks its contract"):
        train(workspace, Recipe.from_dict({**RECIPE, "data": "tinydata"}), frame=frame)


def test_completeness_shortfall_is_noted_not_fatal(workspace: Workspace) -> None:
    _contract(0.99).save(workspace.datasets.contract_path("tinydata"))
    frame = _frame()
    workspace.datasets.ingest(frame, "tinydata")  # completeness is batch-level: rows are accepted
    result = train(workspace, Recipe.from_dict({**RECIPE, "data": "tinydata"}))
    assert result.version == 1
    assert any("batch-level" in note and "completeness" in note for note in result.notes), result.notes
