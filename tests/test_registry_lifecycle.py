"""Training into a real MLflow sqlite store: lineage, artifacts, the sha256 check, pyfunc loading,
and the champion / challenger / promote / rollback lifecycle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serein.errors import ConflictError, NotFoundError, SereinError, UsageError, ValidationFailed
from serein.train.recipe import Recipe
from serein.train.trainer import train
from serein.workspace import Workspace

from conftest import EXAMPLE_RECIPE, TRAINED_MODEL


def test_trained_version_carries_lineage_artifacts_and_onnx(trained_workspace: Workspace, credit_df: pd.DataFrame) -> None:
    ws = trained_workspace
    info = ws.registry.get(TRAINED_MODEL, "champion", with_metrics=True)
    assert info.version == 1 and info.aliases == ["champion"] and info.gate_passed is True
    tags = info.tags
    assert tags["serein.dataset"] == "credit" and tags["serein.dataset_version"] == "0"
    from serein.data.hashing import frame_hash

    assert tags["serein.data_hash"] == ws.datasets.load("credit@0").content_hash == frame_hash(ws.datasets.load("credit@0").frame)
    assert tags["serein.contract_hash"] == ws.datasets.contract("credit").hash
    assert tags["serein.git_commit"] and tags["serein.git_dirty"] in ("true", "false", "unknown")
    assert len(tags["serein.sha256"]) == 64
    assert info.metrics["test_roc_auc"] > info.metrics["baseline_roc_auc"] + 0.05

    model = ws.registry.load(TRAINED_MODEL)
    assert "applied_at" not in model.features and "default" not in model.features
    assert list(model.contract.columns) == model.features
    assert model.classes == [0, 1] and model.task == "classification" and model.target == "default"
    assert model.recipe["split"] == {"method": "time", "test_size": 0.2, "column": "applied_at"}
    assert Recipe.from_dict(model.recipe).to_dict() == model.recipe  # what retraining starts from
    assert model.profile["n_rows"] == 800 and set(model.profile["features"]) == set(model.features)
    # the ONNX export passed its agreement check on the holdout, and that was recorded
    assert tags["serein.onnx"] == "ok" and model.onnx_path is not None
    assert float(tags["serein.onnx.label_agreement"]) >= 0.999
    assert float(tags["serein.onnx.max_diff"]) <= 0.05
    # the pipeline takes raw rows, missing values and unseen categories included
    rows = credit_df[model.features].head(5).copy()
    rows.loc[rows.index[0], "purpose"] = "crypto"
    proba = model.pipeline.predict_proba(rows)
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1.0)
    # the report is self-contained
    page = Path(ws.reports_dir / f"{TRAINED_MODEL}-v1-evaluation.html").read_text()
    assert "ROC curve" in page and "Confusion matrix" in page and "<script src=" not in page


def test_standard_mlflow_pyfunc_loads_the_champion(trained_workspace: Workspace, credit_df: pd.DataFrame,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc

    from serein.registry.tracking import use_workspace

    use_workspace(trained_workspace)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{TRAINED_MODEL}@champion")
    model = trained_workspace.registry.load(TRAINED_MODEL)
    rows = credit_df[model.features].head(50)
    assert pyfunc.metadata.signature.inputs.input_names() == model.features
    assert (np.asarray(pyfunc.predict(rows)) == model.pipeline.predict(rows)).all()


def test_unknown_models_and_versions_list_what_exists(trained_workspace: Workspace) -> None:
    reg = trained_workspace.registry
    with pytest.raises(NotFoundError, match="credit-default"):
        reg.get("credit-defualt")
    with pytest.raises(NotFoundError, match="versions: 1; aliases: champion"):
        reg.get(TRAINED_MODEL, 9)
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        reg.get(TRAINED_MODEL, "challenger")


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory, credit_df: pd.DataFrame) -> Workspace:
    """A workspace of this module's own (its aliases move): the credit data as a frame only."""
    return Workspace.init(tmp_path_factory.mktemp("lifecycle") / "ws")


def _train(ws: Workspace, frame: pd.DataFrame, *overrides: str, **kwargs: object):  # noqa: ANN202
    recipe = Recipe.load(EXAMPLE_RECIPE, ["name=life", "estimator.params.max_iter=30", *overrides])
    return train(ws, recipe, frame=frame, **kwargs)


