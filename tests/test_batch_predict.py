"""Batch scoring (``serein predict`` / ``predict_batch``) on a real registered model: Parquet,
CSV and Delta inputs, Parquet and dataset outputs, bad rows set aside, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import linear_frame

from serein.batch import UNANSWERED, predict_batch
from serein.errors import ConflictError, NotFoundError, SereinError, UsageError
from serein.workspace import Workspace

MODEL = "scorer"


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory, credit_df: pd.DataFrame) -> tuple[Workspace, pd.DataFrame]:
    """Own workspace: ``scorer`` v1 (champion, ONNX export) and dataset ``applications``."""
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    ws = Workspace.init(tmp_path_factory.mktemp("batch") / "ws")
    recipe = Recipe.from_dict({"name": MODEL, "target": "default", "task": "classification",
                               "estimator": {"params": {"max_iter": 20}}})
    assert train(ws, recipe, frame=credit_df.iloc[:2000], promote=True).version == 1
    frame = credit_df.iloc[2000:3000].reset_index(drop=True)
    ws.datasets.ingest(frame, "applications")
    return ws, frame


def test_parquet_to_parquet_agrees_with_the_pipeline(scoring, tmp_path: Path) -> None:
    ws, frame = scoring
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    seen: list[tuple[int, int | None]] = []
    result = predict_batch(ws, f"{MODEL}@champion", str(source), str(tmp_path / "out.parquet"), chunk_rows=300,
                           progress=lambda done, total: seen.append((done, total)))
    assert (result.rows_read, result.rows_scored, result.rows_rejected) == (1000, 1000, 0)
    assert result.runtime == "onnx" and result.version == 1 and result.rejected_to is None
    assert seen == [(300, 1000), (600, 1000), (900, 1000), (1000, 1000)]
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out.columns) == [*frame.columns, "prediction", "proba_0", "proba_1", "model", "model_version"]
    assert set(out["model"]) == {MODEL} and set(out["model_version"]) == {1}
    pd.testing.assert_frame_equal(out[frame.columns], frame, check_dtype=False)  # in input order

    loaded = ws.registry.load(MODEL, 1)
    expected = loaded.pipeline.predict_proba(ws.datasets.load("applications").frame[loaded.features])
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, atol=1e-3)  # float32 trees
    assert (out["prediction"].to_numpy() == expected.argmax(axis=1)).mean() > 0.995
    groups = pq.ParquetFile(tmp_path / "out.parquet").metadata
    column = groups.schema.names.index("proba_1")
    stats = [groups.row_group(g).column(column).statistics for g in range(groups.num_row_groups)]
    assert min(s.min for s in stats) == out["proba_1"].min() and max(s.max for s in stats) == out["proba_1"].max()

    sklearn = predict_batch(ws, f"{MODEL}@1", str(source), str(tmp_path / "sk.parquet"), runtime="sklearn",
                            id_column="applied_at")
    scored = pq.read_table(tmp_path / "sk.parquet").to_pandas()
    assert sklearn.runtime == "sklearn" and list(scored.columns)[:2] == ["applied_at", "prediction"]
    np.testing.assert_allclose(scored[["proba_0", "proba_1"]].to_numpy(), expected, atol=1e-9)


def test_dataset_in_dataset_out_through_the_cli(scoring, tmp_path: Path) -> None:
    ws, frame = scoring
    run = [sys.executable, "-m", "serein", "predict", MODEL, "--input", "applications@0",
           "--output", "dataset:scores", "--id-column", "applied_at", "--chunk-size", "400", "-w", str(ws.root)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0 and "scored 1,000 of 1,000 rows with scorer v1" in done.stdout, done.stderr
    again = ws.predict(MODEL, "applications", "dataset:scores", id_column="applied_at")  # appends a version
    assert again.input == "applications@0" and again.rows_scored == 1000 and again.output_version == 1
    scores = ws.datasets.load("scores@1").frame
    assert len(scores) == 2000 and list(scores.columns) == ["applied_at", "prediction", "proba_0", "proba_1",
                                                             "model", "model_version"]
    history = ws.datasets.history("scores")
    assert history[0]["source"] == "serein predict scorer@1 on applications@0"


def test_csv_with_a_bad_chunk_sets_rows_aside(scoring, tmp_path: Path) -> None:
    ws, frame = scoring
    broken = frame.astype({"age": object, "credit_score": object})
    broken.loc[[450, 455], "age"] = "forty"
    broken.loc[460, "credit_score"] = -5.0
    broken.to_csv(tmp_path / "in.csv", index=False)
    result = predict_batch(ws, MODEL, str(tmp_path / "in.csv"), str(tmp_path / "out.parquet"), chunk_rows=200)
    assert (result.rows_read, result.rows_scored, result.rows_rejected) == (1000, 997, 3)
    assert result.problems["age: type"] == 2 and result.rejected_to == str(tmp_path / "out.rejected.parquet")
    rejected = pq.read_table(result.rejected_to).to_pandas()
    assert rejected["_row"].tolist() == [450, 455, 460]
    assert rejected["age"].tolist()[:2] == ["forty", "forty"] and "credit_score" in rejected["_reason"].iloc[2]
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert len(out) == 997 and not out["applied_at"].isin(frame["applied_at"].iloc[[450, 455, 460]]).any()


def test_refusals_name_the_problem(scoring, tmp_path: Path) -> None:
    ws, frame = scoring
    source = tmp_path / "in.parquet"
    frame.iloc[:10].to_parquet(source)
    out = str(tmp_path / "out.parquet")
    with pytest.raises(NotFoundError, match="no registered model 'nope'"):
        predict_batch(ws, "nope", str(source), out)
    with pytest.raises(NotFoundError, match=f"model '{MODEL}' has no version '7'"):
        predict_batch(ws, f"{MODEL}@7", str(source), out)
    with pytest.raises(NotFoundError, match="input .*missing.parquet not found"):
        predict_batch(ws, MODEL, str(tmp_path / "missing.parquet"), out)
    with pytest.raises(NotFoundError, match="no dataset named 'nothing'"):
        predict_batch(ws, MODEL, "nothing@0", out)
    frame.iloc[:10].drop(columns=["income"]).to_parquet(tmp_path / "narrow.parquet")
    with pytest.raises(UsageError, match="lacks the feature column.*'income'"):
        predict_batch(ws, MODEL, str(tmp_path / "narrow.parquet"), out)
    with pytest.raises(UsageError, match=r"cannot write predictions as \.xlsx"):
        predict_batch(ws, MODEL, str(source), str(tmp_path / "out.xlsx"))
    assert not (tmp_path / "out.xlsx").exists()
    predict_batch(ws, MODEL, str(source), out)
    with pytest.raises(ConflictError, match="already exists"):
        predict_batch(ws, MODEL, str(source), out)
    assert predict_batch(ws, MODEL, str(source), out, mode="overwrite").rows_scored == 10


def test_a_tampered_artifact_is_refused(scoring, credit_df: pd.DataFrame, tmp_path: Path) -> None:
    """A second version whose model file changed after registration is never loaded."""
    from serein.registry.artifacts import SKOPS_FILE
    from serein.registry.tracking import local_path
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    ws, frame = scoring
    recipe = Recipe.from_dict({"name": MODEL, "target": "default", "task": "classification",
                               "estimator": {"params": {"max_iter": 5}}})
    version = train(ws, recipe, frame=credit_df.iloc[:1000]).version
    model_file = local_path(ws.registry.client.get_model_version_download_uri(MODEL, str(version))) / SKOPS_FILE
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    frame.iloc[:10].to_parquet(tmp_path / "in.parquet")
    with pytest.raises(SereinError, match="refusing to load a changed model file"):
        predict_batch(ws, f"{MODEL}@{version}", str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_parquet_bad_rows_take_the_arrow_path_with_the_same_verdict(scoring, tmp_path: Path) -> None:
    """Typed Parquet columns are screened with Arrow compute; the rows set aside and their
    reasons are exactly what pandera-based validation finds on the same rows."""
    from serein.batch import ChunkScorer
    from serein.data.validation import validate, validate_arrow

    ws, frame = scoring
    loaded = ws.registry.load(MODEL)
    contract = loaded.contract
    numeric = next(n for n, c in contract.columns.items() if c.numeric and c.max is not None)
    text = next(n for n, c in contract.columns.items() if c.allowed and not c.nullable)
    broken = frame.copy()
    broken.loc[10, numeric] = contract.columns[numeric].max * 10 + 1
    broken.loc[20, text] = None
    broken.loc[30, text] = "not-a-category"
    broken.loc[40, numeric] = float("inf")
    broken.to_parquet(tmp_path / "in.parquet")

    import pyarrow as pa

    table = pa.Table.from_pandas(broken[loaded.features], preserve_index=False)
    fast, exact = validate_arrow(table, contract), validate(broken[loaded.features], contract)
    assert fast.data is None and exact.data is not None  # the Arrow path, not the fallback
    assert fast.bad_rows.tolist() == exact.bad_rows.tolist() and fast.row_reasons == exact.row_reasons
    key = lambda f: (str(f["column"]), f["check"])
    assert sorted(fast.failures, key=key) == sorted(exact.failures, key=key)
    assert sorted(fast.warnings, key=key) == sorted(exact.warnings, key=key)

    scorer = ChunkScorer(loaded, prefer_onnx=True, arrow_path=True)
    assert scorer.features is not None and scorer.estimator_kind == "tables"  # numpy preprocessing + tree tables
    result = predict_batch(ws, MODEL, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), chunk_rows=25)
    bad = np.flatnonzero(exact.bad_rows).tolist()
    assert {10, 20, 40} <= set(bad)  # unseen categories are rejected or only flagged, per the contract
    assert 30 in bad or any(30 in w["rows"] for w in fast.warnings)
    assert (result.rows_scored, result.rows_rejected) == (1000 - len(bad), len(bad))
    rejected = pq.read_table(result.rejected_to).to_pandas()
    assert rejected["_row"].tolist() == bad
    assert rejected["_reason"].tolist() == [exact.row_reasons[i] for i in bad]


@pytest.mark.parametrize("tables", ["do not compile", "disagree"])
def test_the_arrow_path_falls_back_to_onnx_runtime(scoring, monkeypatch: pytest.MonkeyPatch, tables: str) -> None:
    """Trees that do not compile to look-up tables, or tables that disagree with scikit-learn on
    the reference sample, leave the estimator's part to ONNX Runtime, which still agrees."""
    import pyarrow as pa

    from serein.batch import ChunkScorer
    from serein.tree_tables import TableTrees

    ws, frame = scoring
    loaded = ws.registry.load(MODEL, 1)
    if tables == "do not compile":
        monkeypatch.setattr(TableTrees, "compile", lambda model, layout: None)
    else:
        run = TableTrees.run
        monkeypatch.setattr(TableTrees, "run", lambda self, *inputs: [out[::-1] for out in run(self, *inputs)])
    scorer = ChunkScorer(loaded, prefer_onnx=True, arrow_path=True)
    assert scorer.estimator_kind == "onnxruntime"
    batch = pa.RecordBatch.from_pandas(frame[loaded.features], preserve_index=False)
    expected = loaded.pipeline.predict_proba(frame[loaded.features])
    np.testing.assert_allclose(scorer.score_arrow(batch)[1], expected, atol=1e-3)  # float32 trees


