"""Recipes, splits, pipelines and the gate: the parts of training that need no MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serein.errors import NotFoundError, UsageError
from serein.train.gate import decide
from serein.train.recipe import GateSpec, Recipe, SplitSpec
from serein.train.split import split_frame

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "credit" / "recipe.yaml"
BASE = {"name": "m", "data": "credit", "target": "default", "task": "classification"}


def test_example_recipe_loads_with_overrides() -> None:
    r = Recipe.load(EXAMPLE, ["estimator.params.max_iter=50", "split.test_size=0.25", "gate.metric=log_loss"])
    assert r.estimator.params["max_iter"] == 50 and r.estimator.params["learning_rate"] == 0.08
    assert r.split == SplitSpec("time", 0.25, "applied_at")
    assert r.gate.metric == "log_loss"
    assert r.scale is False  # auto: tree ensembles are not scaled
    assert Recipe.from_dict(r.to_dict()).to_dict() == r.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"taget": "default"}, "unknown key(s) 'taget' (valid keys: data, estimator"),
        ({"split": {"methd": "time"}}, "split: unknown key(s) 'methd' (valid keys: column, method, test_size)"),
        ({"estimator": {"class": "sklearn.ensemble.NoSuchForest"}}, "sklearn.ensemble has no estimator class 'NoSuchForest'"),
        ({"estimator": {"class": "nosuchpkg.Model"}}, "cannot import module 'nosuchpkg'"),
        ({"estimator": {"class": "RandomForest"}}, "is not a dotted path"),
        ({"task": "ranking"}, "task 'ranking' is not supported"),
        ({"split": {"method": "time"}}, "needs split.column"),
        ({"split": {"test_size": 1.5}}, "test_size must be a fraction"),
        ({"metrics": ["rmse"]}, "unknown classification metric 'rmse'"),
        ({"gate": {"min_improvement_over_baseline": "lots"}}, "must be a non-negative number"),
        ({"name": "1bad name"}, "invalid model name"),
        ({"target": None}, "'target' is required"),
    ],
)
def test_recipe_errors_name_the_problem(change: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        Recipe.from_dict({**BASE, **change})
    assert message in str(info.value)


def test_bad_override_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--set key=value"):
        Recipe.from_dict(BASE, ["estimator.params.max_iter"])
    with pytest.raises(UsageError, match="unknown key"):
        Recipe.from_dict(BASE, ["estimator.parms.max_iter=3"])
    with pytest.raises(NotFoundError, match="not found"):
        Recipe.load(tmp_path / "nope.yaml")


def test_estimator_params_and_kind_are_checked() -> None:
    r = Recipe.from_dict({**BASE, "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"C_value": 1}}})
    with pytest.raises(UsageError, match="valid parameters: C, class_weight"):
        r.estimator.build("classification", 0)
    r = Recipe.from_dict({**BASE, "estimator": {"class": "sklearn.linear_model.Ridge"}})
    with pytest.raises(UsageError, match="is not a classifier"):
        r.estimator.build("classification", 0)
    est = Recipe.from_dict(BASE, ["seed=5"]).estimator.build("classification", 5)
    assert est.random_state == 5


def _frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "t": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")[rng.permutation(n)],
        "x": rng.normal(size=n),
        "y": rng.integers(0, 2, n),
    })


def test_time_split_trains_on_the_past() -> None:
    df = _frame()
    train, test = split_frame(df, "y", SplitSpec("time", 0.2, "t"), "classification", 0)
    assert len(test) == 20 and len(train) == 80
    assert train["t"].max() < test["t"].min()
    assert test["t"].max() == df["t"].max()


def test_random_split_is_stratified_and_seeded() -> None:
    df = _frame(200)
    a_train, a_test = split_frame(df, "y", SplitSpec("random", 0.25), "classification", 3)
    b_train, b_test = split_frame(df, "y", SplitSpec("random", 0.25), "classification", 3)
    assert a_test.index.equals(b_test.index)
    assert abs(a_test["y"].mean() - df["y"].mean()) < 0.02


def test_split_errors() -> None:
    df = _frame()
    with pytest.raises(UsageError, match="split.column 'when' is not in the data"):
        split_frame(df, "y", SplitSpec("time", 0.2, "when"), "classification", 0)
    one_class_recent = df.sort_values("t").assign(y=[0, 1] * 40 + [1] * 20)
    with pytest.raises(UsageError, match="holdout split holds a single class"):
        split_frame(one_class_recent, "y", SplitSpec("time", 0.2, "t"), "classification", 0)


def test_gate_directions_and_champion_tolerance() -> None:
    auc = GateSpec("roc_auc", 0.05, 0.01)
    assert decide(auc, 0.80, 0.50).passed
    assert not decide(auc, 0.53, 0.50).passed  # beats the baseline, but not by the margin
    worse = decide(auc, 0.80, 0.50, champion_value=0.82, champion_version=1)
    assert not worse.passed and "worse than tolerance of champion v1" in worse.reasons[1]
    assert decide(auc, 0.80, 0.50, champion_value=0.805, champion_version=1).passed
    rmse = GateSpec("rmse", 0.0, 0.1)
    assert decide(rmse, 2.0, 3.0).passed and not decide(rmse, 3.0, 3.0).passed
    assert not decide(rmse, 2.0, 3.0, champion_value=1.8, champion_version=2).passed
    blocked = decide(auc, 0.9, 0.5, champion_version=3, champion_error="the data lacks its feature(s) x")
    assert not blocked.passed and "could not be compared" in blocked.reasons[-1]


def test_default_features_leave_out_identifiers_and_empty_columns() -> None:
    """Without 'features', a text column distinct on every row and a column with no values are
    left out, each with a note; listing them keeps them."""
    from serein.train.pipeline import resolve_features

    frame = pd.DataFrame({"customer id": [f"c{i}" for i in range(200)], "notes": [None] * 200,
                          "city": ["Lyon", "Oslo"] * 100, "age": np.arange(200.0), "y": [0, 1] * 100})
    notes: list[str] = []
    assert resolve_features(frame, "y", None, None, notes) == ["city", "age"]
    assert any("'customer id'" in n and "identifier (200 distinct values in 200 rows)" in n for n in notes)
    assert any("'notes'" in n and "no values" in n for n in notes)
    assert resolve_features(frame, "y", None, ["customer id", "age"]) == ["customer id", "age"]
