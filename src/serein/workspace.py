"""Workspaces: a folder holding ``serein.yaml`` whose stores live under ``.serein/`` by default.

Every store is a URI, so the same workspace can point at PostgreSQL and S3 instead of the embedded
files without code changes. Settings come from ``serein.yaml`` and can be overridden by
environment variables: ``SEREIN_<KEY>`` for a top-level key and ``SEREIN_<SECTION>__<KEY>`` for a
nested one (values are parsed as YAML, so ``SEREIN_SERVE__PORT=9000`` is an integer).

>>> import tempfile
>>> ws = Workspace.init(tempfile.mkdtemp())
>>> ws.config["store_uri"].startswith("sqlite:///")
True
"""

from __future__ import annotations

import copy
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from serein.errors import NotFoundError, UsageError
from serein.yaml_loader import load_yaml

if TYPE_CHECKING:
    from serein.alerts.alerts import AlertManager
    from serein.data.datasets import DatasetStore
    from serein.registry.registry import ModelRegistry
    from serein.store import OperationalStore

CONFIG_FILE = "serein.yaml"
STATE_DIR = ".serein"
ENV_PREFIX = "SEREIN_"

DEFAULTS: dict[str, Any] = {
    "project": "serein",
    # Relative paths and sqlite URIs below are resolved against the workspace folder.
    "tracking_uri": "sqlite:///.serein/mlflow.db",
    "artifact_root": ".serein/artifacts",
    "data_root": ".serein/data",
    "store_uri": "sqlite:///.serein/serein.db",
    "contracts_dir": "contracts",
    "serve": {
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 1,
        "reload_interval": 2.0,
        "max_body_bytes": 10 * 1024 * 1024,
        "max_rows": 10_000,
        "threads": 1,
        "runtime": "auto",
        "graceful_timeout": 30,
        "auth": False,
    },
    "monitor": {"window": "24h"},
    "alerts": {"channels": [{"type": "log"}], "cooldown": "1h"},
}