def test_the_checked_arrow_path_is_remembered(scoring, tmp_path: Path) -> None:
    """The first run checks the Arrow path against scikit-learn and remembers the outcome with the
    compiled tables; a run in a fresh process then scores without deserializing the pipeline (no
    scikit-learn import) or compiling the export again (no onnx import). A plan for other
    artifacts, or an unreadable one, is checked again; missing, unreadable or replaced tables (not
    the ones the plan recorded) are compiled again from the export and kept; a remembered "no
    Arrow path" holds."""
    from serein.batch import PLAN_FILE, ChunkScorer
    from serein.batch_plan import ArrowPlan, tables_path

    ws, frame = scoring
    source, first, second = tmp_path / "in.parquet", tmp_path / "first.parquet", tmp_path / "second.parquet"
    frame.to_parquet(source)
    plan_file = ws.state_dir / "cache" / MODEL / "1" / PLAN_FILE
    plan_file.unlink(missing_ok=True)
    predict_batch(ws, f"{MODEL}@1", str(source), str(first))
    loaded = ws.registry.load(MODEL, 1)
    plan = ArrowPlan.recall(plan_file, loaded)
    assert plan is not None and plan.estimator == "tables" and plan.trees is not None

    script = ("import sys; from serein.batch import predict_batch; from serein.workspace import Workspace; "
              f"r = predict_batch(Workspace(sys.argv[1]), '{MODEL}@1', sys.argv[2], sys.argv[3], mode='overwrite'); "
              "print(r.rows_scored, 'sklearn' in sys.modules, 'skops' in sys.modules, 'onnx' in sys.modules)")

    def fresh_run() -> list[str]:
        done = subprocess.run([sys.executable, "-c", script, str(ws.root), str(source), str(second)],
                              capture_output=True, text=True, timeout=180, check=False)
        pd.testing.assert_frame_equal(pq.read_table(second).to_pandas(), pq.read_table(first).to_pandas())
        return done.stdout.split() or [done.stderr]

    assert fresh_run() == ["1000", "False", "False", "False"]
    tables = tables_path(plan_file)
    def truncated() -> None:
        tables.write_bytes(tables.read_bytes()[:tables.stat().st_size // 2])

    def replaced() -> None:  # other tables, whole and readable: not the ones the plan recorded
        with np.load(tables) as arrays:
            changed = {name: arrays[name] for name in arrays.files}
        name = next(n for n, a in changed.items() if a.dtype.kind == "f" and a.size)
        changed[name] = changed[name] + 1
        np.savez(tables, **changed)

    for damage in (replaced, lambda: tables.write_bytes(b"not a zip"), truncated, lambda: tables.write_bytes(b""),
                   tables.unlink):
        damage()
        assert ArrowPlan.recall(plan_file, loaded).trees is None
        assert fresh_run() == ["1000", "False", "False", "True"]  # compiled again from the export...
        assert ArrowPlan.recall(plan_file, loaded).trees is not None  # ...and kept

    stale = json.loads(plan_file.read_text())
    stale["key"]["onnx_sha256"] = "0" * 64
    for content in (json.dumps(stale), "{not json"):
        plan_file.write_text(content)
        assert ArrowPlan.recall(plan_file, loaded) is None
        assert ChunkScorer(loaded, prefer_onnx=True, arrow_path=True, plan_file=plan_file).estimator_kind == "tables"
        assert ArrowPlan.recall(plan_file, loaded).estimator == "tables"  # checked again and rewritten

    ArrowPlan(None, None).save(plan_file, loaded)
    whole = ChunkScorer(loaded, prefer_onnx=True, arrow_path=True, plan_file=plan_file)
    assert whole.runtime == "onnx" and whole.estimator is None  # the whole export scores
    import pyarrow as pa

    batch = pa.RecordBatch.from_pandas(frame[loaded.features], preserve_index=False)
    np.testing.assert_allclose(whole.score_arrow(batch)[1], pq.read_table(first).to_pandas()[["proba_0", "proba_1"]],
                               atol=1e-5)
    plan_file.unlink()
    tables.unlink()


def test_compiled_preprocessing_matches_the_fitted_column_transformer(credit_df: pd.DataFrame) -> None:
    """ArrowFeatures reproduces imputation, scaling and one-hot encoding (unseen categories and
    nulls included) from Arrow columns, and declines steps it does not know."""
    import pyarrow as pa
    from sklearn.impute import KNNImputer
    from sklearn.linear_model import LogisticRegression

    from serein.arrow_features import ArrowFeatures
    from serein.data.profiling import suggest_contract
    from serein.train.pipeline import build_pipeline

    numeric = ["age", "income", "credit_score", "loan_amount"]
    categorical = ["employment", "region"]
    frame = credit_df[numeric + categorical].iloc[:600].reset_index(drop=True)
    contract = suggest_contract(frame)
    pipeline = build_pipeline(numeric, categorical, LogisticRegression(max_iter=200), scale=True)
    pipeline.fit(frame, credit_df["default"].iloc[:600])
    compiled = ArrowFeatures.compile(pipeline, contract)
    assert compiled is not None and compiled.width == pipeline[:-1].transform(frame.iloc[:1]).shape[1]

    probe = frame.iloc[:50].astype({"employment": object, "region": object})
    probe.loc[3, "region"] = "atlantis"  # unseen: all zeros
    probe.loc[4, "employment"] = np.nan  # imputed with the most frequent category (pandas reads nulls as NaN)
    probe.loc[5, "income"] = None  # imputed with the median, then scaled
    batch = pa.RecordBatch.from_pandas(probe, preserve_index=False)
    np.testing.assert_allclose(compiled.matrix(batch), pipeline[:-1].transform(probe), rtol=1e-6, atol=1e-6)
    columns = {c: probe[c].to_numpy(dtype=np.float64) for c in numeric}  # as serving's validator gives them
    columns.update({c: [None if pd.isna(v) else v for v in probe[c]] for c in categorical})
    np.testing.assert_array_equal(compiled.matrix_of(columns, len(probe)), compiled.matrix(batch))
    encoded = pa.RecordBatch.from_arrays([c.dictionary_encode() if pa.types.is_string(c.type) or
                                          pa.types.is_large_string(c.type) else c for c in batch.columns],
                                         names=batch.schema.names)
    np.testing.assert_array_equal(compiled.matrix(encoded), compiled.matrix(batch))
    restored = ArrowFeatures.from_dict(json.loads(json.dumps(compiled.to_dict())))  # as a batch plan keeps it
    assert restored.layout == compiled.layout == [None] * len(numeric) + [
        len(c) for c in pipeline[0].named_transformers_["categorical"][-1].categories_]
    np.testing.assert_array_equal(restored.matrix(batch), compiled.matrix(batch))

    assert compiled.nan_free
    compiled.blocks[0].fill[1] = np.nan  # e.g. the median of a column that was empty in training
    assert not compiled.nan_free

    pipeline.steps[0][1].transformers_[0][1].steps[0] = ("impute", KNNImputer())
    assert ArrowFeatures.compile(pipeline, contract) is None


def test_estimator_part_is_cut_from_the_export(scoring, credit_df: pd.DataFrame, tmp_path: Path) -> None:
    """The estimator's part of a whole-pipeline export (trees; a linear model with its probability
    normalisation) scores the preprocessed matrix as scikit-learn's estimator does; a graph whose
    inputs reach an output by two paths has no such part."""
    import onnx
    from onnx import TensorProto, helper
    from sklearn.linear_model import LogisticRegression

    from serein.batch import estimator_model
    from serein.data.profiling import suggest_contract
    from serein.registry.onnx_export import convert, onnx_feeds, onnx_inputs, session
    from serein.train.pipeline import build_pipeline

    ws, frame = scoring
    trees = ws.registry.load(MODEL, 1)
    numeric, categorical = ["age", "income", "credit_score"], ["employment", "region"]
    train = credit_df.iloc[:800].reset_index(drop=True)
    linear = build_pipeline(numeric, categorical, LogisticRegression(max_iter=300), scale=True)
    linear.fit(train[numeric + categorical], train["default"])
    linear_path = tmp_path / "linear.onnx"
    contract = suggest_contract(train[numeric + categorical])
    linear_path.write_bytes(convert(linear, onnx_inputs(contract, numeric + categorical), classifier=True))

    for pipeline, path, contract in ((trees.pipeline, trees.onnx_path, trees.contract),
                                     (linear, str(linear_path), contract)):
        columns = list(pipeline[0].feature_names_in_)
        X = pipeline[:-1].transform(frame[columns]).astype(np.float32)
        label, proba = session(estimator_model(path, X.shape[1])).run(None, {"X": X})
        stripped = estimator_model(path, X.shape[1], nan_free=True)  # X holds no NaN: the same scores
        assert all(a.name != "nodes_missing_value_tracks_true" for n in onnx.load_from_string(stripped).graph.node
                   for a in n.attribute)
        np.testing.assert_array_equal(session(stripped).run(None, {"X": X})[1], proba)
        whole_label, whole_proba = session(path).run(None, onnx_feeds(frame[columns], onnx_inputs(contract, columns)))
        np.testing.assert_allclose(proba, whole_proba, atol=1e-5)  # the same trees/coefficients as the export
        assert (label == whole_label).mean() > 0.995
        expected = pipeline[-1].predict_proba(X.astype(np.float64))  # scikit-learn, float32 thresholds aside
        np.testing.assert_allclose(np.median(np.abs(proba - expected)), 0.0, atol=1e-5)
        assert (label == pipeline[-1].classes_[expected.argmax(axis=1)]).mean() > 0.99

    two_paths = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "a"], ["y"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])]))
    onnx.save(two_paths, tmp_path / "two.onnx")
    with pytest.raises(ValueError, match="no single tensor"):
        estimator_model(str(tmp_path / "two.onnx"), 2)


