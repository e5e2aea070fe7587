"""Datasets: named, versioned Delta tables under the workspace's ``data_root``.

Every ingest is one Delta commit (one new version), so any past state can be read back by
version (``credit@3``) or by time (``credit@2026-11-01T00:00``). When the dataset has a contract
(``<contracts_dir>/<name>.yaml``) each batch is validated first: rows that break it go to the
quarantine table with their reasons (see :mod:`serein.data.quarantine`) and the rest are cast to
the contract's types and written; ``accepted + quarantined == rows_read`` always holds.

Serein records in each commit's metadata a batch id, the source, the row counts and the
contract hash, so ``history`` can say where every version came from.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serein.data.contract import Contract
from serein.data.quarantine import QUARANTINE_DIR, quarantine_rows
from serein.data.refs import DatasetRef, check_name
from serein.errors import ConflictError, NotFoundError, UsageError, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from deltalake import DeltaTable

    from serein.data.validation import ValidationReport
    from serein.workspace import Workspace

MODES = ("append", "overwrite")
META_PREFIX = "serein."


@dataclass
class IngestResult:
    """What one ingest did. ``version`` is None when no version was written (all rows bad)."""

    dataset: str
    version: int | None
    rows_read: int
    accepted: int
    quarantined: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedDataset:
    """A dataset version read into pandas, with the sha256 of its whole content."""

    frame: pd.DataFrame = field(repr=False)
    name: str
    version: int
    content_hash: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _iso(ms: int | float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _to_arrow(df: pd.DataFrame, what: str) -> pa.Table:
    """``df`` as an Arrow table; a column pyarrow cannot type becomes a clear UsageError."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        for name in df.columns:
            try:
                pa.array(df[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise UsageError(
                    f"{what}: column {name!r} mixes value types ({str(exc).splitlines()[0]})",
                    hint="add a contract for the dataset (`serein data profile` then review) so values are cast, "
                    "or clean the column",
                ) from None
        raise


def _align(table: pa.Table, existing: pa.Schema, dataset: str) -> pa.Table:
    """``table`` with columns the dataset already has cast to their stored types (safe casts only)."""
    import pyarrow as pa

    for i, name in enumerate(table.column_names):
        index = existing.get_field_index(name)
        if index < 0 or pa.types.is_null(table.schema.field(i).type):
            continue
        want = existing.field(index).type
        if table.schema.field(i).type.equals(want):
            continue
        try:
            column = table.column(i).cast(want, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ConflictError(
                f"column {name!r} of dataset {dataset!r} is stored as {want} but this batch has "
                f"{table.schema.field(i).type} values that do not convert",
                hint="fix the batch, write a contract that casts the column, or use --mode overwrite "
                "to replace the dataset",
            ) from None
        table = table.set_column(i, pa.field(name, want), column)
    return table


def _read_in_commit_order(dt: DeltaTable, columns: list[str] | None) -> pa.Table:
    """The table's rows oldest file first, i.e. in ingest order.

    Delta's own scan lists the newest files first; a fixed, meaningful order keeps a version's
    content hash and any seeded split of it reproducible.
    """
    import pyarrow as pa
    import pyarrow.dataset as pds

    dataset = dt.to_pyarrow_dataset()
    added = {a["path"]: a["modification_time"]
             for a in pa.table(dt.get_add_actions(flatten=True)).select(["path", "modification_time"]).to_pylist()}
    fragments = sorted(dataset.get_fragments(), key=lambda f: (added.get(f.path, 0), f.path))
    ordered = pds.FileSystemDataset(fragments, schema=dataset.schema, format=dataset.format,
                                    filesystem=dataset.filesystem)
    return ordered.to_table(columns=columns)


def _check_columns(df: pd.DataFrame, what: str) -> None:
    bad = [c for c in df.columns if not isinstance(c, str) or not c.strip()]
    if bad:
        raise UsageError(f"{what}: column names must be non-empty text, got {bad[:5]!r}")
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise UsageError(f"{what}: duplicate column name(s) {', '.join(map(repr, dupes))}")


class DatasetStore:
    """The workspace's datasets (``ws.datasets``)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.root = ws.data_root.rstrip("/")

    # -- locations ---------------------------------------------------------------------------
    def path(self, name: str) -> str:
        return f"{self.root}/{check_name(name)}"

    def quarantine_path(self, name: str) -> str:
        return f"{self.root}/{QUARANTINE_DIR}/{check_name(name)}"

    def contract_path(self, name: str) -> Path:
        return self.ws.contracts_dir / f"{check_name(name)}.yaml"

    # -- lookup ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Names of all datasets, sorted."""
        from deltalake import DeltaTable
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(self.root if "://" in self.root else os.path.abspath(self.root))
        try:
            infos = filesystem.get_file_info(fs.FileSelector(base, allow_not_found=True))
        except OSError as exc:
            raise UsageError(f"cannot list datasets in {self.root}: {exc}") from None
        return sorted(
            info.base_name for info in infos
            if info.type == fs.FileType.Directory and not info.base_name.startswith("_")
            and DeltaTable.is_deltatable(f"{self.root}/{info.base_name}")
        )

    def exists(self, name: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.path(name))

    def _table(self, name: str, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        if not self.exists(name):
            known = self.names()
            raise NotFoundError(
                f"no dataset named {name!r}",
                hint=f"known datasets: {', '.join(known)}" if known else "ingest one with `serein data ingest PATH --name NAME`",
            )
        return DeltaTable(self.path(name), version=version)

    def contract(self, name: str) -> Contract | None:
        """The dataset's reviewed contract, or None when it has none yet."""
        path = self.contract_path(name)
        return Contract.load(path) if path.is_file() else None

    # -- reading -----------------------------------------------------------------------------
    def _commits(self, name: str) -> list[dict[str, Any]]:
        """The Delta log, oldest first."""
        return sorted(self._table(name).history(), key=lambda h: h["version"])

    def history(self, name: str) -> list[dict[str, Any]]:
        """One dict per version, newest first: version, timestamp (ISO, UTC), operation, mode,
        rows (in the dataset at that version), added (rows written by the commit), source,
        quarantined (rows set aside by the same ingest)."""
        out: list[dict[str, Any]] = []
        total: int | None = 0
        for commit in self._commits(name):
            metrics = commit.get("operationMetrics") or {}
            mode = (commit.get("operationParameters") or {}).get("mode", "")
            added = metrics.get("num_added_rows")
            if commit["operation"] == "WRITE" and added is not None:
                total = int(added) if mode == "Overwrite" or total is None else total + int(added)
            elif commit["operation"] != "OPTIMIZE":  # other operations: count that version itself
                total = self._table(name, commit["version"]).count()
            out.append({
                "version": commit["version"],
                "timestamp": _iso(commit["timestamp"]),
                "operation": commit["operation"],
                "mode": mode.lower(),
                "rows": total,
                "added": added,
                "source": commit.get(META_PREFIX + "source"),
                "quarantined": int(commit[META_PREFIX + "quarantined"]) if META_PREFIX + "quarantined" in commit else None,
            })
        return out[::-1]

    def resolve(self, ref: str | DatasetRef) -> tuple[str, int]:
        """``(name, version)`` for ``NAME``, ``NAME@VERSION`` or ``NAME@ISO-TIMESTAMP``."""
        parsed = ref if isinstance(ref, DatasetRef) else DatasetRef.parse(ref)
        latest = self._table(parsed.name).version()
        if parsed.version is not None:
            if parsed.version > latest:
                raise NotFoundError(
                    f"dataset {parsed.name!r} has no version {parsed.version}",
                    hint=f"its versions run from 0 to {latest} (latest); see `serein data history {parsed.name}`",
                )
            return parsed.name, parsed.version
        if parsed.timestamp is None:
            return parsed.name, latest
        when_ms = datetime.fromisoformat(parsed.timestamp).timestamp() * 1000
        commits = self._commits(parsed.name)
        earlier = [c["version"] for c in commits if c["timestamp"] <= when_ms]
        if not earlier:
            raise NotFoundError(
                f"dataset {parsed.name!r} did not exist yet at {parsed.timestamp}",
                hint=f"its first version was written at {_iso(commits[0]['timestamp'])}",
            )
        return parsed.name, max(earlier)

    def load(self, ref: str | DatasetRef, columns: list[str] | None = None) -> LoadedDataset:
        """Read a dataset version (all columns, or ``columns``) into pandas."""
        from serein.data.hashing import frame_hash

        name, version = self.resolve(ref)
        dt = self._table(name, version)
        if columns is not None:
            stored = [f.name for f in dt.schema().fields]
            missing = [c for c in columns if c not in stored]
            if missing:
                raise UsageError(
                    f"dataset {name}@{version} has no column(s) {', '.join(map(repr, missing))}",
                    hint=f"its columns are {', '.join(stored)}",
                )
        frame = _read_in_commit_order(dt, columns).to_pandas()
        return LoadedDataset(frame, name, version, frame_hash(frame))

    def quarantined(self, name: str) -> pd.DataFrame:
        """All rows ever quarantined for ``name`` (an empty frame when there are none)."""
        import pandas as pd
        from deltalake import DeltaTable

        path = self.quarantine_path(name)
        if not DeltaTable.is_deltatable(path):
            return pd.DataFrame()
        return DeltaTable(path).to_pyarrow_table().to_pandas()

    def list(self) -> list[dict[str, Any]]:
        """One dict per dataset: name, version (latest), rows, columns, updated, contract."""
        out = []
        for name in self.names():
            dt = self._table(name)
            last = dt.history(limit=1)[0]
            out.append({
                "name": name,
                "version": dt.version(),
                "rows": dt.count(),
                "columns": len(dt.schema().fields),
                "updated": _iso(last["timestamp"]),
                "contract": self.contract_path(name).is_file(),
            })
        return out

    # -- writing -----------------------------------------------------------------------------
    def ingest(self, source: str | os.PathLike[str] | pd.DataFrame, name: str, mode: str = "append",
               partial: bool = False) -> IngestResult:
        """Write a file or frame as a new version of dataset ``name`` (validated by its contract).

        ``mode="append"`` adds the rows (new columns are merged into the schema);
        ``mode="overwrite"`` replaces the content (earlier versions stay readable).
        ``partial=True`` checks only the contract columns the batch carries and stores the others
        as null: labelled production traffic carries a model's inputs and the label, not the
        dataset's other columns (identifiers, free text) — absent by design, not broken.
        """
        import pandas as pd

        from serein.data.readers import normalise_times, read_table

        check_name(name)
        if mode not in MODES:
            raise UsageError(f"unknown ingest mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
        if isinstance(source, pd.DataFrame):
            label = "DataFrame"
            _check_columns(source, label)
            batch = normalise_times(source.reset_index(drop=True))
        else:
            label = str(source)
            contract = self.contract(name)
            text = [] if contract is None else [c for c, spec in contract.columns.items() if spec.type == "string"]
            batch = read_table(source, text)
            _check_columns(batch, label)
        if len(batch) == 0:
            raise UsageError(f"{label} has no rows", hint="ingest at least one row")
        if len(batch.columns) == 0:
            raise UsageError(f"{label} has no columns")

        contract = self.contract(name)
        report = None
        good = batch
        if contract is not None:
            from serein.data.validation import validate

            checked = contract.select([c for c in contract.columns if c in batch.columns]) if partial else contract
            report = validate(batch, checked)
            _refuse_unknown_columns(report, name, label)
            good = report.data[~report.bad_rows]
        result = IngestResult(
            dataset=name, version=None, rows_read=len(batch), accepted=len(good),
            quarantined=len(batch) - len(good),
            failures=report.failures if report else [], warnings=report.warnings if report else [],
        )
        ingested_at = datetime.now(timezone.utc)
        if report is not None and result.accepted == 0:  # without a contract every row is accepted
            self._quarantine(batch, report, label, None, ingested_at, name)
            worst = ", ".join(f"{f['column'] or f['check']}: {f['message']} ({f['count']} rows)" for f in report.failures[:3])
            raise ValidationFailed(
                f"all {result.rows_read} rows of {label} broke the contract of {name!r} ({worst}); no version was written",
                hint=f"the rows are kept in quarantine (`serein data quarantine {name}`); fix the data or review "
                f"{self.contract_path(name)}",
            )
        result.version = self._write(name, good, mode, label, result, contract)
        if report is not None and result.quarantined:
            self._quarantine(batch, report, label, result.version, ingested_at, name)
        return result

    def _write(self, name: str, frame: pd.DataFrame, mode: str, label: str, result: IngestResult,
               contract: Contract | None) -> int:
        """One Delta commit; returns the version it created (found by its batch id)."""
        import pyarrow as pa
        from deltalake import CommitProperties, DeltaTable, write_deltalake

        table = _to_arrow(frame, label)
        path = self.path(name)
        if mode == "append" and self.exists(name):
            table = _align(table, pa.schema(DeltaTable(path).schema().to_arrow()), name)
        batch_id = uuid.uuid4().hex
        metadata = {
            META_PREFIX + "batch": batch_id,
            META_PREFIX + "source": label,
            META_PREFIX + "rows_read": str(result.rows_read),
            META_PREFIX + "quarantined": str(result.quarantined),
            META_PREFIX + "contract": contract.hash if contract else "",
        }
        commit = CommitProperties(custom_metadata=metadata)
        try:
            if mode == "append":
                write_deltalake(path, table, mode="append", schema_mode="merge", commit_properties=commit)
            else:
                write_deltalake(path, table, mode="overwrite", schema_mode="overwrite", commit_properties=commit)
        except Exception as exc:  # delta-rs raises a bare Exception for cast/schema errors
            raise ConflictError(
                f"could not write {label} to dataset {name!r}: {str(exc).splitlines()[0]}",
                hint="the stored versions are unchanged; fix the batch's columns or use --mode overwrite",
            ) from None
        for entry in DeltaTable(path).history(limit=50):
            if entry.get(META_PREFIX + "batch") == batch_id:
                return int(entry["version"])
        raise RuntimeError(f"the commit of batch {batch_id} is missing from {path}'s log")

    def _quarantine(self, batch: pd.DataFrame, report: ValidationReport, label: str,
                    version: int | None, ingested_at: datetime, name: str) -> None:
        from deltalake import write_deltalake

        rows = quarantine_rows(batch, report.bad_rows, report.row_reasons, label, version, ingested_at)
        write_deltalake(self.quarantine_path(name), _to_arrow(rows, "quarantine"), mode="append", schema_mode="merge")


def _refuse_unknown_columns(report: ValidationReport, name: str, label: str) -> None:
    unknown = [f["column"] for f in report.failures if f["check"] == "unknown_column"]
    if unknown:
        raise ValidationFailed(
            f"{label} has column(s) {', '.join(map(repr, unknown))} that the contract of {name!r} does not know; "
            "nothing was written",
            hint="add them to the contract (or set `unknown_fields: ignore` there), or drop them from the batch",
        )
