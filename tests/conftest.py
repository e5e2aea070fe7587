"""Shared fixtures: fresh workspaces and the bundled demo data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from serein.demo.credit import make_credit
from serein.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A new, empty workspace with embedded stores."""
    return Workspace.init(tmp_path / "ws")


@pytest.fixture(scope="session")
def credit_df() -> pd.DataFrame:
    """4,000 loan applications from the stable regime (do not mutate)."""
    return make_credit(4000, seed=0)


@pytest.fixture(scope="session")
def drifted_df() -> pd.DataFrame:
    """1,500 loan applications from the drifted regime (do not mutate)."""
    return make_credit(1500, start="2026-07-01", days=30, drift=True, seed=1)


EXAMPLE_RECIPE = Path(__file__).resolve().parents[1] / "examples" / "credit" / "recipe.yaml"
TRAINED_MODEL = "credit-default"


@pytest.fixture(scope="session")
def trained_workspace(tmp_path_factory: pytest.TempPathFactory, credit_df: pd.DataFrame) -> Workspace:
    """A workspace with ``credit_df`` ingested as dataset ``credit`` (version 0), its suggested
    contract saved, and ``credit-default`` v1 trained from examples/credit/recipe.yaml
    (HistGradientBoosting, 40 iterations, time split) as champion, with an ONNX export.

    Built once per session and shared: do not add versions or move its aliases (make your own
    workspace for that). Costs ~15 s, most of it creating the MLflow database.
    """
    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    ws = Workspace.init(tmp_path_factory.mktemp("trained") / "ws")
    suggest_contract(credit_df, dataset="credit").save(ws.datasets.contract_path("credit"))
    ws.datasets.ingest(credit_df, "credit")
    result = train(ws, Recipe.load(EXAMPLE_RECIPE, ["estimator.params.max_iter=40"]))
    assert result.alias == "champion", result.gate.reasons
    return ws
