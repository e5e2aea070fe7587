"""The ONNX export decision: kept when it agrees with scikit-learn on the holdout, skipped with the
reason recorded when it does not convert or disagrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from serein.data.contract import Contract
from serein.registry import onnx_export
from serein.registry.onnx_export import export_onnx, onnx_feeds, onnx_inputs
from serein.train.pipeline import build_pipeline

FEATURES = ["age", "income", "employment", "purpose"]


@pytest.fixture(scope="module")
def data(credit_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, Contract]:
    contract = Contract.from_dict({"columns": {
        "age": {"type": "float"}, "income": {"type": "float"},
        "employment": {"type": "string"}, "purpose": {"type": "string"}}})
    train, test = credit_df.iloc[:3000], credit_df.iloc[3000:]
    return train[FEATURES], test[FEATURES], train["default"], contract


def _fitted(data: tuple, scale: bool = False):  # noqa: ANN202
    X, _, y, _ = data
    return build_pipeline(["age", "income"], ["employment", "purpose"],
                          HistGradientBoostingClassifier(max_iter=15, random_state=0), scale=scale).fit(X, y)


def test_export_agrees_and_is_written(data: tuple, tmp_path: Path) -> None:
    _, X_test, _, contract = data
    result = export_onnx(_fitted(data), X_test, contract, FEATURES, "classification", tmp_path / "m.onnx")
    assert result.path is not None and result.path.is_file()
    assert result.label_agreement == 1.0 and result.max_diff is not None and result.max_diff < 1e-4
    assert result.tags()["serein.onnx"] == "ok"
    # missing categories are fed as "" and missing numbers as NaN
    feeds = onnx_feeds(X_test.head(200), onnx_inputs(contract, FEATURES))
    assert feeds["age"].dtype == np.float32 and feeds["age"].shape == (200, 1)
    assert "" in set(feeds["employment"].ravel()) and np.isnan(feeds["age"]).any()


def test_disagreement_beyond_tolerance_is_skipped(data: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, X_test, _, contract = data
    monkeypatch.setattr(onnx_export, "MAX_PROBA_DIFF", -1.0)  # no float32 export can meet this
    result = export_onnx(_fitted(data), X_test, contract, FEATURES, "classification", tmp_path / "m.onnx")
    assert result.path is None and not (tmp_path / "m.onnx").exists()
    assert result.tags()["serein.onnx"].startswith("skipped: disagrees with scikit-learn on the holdout")
    assert "serein.onnx.max_diff" in result.tags()


def test_a_small_shift_of_every_row_is_a_disagreement(data: tuple, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An export whose every probability is off by a little (as a category or a null encoded
    differently from scikit-learn makes it), each row under the 0.05 maximum difference and the
    labels the same: the mean difference refuses it."""
    _, X_test, _, contract = data
    real_session = onnx_export.session

    class Shifted:
        def __init__(self, model: bytes) -> None:
            self.inner = real_session(model)

        def run(self, names: object, feeds: dict) -> list:
            labels, proba = self.inner.run(names, feeds)
            proba = np.clip(np.asarray(proba) + [-0.002, 0.002], 0.0, 1.0)
            return [labels, proba]

    pipeline = _fitted(data)
    monkeypatch.setattr(onnx_export, "session", Shifted)
    result = export_onnx(pipeline, X_test, contract, FEATURES, "classification", tmp_path / "m.onnx")
    assert result.path is None and result.label_agreement == 1.0
    assert result.max_diff is not None and result.max_diff <= onnx_export.MAX_PROBA_DIFF
    assert "mean difference 0.002" in result.reason


def test_unconvertible_step_is_skipped_with_the_reason(data: tuple, tmp_path: Path) -> None:
    X, X_test, _, contract = data
    pipe = Pipeline([("identity", FunctionTransformer(lambda frame: frame).fit(X)), *_fitted(data).steps])
    result = export_onnx(pipe, X_test, contract, FEATURES, "classification", tmp_path / "m.onnx")
    assert result.path is None and result.reason.startswith("conversion failed:")
    assert result.tags()["serein.onnx"].startswith("skipped: conversion failed")


