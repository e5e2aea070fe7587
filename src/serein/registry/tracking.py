"""MLflow, pointed at a workspace: tracking and registry on ``ws.tracking_uri``, artifacts under
``ws.artifact_root``.

MLflow is imported here, inside functions, never at CLI start (``import mlflow`` costs ~2 s).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from serein.workspace import Workspace

EXPERIMENT_PREFIX = "serein/"


def use_workspace(ws: Workspace) -> MlflowClient:
    """Point MLflow's fluent API at ``ws`` and return a client for it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    return MlflowClient(tracking_uri=ws.tracking_uri, registry_uri=ws.tracking_uri)


def artifact_location(ws: Workspace) -> str:
    """``ws.artifact_root`` as a URI (local folders become ``file://`` URIs)."""
    root = ws.artifact_root
    if "://" in root:
        return root
    Path(root).mkdir(parents=True, exist_ok=True)
    return Path(root).resolve().as_uri()


def experiment_id(ws: Workspace, client: MlflowClient, model_name: str) -> str:
    """The id of the experiment holding ``model_name``'s training runs, created on first use with
    its artifacts under the workspace's artifact root."""
    name = EXPERIMENT_PREFIX + model_name
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    from mlflow.exceptions import MlflowException

    try:
        return str(client.create_experiment(name, artifact_location=artifact_location(ws)))
    except MlflowException:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def local_path(uri: str) -> Path | None:
    """The local folder behind a ``file://`` (or plain path) artifact URI, else None."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    if "://" not in uri:
        return Path(uri)
    return None


def fetch(uri: str, cache_dir: Path) -> Path:
    """A local folder with the artifacts at ``uri``: read in place when local (no copy), else
    downloaded into ``cache_dir``."""
    here = local_path(uri)
    if here is not None:
        return here
    import mlflow

    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(cache_dir)))
