"""Record a training job in MLflow and register its model version.

The run gets params (the recipe, flattened), metrics (``test_*`` for the model, ``baseline_*``,
``champion_*``) and lineage tags; the model is logged as a standard MLflow sklearn model (skops,
signature from the contract) so ``mlflow models serve -m models:/NAME@champion`` works too. The
version gets the sha256 of the serialized pipeline, the gate verdict, the lineage, and serein's
files (contract, recipe, reference profile, ONNX export, report) under the run's ``serein/``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serein.registry.artifacts import (
    ONNX_FILE,
    SEREIN_DIR,
    SKOPS_FILE,
    log_sklearn_model,
    sha256_file,
    signature,
    write_serein_files,
)
from serein.registry.onnx_export import MISSING_CATEGORY, export_onnx

if TYPE_CHECKING:
    import pandas as pd

    from serein.data.contract import Contract
    from serein.train.gate import GateVerdict
    from serein.train.recipe import Recipe
    from serein.train.trainer import Evaluations, Progress, TrainingData
    from serein.workspace import Workspace


@dataclass
class Recorded:
    run_id: str
    version: int
    onnx_status: str
    report_path: Path


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as MLflow params (``a.b.c``; lists and empty mappings as JSON).

    >>> _flatten({"split": {"method": "time", "column": None}, "metrics": ["f1"]})
    {'split.method': 'time', 'split.column': None, 'metrics': '["f1"]'}
    """
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, dict)) else value}


def _plain_params(pipeline: Any) -> dict[str, Any]:
    """The final estimator's parameters that are plain values (what a recipe can hold)."""
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    return {k: v for k, v in final.get_params(deep=False).items() if isinstance(v, (bool, int, float, str, type(None)))}


def _gate_tags(verdict: GateVerdict) -> dict[str, str]:
    return {
        "serein.gate.passed": str(verdict.passed).lower(),
        "serein.gate.metric": verdict.metric,
        "serein.gate.value": f"{verdict.value:.6g}",
        "serein.gate.baseline": f"{verdict.baseline:.6g}",
        "serein.gate.champion_value": "" if verdict.champion_value is None else f"{verdict.champion_value:.6g}",
        "serein.gate.champion_version": "" if verdict.champion_version is None else str(verdict.champion_version),
        "serein.gate.reasons": json.dumps(verdict.reasons),
    }


def _metrics(evals: Evaluations) -> dict[str, float]:
    out = {f"test_{k}": v for k, v in evals.model.metrics.items()}
    out.update({f"baseline_{k}": v for k, v in evals.baseline.metrics.items()})
    if evals.champion is not None:
        out.update({f"champion_{k}": v for k, v in evals.champion.metrics.items()})
    return out


def record_run(ws: Workspace, recipe: Recipe, pipeline: Any, data: TrainingData, contract: Contract,
               X_test: pd.DataFrame, y_test: pd.Series, evals: Evaluations, verdict: GateVerdict,
               supplied: bool, prefitted: bool, notes: list[str], step: Progress) -> Recorded:
    """Log the run and register the version (no alias yet: the caller places it last).

    For a ``supplied`` pipeline (``deploy``) the stored recipe names its final estimator and that
    estimator's plain parameters, so a retrain rebuilds the closest standard pipeline."""
    import mlflow

    from serein.monitor.profile import build_profile
    from serein.registry.lineage import lineage_tags
    from serein.registry.registry import ONNX_SHA_TAG, SHA_TAG, TRUSTED_TAG
    from serein.registry.tracking import experiment_id, fetch, use_workspace
    from serein.train.report import write_evaluation_report
    from serein.train.trainer import estimator_path

    client = use_workspace(ws)
    features = list(contract.columns)
    lineage = lineage_tags(data.dataset, data.version, data.content_hash, data.contract.hash, recipe.seed, data.contract_source)
    recipe_dict = recipe.to_dict()
    if supplied:
        recipe_dict["estimator"] = {"class": estimator_path(pipeline), "params": _plain_params(pipeline)}
    params = _flatten(recipe_dict)
    step("logging the run to MLflow")
    with mlflow.start_run(experiment_id=experiment_id(ws, client, recipe.name), run_name=f"{recipe.name}-train") as run:
        run_id = run.info.run_id
        mlflow.log_params({**params, "rows.train": len(data.frame) - len(X_test), "rows.holdout": len(X_test)})
        mlflow.log_metrics(_metrics(evals))
        mlflow.set_tags({**lineage, **_gate_tags(verdict), "serein.model": recipe.name, "serein.task": recipe.task,
                         "serein.supplied_pipeline": str(supplied).lower(), "serein.prefitted": str(prefitted).lower(), "serein.notes": json.dumps(notes)})
        model_uri, trusted = log_sklearn_model(pipeline, signature(contract, X_test.head(20), evals.model.predictions[:20]))
        model_id = model_uri.rsplit("/", 1)[-1]
        model_file = fetch(client.get_logged_model(model_id).artifact_location, ws.state_dir / "cache" / "logged" / model_id) / SKOPS_FILE
        version_tags = {**lineage, **_gate_tags(verdict), SHA_TAG: sha256_file(model_file), TRUSTED_TAG: json.dumps(trusted),
                        "serein.task": recipe.task, "serein.target": recipe.target, "serein.features": json.dumps(features),
                        "serein.onnx_missing": MISSING_CATEGORY}
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            step("exporting to ONNX and checking agreement")
            onnx = export_onnx(pipeline, X_test, contract, features, recipe.task, folder / ONNX_FILE)
            version_tags.update(onnx.tags())
            if onnx.path is not None:
                version_tags[ONNX_SHA_TAG] = sha256_file(onnx.path)
            step("building the reference profile")
            profile = build_profile(X_test, contract, recipe.task, evals.model.predictions, scores=evals.model.scores,
                                    labels=y_test.to_numpy(), classes=evals.model.classes, proba=evals.model.proba)
            meta = {"features": features, "target": recipe.target, "task": recipe.task, "classes": evals.model.classes,
                    "onnx_inputs": onnx.inputs, "onnx_missing": MISSING_CATEGORY, "onnx_reason": onnx.reason}
            write_serein_files(folder, meta, contract, recipe_dict, profile)
            mlflow.log_artifacts(tmp, SEREIN_DIR)
        step("registering the model version")
        version = ws.registry.register(recipe.name, model_uri, run_id, version_tags).version
        step("writing the evaluation report")
        report = write_evaluation_report(
            ws.reports_dir / f"{recipe.name}-v{version}-evaluation.html", f"{recipe.name} v{version}: evaluation",
            recipe.task, y_test, evals.model, evals.baseline, evals.champion, verdict,
            {k: v for k, v in lineage.items() if not k.startswith("serein.pkg.")}, onnx.tags(), params,
        )
        mlflow.log_artifact(str(report), SEREIN_DIR)
        ws.registry.set_tags(recipe.name, version, {"serein.report": f"{SEREIN_DIR}/{report.name}"})
    return Recorded(run_id, version, version_tags["serein.onnx"], report)
