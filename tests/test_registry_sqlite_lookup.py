"""The registry read straight from MLflow's SQLite database agrees with MLflow's own answers, steps
aside (None) whenever it cannot be sure, and lets a ``--current`` monitoring run finish without
importing MLflow, scikit-learn or scipy.stats (seconds each on a CLI run); a pipeline whose
deserializing is deferred is checked against its sha256 again when first used."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from serein.registry.sqlite_lookup import database_path, lookup
from serein.workspace import Workspace

from conftest import TRAINED_MODEL


def test_lookup_agrees_with_mlflow(trained_workspace: Workspace) -> None:
    ws = trained_workspace
    client = ws.registry.client
    for ref in ("champion", "1"):
        stored = lookup(ws.tracking_uri, TRAINED_MODEL, ref)
        info = ws.registry.get(TRAINED_MODEL, ref)
        assert stored is not None, ref
        assert (stored.version, stored.run_id, stored.aliases, stored.tags) == (info.version, info.run_id, info.aliases, info.tags)
        assert stored.created_at == info.created_at
        assert stored.model_uri == client.get_model_version_download_uri(TRAINED_MODEL, str(info.version))
        assert stored.artifact_uri == client.get_run(info.run_id).info.artifact_uri
    # what MLflow would refuse is left to MLflow to word
    assert lookup(ws.tracking_uri, TRAINED_MODEL, "no-such-alias") is None
    assert lookup(ws.tracking_uri, TRAINED_MODEL, "99") is None
    assert lookup(ws.tracking_uri, "no-such-model", "champion") is None


def test_lookup_steps_aside_when_unsure(trained_workspace: Workspace, tmp_path: Path) -> None:
    uri = trained_workspace.tracking_uri
    assert lookup("http://mlflow.example:5000", TRAINED_MODEL, "champion") is None
    assert lookup(f"sqlite:///{tmp_path / 'missing.db'}", TRAINED_MODEL, "champion") is None
    assert database_path("sqlite:///:memory:") is None
    # a schema this module does not know (MLflow renamed a table): None, not an error
    copy = tmp_path / "mlflow.db"
    shutil.copy(database_path(uri), copy)
    with sqlite3.connect(copy) as db:
        db.execute("ALTER TABLE runs RENAME TO runs_v2")
    assert lookup(f"sqlite:///{copy}", TRAINED_MODEL, "champion") is None
    # a second row for the same alias (e.g. another MLflow workspace): ambiguous, so None
    shutil.copy(database_path(uri), copy)
    with sqlite3.connect(copy) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(registered_model_aliases)")]
        db.execute("INSERT INTO registered_model_aliases (alias, version, name, workspace) "
                   "VALUES ('champion', 1, ?, 'other')", (TRAINED_MODEL,))
    assert "workspace" in columns  # MLflow 3's schema, which the insert above follows
    assert lookup(f"sqlite:///{copy}", TRAINED_MODEL, "champion") is None


def test_monitoring_a_batch_imports_neither_mlflow_sklearn_nor_scipy_stats(trained_workspace: Workspace, drifted_df: pd.DataFrame,
                                                               tmp_path: Path) -> None:
    from serein.batch import ChunkScorer, plan_path

    loaded = trained_workspace.registry.load(TRAINED_MODEL, "champion")
    # the version's first batch run works its batch plan out (with scikit-learn) and keeps it; the
    # runs after it, measured here, read the plan (alone, this test used to see that first run)
    ChunkScorer(loaded, prefer_onnx=True, arrow_path=True, plan_file=plan_path(trained_workspace, loaded))
    batch = tmp_path / "batch.parquet"
    drifted_df[loaded.features].to_parquet(batch)
    script = textwrap.dedent(f"""
        import json, sys
        from serein.monitor.monitor import run_monitor
        from serein.workspace import Workspace
        result = run_monitor(Workspace({str(trained_workspace.root)!r}), {TRAINED_MODEL!r}, current={str(batch)!r})
        print(json.dumps({{"mlflow": "mlflow" in sys.modules, "sklearn": "sklearn" in sys.modules,
                          "skops": "skops" in sys.modules, "scipy.stats": "scipy.stats" in sys.modules,
                          "n_rows": result.n_rows}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == (
        f'{{"mlflow": false, "sklearn": false, "skops": false, "scipy.stats": false, "n_rows": {len(drifted_df)}}}')


def test_a_deferred_pipeline_is_checked_again_when_first_used(trained_workspace: Workspace, drifted_df: pd.DataFrame) -> None:
    """``load(pipeline=False)`` verifies the file and defers deserializing it; a file changed in
    between is refused at first use, and the restored file loads the same pipeline."""
    import pytest

    from serein.errors import SereinError
    from serein.registry.registry import ModelRegistry

    registry = ModelRegistry(trained_workspace)  # a fresh cache: nothing deserialized yet
    model = registry.load(TRAINED_MODEL, "champion", pipeline=False)
    assert not model.pipeline_loaded
    skops_file = model.__dict__["_pipeline"].path
    original = skops_file.read_bytes()
    skops_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(SereinError, match="refusing to load a changed model file"):
            _ = model.pipeline
    finally:
        skops_file.write_bytes(original)
    X = drifted_df[model.features].head(50)
    assert model.pipeline.predict_proba(X).tolist() == trained_workspace.registry.load(TRAINED_MODEL).pipeline.predict_proba(X).tolist()
    assert model.pipeline_loaded and registry.load(TRAINED_MODEL, "champion") is model  # the cache holds it, loaded
