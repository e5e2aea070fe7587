"""Shared fixtures: fresh workspaces and the bundled demo data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serein import tree_kernel, tree_tables
from serein.demo.credit import make_credit
from serein.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A new, empty workspace with embedded stores."""
    return Workspace.init(tmp_path / "ws")


@pytest.fixture(params=["kernel", "numpy"])
def scorer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Score tree tables with the compiled kernel (``serein.tree_kernel``), then with numpy."""
    if request.param == "numpy":
        monkeypatch.setattr(tree_tables, "kernel_for", lambda *args: None)
    elif tree_kernel.library() is None:
        pytest.skip("the C kernel is not built here (no C compiler when serein was installed)")
    return str(request.param)


def linear_frame(task: str) -> tuple[pd.DataFrame, list[str], str]:
    """600 rows of 12 small floats and a text column with a target a linear model learns
    (``classification``: three text classes; else a number), its float columns and the
    estimator: a model whose float32 sums overflow on inputs near float32's limit."""
    rng = np.random.default_rng(5)
    n, floats = 600, [f"f{i}" for i in range(12)]
    frame = pd.DataFrame({f: rng.normal(0, 0.1, n) for f in floats}).assign(c=rng.choice(["x", "y"], n))
    signal = frame[floats].to_numpy() @ rng.normal(size=len(floats))
    estimator: Any
    if task == "classification":
        frame["y"] = np.where(signal > 0.1, "hi", np.where(signal < -0.1, "lo", "mid"))
        estimator = "sklearn.linear_model.LogisticRegression"
    else:
        frame["y"] = signal + rng.normal(0, 0.01, n)
        estimator = "sklearn.linear_model.Ridge"
    return frame, floats, estimator


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
