"""One training job, end to end: data -> split -> fit -> evaluate -> gate -> MLflow run -> version.

The order matters for whoever watches the registry: every file and tag of a version (sha256,
gate verdict, lineage, reference profile, ONNX export, report) is in place before an alias moves
to it, so a server reloading on an alias change never sees a half-registered version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from serein.errors import SereinError, UsageError, ValidationFailed
from serein.train.recipe import Recipe

if TYPE_CHECKING:
    import pandas as pd

    from serein.data.contract import Contract
    from serein.train.evaluate import Evaluation
    from serein.train.gate import GateVerdict
    from serein.workspace import Workspace

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """What a training job produced. ``alias`` is the alias the new version received
    (``champion``, ``challenger`` or None); ``promoted`` says whether it now serves."""

    run_id: str
    model: str
    version: int
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    gate: GateVerdict
    promoted: bool
    report_path: str
    alias: str | None = None
    champion_metrics: dict[str, float] | None = None
    onnx: str = ""
    dataset: str | None = None
    dataset_version: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluations:
    """The holdout evaluations a run compares: the model, the dummy baseline, the champion."""

    model: Evaluation
    baseline: Evaluation
    champion: Evaluation | None


@dataclass
class TrainingData:
    """The rows a job trains on and where they came from."""

    frame: pd.DataFrame
    dataset: str | None
    version: int | None
    content_hash: str
    contract: Contract
    contract_source: str  # "reviewed" (the dataset's contract file) or "suggested" (profiled now)


def load_training_data(ws: Workspace, recipe: Recipe, data_ref: str | None, frame: pd.DataFrame | None) -> TrainingData:
    """The job's data: ``frame`` when given (lineage then holds only its hash), else the dataset
    named by ``data_ref`` or the recipe's ``data``; with the dataset's contract, or one suggested
    by profiling when it has none."""
    from serein.data.hashing import frame_hash
    from serein.data.profiling import suggest_contract
    from serein.data.refs import DatasetRef

    ref = data_ref or recipe.data
    if frame is not None:
        # not read from the store: lineage is the content hash; the named dataset (if any) only
        # lends its contract
        name, version, content_hash = None, None, frame_hash(frame)
        contract_of = DatasetRef.parse(ref).name if ref else None
    else:
        if not ref:
            raise UsageError("no training data given", hint="set 'data: DATASET[@VERSION]' in the recipe or pass --data REF")
        loaded = ws.datasets.load(ref)
        frame, name, version, content_hash = loaded.frame, loaded.name, loaded.version, loaded.content_hash
        contract_of = name
    if frame.empty:
        raise UsageError(f"the training data{f' ({ref})' if ref else ''} has no rows",
                         hint="ingest data first (serein data ingest) or check the dataset version")
    contract = ws.datasets.contract(contract_of) if contract_of else None
    source = "reviewed"
    if contract is None:
        contract, source = suggest_contract(frame, dataset=contract_of), "suggested"
    return TrainingData(frame, name, version, content_hash, contract, source)


def _check_target(frame: pd.DataFrame, recipe: Recipe, notes: list[str]) -> pd.DataFrame:
    if recipe.target not in frame.columns:
        raise UsageError(f"target {recipe.target!r} is not a column of the data",
                         hint=f"columns are: {', '.join(map(str, frame.columns))}")
    missing = int(frame[recipe.target].isna().sum())
    if missing:
        notes.append(f"{missing} rows without a value of {recipe.target!r} were left out")
        frame = frame[frame[recipe.target].notna()]
        if frame.empty:
            raise UsageError(f"every row lacks a value of the target {recipe.target!r}")
    if recipe.task == "classification" and frame[recipe.target].nunique() < 2:
        raise UsageError(f"the target {recipe.target!r} has a single class ({frame[recipe.target].iloc[0]!r})",
                         hint="a classifier needs at least two classes; check the data or use task: regression")
    if recipe.task == "regression":
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(frame[recipe.target]) or pd.api.types.is_bool_dtype(frame[recipe.target]):
            raise UsageError(f"the target {recipe.target!r} is not numeric, so it cannot be regressed",
                             hint="use task: classification for a categorical target")
    return frame


def _validate(frame: pd.DataFrame, contract: Contract, notes: list[str]) -> None:
    """Refuse training rows that break the contract row by row; a batch-level shortfall
    (e.g. completeness under its bound once newer batches were appended) is noted, not fatal."""
    from serein.data.validation import validate

    report = validate(frame, contract)
    if report.ok:
        return
    shown = "; ".join(f"{f['column']}: {f['check']} ({f['count']} rows)" for f in report.failures[:5])
    if report.n_bad:
        raise ValidationFailed(f"the training data breaks its contract: {shown}",
                               hint="fix the data or review the contract (serein data check NAME)")
    notes.append(f"the training data misses batch-level contract checks: {shown}")


def estimator_path(estimator: Any) -> str:
    """The dotted class path of an estimator (the final step of a pipeline)."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return f"{type(final).__module__}.{type(final).__qualname__}"