@pytest.mark.parametrize("categorical", [["employment", "region"], []])
def test_a_nearest_neighbour_export_is_cut_at_the_preprocessed_matrix(credit_df: pd.DataFrame, tmp_path: Path,
                                                                      categorical: list[str]) -> None:
    """A three-class nearest-neighbour classifier computes its label and its probabilities from one
    tensor of class votes, which every path to the outputs also goes through: cut there, the part
    took the matrix for votes (ONNX Runtime refused a class index out of range). Cut at the
    preprocessed matrix (after the scaler when there is no one-hot encoder), it scores as
    scikit-learn's estimator does."""
    from sklearn.neighbors import KNeighborsClassifier

    from serein.batch import estimator_model
    from serein.data.profiling import suggest_contract
    from serein.registry.onnx_export import convert, onnx_inputs, session
    from serein.train.pipeline import build_pipeline

    numeric = ["age", "income", "credit_score"]
    train = credit_df.iloc[:600].reset_index(drop=True)
    y = np.where(train["age"] > 50, "senior", np.where(train["income"] > train["income"].median(), "rich", "other"))
    pipeline = build_pipeline(numeric, categorical, KNeighborsClassifier(), scale=True).fit(train[numeric + categorical], y)
    export = tmp_path / "knn.onnx"
    export.write_bytes(convert(pipeline, onnx_inputs(suggest_contract(train), numeric + categorical), classifier=True))
    X = pipeline[:-1].transform(credit_df[numeric + categorical].iloc[600:800]).astype(np.float32)
    label, proba = session(estimator_model(str(export), X.shape[1])).run(None, {"X": X})
    expected = pipeline[-1].predict_proba(X.astype(np.float64))
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert label.tolist() == pipeline[-1].classes_[expected.argmax(axis=1)].tolist()


