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
from rich.text import Text

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


# glibc's mallopt parameters (malloc.h) and the values keep_freed_memory sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_BYTES = 1 << 30  # free memory kept at the top of the heap before any is returned
MMAP_BYTES = 32 << 20  # blocks from the heap up to this size (glibc's largest), mmap only above


def keep_freed_memory() -> None:
    """Make glibc's malloc keep the memory a batch command frees for its next chunk, instead of
    handing it back to the kernel and faulting it in again (zeroed, page by page).

    Scoring a million rows in chunks allocates and frees arrays of a few hundred kB to a few MB per
    chunk: by default glibc maps each one afresh, or trims the heap after it, and a monitoring run
    of a raw batch took 115k page faults where 47k remain this way, 11 % of its wall time (paired
    CLI runs, ``make bench-drift``'s batch). Only ``serein monitor`` and ``serein predict`` ask for
    it: they exit when done, where a long-running server would hold its peak. Does nothing off
    Linux, or where the C library has no ``mallopt``.
    """
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    # both: setting either one turns off glibc's own adjustment of both, and the mmap threshold
    # would stay at 128 kB (every array mapped afresh: 2.8 times slower than with neither)
    mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)
    mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)


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
        table.add_row(*[Text("" if r.get(c) is None else str(r.get(c))) for c in cols])  # text, not rich markup
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
            table.add_row(Text(str(k)), Text(v if isinstance(v, str) else _json(v)))
        console.print(table)
    else:
        console.print(obj)
