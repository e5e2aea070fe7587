"""Monitoring at scale: profiles built by one sort per column agree with a naive pandas
computation, stay small and memory-lean; a ``--current`` batch read from Parquet, CSV, a Delta
table or a dataset ref gives the same drift as the frame in memory, and is scored in chunks
exactly as in one piece."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serein.data.contract import Contract
from serein.errors import UsageError
from serein.monitor.batch_window import read_batch, score_batch
from serein.monitor.drift import features_drift
from serein.monitor.profile import build_profile, numeric_profile
from serein.workspace import Workspace

N = 200_000
CONTRACT = Contract.from_dict({"columns": {
    "x": {"type": "float"}, "ln": {"type": "float"}, "code": {"type": "integer"},
    "city": {"type": "string"}, "many": {"type": "string"},
}})


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.03] = np.nan
    city = rng.choice(["paris", "lyon", "nice", None], n, p=[0.5, 0.3, 0.15, 0.05])
    return pd.DataFrame({
        "x": x,
        "ln": rng.lognormal(0.0, 0.8, n),
        "code": rng.integers(0, 12, n),
        "city": pd.Series(city, dtype="str"),
        "many": pd.Series([f"k{i}" for i in rng.zipf(1.5, n) % 400], dtype="str"),  # > TOP_K categories
    })


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(N, 0)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> dict:
    return build_profile(reference, CONTRACT, "regression", predictions=reference["ln"].to_numpy())


def test_numeric_summaries_match_numpy_and_pandas(profile: dict, reference: pd.DataFrame) -> None:
    for name in ("x", "ln", "code"):
        f = profile["features"][name]
        col = reference[name]
        x = col.dropna().to_numpy(dtype=float)
        assert f["null_rate"] == pytest.approx(col.isna().mean()) and f["n_nulls"] == int(col.isna().sum())
        assert f["min"] == x.min() and f["max"] == x.max()
        assert f["mean"] == pytest.approx(x.mean()) and f["std"] == pytest.approx(x.std(ddof=1))
        edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)[1:-1]))
        np.testing.assert_allclose(f["edges"], edges, rtol=1e-12)
        np.testing.assert_allclose(f["quantiles"], np.quantile(x, (np.arange(100) + 0.5) / 100), rtol=1e-12)
        # right-closed bins with open outer edges, counted by pandas
        naive = pd.cut(pd.Series(x), [-np.inf, *edges, np.inf], right=True).value_counts(sort=False)
        assert f["counts"] == naive.tolist()


def test_category_counts_match_value_counts(profile: dict, reference: pd.DataFrame) -> None:
    city = profile["features"]["city"]
    assert city["categories"] == reference["city"].value_counts().to_dict()
    assert city["null_rate"] == pytest.approx(reference["city"].isna().mean())
    many = profile["features"]["many"]
    counts = reference["many"].value_counts()
    assert many["n_categories"] == counts.size > 50
    assert len(many["categories"]) == 50
    assert sum(many["categories"].values()) + many["other"] == N
    assert set(many["categories"].values()) <= set(counts.iloc[:60].tolist())  # the most frequent ones
    assert min(many["categories"].values()) >= counts.iloc[50]


def test_profile_is_small_and_memory_lean(reference: pd.DataFrame) -> None:
    numeric = reference[["x", "ln", "code"]]
    contract = Contract.from_dict({"columns": {k: CONTRACT.to_dict()["columns"][k] for k in numeric.columns}})
    tracemalloc.start()
    try:
        built = build_profile(numeric, contract, "regression", predictions=numeric["ln"].to_numpy())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    column = N * 8
    assert peak < 6 * column, f"peak {peak / 1e6:.1f} MB for {N} rows"  # a few column copies, never the frame x k
    assert len(json.dumps(built)) < 100_000


def test_profile_of_text_numbers_counts_junk_as_missing() -> None:
    p = numeric_profile(pd.Series(["1.5", "x", None, "2.5"], dtype=object))
    assert p["n_nulls"] == 2 and p["min"] == 1.5 and p["max"] == 2.5


# -- the --current batch -------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    frame = _frame(20_000, 1, shift=0.5)
    frame["unused"] = "not read"
    folder = tmp_path_factory.mktemp("batch")
    frame.to_parquet(folder / "cur.parquet")
    frame.to_csv(folder / "cur.csv", index=False)
    return frame, folder


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        for key in ("status", "drifted", "score", "null_rate", "current_counts", "wasserstein", "js"):
            if isinstance(a[name].get(key), float):
                assert a[name][key] == pytest.approx(b[name][key], rel=1e-9), (name, key)
            else:
                assert a[name].get(key) == b[name].get(key), (name, key)


def test_batch_from_parquet_csv_delta_and_dataset_drifts_like_the_frame(
        workspace: Workspace, batch: tuple[pd.DataFrame, Path], profile: dict) -> None:
    frame, folder = batch
    features = list(CONTRACT.columns)
    expected = features_drift(profile, frame[features])
    assert {"x"} <= {n for n, f in expected.items() if f["drifted"]}
    workspace.datasets.ingest(frame, "traffic")
    for current in (folder / "cur.parquet", folder / "cur.csv", workspace.datasets.path("traffic"), "traffic@0"):
        read, source = read_batch(workspace, str(current), features, optional=["label"])
        assert read.column_names == features, source  # only what the model needs; no label column here
        assert len(read) == len(frame)
        _same(features_drift(profile, read), expected)


def test_batch_errors_name_the_problem(workspace: Workspace, batch: tuple[pd.DataFrame, Path]) -> None:
    frame, folder = batch
    with pytest.raises(UsageError, match="lacks the model's feature column\\(s\\) 'nope'"):
        read_batch(workspace, str(folder / "cur.parquet"), ["x", "nope"])
    with pytest.raises(UsageError, match="neither a file nor a dataset"):
        read_batch(workspace, "no_such_batch", ["x"])
    (folder / "empty.csv").write_text("")
    with pytest.raises(UsageError, match="empty"):
        read_batch(workspace, str(folder / "empty.csv"), ["x"])
    (folder / "header.csv").write_text("x,city\n")
    with pytest.raises(UsageError, match="no rows"):
        read_batch(workspace, str(folder / "header.csv"), ["x"])


def test_a_raw_batch_is_scored_as_serein_predict_scores_it_in_chunks_as_at_once(
        trained_workspace: Workspace, drifted_df: pd.DataFrame, tmp_path: Path) -> None:
    """The Arrow path (numpy preprocessing, the trees as look-up tables) once the version's plan
    says it reproduces scikit-learn: the outputs ``serein predict`` writes, bit for bit, in chunks
    as in one piece, within float32 rounding of the whole-pipeline export (nulls in numbers and
    text, an unseen category: ``purpose`` ``crypto``)."""
    from serein.batch import ChunkScorer
    from serein.batch_plan import ArrowPlan

    ws = trained_workspace
    loaded = ws.registry.load("credit-default", "champion")
    X = drifted_df[loaded.features]
    table = pa.Table.from_pandas(X, preserve_index=False)
    plan = tmp_path / "plan.json"
    seen: list[tuple[int, int]] = []
    predictions, proba = score_batch(loaded, table, lambda what, done, total: seen.append((done, total)),
                                     chunk_rows=400, workers=2, plan_file=plan)
    assert ArrowPlan.recall(plan, loaded).estimator == "tables"  # checked once against scikit-learn, remembered
    assert seen[-1] == (len(X), len(X)) and len(seen) == -(-len(X) // 400)
    at_once = score_batch(loaded, table, chunk_rows=len(X), plan_file=plan)
    np.testing.assert_array_equal(predictions, at_once[0])
    np.testing.assert_array_equal(proba, at_once[1])

    X.to_parquet(tmp_path / "raw.parquet")
    ws.predict("credit-default", str(tmp_path / "raw.parquet"), str(tmp_path / "scored.parquet"))
    written = pd.read_parquet(tmp_path / "scored.parquet")
    np.testing.assert_array_equal(written["prediction"].to_numpy(), predictions)
    np.testing.assert_array_equal(written[[f"proba_{c}" for c in loaded.classes]].to_numpy(), proba)

    whole_pred, whole_proba = ChunkScorer(loaded, prefer_onnx=True).score(X)
    assert predictions.tolist() == whole_pred.tolist()
    np.testing.assert_allclose(proba, whole_proba, rtol=0, atol=1e-6)  # float64 sums against ONNX Runtime's float32
    sklearn = np.asarray(loaded.pipeline.predict(X))
    assert np.mean(sklearn.astype(str) == predictions.astype(str)) > 0.99


def test_the_whole_export_scores_a_batch_without_an_arrow_path_or_with_other_column_types(
        trained_workspace: Workspace, drifted_df: pd.DataFrame, tmp_path: Path) -> None:
    """A plan without an Arrow path (the estimator's part disagreed with scikit-learn), or columns
    the Arrow path does not read (numbers as text): each chunk goes to the whole-pipeline export,
    exactly as scoring the frame at once does."""
    from serein.batch import ChunkScorer
    from serein.batch_plan import ArrowPlan

    loaded = trained_workspace.registry.load("credit-default", "champion")
    X = drifted_df[loaded.features]
    table = pa.Table.from_pandas(X, preserve_index=False)
    whole_pred, whole_proba = ChunkScorer(loaded, prefer_onnx=True).score(X)
    plan = tmp_path / "plan.json"
    ArrowPlan(None, None).save(plan, loaded)
    text = table.set_column(table.schema.get_field_index("age"), "age", table.column("age").cast(pa.string()))
    for batch, plan_file in ((table, plan), (text, None)):
        predictions, proba = score_batch(loaded, batch, chunk_rows=400, workers=2, plan_file=plan_file)
        assert predictions.tolist() == whole_pred.tolist()
        np.testing.assert_allclose(proba, whole_proba, rtol=0, atol=1e-7)


def test_a_scored_batch_is_not_scored_again_unless_another_version_scored_it(
        trained_workspace: Workspace, drifted_df: pd.DataFrame, tmp_path: Path) -> None:
    from serein.monitor.monitor import run_monitor

    ws = trained_workspace
    loaded = ws.registry.load("credit-default", "champion")
    raw = tmp_path / "raw.parquet"
    drifted_df[loaded.features].to_parquet(raw)
    scored = tmp_path / "scored.parquet"
    ws.predict("credit-default", str(raw), str(scored))
    written = pd.read_parquet(scored)
    assert {"prediction", "model_version", *(f"proba_{c}" for c in loaded.classes)} <= set(written.columns)

    rescored = run_monitor(ws, "credit-default", current=str(raw)).to_dict()
    reused = run_monitor(ws, "credit-default", current=str(scored)).to_dict()
    assert reused["window"]["source"].endswith(f"(its v{loaded.version} predictions)")
    assert "predictions)" not in rescored["window"]["source"]
    # the same outputs either way: the monitor scores a raw batch as `serein predict` does
    assert reused["drifted"] == rescored["drifted"]
    for part in ("classes", "scores"):
        assert reused["prediction_drift"][part]["score"] == rescored["prediction_drift"][part]["score"]
    assert reused["estimated_performance"] == rescored["estimated_performance"]

    # outputs of another version or model (or with a row missing its prediction) are not these: scored again
    other = written.assign(model_version=loaded.version + 1)
    other.to_parquet(tmp_path / "other.parquet")
    holed = written.astype({"prediction": "float64"})
    holed.loc[0, "prediction"] = np.nan
    holed.to_parquet(tmp_path / "holed.parquet")
    written.assign(model="another-model").to_parquet(tmp_path / "renamed.parquet")
    for name in ("other", "holed", "renamed"):
        again = run_monitor(ws, "credit-default", current=str(tmp_path / f"{name}.parquet")).to_dict()
        assert "predictions)" not in again["window"]["source"], name
        assert again["prediction_drift"]["scores"]["score"] == pytest.approx(rescored["prediction_drift"]["scores"]["score"], abs=1e-9)


def test_carried_outputs_are_read_from_arrow_only_when_every_row_names_this_version() -> None:
    from types import SimpleNamespace

    from serein.monitor.batch_window import carried_outputs

    model = SimpleNamespace(name="m", version=3, is_classifier=True, classes=[0, 1])
    good = {"prediction": [1, 0], "proba_0": [0.2, 0.7], "proba_1": [0.8, 0.3], "model": ["m", "m"], "model_version": [3, 3]}
    predictions, proba = carried_outputs(pa.table(good), model)
    assert predictions.tolist() == [1, 0] and proba.tolist() == [[0.2, 0.8], [0.7, 0.3]]
    text_version = pa.table({**good, "model_version": ["3", "3.0"],
                             "model": pa.array(["m", "m"]).dictionary_encode()})
    assert carried_outputs(text_version, model) is not None  # versions written as text still read as numbers
    for change in ({"model_version": [3, None]}, {"model_version": ["3", "three"]}, {"model_version": [3, 4]},
                   {"model": ["m", "other"]}, {"model": ["m", None]}, {"prediction": [1, None]},
                   {"proba_1": [0.8, float("nan")]}, {"proba_1": [0.8, None]}):
        assert carried_outputs(pa.table({**good, **change}), model) is None, change
    assert carried_outputs(pa.table({k: v for k, v in good.items() if k != "proba_0"}), model) is None


def test_batch_times_are_utc_and_mixed_json_columns_are_text(workspace: Workspace, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "at": pd.to_datetime(["2026-01-01T10:00", "2026-01-02T11:30"]),
                          "iso": ["2026-01-01T10:00:00Z", "2026-01-03"]})
    frame.to_parquet(tmp_path / "times.parquet")
    table, _ = read_batch(workspace, str(tmp_path / "times.parquet"), ["x", "at", "iso"])
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("iso").type == pa.timestamp("us", tz="UTC")
    assert table.column("at").to_pylist()[1].isoformat() == "2026-01-02T11:30:00+00:00"
    (tmp_path / "mixed.jsonl").write_text('{"x": 1, "c": "a"}\n{"x": "two", "c": "b"}\n')
    table, _ = read_batch(workspace, str(tmp_path / "mixed.jsonl"), ["x", "c"])
    assert table.column("x").to_pylist() == ["1", "two"]


@pytest.mark.parametrize("kind", ["scored", "raw"])
def test_monitoring_a_batch_imports_no_scipy_sklearn_or_onnxruntime(
        trained_workspace: Workspace, drifted_df: pd.DataFrame, tmp_path: Path, kind: str) -> None:
    """A scored batch needs no scoring, and a raw one, once ``serein predict`` has remembered the
    version's batch plan with its trees as look-up tables, scores through those tables: neither
    loads ONNX Runtime or scikit-learn, nor scipy (the noise floors' chi-square quantile and the
    missing-rate test are computed in ``serein.monitor.gamma`` and numpy). Each costs a CLI run a
    tenth of a second or more to import (ONNX Runtime and its session 0.35 s on a slow VM)."""
    import subprocess
    import sys
    import textwrap

    loaded = trained_workspace.registry.load("credit-default", "champion")
    raw, scored = tmp_path / "raw.parquet", tmp_path / "scored.parquet"
    drifted_df[loaded.features].to_parquet(raw)
    trained_workspace.predict("credit-default", str(raw), str(scored))
    script = textwrap.dedent(f"""
        import json, sys
        from serein.monitor.monitor import run_monitor
        from serein.workspace import Workspace
        result = run_monitor(Workspace({str(trained_workspace.root)!r}), "credit-default",
                             current={str(scored if kind == "scored" else raw)!r})
        print(json.dumps({{"heavy": sorted(m for m in ("scipy", "sklearn", "onnxruntime", "mlflow", "pandera")
                                           if m in sys.modules), "source": result.window["source"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["heavy"] == [] and last["source"].endswith("predictions)") == (kind == "scored"), last


def test_text_that_is_not_a_number_in_a_numeric_column_is_scored_as_missing_and_reported(
        trained_workspace: Workspace, drifted_df: pd.DataFrame, tmp_path: Path) -> None:
    """A batch whose numeric column holds text that is not a number ("n/a") is monitored: the
    value is scored as missing (as a null in that column is), and the contract's type check
    counts it — the run used to stop on the first such value (ValueError from the export's feed)."""
    from serein.monitor.monitor import run_monitor

    loaded = trained_workspace.registry.load("credit-default", "champion")
    frame = drifted_df[loaded.features].copy()
    known = frame["income"].notna()
    junk = known & (frame.index % 10 == 0)
    text = frame.assign(income=frame["income"].map("{:.2f}".format).where(known, None).where(~junk, "n/a"))
    text.to_parquet(tmp_path / "text.parquet")
    text.to_json(tmp_path / "text.jsonl", orient="records", lines=True)
    nulls = frame.assign(income=frame["income"].round(2).where(~junk))
    nulls.to_parquet(tmp_path / "nulls.parquet")
    expected = run_monitor(trained_workspace, "credit-default", current=str(tmp_path / "nulls.parquet")).to_dict()
    for name in ("text.parquet", "text.jsonl"):
        d = run_monitor(trained_workspace, "credit-default", current=str(tmp_path / name)).to_dict()
        assert d["prediction_drift"]["scores"]["score"] == pytest.approx(expected["prediction_drift"]["scores"]["score"], abs=1e-9)
        assert d["features"]["income"]["null_rate"] == pytest.approx(expected["features"]["income"]["null_rate"])
        (check,) = [c for c in d["quality"]["checks"] if c["name"] == "income: type"]
        assert check["count"] == junk.sum()


def test_a_batch_with_nested_values_in_a_feature_is_refused_by_name(workspace: Workspace, tmp_path: Path) -> None:
    """Lists or records where the model wants numbers or text are bad input, named as such (they
    used to end the run with an internal error from scoring)."""
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": pa.array([[1.0], [2.0]]), "city": pa.array([{"a": "paris"}, {"a": "nice"}]),
                             "code": [1, 2]}), tmp_path / "nested.parquet")
    with pytest.raises(UsageError, match=r"'x' \(list<.*>\), 'city' \(struct<a: string>\) hold lists or records"):
        read_batch(workspace, str(tmp_path / "nested.parquet"), ["x", "city", "code"])


def test_a_csv_batch_keeps_text_codes_that_look_like_numbers(workspace: Workspace, tmp_path: Path) -> None:
    """A CSV batch's column of text codes ("07", "10"; a class label "01") is read as the text the
    model was trained on, not as the numbers 7 and 10 CSV inference makes of them: those were
    unseen categories (a critical drift, a data-quality alert, the model scoring every "07" as an
    unknown code) and labels matching no class."""
    from serein import api
    from serein.monitor.monitor import run_monitor

    def frame(n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        dept = rng.choice(["01", "02", "07", "10", "13"], n)
        x = rng.normal(size=n)
        shift = pd.Series(dept).map({"01": -1.0, "02": 0.0, "07": 1.0, "10": 2.0, "13": -2.0}).to_numpy()
        tier = np.where(x + shift + rng.normal(0, 0.5, n) > 0, "01", "02")
        return pd.DataFrame({"dept": pd.Series(dept, dtype="str"), "x": x, "tier": pd.Series(tier, dtype="str")})

    api.train({"name": "codes", "target": "tier", "task": "classification",
               "estimator": {"class": "sklearn.linear_model.LogisticRegression"}},
              data=frame(2000, 0), workspace=workspace)
    batch = frame(1500, 1)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    batch.to_parquet(tmp_path / "batch.parquet")
    expected = run_monitor(workspace, "codes", current=str(tmp_path / "batch.parquet")).to_dict()
    d = run_monitor(workspace, "codes", current=str(tmp_path / "batch.csv")).to_dict()
    assert d["drifted"] == [] and d["features"]["dept"]["unseen_rate"] == 0
    assert d["prediction_drift"]["scores"]["score"] == pytest.approx(expected["prediction_drift"]["scores"]["score"])
    assert d["performance"]["metrics"]["accuracy"]["current"] == expected["performance"]["metrics"]["accuracy"]["current"] > 0.7
