"""The model registry: MLflow registered models, with serein's aliases, gate verdicts and checks.

Each version carries its gate verdict as tags (``serein.gate.*``), the sha256 of its serialized
pipeline (``serein.sha256``) and its lineage. Aliases: ``champion`` serves; ``challenger`` is a
version that passed its gate while a champion existed and waits for an explicit promotion. The
sequence of champions is kept as the registered-model tag ``serein.champion_history`` so that
``rollback`` can put the previous one back.

``load`` recomputes the sha256 of the serialized pipeline (and of the ONNX export) before
deserializing anything and refuses on a mismatch.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from serein.errors import ConflictError, NotFoundError, SereinError, UsageError
from serein.registry.artifacts import (
    ONNX_FILE,
    SEREIN_DIR,
    SKOPS_FILE,
    read_serein_files,
    sha256_file,
)
from serein.registry.loaded import LoadedModel, PipelineFile

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from serein.workspace import Workspace

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "serein.champion_history"
SHA_TAG = "serein.sha256"
ONNX_SHA_TAG = "serein.onnx_sha256"
TRUSTED_TAG = "serein.skops_trusted"
GATE_PASSED_TAG = "serein.gate.passed"


def split_ref(text: str) -> tuple[str, str | None]:
    """``NAME@ALIAS`` / ``NAME@VERSION`` / ``NAME`` -> ``(name, ref or None)``.

    >>> split_ref("credit@champion"), split_ref("credit@3"), split_ref("credit")
    (('credit', 'champion'), ('credit', '3'), ('credit', None))
    """
    name, sep, ref = text.partition("@")
    if not name or (sep and not ref):
        raise UsageError(f"bad model reference {text!r}", hint="use NAME, NAME@VERSION or NAME@ALIAS (e.g. credit@champion)")
    return name, (ref or None)


@dataclass
class VersionInfo:
    """One registered model version: its run, aliases and tags (gate verdict, lineage, sha256)."""

    name: str
    version: int
    run_id: str
    aliases: list[str]
    created_at: float
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def gate_passed(self) -> bool | None:
        value = self.tags.get(GATE_PASSED_TAG)
        return None if value is None else value == "true"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gate_passed"] = self.gate_passed
        return out

    def summary(self) -> dict[str, Any]:
        """The short form used in listings."""
        verdict = {True: "passed", False: "failed", None: "?"}[self.gate_passed]
        value = self.tags.get("serein.gate.value")
        return {
            "version": self.version, "aliases": ",".join(self.aliases),
            "gate": f"{verdict} ({self.tags.get('serein.gate.metric')} {float(value):.4f})" if value else verdict,
            "dataset": f"{self.tags.get('serein.dataset', '')}@{self.tags.get('serein.dataset_version', '')}",
            "created_at": self.created_at, "run_id": self.run_id,
        }


def _info(mv: ModelVersion, metrics: dict[str, float] | None = None) -> VersionInfo:
    return VersionInfo(
        name=mv.name, version=int(mv.version), run_id=mv.run_id or "", aliases=sorted(mv.aliases or []),
        created_at=(mv.creation_timestamp or 0) / 1000.0, tags=dict(mv.tags or {}), metrics=metrics or {},
    )


class ModelRegistry:
    """Registered models of a workspace (MLflow registry on ``ws.tracking_uri``)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._cache: dict[tuple[str, int, str], LoadedModel] = {}
        self._lock = threading.Lock()

    @cached_property
    def client(self) -> MlflowClient:
        from serein.registry.tracking import use_workspace

        return use_workspace(self.ws)

    # -- reading -----------------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model: its latest version, champion and challenger."""
        out = []
        for rm in self.client.search_registered_models(max_results=1000):
            aliases = dict(rm.aliases or {})
            latest = max((int(v.version) for v in rm.latest_versions or []), default=None)
            out.append({
                "name": rm.name, "latest_version": latest,
                "champion": int(aliases[CHAMPION]) if CHAMPION in aliases else None,
                "challenger": int(aliases[CHALLENGER]) if CHALLENGER in aliases else None,
                "updated_at": (rm.last_updated_timestamp or 0) / 1000.0,
            })
        return sorted(out, key=lambda r: r["name"])

    def _require_model(self, name: str) -> RegisteredModel:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException:
            names = [m["name"] for m in self.list_models()]
            raise NotFoundError(
                f"no registered model {name!r}",
                hint=f"registered models: {', '.join(names)}" if names else "train one first with `serein train RECIPE.yaml`",
            ) from None

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        aliases: dict[int, list[str]] = {}
        for alias, version in (self._require_model(name).aliases or {}).items():
            aliases.setdefault(int(version), []).append(alias)
        found = self.client.search_model_versions(f"name = '{name}'", max_results=10_000)
        infos = sorted((_info(mv) for mv in found), key=lambda v: v.version)
        for info in infos:  # search results leave aliases out; the registered model has them
            info.aliases = sorted(aliases.get(info.version, []))
        return infos

    def get(self, name: str, ref: str | int | None = None, with_metrics: bool = False) -> VersionInfo:
        """One version: ``ref`` is None (latest), a version number or an alias."""
        from mlflow.exceptions import MlflowException

        self._require_model(name)
        if ref is None:
            existing = self.versions(name)
            if not existing:
                raise NotFoundError(f"model {name!r} has no versions yet")
            info = existing[-1]
        else:
            text = str(ref)
            try:
                mv = (self.client.get_model_version(name, text) if text.isdigit()
                      else self.client.get_model_version_by_alias(name, text))
            except MlflowException:
                known = self.versions(name)
                aliases = sorted({a for v in known for a in v.aliases})
                raise NotFoundError(
                    f"model {name!r} has no {'version' if text.isdigit() else 'alias'} {text!r}",
                    hint=f"versions: {', '.join(str(v.version) for v in known) or 'none'}; "
                         f"aliases: {', '.join(aliases) or 'none'}",
                ) from None
            info = _info(mv)
        if with_metrics and info.run_id:
            info.metrics = dict(self.client.get_run(info.run_id).data.metrics)
        return info

    def champion(self, name: str) -> VersionInfo | None:
        """The serving version of ``name``, or None (also when the model does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            return _info(self.client.get_model_version_by_alias(name, CHAMPION))
        except MlflowException:
            return None

    def history(self, name: str) -> list[int]:
        """The versions that were champion, oldest first (the last one serves now)."""
        rm = self.client.get_registered_model(name)
        return [int(v) for v in json.loads((rm.tags or {}).get(HISTORY_TAG, "[]"))]

    # -- writing -----------------------------------------------------------------------------
    def register(self, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> VersionInfo:
        """A new version of ``name`` (created on first use) from a logged model."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(name, tags={HISTORY_TAG: "[]"})
            except MlflowException:  # registered concurrently
                pass
        mv = self.client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags)
        return _info(mv)

    def set_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)

    def place(self, name: str, version: int, gate_passed: bool) -> str | None:
        """Give a freshly registered version its alias: ``champion`` when it passed and none
        exists, ``challenger`` when it passed and one does, none when it failed."""
        if not gate_passed:
            return None
        if self.champion(name) is None:
            self._make_champion(name, version)
            return CHAMPION
        self.client.set_registered_model_alias(name, CHALLENGER, str(version))
        return CHALLENGER

    def _make_champion(self, name: str, version: int) -> None:
        history = self.history(name)
        self.client.set_registered_model_alias(name, CHAMPION, str(version))
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, version]))
        self.set_tags(name, version, {"serein.promoted_at": f"{time.time():.3f}"})

    def promote(self, name: str, version: int | str, force: bool = False, reason: str | None = None) -> VersionInfo:
        """Make ``version`` the champion. A version whose gate failed is refused unless ``force``
        is given with a ``reason`` (both recorded as tags)."""
        info = self.get(name, int(version) if str(version).isdigit() else version)
        if CHAMPION in info.aliases:
            raise ConflictError(f"{name} v{info.version} is already the champion")
        if info.gate_passed is not True:
            if not force:
                raise ConflictError(
                    f"{name} v{info.version} failed its quality gate: "
                    f"{'; '.join(json.loads(info.tags.get('serein.gate.reasons', '[]'))) or 'no verdict recorded'}",
                    hint="to promote it anyway pass --force --reason TEXT (force=True, reason=...); both are recorded",
                )
            if not reason or not reason.strip():
                raise UsageError("a forced promotion needs a reason", hint="add --reason TEXT saying why the gate is overridden")
        if force and reason:
            self.set_tags(name, info.version, {"serein.forced": "true", "serein.force_reason": reason.strip()})
        self._make_champion(name, info.version)
        if CHALLENGER in info.aliases:
            self.client.delete_registered_model_alias(name, CHALLENGER)
        return self.get(name, info.version)

    def rollback(self, name: str) -> VersionInfo:
        """Put the previous champion back; the replaced version keeps a ``serein.rolled_back_at``
        tag. "Previous" is the last champion in the history that is not the current one (so an
        alias moved outside serein does not confuse it)."""
        self._require_model(name)
        history = self.history(name)
        current = self.champion(name)
        while current is not None and history and history[-1] == current.version:
            history.pop()
        if current is None or not history:
            raise ConflictError(
                f"{name} has no previous champion to roll back to (champion history: {self.history(name) or 'empty'})",
                hint="promote another version instead with `serein models promote NAME VERSION`",
            )
        previous = history[-1]
        self.client.set_registered_model_alias(name, CHAMPION, str(previous))
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        self.set_tags(name, current.version, {"serein.rolled_back_at": f"{time.time():.3f}"})
        return self.get(name, previous)

    # -- loading -----------------------------------------------------------------------------
    def load(self, name: str, ref: str | int | None = CHAMPION, *, pipeline: bool = True) -> LoadedModel:
        """The version's pipeline and everything to serve and monitor it, after checking the
        serialized files against their recorded sha256. Deserialized models are cached per
        (name, version, sha256), so a changed file is never served from the cache.
        ``pipeline=False`` defers deserializing the pipeline (importing scikit-learn and skops)
        to its first use: monitoring through the ONNX export never needs it."""
        from serein.registry.sqlite_lookup import lookup
        from serein.registry.tracking import fetch

        # read from MLflow's SQLite database when it can answer: no MLflow import (seconds of a CLI run)
        stored = None if ref is None else lookup(self.ws.tracking_uri, name, str(ref))
        info = self.get(name, ref) if stored is None else VersionInfo(
            name=name, version=stored.version, run_id=stored.run_id, aliases=stored.aliases,
            created_at=stored.created_at, tags=stored.tags)
        expected = info.tags.get(SHA_TAG)
        if not expected:
            raise SereinError(f"{name} v{info.version} has no recorded sha256: refusing to load an unverified model",
                              hint="register it again with `serein train`")
        cache = self.ws.state_dir / "cache" / name / str(info.version)
        model_uri = stored.model_uri if stored else self.client.get_model_version_download_uri(name, str(info.version))
        model_dir = fetch(model_uri, cache / "model")
        model_file = model_dir / SKOPS_FILE
        if not model_file.is_file():
            raise SereinError(f"{name} v{info.version}: model file {model_file} is missing")
        actual = sha256_file(model_file)
        if actual != expected:
            raise SereinError(
                f"{name} v{info.version}: {model_file} has sha256 {actual[:16]}..., but {expected[:16]}... was "
                "recorded at registration: refusing to load a changed model file",
                hint="restore the original artifact or register a new version",
            )
        key = (name, info.version, actual)
        with self._lock:
            if key in self._cache:
                return self._cache[key].loaded(pipeline)
        artifact_uri = stored.artifact_uri if stored else self.client.get_run(info.run_id).info.artifact_uri
        serein_dir = fetch(artifact_uri.rstrip("/") + "/" + SEREIN_DIR, cache / SEREIN_DIR)
        meta, contract, recipe, profile = read_serein_files(serein_dir)
        onnx_path = self._verified_onnx(info, serein_dir / ONNX_FILE)
        serialized = PipelineFile(model_file, actual, json.loads(info.tags.get(TRUSTED_TAG, "[]")), f"{name} v{info.version}")
        loaded = LoadedModel(
            name=name, version=info.version, run_id=info.run_id, pipeline=serialized, contract=contract,
            features=list(meta["features"]), target=meta["target"], task=meta["task"], classes=meta.get("classes"),
            onnx_path=onnx_path, profile=profile, recipe=recipe, tags=info.tags,
        )
        with self._lock:
            self._cache[key] = loaded
        return loaded.loaded(pipeline)

    def _verified_onnx(self, info: VersionInfo, path: Any) -> str | None:
        expected = info.tags.get(ONNX_SHA_TAG)
        if not expected or not path.is_file():
            return None
        if sha256_file(path) != expected:
            raise SereinError(
                f"{info.name} v{info.version}: ONNX export {path} does not match its recorded sha256: refusing to load",
                hint="restore the original artifact or register a new version",
            )
        return str(path)
