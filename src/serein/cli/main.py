"""Entry point: ``serein`` and its sub-commands; turns serein's errors into one clear line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from serein.cli.common import console, err_console
from serein.errors import SereinError

app = typer.Typer(
    name="serein",
    help="serein: tabular ML from notebook to a monitored, self-correcting production service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """serein: tabular ML from notebook to a monitored, self-correcting production service."""


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder to turn into a workspace.")] = Path("."),
    project: Annotated[str | None, typer.Option(help="Project name (default: the folder's name).")] = None,
) -> None:
    """Create serein.yaml and .serein/ in PATH (existing settings are kept)."""
    from serein.workspace import Workspace

    ws = Workspace.init(path, project=project)
    console.print(f"workspace ready at [bold]{ws.root}[/bold] (settings in serein.yaml)")


# The top-level commands each module of serein.cli adds with ``register(app)``.
SUBCOMMANDS = {
    "data": ("data",), "train": ("train",), "models": ("models",), "serve": ("serve",),
    "monitor": ("monitor", "alerts"), "retrain": ("retrain",), "demo": ("demo",), "keys": ("keys",),
    "predict": ("predict",), "agent": ("agent",),
}


def modules_for(args: Sequence[str]) -> tuple[str, ...]:
    """The modules of serein.cli to register for the command line ``args``: the one adding the
    command named first (none for ``init``), else all of them (help, a mistyped name: typer lists
    or suggests every command). Typer builds the parser of every registered command before it
    parses anything, and the modules import what their options need: registering the 27 commands
    costs a run ~20 ms, one of them a few."""
    first = args[0] if args else None
    if first == "init":
        return ()
    owner = [module for module, commands in SUBCOMMANDS.items() if first in commands]
    return tuple(owner) or tuple(SUBCOMMANDS)


def _register_subcommands(args: Sequence[str]) -> None:
    """Each module :func:`modules_for` names adds its commands with ``register(app)``."""
    import importlib

    for name in modules_for(args):
        try:
            module = importlib.import_module(f"serein.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"serein.cli.{name}":
                raise
            continue
        module.register(app)


def main() -> None:
    """Run the CLI; SereinError becomes ``error: ...`` on stderr and its exit code.

    Usage errors of the parser itself are shown by typer with exit code 2.
    """
    try:
        _register_subcommands(sys.argv[1:])
        app()
    except SereinError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err_console.print(f"[dim]hint:[/dim] {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SEREIN_DEBUG"):
            raise
        err_console.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        err_console.print("[dim]hint:[/dim] rerun with SEREIN_DEBUG=1 for the traceback and report it", highlight=False)
        sys.exit(1)
