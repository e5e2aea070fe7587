"""``serein data ...``: ingest files as dataset versions, inspect them, suggest and check contracts.

Heavy libraries (pandas, deltalake, pandera) are imported inside the commands so that
``serein --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from serein.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit,
    open_workspace,
    print_json,
)
from serein.data.quarantine import META_COLUMNS
from serein.errors import ConflictError, UsageError, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd

data_app = typer.Typer(
    name="data",
    help="Datasets (versioned Delta tables) and their contracts.",
    no_args_is_help=True,
)

RefArg = Annotated[str, typer.Argument(help="Dataset reference: NAME, NAME@VERSION or NAME@ISO-TIMESTAMP.")]
HeadOpt = Annotated[int, typer.Option("--head", "-n", help="How many rows to show.", min=0)]
FAILURE_COLUMNS = ("column", "check", "count", "examples", "message")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN → null, date-times in ISO 8601)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _print_rows(frame: pd.DataFrame, title: str) -> None:
    """Rows side by side, one line per column: fits a terminal however many columns there are."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    table.add_column("column", style="bold")
    for position in range(len(frame)):
        table.add_column(f"row {position}", overflow="fold")
    for name, col in frame.items():
        table.add_row(escape(str(name)), *["" if v is None or v != v else escape(str(v)) for v in col])
    console.print(table)


def _table_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table (``emit`` prints cells as text, never as rich markup): lists joined."""
    return [{key: ", ".join(map(str, value)) if isinstance(value, list) else value for key, value in item.items()}
            for item in items]


def ingest(
    path: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz), Parquet (.parquet, .pq) or JSON Lines (.jsonl, .ndjson).")],
    name: Annotated[str, typer.Option("--name", help="Dataset name (created on first ingest).")],
    mode: Annotated[str, typer.Option(help="append: add the rows; overwrite: replace the content.")] = "append",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a file as a new version of dataset NAME; rows that break its contract are quarantined."""
    ws = open_workspace(workspace)
    result = ws.datasets.ingest(path, name, mode=mode)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.dataset}@{result.version}: {result.accepted} of {result.rows_read} rows accepted, "
        f"{result.quarantined} quarantined"
    )
    if result.failures:
        emit(_table_rows(result.failures), False, FAILURE_COLUMNS, title="contract failures")
    if result.warnings:
        emit(_table_rows(result.warnings), False, FAILURE_COLUMNS, title="warnings")
    if result.quarantined:
        console.print(f"[dim]see the quarantined rows with `serein data quarantine {result.dataset}`[/dim]")


