"""``serein.deploy`` from a notebook: a DataFrame and a pipeline in, a gated model version out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import serein
from serein.errors import UsageError
from serein.train.recipe import Recipe
from serein.workspace import Workspace

NUMERIC = ["age", "income", "credit_score", "term_months", "loan_amount", "debt_to_income"]
CATEGORICAL = ["employment", "home_ownership", "purpose"]


def notebook_pipeline() -> Pipeline:
    """What a data scientist would write: their own preprocessing and a logistic regression."""
    return make_pipeline(
        ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), CATEGORICAL),
        ]),
        LogisticRegression(max_iter=300),
    )


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.init(tmp_path_factory.mktemp("deploy") / "ws")


def test_deploy_unfitted_pipeline_from_a_dataframe(ws: Workspace, credit_df: pd.DataFrame) -> None:
    result = serein.deploy(notebook_pipeline(), name="loans", data=credit_df, target="default", workspace=ws,
                           split={"method": "time", "column": "applied_at"})
    assert result.gate.passed and result.alias == "champion" and result.promoted
    # the data became dataset version 0 with a suggested contract saved for review: lineage exists
    assert result.dataset == "loans" and result.dataset_version == 0
    assert ws.datasets.contract_path("loans").is_file()
    info = ws.registry.get("loans", "champion")
    assert info.tags["serein.dataset"] == "loans" and info.tags["serein.dataset_version"] == "0"
    assert info.tags["serein.data_hash"] == ws.datasets.load("loans@0").content_hash
    model = ws.registry.load("loans")
    assert "applied_at" not in model.features and model.recipe["estimator"]["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert model.onnx_path is not None  # a linear model converts and agrees
    # the stored recipe is a valid recipe (retraining rebuilds from it)
    assert Recipe.from_dict(model.recipe).estimator.build("classification", 0).max_iter == 300
    rows = credit_df[model.features].tail(20)
    assert (model.pipeline.predict(rows) == onnx_predict(model, rows)).all()


def onnx_predict(model: object, rows: pd.DataFrame) -> object:
    """Predictions through ONNX Runtime, to check the export against the pipeline."""
    from serein.registry.onnx_export import onnx_feeds, onnx_inputs, session

    sess = session(model.onnx_path)  # type: ignore[attr-defined]
    return sess.run(None, onnx_feeds(rows, onnx_inputs(model.contract, model.features)))[0].ravel()  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:X has feature names")
def test_deploy_fitted_pipeline_is_evaluated_and_promoted(ws: Workspace, credit_df: pd.DataFrame) -> None:
    features = NUMERIC + CATEGORICAL
    fitted = notebook_pipeline().fit(credit_df[features], credit_df["default"])
    data = credit_df.copy()
    data.loc[data.index[:7], "age"] = -1.0  # breaks the contract saved by the first deploy
    result = serein.deploy(fitted, name="loans", data=data, target="default", workspace=ws)
    assert result.notes[0].startswith("7 of 4000 rows broke the contract of dataset 'loans' and were quarantined")
    assert any("came fitted" in note for note in result.notes)
    assert result.gate.champion_version == 1 and result.gate.passed
    assert result.alias == "champion" and ws.registry.history("loans") == [1, 2]
    assert ws.registry.load("loans").features == features
    unnamed = notebook_pipeline()[-1].fit(credit_df[NUMERIC].fillna(0).to_numpy(), credit_df["default"])
    with pytest.raises(UsageError, match="does not know its column names"):
        serein.deploy(unnamed, name="loans", data=credit_df, target="default", workspace=ws)
    with pytest.raises(UsageError, match="cannot predict from the feature columns age, purpose"):
        serein.deploy(unnamed, name="loans", data=credit_df, target="default", workspace=ws, features=["age", "purpose"])
    assert result.dataset_version == 1 and len(ws.datasets.load("loans@1").frame) == 3993


def test_deploy_errors(ws: Workspace, credit_df: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="target 'label' is not a column"):
        serein.deploy(notebook_pipeline(), name="loans", data=credit_df, target="label", workspace=ws)
    with pytest.raises(UsageError, match="must be a pandas DataFrame"):
        serein.deploy(notebook_pipeline(), name="loans", data=credit_df.to_dict(), target="default", workspace=ws)
    with pytest.raises(UsageError, match="is not a scikit-learn estimator"):
        serein.deploy("model.pkl", name="loans", data=credit_df, target="default", workspace=ws)
    with pytest.raises(UsageError, match="invalid model name"):
        serein.deploy(notebook_pipeline(), name="my loans", data=credit_df, target="default", workspace=ws)
    assert [v.version for v in ws.registry.versions("loans")] == [1, 2]
    assert ws.registry.rollback("loans").version == 1


def test_train_from_python_with_a_recipe_dict(ws: Workspace, credit_df: pd.DataFrame, tmp_path: Path) -> None:
    result = serein.train(
        {"name": "loans-hgb", "data": "loans", "target": "default", "task": "classification",
         "split": {"method": "time", "column": "applied_at"}},
        overrides=["estimator.params.max_iter=20"], workspace=ws,
    )
    assert result.dataset == "loans" and result.dataset_version == ws.datasets.resolve("loans")[1]
    assert result.alias == "champion"
    assert ws.registry.load("loans-hgb").tags["serein.contract_source"] == "reviewed"


def test_deploy_a_bare_gradient_boosting_on_categorical_columns(ws: Workspace, credit_df: pd.DataFrame) -> None:
    """scikit-learn's HistGradientBoosting reads pandas categoricals as categories
    (``categorical_features="from_dtype"``); the dataset gives them back as text, so serein fits it
    on categoricals again, and it then scores the same columns sent as text."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from serein.serve.models import prepare

    features = NUMERIC + CATEGORICAL
    frame = credit_df.astype({c: "category" for c in CATEGORICAL})
    result = serein.deploy(HistGradientBoostingClassifier(max_iter=30), name="loans_hgb", data=frame, target="default",
                           features=features, workspace=ws, split={"method": "time", "column": "applied_at"})
    assert result.gate.passed and result.alias == "champion"
    model = ws.registry.load("loans_hgb")
    estimator = model.pipeline.steps[-1][1] if isinstance(model.pipeline, Pipeline) else model.pipeline
    assert list(estimator.is_categorical_) == [c in CATEGORICAL for c in features]
    text = credit_df[features].tail(50)
    rows = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in text.to_dict("records")]
    served = prepare(model, threads=1)
    _, out = served.score(rows)
    assert np.allclose(out.probabilities, model.pipeline.predict_proba(text), rtol=0, atol=1e-12)