def test_awkward_column_names_and_booleans_export(tmp_path: Path) -> None:
    """Column names that are not identifiers keep their names as ONNX inputs, and a boolean
    column (fed as "True"/"False") converts and agrees with scikit-learn (whole-number ages keep
    the trees' thresholds away from float32 rounding)."""
    rng = np.random.default_rng(5)
    n = 600
    X = pd.DataFrame({"Age (years)": rng.integers(18, 80, n).astype(float), "spend€": rng.gamma(2, 50, n).round(1),
                      "is active": rng.choice([True, False], n), "plan type": rng.choice(["a", "b", None], n)})
    y = np.where((X["Age (years)"] > 40) ^ X["is active"], "yes", "no")
    contract = Contract.from_dict({"columns": {"Age (years)": {"type": "float"}, "spend€": {"type": "float"},
                                               "is active": {"type": "boolean"}, "plan type": {"type": "string"}}})
    features = list(X.columns)
    pipeline = build_pipeline(["Age (years)", "spend€"], ["is active", "plan type"],
                              HistGradientBoostingClassifier(max_iter=15, random_state=0)).fit(X, y)
    result = export_onnx(pipeline, X, contract, features, "classification", tmp_path / "m.onnx")
    assert result.path is not None, result.reason
    session = onnx_export.session(result.path)
    assert [i.name for i in session.get_inputs()] == features
    labels, proba = session.run(None, onnx_feeds(X, onnx_inputs(contract, features)))
    assert (labels == pipeline.predict(X)).all()
    assert np.abs(proba - pipeline.predict_proba(X)).max() < 1e-4


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_bare_estimator_on_numeric_columns_exports(task: str, tmp_path: Path) -> None:
    """A forest fitted on the numeric columns themselves (no pipeline in front, so its converter
    takes one matrix) is exported with one input per column, joined in order, and agrees."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    rng = np.random.default_rng(3)
    n = 500
    X = pd.DataFrame({"b": rng.integers(0, 50, n).astype(float), "a": rng.integers(0, 9, n).astype(float),
                      "label": rng.integers(0, 20, n).astype(float)})  # a column named like an ONNX output
    y = X["b"] - 3 * X["a"] + rng.normal(0, 1, n)
    model = (RandomForestClassifier(20, random_state=0).fit(X, y > 10) if task == "classification"
             else RandomForestRegressor(20, random_state=0).fit(X, y))
    contract = Contract.from_dict({"columns": {c: {"type": "float"} for c in X.columns}})
    features = list(X.columns)
    result = export_onnx(model, X, contract, features, task, tmp_path / "m.onnx")
    assert result.path is not None, result.reason
    session = onnx_export.session(result.path)
    assert [i.name for i in session.get_inputs()] == features
    outputs = session.run(None, onnx_feeds(X, onnx_inputs(contract, features)))
    if task == "classification":
        assert (outputs[0].ravel() == model.predict(X)).all()
        assert np.abs(outputs[1] - model.predict_proba(X)).max() < 1e-4
    else:
        assert np.abs(outputs[0].ravel() - model.predict(X)).max() < 1e-3 * model.predict(X).std()


def test_a_split_between_two_neighbouring_float32_values_is_kept(tmp_path: Path) -> None:
    """scikit-learn's trees compare float32 inputs with float64 thresholds: a split halfway
    between two neighbouring float32 values must not move when the export stores it as float32
    (rounded to nearest, the tie would go to the upper value and flip every row holding it;
    skl2onnx rounds thresholds down, which this export relies on)."""
    from sklearn.ensemble import RandomForestClassifier

    low = np.nextafter(np.float32(2.0**20), np.float32(np.inf))  # odd last bit: the halfway tie rounds up
    high = np.nextafter(low, np.float32(np.inf))  # 1/8 above: scikit-learn splits values this far apart
    X = pd.DataFrame({"x": np.repeat([float(low), float(high)], 50)})
    y = np.repeat([0, 1], 50)
    model = RandomForestClassifier(5, bootstrap=False, random_state=0).fit(X, y)
    contract = Contract.from_dict({"columns": {"x": {"type": "float"}}})
    result = export_onnx(model, X, contract, ["x"], "classification", tmp_path / "m.onnx")
    assert result.path is not None, result.reason
    labels, _ = onnx_export.session(result.path).run(None, onnx_feeds(X, onnx_inputs(contract, ["x"])))
    assert (labels.ravel() == model.predict(X)).all() and set(labels.ravel()) == {0, 1}


def test_a_missing_category_learnt_by_an_encoder_is_fed_as_missing(tmp_path: Path) -> None:
    """A one-hot encoder fitted without an imputer learns NaN as a category; the export matches
    it to the missing value inputs are fed as, so rows without the category agree too."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(6)
    n = 600
    X = pd.DataFrame({"city": rng.choice(["paris", "lyon", None], n), "x": rng.integers(0, 10, n).astype(float)})
    y = (X["city"].isna() ^ (X["x"] > 4)).to_numpy()
    model = Pipeline([("encode", ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                                                   remainder="passthrough")),
                      ("forest", RandomForestClassifier(10, random_state=0))]).fit(X, y)
    contract = Contract.from_dict({"columns": {"city": {"type": "string", "nullable": True}, "x": {"type": "float"}}})
    result = export_onnx(model, X, contract, ["city", "x"], "classification", tmp_path / "m.onnx")
    assert result.path is not None, result.reason
    assert result.label_agreement == 1.0


