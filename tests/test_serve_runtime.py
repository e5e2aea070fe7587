"""Runtimes on real fitted pipelines: the scikit-learn pipeline itself and its ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import linear_frame

from serein.data.contract import Contract
from serein.registry.loaded import LoadedModel
from serein.serve.models import prepare
from serein.serve.runtime import EstimatorRuntime, OnnxRuntime, SklearnRuntime, TablesRuntime, make_runtime
from serein.serve.validation import RowValidator

NUMERIC = ["age", "income", "credit_score", "term_months", "loan_amount", "debt_to_income"]
CATEGORICAL = ["employment", "home_ownership", "purpose", "region"]
CONTRACT = Contract.from_dict({"columns": {
    **{c: {"type": "float"} for c in NUMERIC if c != "term_months"},
    "term_months": {"type": "integer", "nullable": False},
    **{c: {"type": "string"} for c in CATEGORICAL},
}})


def _pipeline(missing: object):
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = make_pipeline(SimpleImputer(missing_values=missing, strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    return make_pipeline(make_column_transformer((SimpleImputer(strategy="median"), NUMERIC),
                                                 (categorical, CATEGORICAL)),
                         HistGradientBoostingClassifier(max_iter=30, random_state=0))


@pytest.fixture(scope="module")
def data(credit_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    frame = credit_df.iloc[:1200]
    return frame[NUMERIC + CATEGORICAL], frame["default"]


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return _pipeline(np.nan).fit(X, y)


def _loaded(pipeline, onnx_path: str | None = None) -> LoadedModel:
    return LoadedModel(name="credit", version=1, run_id="r", pipeline=pipeline, contract=CONTRACT,
                       features=NUMERIC + CATEGORICAL, target="default", task="classification",
                       classes=pipeline.classes_.tolist(), onnx_path=onnx_path, profile={}, recipe={})


def _rows(X: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them: nulls as None, integers as ints."""
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in X.to_dict("records")]


def test_sklearn_runtime_matches_the_pipeline(fitted, data) -> None:
    X, _ = data
    sample = X.iloc[:300]
    batch = RowValidator(CONTRACT).validate(_rows(sample))
    runtime = SklearnRuntime(fitted, CONTRACT, fitted.classes_)
    out = runtime.predict(batch.columns, batch.n_rows)
    assert out.labels == fitted.predict(sample).tolist()
    expected = fitted.predict_proba(sample)
    np.testing.assert_allclose(np.array(out.probabilities), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.scores, expected[:, 1], atol=1e-12)
    assert all(type(label) is int for label in out.labels)
    assert sample.isna().any().any(), "the sample should exercise nulls"


def test_sklearn_runtime_survives_an_all_null_column(fitted) -> None:
    validator = RowValidator(CONTRACT)
    columns = validator.example_columns()
    columns["income"] = [None]
    columns["employment"] = [None]
    out = SklearnRuntime(fitted, CONTRACT, fitted.classes_).predict(columns, 1)
    assert out.labels[0] in (0, 1) and abs(sum(out.probabilities[0]) - 1) < 1e-9


def test_regressor_scores_are_its_values(data) -> None:
    from sklearn.linear_model import Ridge

    X, _ = data
    numeric = X[["credit_score", "term_months"]].iloc[:200]
    reg = Ridge().fit(numeric, np.arange(200.0))
    contract = CONTRACT.select(["credit_score", "term_months"])
    batch = RowValidator(contract).validate(_rows(numeric))
    out = SklearnRuntime(reg, contract, None).predict(batch.columns, batch.n_rows)
    assert out.probabilities is None and out.scores == out.labels
    np.testing.assert_allclose(out.labels, reg.predict(numeric))