def test_champion_challenger_promote_force_rollback(lifecycle: Workspace, credit_df: pd.DataFrame) -> None:
    ws, reg = lifecycle, lifecycle.registry
    first = _train(ws, credit_df)
    assert first.gate.passed and first.alias == "champion" and first.promoted
    assert first.dataset is None  # trained from a frame: lineage is its content hash
    assert reg.get("life", 1).tags["serein.dataset"] == "(in-memory frame)"

    second = _train(ws, credit_df, "estimator.params.max_iter=60")
    assert second.gate.champion_version == 1 and second.champion_metrics is not None
    assert "champion v1" in second.gate.reasons[1]
    assert second.gate.passed and second.alias == "challenger" and not second.promoted

    # a deliberately bad estimator cannot beat the dummy baseline: no alias at all
    bad = _train(ws, credit_df, "estimator.class=sklearn.dummy.DummyClassifier", "estimator.params={strategy: uniform}")
    assert not bad.gate.passed and bad.alias is None
    assert "does not beat the baseline" in bad.gate.reasons[0]
    assert reg.get("life", bad.version).gate_passed is False

    with pytest.raises(ConflictError, match="failed its quality gate: does not beat the baseline"):
        reg.promote("life", bad.version)
    with pytest.raises(UsageError, match="needs a reason"):
        reg.promote("life", bad.version, force=True)
    assert reg.champion("life").version == 1

    promoted = reg.promote("life", "challenger")
    assert promoted.version == 2 and promoted.aliases == ["champion"]
    with pytest.raises(ConflictError, match="already the champion"):
        reg.promote("life", 2)
    forced = reg.promote("life", bad.version, force=True, reason="incident 42: need a neutral model")
    assert forced.tags["serein.forced"] == "true" and forced.tags["serein.force_reason"].startswith("incident 42")
    assert reg.history("life") == [1, 2, bad.version]

    assert reg.rollback("life").version == 2
    assert reg.rollback("life").version == 1
    with pytest.raises(ConflictError, match="no previous champion"):
        reg.rollback("life")
    assert "serein.rolled_back_at" in reg.get("life", 2).tags
    listed = {m["name"]: m for m in reg.list_models()}
    assert listed["life"]["champion"] == 1 and listed["life"]["latest_version"] == bad.version


def test_load_refuses_a_tampered_model_file(trained_workspace: Workspace) -> None:
    reg = trained_workspace.registry
    assert reg.load(TRAINED_MODEL).version == 1
    uri = reg.client.get_model_version_download_uri(TRAINED_MODEL, "1")
    from serein.registry.tracking import local_path

    skops_file = local_path(uri) / "model.skops"
    original = skops_file.read_bytes()
    backup = skops_file.with_suffix(".orig")
    shutil.copy(skops_file, backup)
    skops_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(SereinError, match="refusing to load a changed model file"):
            reg.load(TRAINED_MODEL)
    finally:
        shutil.move(backup, skops_file)
    assert reg.load(TRAINED_MODEL).version == 1