def test_a_boolean_handed_to_the_model_as_it_is_goes_in_as_a_number(tmp_path: Path) -> None:
    """A boolean column an encoder never sees (passed through to the model) converts as a
    numeric input, True as 1.0, and agrees with scikit-learn."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(8)
    n = 800
    X = pd.DataFrame({"plan": rng.choice(["a", "b"], n), "member": rng.random(n) < 0.4,
                      "x": rng.integers(0, 10, n).astype(float)})
    y = (X["member"] ^ (X["x"] > 5) ^ (X["plan"] == "a")).to_numpy()
    model = Pipeline([("encode", ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")),
                      ("boost", GradientBoostingClassifier(n_estimators=20, random_state=0))]).fit(X, y)
    contract = Contract.from_dict({"columns": {"plan": {"type": "string"}, "member": {"type": "boolean"},
                                               "x": {"type": "float"}}})
    result = export_onnx(model, X, contract, list(X.columns), "classification", tmp_path / "m.onnx")
    assert result.path is not None, result.reason
    assert result.inputs == {"plan": "string", "member": "float", "x": "float"}
    assert result.label_agreement == 1.0


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_lightgbm_and_xgboost_models_export_through_onnxmltools(library: str, tmp_path: Path) -> None:
    """A boosting library's classifier behind a one-hot encoder, and its regressor on the
    numeric columns alone (XGBoost's boosters remember column names the converter cannot read),
    both export and agree."""
    from sklearn.compose import ColumnTransformer

    module = pytest.importorskip(library)
    pytest.importorskip("onnxmltools")
    classifier, regressor = ((module.LGBMClassifier, module.LGBMRegressor) if library == "lightgbm"
                             else (module.XGBClassifier, module.XGBRegressor))
    quiet = {"verbose": -1} if library == "lightgbm" else {}
    rng = np.random.default_rng(9)
    n = 1500
    X = pd.DataFrame({"a": rng.normal(size=n).round(3), "b": rng.normal(size=n).round(3), "c": rng.choice(["x", "y", "z"], n)})
    y = ((X["a"] + (X["c"] == "x") + rng.normal(0, 0.5, n)) > 0.5).to_numpy()
    contract = Contract.from_dict({"columns": {"a": {"type": "float"}, "b": {"type": "float"}, "c": {"type": "string"}}})
    pipeline = Pipeline([("encode", ColumnTransformer([("c", OneHotEncoder(sparse_output=False), ["c"])],
                                                      remainder="passthrough")),
                         ("boost", classifier(n_estimators=30, **quiet))]).fit(X, y)
    result = export_onnx(pipeline, X, contract, ["a", "b", "c"], "classification", tmp_path / "c.onnx")
    assert result.path is not None, result.reason
    assert result.label_agreement == 1.0
    bare = regressor(n_estimators=30, **quiet).fit(X[["a", "b"]], X["a"] * 3 - X["b"])
    result = export_onnx(bare, X, contract, ["a", "b"], "regression", tmp_path / "r.onnx")
    assert result.path is not None, result.reason
    if library == "xgboost":
        assert bare.get_booster().feature_names == ["a", "b"]  # only the export's copy forgot them