def test_an_estimator_part_that_fails_on_the_reference_sample_is_declined(scoring, monkeypatch) -> None:
    """An estimator's part that ONNX Runtime cannot run on the reference sample is declined (logged)
    like one that disagrees: the whole export scores, instead of the run failing."""
    import pyarrow as pa

    from serein import batch
    from serein.batch import ChunkScorer
    from serein.tree_tables import TableTrees

    ws, frame = scoring
    loaded = ws.registry.load(MODEL, 1)
    cut = batch.estimator_model
    monkeypatch.setattr(TableTrees, "compile", lambda model, layout: None)
    monkeypatch.setattr(batch, "estimator_model", lambda export, width, nan_free: cut(export, width + 1, nan_free))
    scorer = ChunkScorer(loaded, prefer_onnx=True, arrow_path=True)
    assert scorer.estimator is None and scorer.runtime == "onnx"
    records = pa.RecordBatch.from_pandas(frame[loaded.features], preserve_index=False)
    np.testing.assert_allclose(scorer.score_arrow(records)[1], loaded.pipeline.predict_proba(frame[loaded.features]),
                               atol=1e-3)  # float32 trees


def test_a_csv_input_reads_the_contract_text_columns_as_text(scoring, tmp_path: Path) -> None:
    """Codes such as "07" in a column the model's contract holds as text are scored as "07", not
    as the number 7 that CSV type inference made of them (an unknown category to the model)."""
    from serein.batch import open_source

    ws, _ = scoring
    source = tmp_path / "codes.csv"
    source.write_text("region,amount\n07,1.5\n12,\n")
    batches = list(open_source(ws, str(source), ["region"]).batches(100))
    assert batches[0].column("region").to_pylist() == ["07", "12"]
    assert batches[0].column("amount").to_pylist() == [1.5, None]
    text = [c for c, spec in ws.registry.load(MODEL).contract.columns.items() if spec.type == "string"]
    assert text, "the model's contract has text columns"
    frame = ws.datasets.load("applications").frame
    codes = frame.iloc[:50].copy()
    codes[text[0]] = [f"0{i % 7}" for i in range(len(codes))]  # numeric-looking codes
    codes.to_csv(tmp_path / "in.csv", index=False)
    codes.to_parquet(tmp_path / "in.parquet")
    from_csv = predict_batch(ws, MODEL, str(tmp_path / "in.csv"), str(tmp_path / "csv.parquet"))
    from_parquet = predict_batch(ws, MODEL, str(tmp_path / "in.parquet"), str(tmp_path / "pq.parquet"))
    assert from_csv.rows_scored == from_parquet.rows_scored == 50
    scored = pq.read_table(tmp_path / "csv.parquet")
    assert scored.column(text[0]).to_pylist() == codes[text[0]].tolist()  # written back as given
    np.testing.assert_allclose(scored.column("proba_1").to_numpy(),
                               pq.read_table(tmp_path / "pq.parquet").column("proba_1").to_numpy())


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_rows_that_overflow_float32_get_the_pipelines_answer_or_are_set_aside(task: str, workspace,
                                                                             tmp_path: Path) -> None:
    """A linear model fed values near float32's limit, which its contract allows: ONNX Runtime's
    outputs overflow (NaN probabilities, an infinite or far-off value) where scikit-learn, in
    float64, still answers. Batch scoring writes the pipeline's answer for those rows, through the
    estimator's part and through the whole export, and sets aside with a reason naming the field
    a row the pipeline has no finite answer for either; the pipeline is loaded only for a chunk
    with such a row."""
    from dataclasses import replace

    import pyarrow as pa

    from serein.batch import ChunkScorer, plan_path
    from serein.batch_plan import ArrowPlan
    from serein.data.profiling import suggest_contract
    from serein.registry.onnx_export import onnx_feeds, onnx_inputs, session
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    frame, floats, estimator = linear_frame(task)
    contract = suggest_contract(frame, dataset="d")
    for f in floats:  # any size passes the contract
        contract.columns[f].min = contract.columns[f].max = None
    contract.save(workspace.datasets.contract_path("d"))
    workspace.datasets.ingest(frame, "d")
    train(workspace, Recipe.from_dict({"name": "m", "data": "d", "target": "y", "task": task,
                                       "estimator": {"class": estimator}}), promote=True)
    model = workspace.registry.load("m")
    batch = frame[model.features].iloc[:8].copy()
    batch.loc[1, floats] = 1e20
    batch.loc[2, floats] = 1e100
    batch.loc[4, "f0"] = -1e25
    batch.loc[6, "f3"] = 1e308  # scaled: an infinity, which the pipeline refuses
    answered = batch.drop(index=6)
    with np.errstate(all="ignore"):
        expected = (model.pipeline.predict_proba(answered) if task == "classification"
                    else model.pipeline.predict(answered).reshape(-1, 1))
    raw = session(model.onnx_path).run(None, onnx_feeds(answered, onnx_inputs(model.contract, model.features)))
    assert not np.isfinite(raw[-1]).all(), "the export alone should overflow here"

    batch.to_parquet(tmp_path / "in.parquet")
    columns = [f"proba_{c}" for c in model.classes] if task == "classification" else ["prediction"]
    for plan in ("onnxruntime", None):  # the estimator's part, then the whole export
        if plan is None:
            ArrowPlan(None, None).save(plan_path(workspace, model), model)
        result = predict_batch(workspace, "m", str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"),
                               mode="overwrite")
        assert (result.rows_scored, result.rows_rejected) == (7, 1), plan
        assert result.problems == {UNANSWERED: 1}
        out = pq.read_table(tmp_path / "out.parquet").to_pandas()
        np.testing.assert_allclose(out[columns].to_numpy(), expected, rtol=1e-5, atol=1e-6)
        if task == "classification":
            assert out["prediction"].tolist() == model.pipeline.predict(answered).tolist()
        rejected = pq.read_table(result.rejected_to).to_pandas()
        assert rejected["_row"].tolist() == [6]
        assert rejected["_reason"].iloc[0].startswith("f3: beyond") and "no finite prediction" in rejected["_reason"].iloc[0]

        without = replace(model, pipeline=None)  # rows that need no second opinion never touch the pipeline
        scorer = ChunkScorer(without, prefer_onnx=True, arrow_path=True, plan_file=plan_path(workspace, model))
        assert scorer.estimator_kind == plan
        assert scorer.answer_arrow(pa.RecordBatch.from_pandas(frame[model.features], preserve_index=False)).unanswered.size == 0