def _evaluate_champion(ws: Workspace, recipe: Recipe, test: pd.DataFrame) -> tuple[int | None, Evaluation | None, str | None]:
    """``(version, evaluation, error)`` of the current champion on this run's holdout."""
    from serein.train.evaluate import evaluate

    current = ws.registry.champion(recipe.name)
    if current is None:
        return None, None, None
    try:
        champ = ws.registry.load(recipe.name, current.version)
        if champ.task != recipe.task:
            return current.version, None, f"it is a {champ.task} model"
        missing = [f for f in champ.features if f not in test.columns]
        if missing:
            return current.version, None, f"the data lacks its feature(s) {', '.join(missing)}"
        return current.version, evaluate(champ.pipeline, test[champ.features], test[recipe.target], recipe.task, recipe.metrics), None
    except (SereinError, ValueError, TypeError, KeyError) as exc:
        return current.version, None, str(exc)


def train(ws: Workspace, recipe: Recipe, data_ref: str | None = None, frame: pd.DataFrame | None = None,
          pipeline: Any = None, promote: bool = False, progress: Progress | None = None) -> TrainResult:
    """Train (or, for an already fitted ``pipeline``, evaluate), gate and register a version.

    ``pipeline`` replaces the recipe's preprocessing + estimator (``deploy`` uses it). With
    ``promote`` a version that passes its gate becomes champion even when one exists; otherwise
    it becomes challenger and waits for ``serein models promote``.
    """
    from serein.train.evaluate import baseline_estimator, check_metrics_supported, evaluate
    from serein.train.gate import decide
    from serein.train.pipeline import build_pipeline, fit_frame, input_columns, is_fitted, resolve_features, split_kinds
    from serein.train.split import split_frame

    step = progress or (lambda _msg: None)
    notes: list[str] = []
    step("loading data")
    data = load_training_data(ws, recipe, data_ref, frame)
    rows = _check_target(data.frame, recipe, notes)
    supplied = pipeline is not None
    prefitted = supplied and is_fitted(pipeline)
    features = resolve_features(rows, recipe.target, data.contract,
                                recipe.features or (input_columns(pipeline) if supplied else None), notes)
    outside = [f for f in features if f not in data.contract.columns]
    if outside:
        raise UsageError(f"feature(s) {', '.join(map(repr, outside))} are not in the contract of dataset {data.dataset!r}",
                         hint=f"add them to {data.dataset}.yaml in {ws.contracts_dir}, or leave them out of 'features'")
    feature_contract = data.contract.select(features)
    step("validating data against its contract")
    used = [c for c in data.contract.columns if c in {*features, recipe.target, recipe.split.column}]
    _validate(rows[used], data.contract.select(used), notes)

    step("splitting")
    train_rows, test = split_frame(rows, recipe.target, recipe.split, recipe.task, recipe.seed)
    X_train, y_train = train_rows[features], train_rows[recipe.target]
    X_test, y_test = test[features], test[recipe.target]

    if pipeline is None:
        numeric, categorical = split_kinds(rows, features, data.contract)
        pipeline = build_pipeline(numeric, categorical, recipe.estimator.build(recipe.task, recipe.seed), recipe.scale)
    check_metrics_supported(pipeline, recipe.metrics)
    if prefitted:
        notes.append("the pipeline came fitted: it was evaluated on the holdout as given (it may have seen those rows)")
    else:
        step(f"fitting {estimator_path(pipeline).rsplit('.', 1)[-1]} on {len(X_train)} rows")
        try:
            pipeline.fit(fit_frame(pipeline, X_train), y_train)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"fitting {estimator_path(pipeline)} failed: {exc}",
                             hint="check estimator.params and the feature columns") from None

    step(f"evaluating on {len(X_test)} holdout rows")
    try:
        model_eval = evaluate(pipeline, X_test, y_test, recipe.task, recipe.metrics)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{estimator_path(pipeline).rsplit('.', 1)[-1]} cannot predict from the feature columns "
                         f"{', '.join(features)}: {exc}",
                         hint="fit the pipeline on a DataFrame with those columns, or pass features=[...]") from None
    baseline = baseline_estimator(recipe.task).fit(X_train, y_train)
    base_eval = evaluate(baseline, X_test, y_test, recipe.task, recipe.metrics)
    champ_version, champ_eval, champ_error = _evaluate_champion(ws, recipe, test)
    verdict = decide(recipe.gate, model_eval.metrics[recipe.gate.metric], base_eval.metrics[recipe.gate.metric],
                     None if champ_eval is None else champ_eval.metrics[recipe.gate.metric], champ_version, champ_error)
    step(f"gate {'passed' if verdict.passed else 'FAILED'}")

    from serein.train.record import record_run

    recorded = record_run(ws, recipe, pipeline, data, feature_contract, X_test, y_test,
                          Evaluations(model_eval, base_eval, champ_eval), verdict, supplied, prefitted, notes, step)
    version = recorded.version
    step("placing aliases")
    if verdict.passed and promote and ws.registry.champion(recipe.name) is not None:
        ws.registry.promote(recipe.name, version)
        alias = "champion"
    else:
        alias = ws.registry.place(recipe.name, version, verdict.passed)
    return TrainResult(
        run_id=recorded.run_id, model=recipe.name, version=version, metrics=model_eval.metrics, baseline_metrics=base_eval.metrics,
        gate=verdict, promoted=alias == "champion", report_path=str(recorded.report_path), alias=alias,
        champion_metrics=None if champ_eval is None else champ_eval.metrics, onnx=recorded.onnx_status,
        dataset=data.dataset, dataset_version=data.version, notes=notes,
    )