@pytest.fixture(scope="module")
def onnx_model(data, tmp_path_factory) -> tuple[object, str]:
    """A pipeline whose categorical imputer uses "" (the form skl2onnx converts), exported."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    X, y = data
    X = X.copy()
    for c in CATEGORICAL:
        X[c] = X[c].astype(object).where(X[c].notna(), "")
    pipeline = _pipeline("").fit(X, y)
    types = [(c, FloatTensorType([None, 1])) for c in NUMERIC] + [(c, StringTensorType([None, 1])) for c in CATEGORICAL]
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(to_onnx(pipeline, initial_types=types, options={"zipmap": False}).SerializeToString())
    return pipeline, str(path)


def test_onnx_runtime_agrees_with_sklearn(onnx_model, data) -> None:
    pipeline, path = onnx_model
    X, _ = data
    sample = X.iloc[:400]
    batch = RowValidator(CONTRACT).validate(_rows(sample))
    runtime = make_runtime(_loaded(pipeline, path))
    assert isinstance(runtime, OnnxRuntime)
    out = runtime.predict(batch.columns, batch.n_rows)
    reference = sample.copy()
    for c in CATEGORICAL:
        reference[c] = reference[c].astype(object).where(reference[c].notna(), "")
    expected = pipeline.predict_proba(reference)
    # ONNX Runtime computes trees in float32: close, not bit-identical.
    np.testing.assert_allclose(np.array(out.probabilities), expected, atol=1e-4)
    agree = np.mean(np.array(out.labels) == pipeline.predict(reference))
    assert agree > 0.99


def test_onnx_runtime_falls_back_to_sklearn_when_export_unusable(fitted, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    runtime = make_runtime(_loaded(fitted, str(broken)))
    assert runtime.name == "sklearn"
    assert make_runtime(_loaded(fitted)).name == "sklearn"


def test_onnx_runtime_refuses_integer_inputs_for_nullable_features(onnx_model, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import Int64TensorType
    from sklearn.linear_model import LogisticRegression

    X = np.array([[12], [24], [36], [60]] * 5, dtype=np.int64)
    model = LogisticRegression().fit(X, [0, 1, 0, 1] * 5)
    path = tmp_path / "int.onnx"
    path.write_bytes(to_onnx(model, initial_types=[("term_months", Int64TensorType([None, 1]))]).SerializeToString())
    nullable = Contract.from_dict({"columns": {"term_months": {"type": "integer"}}})
    with pytest.raises(ValueError, match="cannot carry a null"):
        OnnxRuntime(str(path), nullable, [0, 1])
    strict = Contract.from_dict({"columns": {"term_months": {"type": "integer", "nullable": False}}})
    OnnxRuntime(str(path), strict, [0, 1])


def test_rows_the_pipeline_refuses_are_a_422_not_a_crash(data) -> None:
    """A contract looser than the model (it flags unseen categories, the encoder refuses them)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from serein.errors import ValidationFailed
    from serein.serve.models import prepare

    X, y = data
    strict = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="error"), ["region"])),
                           LogisticRegression()).fit(X[["region"]], y)
    contract = Contract.from_dict({"columns": {"region": {"type": "string", "nullable": False,
                                                          "allowed": ["east", "north", "south", "west"]}}})
    model = LoadedModel(name="strict", version=3, run_id="r", pipeline=strict, contract=contract, features=["region"],
                        target="default", task="classification", classes=[0, 1], onnx_path=None, profile={}, recipe={})
    served = prepare(model, threads=1)
    batch, out = served.score([{"region": "north"}])
    assert len(out.labels) == 1 and batch.flags == []
    with pytest.raises(ValidationFailed, match="could not score the instances although they passed the contract") as refused:
        served.score([{"region": "north"}, {"region": "atlantis"}])
    assert "first at row 1, field 'region': unseen category" in refused.value.message  # the likely cause, named
    assert refused.value.problems == [{"row": 1, "field": "region",  # type: ignore[attr-defined]
                                       "problem": "unseen category (accepted and flagged for monitoring)"}]


