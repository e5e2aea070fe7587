"""A model version's registry entry read straight from MLflow's SQLite database, without MLflow.

``import mlflow`` and opening its store cost seconds of every CLI run that loads a model — more,
on a busy machine, than the rest of a million-row monitoring run. The registry is MLflow's, and
MLflow stays the only writer; but for a workspace whose tracking URI is ``sqlite:///...``
(serein's default), :func:`lookup` answers what ``ModelRegistry.load`` needs to know — which
version an alias or a number names, its tags (the recorded sha256 among them), where its model
files and its run's artifacts are — with a few read-only queries on MLflow's tables
(``registered_model_aliases``, ``model_versions``, ``model_version_tags``, ``runs``), the way
MLflow's own SQL store answers ``get_model_version_by_alias``, ``get_model_version_download_uri``
and ``get_run``.

It answers only when the answer is certain, and returns None otherwise — another backend, a
database missing, a table or column not where this module expects it (a different MLflow
schema), several matching rows (MLflow workspaces) — so the caller asks MLflow instead. Errors
such as an unknown model are left to MLflow, which words them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"
DELETED_STAGE = "Deleted_Internal"  # MLflow's mark of a deleted version kept in the table


@dataclass
class StoredVersion:
    """One model version as MLflow's database records it."""

    name: str
    version: int
    run_id: str
    created_at: float
    model_uri: str  # where its model files are (MLflow's download URI)
    artifact_uri: str  # its run's artifact root
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def database_path(tracking_uri: str) -> Path | None:
    """The SQLite file behind ``tracking_uri``, or None for any other backend.

    >>> database_path("sqlite:////srv/ws/.serein/mlflow.db"), database_path("http://mlflow:5000")
    (PosixPath('/srv/ws/.serein/mlflow.db'), None)
    """
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = tracking_uri[len(SQLITE_PREFIX):].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


def _one(rows: list[tuple]) -> tuple | None:
    return rows[0] if len(rows) == 1 else None


def lookup(tracking_uri: str, name: str, ref: str) -> StoredVersion | None:
    """Version ``ref`` (a number or an alias) of registered model ``name``, read from the SQLite
    database of ``tracking_uri``; None when this cannot be answered with certainty here."""
    path = database_path(tracking_uri)
    if path is None or not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return None
    try:
        return _lookup(db, name, ref)
    except sqlite3.Error:  # a schema this module does not know, a locked database: MLflow answers
        return None
    finally:
        db.close()


def _lookup(db: sqlite3.Connection, name: str, ref: str) -> StoredVersion | None:
    if ref.isdigit():
        version = int(ref)
    else:
        alias = _one(db.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                (name, ref)).fetchall())
        if alias is None:
            return None
        version = int(alias[0])
    row = _one(db.execute(
        "SELECT run_id, creation_time, storage_location, source FROM model_versions "
        "WHERE name = ? AND version = ? AND current_stage != ?", (name, version, DELETED_STAGE)).fetchall())
    if row is None or not row[0]:
        return None
    run_id, created, storage, source = row
    run = _one(db.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchall())
    model_uri = storage or source
    if run is None or not run[0] or not model_uri:
        return None
    tags = db.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                      (name, version)).fetchall()
    if len({key for key, _ in tags}) != len(tags):  # the same key twice: rows of several workspaces
        return None
    aliases = db.execute("SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?",
                         (name, version)).fetchall()
    return StoredVersion(name=name, version=version, run_id=str(run_id), created_at=(created or 0) / 1000.0,
                         model_uri=str(model_uri), artifact_uri=str(run[0]),
                         aliases=sorted(a for (a,) in aliases), tags=dict(tags))