def test_training_data_errors_are_clear(lifecycle: Workspace, credit_df: pd.DataFrame) -> None:
    ws = lifecycle
    models_before = ws.registry.list_models()
    with pytest.raises(UsageError, match="target 'default' is not a column"):
        _train(ws, credit_df.drop(columns=["default"]))
    with pytest.raises(UsageError, match="no rows"):
        _train(ws, credit_df.head(0))
    with pytest.raises(UsageError, match="single class"):
        _train(ws, credit_df.assign(default=0))
    with pytest.raises(UsageError, match="datetime column\\(s\\) 'applied_at' cannot be raw features"):
        _train(ws, credit_df, "features=[age, applied_at]")
    with pytest.raises(UsageError, match="log_loss need predicted probabilities"):
        _train(ws, credit_df, "estimator.class=sklearn.svm.LinearSVC", "estimator.params={}")
    # a reviewed contract the rows break stops training before anything is fitted
    from serein.data.contract import Contract

    Contract.from_dict({"columns": {"age": {"type": "float", "max": 30}, "default": {"type": "integer"}},
                        "unknown_fields": "ignore"}).save(ws.datasets.contract_path("young"))
    with pytest.raises(ValidationFailed, match="breaks its contract: age: max"):
        _train(ws, credit_df, "data=young")
    assert ws.registry.list_models() == models_before  # nothing was registered


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real ``serein`` entry point in-process; returns (exit code, stdout, stderr)."""
    from serein.cli.main import main

    monkeypatch.setattr("sys.argv", ["serein", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_cli_train_and_models(lifecycle: Workspace, credit_df: pd.DataFrame, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    ws = str(lifecycle.root)
    data = tmp_path / "loans.csv"
    credit_df.to_csv(data, index=False)
    lifecycle.datasets.ingest(data, "credit")
    code, out, err = _cli(monkeypatch, capsys, "train", str(EXAMPLE_RECIPE), "-w", ws, "--json",
                          "--set", "name=cli", "--set", "estimator.params.max_iter=20")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["alias"] == "champion" and result["dataset"] == "credit" and result["gate"]["passed"]

    code, out, _ = _cli(monkeypatch, capsys, "train", str(EXAMPLE_RECIPE), "-w", ws, "--set", "name=cli",
                        "--set", "estimator.class=sklearn.dummy.DummyClassifier", "--set", "estimator.params={}")
    assert code == 1 and "FAILED" in out and "does not beat the baseline" in out and "report:" in out

    code, out, _ = _cli(monkeypatch, capsys, "models", "versions", "cli", "-w", ws, "--json")
    versions = json.loads(out)["versions"]
    assert [(v["version"], v["aliases"], v["gate_passed"]) for v in versions] == [(1, ["champion"], True), (2, [], False)]
    code, out, _ = _cli(monkeypatch, capsys, "models", "show", "cli@champion", "-w", ws, "--json")
    shown = json.loads(out)
    assert shown["version"] == 1 and shown["metrics"]["test_roc_auc"] > 0.5
    code, out, _ = _cli(monkeypatch, capsys, "models", "list", "-w", ws, "--json")
    assert "cli" in [m["name"] for m in json.loads(out)["models"]]

    code, _, err = _cli(monkeypatch, capsys, "models", "promote", "cli", "2", "-w", ws)
    assert code == 1 and "failed its quality gate" in err and "--force --reason" in err and "Traceback" not in err
    code, _, err = _cli(monkeypatch, capsys, "models", "promote", "cli", "2", "--force", "-w", ws)
    assert code == 2 and "needs a reason" in err
    code, out, _ = _cli(monkeypatch, capsys, "models", "promote", "cli", "2", "--force", "--reason", "drill", "-w", ws)
    assert code == 0 and "v2 is now the champion" in out
    code, out, _ = _cli(monkeypatch, capsys, "models", "rollback", "cli", "-w", ws, "--json")
    assert code == 0 and json.loads(out)["version"] == 1
    code, _, err = _cli(monkeypatch, capsys, "models", "show", "nope", "-w", ws)
    assert code == 2 and "no registered model 'nope'" in err and "cli" in err

    code, _, err = _cli(monkeypatch, capsys, "train", str(EXAMPLE_RECIPE), "-w", ws, "--set", "estimater.class=x")
    assert code == 2 and "unknown key(s) 'estimater'" in err


def test_regression_and_multiclass_recipes(lifecycle: Workspace, credit_df: pd.DataFrame) -> None:
    reg = _train(lifecycle, credit_df, "name=amount", "target=loan_amount", "task=regression", "metrics=null",
                 "gate.metric=rmse", "gate.min_improvement_over_baseline=0",
                 "estimator.class=sklearn.ensemble.HistGradientBoostingRegressor")
    assert set(reg.metrics) == {"rmse", "mae", "r2"} and reg.gate.passed and reg.metrics["rmse"] < reg.baseline_metrics["rmse"]
    page = Path(reg.report_path).read_text()
    assert "Residuals vs prediction" in page and "ROC curve" not in page
    model = lifecycle.registry.load("amount")
    assert model.classes is None and model.profile["prediction"]["kind"] == "regression"
    assert lifecycle.registry.get("amount", reg.version).tags["serein.onnx"].startswith(("ok", "skipped: disagrees"))

    multi = _train(lifecycle, credit_df, "name=employment", "target=employment", "gate.metric=accuracy",
                   "gate.min_improvement_over_baseline=0", "split.method=random")
    assert multi.notes == [f"{int(credit_df['employment'].isna().sum())} rows without a value of 'employment' were left out"]
    assert 0.5 < multi.metrics["roc_auc"] <= 1.0 and multi.baseline_metrics["roc_auc"] == 0.5
    assert lifecycle.registry.load("employment").classes == sorted(credit_df["employment"].dropna().unique())