def list_datasets(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the datasets with their latest version and size."""
    ws = open_workspace(workspace)
    rows = ws.datasets.list()
    emit({"datasets": rows} if as_json else rows, as_json, title="datasets")


def history(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show every version of a dataset, newest first."""
    ws = open_workspace(workspace)
    rows = ws.datasets.history(name)
    emit({"dataset": name, "versions": rows} if as_json else rows, as_json, title=f"history of {name}")


def show(ref: RefArg, head: HeadOpt = 5, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Show a dataset version: size, columns, content hash and its first rows."""
    ws = open_workspace(workspace)
    loaded = ws.datasets.load(ref)
    frame = loaded.frame
    dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    info = {"name": loaded.name, "version": loaded.version, "rows": len(frame), "content_hash": loaded.content_hash}
    if as_json:
        print_json({**info, "columns": dtypes, "head": _records(frame.head(head))})
        return
    columns = ", ".join(f"{c} ({t})" for c, t in dtypes.items())
    emit({**info, "columns": columns}, False, title=loaded.ref)
    if head:
        _print_rows(frame.head(head), f"first {min(head, len(frame))} rows")


def profile(
    ref: RefArg,
    write: Annotated[Path | None, typer.Option("--write", help="Write the suggested contract to this YAML file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file at --write.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest a contract from a dataset version (Deequ's rules) for you to review."""
    from serein.data.profiling import suggest_contract

    ws = open_workspace(workspace)
    loaded = ws.datasets.load(ref)
    contract = suggest_contract(loaded.frame, dataset=loaded.name)
    if write is not None:
        if write.exists() and not force:
            raise ConflictError(f"{write} already exists; it was left unchanged", hint="pass --force to replace it")
        contract.save(write)
    if as_json:
        print_json({"dataset": loaded.ref, "written": str(write) if write else None, "contract": contract.to_dict()})
    elif write is not None:
        console.print(f"suggested contract for {loaded.ref} written to {write}; review it before relying on it")
    else:
        typer.echo(f"# suggested from {loaded.ref}: review before use\n" + contract.to_yaml(), nl=False)


def check(
    ref: RefArg,
    contract_path: Annotated[Path | None, typer.Option("--contract", help="Contract YAML (default: the dataset's own).")] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a dataset version against a contract; exit 1 when any check fails."""
    from serein.data.contract import Contract
    from serein.data.validation import validate

    ws = open_workspace(workspace)
    name, version = ws.datasets.resolve(ref)
    contract: Contract | None
    if contract_path is not None:
        contract = Contract.load(contract_path)
    else:
        contract = ws.datasets.contract(name)
        if contract is None:
            raise UsageError(
                f"dataset {name!r} has no contract at {ws.datasets.contract_path(name)}",
                hint=f"suggest one with `serein data profile {name} --write {ws.datasets.contract_path(name)}` "
                "and review it, or pass --contract PATH",
            )
    report = validate(ws.datasets.load(f"{name}@{version}").frame, contract)
    if as_json:
        print_json({"dataset": f"{name}@{version}", **report.to_dict()})
    else:
        if report.failures:
            emit(_table_rows(report.failures), False, FAILURE_COLUMNS, title="failing checks")
        if report.warnings:
            emit(_table_rows(report.warnings), False, FAILURE_COLUMNS, title="warnings")
        if report.ok:
            console.print(f"{name}@{version}: all {report.n_rows} rows pass the contract")
    if not report.ok:
        raise ValidationFailed(
            f"{name}@{version} breaks its contract: {len(report.failures)} failing check(s), "
            f"{report.n_bad} of {report.n_rows} rows bad"
        )


def quarantine(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    head: HeadOpt = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the rows set aside because they broke the dataset's contract, latest first."""
    ws = open_workspace(workspace)
    if not ws.datasets.exists(name):
        ws.datasets.resolve(name)  # raises NotFoundError naming the known datasets
    frame = ws.datasets.quarantined(name)
    if len(frame):
        frame = frame.sort_values(["_ingested_at", "_row"], ascending=[False, True], kind="stable")
    if as_json:
        print_json({"dataset": name, "rows": len(frame), "head": _records(frame.head(head))})
    elif not len(frame):
        console.print(f"no quarantined rows for {name}")
    else:
        console.print(f"{len(frame)} quarantined row(s) for {name}")
        shown = frame.head(head)
        values = shown.drop(columns=[c for c in META_COLUMNS if c in shown.columns])
        rows = [
            {"ingested_at": str(at), "source": source, "row": row, "reason": reason,
             "values": ", ".join(f"{k}={v}" for k, v in zip(values.columns, vals, strict=True) if v == v and v is not None)}
            for at, source, row, reason, *vals in zip(
                shown["_ingested_at"], shown["_source"], shown["_row"], shown["_reason"],
                *[values[c] for c in values.columns], strict=True)
        ]
        emit(_table_rows(rows), False, title=f"latest {len(rows)}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-commands to the root CLI."""
    data_app.command("ingest")(ingest)
    data_app.command("list")(list_datasets)
    data_app.command("history")(history)
    data_app.command("show")(show)
    data_app.command("profile")(profile)
    data_app.command("check")(check)
    data_app.command("quarantine")(quarantine)
    app.add_typer(data_app, name="data")