@pytest.mark.parametrize("shape", ["bare forest", "boolean passed through"])
def test_exports_fed_column_by_column_serve_what_scikit_learn_predicts(shape: str, tmp_path: Path) -> None:
    """The two export shapes that are not a column transformer's own inputs (a bare estimator
    behind a Concat of the columns; a boolean fed as a number) serve validated JSON rows as the
    fitted model predicts them."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from serein.registry.onnx_export import export_onnx

    rng = np.random.default_rng(11)
    n = 600
    X = pd.DataFrame({"x": rng.integers(0, 40, n).astype(float), "member": rng.random(n) < 0.5,
                      "plan": rng.choice(["a", "b"], n)})
    y = (X["x"] > 20) ^ X["member"]
    if shape == "bare forest":
        X = X[["x"]].assign(z=rng.integers(0, 9, n).astype(float))
        contract = Contract.from_dict({"columns": {"x": {"type": "float"}, "z": {"type": "float"}}})
        model = RandomForestClassifier(10, random_state=0).fit(X, y)
    else:
        contract = Contract.from_dict({"columns": {"x": {"type": "float"}, "member": {"type": "boolean", "nullable": False},
                                                   "plan": {"type": "string"}}})
        model = Pipeline([("encode", ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")),
                          ("forest", RandomForestClassifier(10, random_state=0))]).fit(X, y)
    features = list(X.columns)
    export = export_onnx(model, X, contract, features, "classification", tmp_path / "m.onnx")
    assert export.path is not None, export.reason
    loaded = LoadedModel(name="m", version=1, run_id="r", pipeline=model, contract=contract, features=features,
                         target="y", task="classification", classes=model.classes_.tolist(),
                         onnx_path=str(export.path), profile={}, recipe={})
    runtime = make_runtime(loaded)
    assert isinstance(runtime, OnnxRuntime)
    batch = RowValidator(contract).validate(_rows(X.iloc[:200]))
    out = runtime.predict(batch.columns, batch.n_rows)
    assert out.labels == model.predict(X.iloc[:200]).tolist()
    np.testing.assert_allclose(np.array(out.probabilities), model.predict_proba(X.iloc[:200]), atol=1e-5)


def test_a_checked_batch_plan_serves_through_numpy_preprocessing(trained_workspace, credit_df: pd.DataFrame,
                                                                 tmp_path: Path, monkeypatch, scorer: str) -> None:
    """With a batch plan that checked the pipeline's preprocessing, serving computes it with numpy
    and scores the trees as look-up tables with the compiled kernel (without it: the export's
    estimator part in ONNX Runtime): the whole export's answers, and scikit-learn's within the
    float32 tolerance. The plan is worked out on first use and remembered; if request columns
    ever preprocessed differently from the checked plan, or the faster path fails to set up, the
    whole export serves."""
    from serein import tree_tables
    from serein.arrow_features import ArrowFeatures

    model = trained_workspace.registry.load("credit-default")
    plan = tmp_path / "plan.json"
    fast, whole = prepare(model, threads=1, plan_file=plan), prepare(model, threads=1)
    assert isinstance(fast.runtime, TablesRuntime if scorer == "kernel" else EstimatorRuntime)
    assert isinstance(whole.runtime, OnnxRuntime)
    assert plan.exists() and fast.runtime.name == "onnx"
    sample = credit_df[model.features].iloc[:400]
    assert sample.isna().any().any(), "the sample should exercise nulls"
    for frame in (sample, sample.iloc[:1]):
        batch = fast.validator.validate(_rows(frame))
        ours, theirs = fast.runtime.predict(batch.columns, batch.n_rows), whole.runtime.predict(batch.columns, batch.n_rows)
        assert ours.labels == theirs.labels
        np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=1e-6)
        np.testing.assert_allclose(ours.probabilities, model.pipeline.predict_proba(frame), atol=1e-4)

    def zeros(self: ArrowFeatures, columns: object, n: int) -> np.ndarray:
        return np.zeros((n, self.width), np.float32)

    monkeypatch.setattr(ArrowFeatures, "matrix_of", zeros)
    monkeypatch.setattr(ArrowFeatures, "inputs_of", lambda self, columns, n: (zeros(self, columns, n).T, zeros(self, columns, n).T))
    assert isinstance(prepare(model, threads=1, plan_file=plan).runtime, OnnxRuntime)

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("the export's graph could not be cut")

    monkeypatch.undo()
    monkeypatch.setattr(tree_tables, "kernel_for", lambda *args: None)  # the tables need no cut of the export
    monkeypatch.setattr("serein.serve.models.estimator_model", broken)
    assert isinstance(prepare(model, threads=1, plan_file=plan).runtime, OnnxRuntime)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_numpy_preprocessing_serves_multiclass_and_regression_models_as_the_export_does(
        task: str, workspace, tmp_path: Path) -> None:
    """A three-class model with text labels and a regressor, trained from recipes on data with
    nulls: the numpy-preprocessing runtime answers as the whole export does (exactly with ONNX
    Runtime on the estimator part; with the tables, within float rounding: they sum leaf values
    in float64)."""
    from serein import tree_kernel
    from serein.batch import plan_path
    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 50, n), "c": rng.choice(["x", "y", "z"], n)})
    frame.loc[::17, "a"] = np.nan
    frame.loc[::23, "c"] = None
    if task == "classification":
        frame["y"] = np.where(frame["a"].fillna(0) > 0.5, "hi", np.where(frame["c"] == "x", "mid", "lo"))
        estimator = "sklearn.ensemble.HistGradientBoostingClassifier"
    else:
        frame["y"] = frame["a"].fillna(0) * 3 + frame["b"] * 0.1 + rng.normal(size=n)
        estimator = "sklearn.ensemble.HistGradientBoostingRegressor"
    suggest_contract(frame, dataset="d").save(workspace.datasets.contract_path("d"))
    workspace.datasets.ingest(frame, "d")
    train(workspace, Recipe.from_dict({"name": "m", "data": "d", "target": "y", "task": task,
                                       "estimator": {"class": estimator, "params": {"max_iter": 20}}}), promote=True)
    model = workspace.registry.load("m")
    fast, whole = prepare(model, threads=1, plan_file=plan_path(workspace, model)), prepare(model, threads=1)
    assert isinstance(fast.runtime, EstimatorRuntime if tree_kernel.library() is None else TablesRuntime)
    assert isinstance(whole.runtime, OnnxRuntime)
    batch = fast.validator.validate(_rows(frame[model.features].iloc[:300]))
    ours, theirs = fast.runtime.predict(batch.columns, batch.n_rows), whole.runtime.predict(batch.columns, batch.n_rows)
    if task == "classification":
        assert ours.labels == theirs.labels
        np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=1e-6)
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-5, atol=1e-6)
    if task == "classification":
        assert set(ours.labels) == {"hi", "mid", "lo"} and len(ours.probabilities[0]) == 3
    else:
        assert ours.probabilities is None and ours.scores == ours.labels and len(set(ours.labels)) > 10


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_outputs_that_overflow_float32_are_the_pipelines_or_refused_naming_the_field(task: str, workspace) -> None:
    """A linear model fed values near float32's limit: ONNX Runtime's output overflows (NaN
    probabilities and a label picked from them; an infinite value, answered as ``null``) where
    scikit-learn, in float64, still answers. Served, those rows get the pipeline's answer,
    through either ONNX runtime and over HTTP; a row the pipeline has no finite answer for either
    is refused with 422 naming the out-of-range fields, and only answered rows are logged."""
    import httpx
    from test_serve_app import running, wait_for

    from serein.batch import plan_path
    from serein.data.profiling import suggest_contract
    from serein.serve.app import create_app
    from serein.serve.validation import RequestInvalid
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    frame, floats, estimator = linear_frame(task)
    suggest_contract(frame, dataset="d").save(workspace.datasets.contract_path("d"))
    workspace.datasets.ingest(frame, "d")
    train(workspace, Recipe.from_dict({"name": "m", "data": "d", "target": "y", "task": task,
                                       "estimator": {"class": estimator}}), promote=True)
    model = workspace.registry.load("m")
    huge = _rows(frame[model.features].iloc[:3].assign(**{f: 1e100 for f in floats}))
    reference = frame[model.features].iloc[:3].assign(**{f: 1e100 for f in floats})
    expected = model.pipeline.predict(reference)
    whole = OnnxRuntime(model.onnx_path, model.contract, model.classes)
    batch = RowValidator(model.contract).validate(huge)
    assert not np.isfinite(whole.predict(batch.columns, 3).scores).all(), "the export should overflow here"

    beyond = dict(huge[0], f3=1e308)
    for served in (prepare(model, threads=1, plan_file=plan_path(workspace, model)), prepare(model, threads=1)):
        _, out = served.score(huge + _rows(frame[model.features].iloc[3:5]))
        assert np.isfinite(out.scores).all()
        if task == "classification":
            assert out.labels[:3] == expected.tolist()
            np.testing.assert_allclose(out.probabilities[:3], model.pipeline.predict_proba(reference), atol=1e-9)
        else:
            np.testing.assert_allclose(out.labels[:3], expected, rtol=1e-9)
        with pytest.raises(RequestInvalid) as refused:
            served.score([huge[1], beyond])
        assert {p["row"] for p in refused.value.problems} == {1}
        assert "f3" in {p["field"] for p in refused.value.problems}
        assert all("no finite prediction" in p["problem"] for p in refused.value.problems)

    with running(create_app(workspace)) as url:
        assert wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30)
        answered = httpx.post(f"{url}/v1/models/m/predict", json={"instances": huge})
        refused_http = httpx.post(f"{url}/v1/models/m/predict", json={"instances": [beyond]})
        mlflow = httpx.post(f"{url}/invocations", json={"dataframe_records": [beyond]})
    assert answered.status_code == 200, answered.text
    assert None not in answered.json()["predictions"]
    if task == "classification":
        assert answered.json()["predictions"] == expected.tolist()
        assert None not in np.ravel(answered.json()["probabilities"]).tolist()
    assert refused_http.status_code == 422, refused_http.text
    assert "no finite prediction" in refused_http.json()["error"]
    assert "f3" in {p["field"] for p in refused_http.json()["details"]}
    assert mlflow.status_code == 400 and "f3" in {p["field"] for p in mlflow.json()["details"]}, mlflow.text
    assert workspace.store.count_predictions("m") == 3


def test_values_whose_square_overflows_float32_get_the_pipelines_labels(workspace) -> None:
    """A nearest-neighbour model fed 1e30: the squared distances overflow float32, so the export
    picks neighbours from ties of infinities and answers other labels than scikit-learn (whose
    float64 distances are fine), with finite probabilities. Served, the pipeline scores such rows."""
    from serein.batch import plan_path
    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    rng = np.random.default_rng(9)
    n = 600
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    frame["y"] = np.where(frame["a"] > 0.5, 25, np.where(frame["b"] > 0, 15, 5))
    suggest_contract(frame, dataset="d").save(workspace.datasets.contract_path("d"))
    workspace.datasets.ingest(frame, "d")
    train(workspace, Recipe.from_dict({"name": "knn", "data": "d", "target": "y", "task": "classification",
                                       "estimator": {"class": "sklearn.neighbors.KNeighborsClassifier"}}), promote=True)
    model = workspace.registry.load("knn")
    sample = pd.concat([frame[model.features].iloc[:4].assign(a=1e30), frame[model.features].iloc[4:8].assign(b=-1e30),
                        frame[model.features].iloc[8:12]])
    expected = model.pipeline.predict(sample).tolist()
    batch = RowValidator(model.contract).validate(_rows(sample))
    whole = OnnxRuntime(model.onnx_path, model.contract, model.classes).predict(batch.columns, batch.n_rows)
    assert whole.labels != expected, "the export alone should answer differently here"
    for served in (prepare(model, threads=1, plan_file=plan_path(workspace, model)), prepare(model, threads=1)):
        _, out = served.score(_rows(sample))
        assert out.labels == expected
        np.testing.assert_allclose(out.probabilities, model.pipeline.predict_proba(sample), atol=1e-6)


def test_a_forests_probabilities_stay_within_zero_and_one(tmp_path: Path) -> None:
    """ONNX Runtime sums a random forest's votes in float32: a binary forest's export answers
    1.0000001 and -1.2e-7 where scikit-learn says 1 and 0. Served, probabilities stay in [0, 1]."""
    from sklearn.ensemble import RandomForestClassifier

    from serein.registry.onnx_export import export_onnx

    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    y = (X["x"] + 0.3 * rng.normal(size=n)) > 0
    contract = Contract.from_dict({"columns": {"x": {"type": "float"}, "z": {"type": "float"}}})
    model = RandomForestClassifier(10, random_state=0).fit(X, y)
    export = export_onnx(model, X, contract, ["x", "z"], "classification", tmp_path / "m.onnx")
    assert export.path is not None, export.reason
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as served: the sums' order, so their rounding, depends on it
    session = ort.InferenceSession(str(export.path), sess_options=options, providers=["CPUExecutionProvider"])
    raw = session.run(None, {c: X[[c]].to_numpy(np.float32) for c in ("x", "z")})[1]
    assert raw.min() < 0 or raw.max() > 1, "the export alone should overshoot here"
    loaded = LoadedModel(name="m", version=1, run_id="r", pipeline=model, contract=contract, features=["x", "z"],
                         target="y", task="classification", classes=model.classes_.tolist(),
                         onnx_path=str(export.path), profile={}, recipe={})
    batch = RowValidator(contract).validate(_rows(X))
    out = make_runtime(loaded).predict(batch.columns, batch.n_rows)
    probabilities = np.array(out.probabilities)
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    assert out.labels == model.predict(X).tolist()
    np.testing.assert_allclose(probabilities, model.predict_proba(X), atol=1e-6)


def test_a_null_in_a_boolean_column_is_served_as_scikit_learn_encodes_it(workspace) -> None:
    """A nullable boolean column reaches the pipeline as an object column holding None, which the
    categorical imputer (of NaN) leaves alone: the encoder learns None as a category of its own.
    The ONNX export imputed it with the most frequent value instead, answering probabilities
    0.017 away from scikit-learn's (within the export's check, so it served). Served now, a null
    boolean gets scikit-learn's answer within float32's tolerance."""
    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    rng = np.random.default_rng(8)
    n = 1500
    flag = pd.array(rng.random(n) < 0.5, dtype="boolean")
    flag[rng.random(n) < 0.1] = pd.NA
    frame = pd.DataFrame({"flag": flag, "count": rng.integers(0, 9, n).astype(float)})
    frame["y"] = np.where(frame["flag"].fillna(False).to_numpy(dtype=bool) ^ (frame["count"] > 4), "yes", "no")
    suggest_contract(frame, dataset="d").save(workspace.datasets.contract_path("d"))
    workspace.datasets.ingest(frame, "d")
    train(workspace, Recipe.from_dict({"name": "m", "data": "d", "target": "y", "task": "classification",
                                       "estimator": {"class": "sklearn.linear_model.LogisticRegression"}}), promote=True)
    model = workspace.registry.load("m")
    assert model.onnx_path is not None and model.contract.columns["flag"].nullable
    sample = workspace.datasets.load("d@0").frame[model.features]
    assert sample["flag"].isna().sum() > 50, "the sample should exercise null booleans"
    served = prepare(model, threads=1)
    assert served.runtime.name == "onnx"
    _, out = served.score(_rows(sample))
    assert out.labels == model.pipeline.predict(sample).tolist()
    np.testing.assert_allclose(out.probabilities, model.pipeline.predict_proba(sample), atol=1e-5)


def test_a_classifier_without_predict_proba_registers_and_serves_its_labels(workspace) -> None:
    """A recipe with a classifier that has no predict_proba (a ridge classifier, which converts
    to ONNX) failed to register: the export's check asked the pipeline for probabilities
    (AttributeError). It registers without an export (its second output would be decision
    scores, not probabilities) and is served by scikit-learn: labels, no probabilities."""
    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    frame["y"] = np.where(frame["a"] + frame["b"] > 0.5, "hi", np.where(frame["a"] < -0.5, "lo", "mid"))
    suggest_contract(frame, dataset="d").save(workspace.datasets.contract_path("d"))
    workspace.datasets.ingest(frame, "d")
    result = train(workspace, Recipe.from_dict({"name": "svm", "data": "d", "target": "y", "task": "classification",
                                                "estimator": {"class": "sklearn.linear_model.RidgeClassifier"},
                                                "metrics": ["accuracy"], "gate": {"metric": "accuracy"}}), promote=True)
    model = workspace.registry.load("svm", result.version)
    assert model.onnx_path is None and "no predict_proba" in model.tags["serein.onnx"]
    served = prepare(model, threads=1)
    assert served.runtime.name == "sklearn"
    sample = frame[model.features].iloc[:50]
    _, out = served.score(_rows(sample))
    assert out.labels == model.pipeline.predict(sample).tolist() and out.probabilities is None
    from serein.serve.protocol_v2 import model_metadata

    assert [o["name"] for o in model_metadata(served)["outputs"]] == ["predictions"]  # no probabilities promised


def test_an_empty_string_is_a_category_for_the_whole_export_as_for_scikit_learn(trained_workspace,
                                                                                credit_df: pd.DataFrame) -> None:
    """A client's "" in a text feature is a value scikit-learn's encoder has not seen, not a
    missing value: the whole export (whose imputers take "" as missing) is fed it as an unseen
    category, in serving and in batch scoring, and answers as the pipeline does."""
    from serein.batch import ChunkScorer

    model = trained_workspace.registry.load("credit-default")
    text = [name for name in model.features if model.contract.columns[name].type == "string"]
    frame = credit_df[model.features].iloc[:200].copy()
    frame[text[0]] = ""
    expected = model.pipeline.predict_proba(frame)
    runtime = make_runtime(model)
    assert isinstance(runtime, OnnxRuntime)
    columns = {name: list(frame[name]) if name in text else frame[name].to_numpy(dtype=float) for name in model.features}
    np.testing.assert_allclose(runtime.predict(columns, len(frame)).probabilities, expected, atol=1e-4)
    np.testing.assert_allclose(ChunkScorer(model, prefer_onnx=True).score(frame)[1], expected, atol=1e-4)
