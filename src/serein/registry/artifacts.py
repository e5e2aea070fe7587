"""What a model version stores: the MLflow sklearn model (skops) with a signature from the
contract, its sha256, and serein's own files under the run's ``serein/`` folder.

``serein/meta.json`` (features, target, task, classes, ONNX inputs), ``serein/contract.yaml``
(features only), ``serein/recipe.yaml``, ``serein/profile.json`` (the reference profile),
``serein/model.onnx`` (when it converted and agreed) and the evaluation report
``serein/NAME-vVERSION-evaluation.html``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from serein.yaml_loader import load_yaml

if TYPE_CHECKING:
    import pandas as pd

    from serein.data.contract import Contract

MODEL_ARTIFACT = "model"  # the name of the MLflow logged model
SKOPS_FILE = "model.skops"
SEREIN_DIR = "serein"
META_FILE = "meta.json"
CONTRACT_FILE = "contract.yaml"
RECIPE_FILE = "recipe.yaml"
PROFILE_FILE = "profile.json"
ONNX_FILE = "model.onnx"

# contract type -> MLflow column type. A nullable integer column arrives as floats in pandas
# (NaN has no integer form), so it is declared as double to keep pyfunc's schema check happy.
_MLFLOW_TYPES = {"integer": "long", "float": "double", "string": "string", "boolean": "boolean", "datetime": "datetime"}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes.

    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile(delete=False); _ = f.write(b"abc"); f.close()
    >>> sha256_file(f.name)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def signature(contract: Contract, sample: pd.DataFrame, predictions: Any) -> Any:
    """An MLflow ModelSignature: inputs from the contract (nullable columns optional), outputs
    inferred from the model's predictions."""
    import warnings

    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    cols = []
    for name, spec in contract.columns.items():
        kind = "double" if spec.type == "integer" and spec.nullable else _MLFLOW_TYPES[spec.type]
        cols.append(ColSpec(kind, name, required=not spec.nullable))
    with warnings.catch_warnings():  # its hint about integer columns concerns inputs, declared above
        warnings.simplefilter("ignore", UserWarning)
        outputs = infer_signature(sample, predictions).outputs
    return ModelSignature(inputs=Schema(cols), outputs=outputs)


def trusted_types(pipeline: Any) -> list[str]:
    """The types skops must be told to trust to load ``pipeline`` (recorded at registration)."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


def pip_requirements() -> list[str]:
    """Explicit requirements for the MLflow model: inferring them costs ~10 s in a subprocess."""
    from serein.registry.lineage import package_versions

    v = package_versions()
    return [f"scikit-learn=={v['scikit-learn']}", f"skops=={v['skops']}", f"numpy=={v['numpy']}",
            f"pandas=={v['pandas']}", f"mlflow=={v['mlflow']}"]


def log_sklearn_model(pipeline: Any, sig: Any) -> tuple[str, list[str]]:
    """Log ``pipeline`` to the active run as a standard MLflow sklearn model (skops format);
    returns its model URI and the trusted types it needs."""
    import mlflow.sklearn

    trusted = trusted_types(pipeline)
    info = mlflow.sklearn.log_model(
        pipeline, name=MODEL_ARTIFACT, serialization_format="skops", skops_trusted_types=trusted,
        signature=sig, pip_requirements=pip_requirements(),
    )
    return info.model_uri, trusted


def write_serein_files(folder: Path, meta: dict[str, Any], contract: Contract, recipe: dict[str, Any],
                       profile: dict[str, Any]) -> None:
    """Write the version's serein files into ``folder`` (logged as the run's ``serein/``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    contract.save(folder / CONTRACT_FILE)
    (folder / RECIPE_FILE).write_text(yaml.safe_dump(recipe, sort_keys=False))
    (folder / PROFILE_FILE).write_text(json.dumps(profile, default=str))


def read_serein_files(folder: Path) -> tuple[dict[str, Any], Contract, dict[str, Any], dict[str, Any]]:
    """``(meta, contract, recipe, profile)`` from a version's ``serein/`` folder."""
    from serein.data.contract import Contract

    meta = json.loads((folder / META_FILE).read_text())
    contract = Contract.load(folder / CONTRACT_FILE)
    recipe = load_yaml((folder / RECIPE_FILE).read_text()) or {}
    profile = json.loads((folder / PROFILE_FILE).read_text())
    return meta, contract, recipe, profile
