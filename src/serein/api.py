"""The Python entry points for notebooks: ``deploy`` a pipeline in one call, or ``train`` a recipe.

>>> import serein                                    # doctest: +SKIP
>>> result = serein.deploy(pipe, name="credit", data=df, target="default")  # doctest: +SKIP
>>> result.gate.passed, result.version, result.alias  # doctest: +SKIP
(True, 1, 'champion')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serein.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from serein.train.recipe import Recipe
    from serein.train.trainer import TrainResult
    from serein.workspace import Workspace

def _workspace(workspace: Workspace | str | os.PathLike[str] | None) -> Workspace:
    from serein.workspace import Workspace

    if isinstance(workspace, Workspace):
        return workspace
    return Workspace(workspace) if workspace is not None else Workspace()


def _infer_task(pipeline: Any) -> str:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(pipeline):
        return "classification"
    if is_regressor(pipeline):
        return "regression"
    raise UsageError(f"cannot tell whether {type(pipeline).__name__} is a classifier or a regressor",
                     hint="pass task='classification' or task='regression'")


def deploy(
    pipeline: Any,
    *,
    name: str,
    data: pd.DataFrame,
    target: str,
    task: str | None = None,
    features: list[str] | None = None,
    split: dict[str, Any] | None = None,
    gate: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
    seed: int = 0,
    workspace: Workspace | str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Take a scikit-learn pipeline from a notebook to the registry in one call.

    ``data`` becomes a new version of dataset ``name`` (so the model has lineage); a contract is
    suggested by profiling it when the dataset has none (saved for review in the contracts
    folder). An unfitted ``pipeline`` is fitted on the training split; a fitted one is evaluated
    as given. Then the gate decides, the version is registered and, when the gate passes,
    promoted to champion. The result says what happened (``gate.reasons`` explain a refusal).
    """
    import pandas as pd

    from serein.data.refs import check_name
    from serein.train.pipeline import input_columns, is_fitted
    from serein.train.recipe import Recipe
    from serein.train.trainer import train as run_training

    check_name(name, "model")
    if not isinstance(data, pd.DataFrame):
        raise UsageError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not hasattr(pipeline, "fit") or not hasattr(pipeline, "predict"):
        raise UsageError(f"{type(pipeline).__name__} is not a scikit-learn estimator", hint="pass a Pipeline or estimator with fit/predict")
    ws = _workspace(workspace)
    task = task or _infer_task(pipeline)
    recipe = Recipe.from_dict({
        "name": name, "data": name, "target": target, "task": task, "features": features,
        "split": split or {}, "gate": gate or {},
        "metrics": metrics, "seed": seed,
    }, where="deploy()")
    if target not in data.columns:
        raise UsageError(f"target {target!r} is not a column of data", hint=f"columns are: {', '.join(map(str, data.columns))}")
    if features is None and is_fitted(pipeline) and input_columns(pipeline) is None:
        raise UsageError(f"the fitted {type(pipeline).__name__} does not know its column names (fitted on an array)",
                         hint="fit it on a DataFrame of the feature columns, or pass features=[...] in the order it expects")
    if ws.datasets.contract(name) is None:
        from serein.data.profiling import suggest_contract

        suggest_contract(data, dataset=name).save(ws.datasets.contract_path(name))
    ingested = ws.datasets.ingest(data, name, mode="overwrite")
    result = run_training(ws, recipe, data_ref=f"{name}@{ingested.version}", pipeline=pipeline, promote=True)
    if ingested.quarantined:
        result.notes.insert(0, f"{ingested.quarantined} of {ingested.rows_read} rows broke the contract of dataset "
                               f"{name!r} and were quarantined (see `serein data quarantine {name}`)")
    return result


def train(
    recipe: Recipe | dict[str, Any] | str | os.PathLike[str],
    *,
    data: pd.DataFrame | str | None = None,
    overrides: list[str] | None = None,
    workspace: Workspace | str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Run a recipe (a path to YAML, a dict or a ``Recipe``) from Python.

    ``data`` is a dataset reference (``"credit@3"``) or a DataFrame; by default the recipe's
    ``data``. ``overrides`` are ``"dotted.key=value"`` strings, as with ``serein train --set``.
    """
    import pandas as pd

    from serein.train.recipe import Recipe
    from serein.train.trainer import train as run_training

    if isinstance(recipe, Recipe):
        if overrides:
            recipe = Recipe.from_dict(recipe.raw, overrides)
    elif isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe, overrides)
    elif isinstance(recipe, (str, Path, os.PathLike)):
        recipe = Recipe.load(recipe, overrides)
    else:
        raise UsageError(f"recipe must be a path, a dict or a Recipe, got {type(recipe).__name__}")
    ws = _workspace(workspace)
    if isinstance(data, pd.DataFrame):
        return run_training(ws, recipe, frame=data)
    return run_training(ws, recipe, data_ref=data)
