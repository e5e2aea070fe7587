"""Shared pieces of the command line: the workspace option, output as tables or JSON."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from serein.workspace import Workspace

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: nearest folder upward holding serein.yaml, or $SEREIN_WORKSPACE).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def open_workspace(path: Path | None) -> Workspace:
    return Workspace(path) if path is not None else Workspace()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _json(obj: Any) -> str:
    """``obj`` as strict JSON on one line: a NaN or infinite number (an undefined metric on a tiny
    window) is written as null, where Python's ``json`` writes ``NaN``, which jq, JavaScript and
    most parsers refuse."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def print_json(obj: Any) -> None:
    """One JSON object on one line (the last line of output is machine-readable)."""
    sys.stdout.write(_json(obj) + "\n")
    sys.stdout.flush()


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                title: str | None = None) -> None:
    if not rows:
        console.print(f"[dim]no {title or 'rows'}[/dim]")
        return
    cols = list(columns or rows[0].keys())
    table = Table(title=title, show_lines=False)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in cols])
    console.print(table)


def emit(obj: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print ``obj`` as JSON or as a table (a list of dicts) / key-value table (a dict)."""
    if as_json:
        print_json(obj)
    elif isinstance(obj, list):
        print_table(obj, columns, title)
    elif isinstance(obj, Mapping):
        table = Table(title=title, show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value")
        for k, v in obj.items():
            table.add_row(str(k), v if isinstance(v, str) else _json(v))
        console.print(table)
    else:
        console.print(obj)