TEMPLATE = """\
# serein workspace. Every setting can be overridden by SEREIN_<KEY> / SEREIN_<SECTION>__<KEY>.
project: {project}
# MLflow tracking and registry (a SQLite file by default; postgresql://... for teams).
tracking_uri: sqlite:///.serein/mlflow.db
artifact_root: .serein/artifacts
# Delta tables, one per dataset (a local folder or s3://bucket/prefix).
data_root: .serein/data
# Operational store: prediction log, feedback, monitor results, alerts, API keys.
store_uri: sqlite:///.serein/serein.db
# Reviewed contracts (YAML) live beside the code.
contracts_dir: contracts
serve:
  host: 127.0.0.1
  port: 8000
  workers: 1
  reload_interval: 2.0      # seconds between checks for a moved champion alias
  max_body_bytes: 10485760
  max_rows: 10000
  threads: 1                # compute threads per worker (OpenMP/BLAS/ONNX Runtime); scale with workers
  runtime: auto             # auto: ONNX Runtime where a verified export exists; sklearn: the pipeline
  graceful_timeout: 30      # seconds in-flight requests get on shutdown
  auth: false               # true: API keys required (`serein keys create`); health checks stay open
monitor:
  window: 24h
alerts:
  cooldown: 1h
  channels:
    - type: log
    # - type: webhook
    #   url: https://hooks.example.com/serein
"""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "SEREIN_WORKSPACE":
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        try:
            value = load_yaml(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``serein.yaml``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise NotFoundError(
        f"no {CONFIG_FILE} in {here} or any folder above it",
        hint="run `serein init` there, or pass --workspace PATH",
    )


class Workspace:
    """A serein workspace: its settings and (lazily opened) stores.

    Stores are opened on first use so that ``serein --help`` and small commands stay fast.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is None:
            root = os.environ.get("SEREIN_WORKSPACE") or find_root()
        self.root = Path(root).resolve()
        config_path = self.root / CONFIG_FILE
        if not config_path.is_file():
            raise NotFoundError(
                f"{self.root} is not a serein workspace (no {CONFIG_FILE})",
                hint=f"run `serein init {self.root}` first",
            )
        try:
            loaded = load_yaml(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{config_path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{config_path} must hold a mapping of settings")
        self.config: dict[str, Any] = _merge(_merge(DEFAULTS, loaded), _env_overrides(dict(os.environ)))

    @classmethod
    def init(cls, root: str | os.PathLike[str] = ".", project: str | None = None) -> Workspace:
        """Create ``serein.yaml`` and ``.serein/`` in ``root`` (kept as they are if present)."""
        path = Path(root).resolve()
        path.mkdir(parents=True, exist_ok=True)
        (path / STATE_DIR).mkdir(exist_ok=True)
        config = path / CONFIG_FILE
        if not config.exists():
            config.write_text(TEMPLATE.format(project=project or path.name or "serein"))
        return cls(path)

    # -- locations ---------------------------------------------------------------------------
    def resolve_path(self, value: str) -> str:
        """A path or URI from the config, with relative local paths made absolute."""
        if "://" in value:
            return value
        path = Path(value)
        return str(path if path.is_absolute() else self.root / path)

    def resolve_uri(self, uri: str) -> str:
        """A database URI with a relative ``sqlite:///`` path made absolute."""
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
            path = self.root / uri[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            return prefix + str(path)
        return uri

    @property
    def state_dir(self) -> Path:
        path = self.root / STATE_DIR
        path.mkdir(exist_ok=True)
        return path

    @property
    def reports_dir(self) -> Path:
        path = self.state_dir / "reports"
        path.mkdir(exist_ok=True)
        return path

    @property
    def tracking_uri(self) -> str:
        return self.resolve_uri(str(self.config["tracking_uri"]))

    @property
    def artifact_root(self) -> str:
        return self.resolve_path(str(self.config["artifact_root"]))

    @property
    def data_root(self) -> str:
        return self.resolve_path(str(self.config["data_root"]))

    @property
    def store_uri(self) -> str:
        return self.resolve_uri(str(self.config["store_uri"]))

    @property
    def contracts_dir(self) -> Path:
        return Path(self.resolve_path(str(self.config["contracts_dir"])))

    # -- stores (opened lazily) --------------------------------------------------------------
    @cached_property
    def store(self) -> OperationalStore:
        from serein.store import OperationalStore

        return OperationalStore(self.store_uri)

    @cached_property
    def datasets(self) -> DatasetStore:
        from serein.data.datasets import DatasetStore

        return DatasetStore(self)

    @cached_property
    def registry(self) -> ModelRegistry:
        from serein.registry.registry import ModelRegistry

        return ModelRegistry(self)

    @cached_property
    def alerts(self) -> AlertManager:
        from serein.alerts.alerts import AlertManager

        return AlertManager(self)

    # -- the loop's steps, for notebooks (the CLI calls the same functions) -----------------
    def train(self, recipe: Any, data: Any = None, overrides: list[str] | None = None) -> Any:
        """Run a training recipe (path, dict or Recipe); see :func:`serein.api.train`."""
        from serein.api import train

        return train(recipe, data=data, overrides=overrides, workspace=self)

    def deploy(self, pipeline: Any, **kwargs: Any) -> Any:
        """Log, gate, register and promote a pipeline; see :func:`serein.api.deploy`."""
        from serein.api import deploy

        return deploy(pipeline, workspace=self, **kwargs)

    def monitor(self, model: str, since: str | None = None, last: int | None = None,
                current: str | None = None, report: Any = None) -> Any:
        """Compare a window of traffic (or a batch) with the model's reference profile."""
        from serein.monitor.monitor import run_monitor

        return run_monitor(self, model, since=since, last=last, current=current, report=report)

    def retrain(self, model: str, data: str | None = None, include_feedback: bool = True) -> Any:
        """Retrain the champion's recipe on newer data; promote when the gate passes."""
        from serein.retrain.retrain import retrain

        return retrain(self, model, data=data, include_feedback=include_feedback)

    def predict(self, model: str, input: str, output: str, **kwargs: Any) -> Any:
        """Score a file or dataset in chunks and write the predictions; see
        :func:`serein.batch.predict_batch`."""
        from serein.batch import predict_batch

        return predict_batch(self, model, input, output, **kwargs)

    def serve(self, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
        """Serve every champion until interrupted (blocks)."""
        from serein.serve.server import run

        run(self, host=host, port=port, workers=workers)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
