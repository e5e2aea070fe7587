"""``serein demo``: the whole loop on the bundled data, with a real server on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serein.cli.common import JsonOpt, console, print_json


def demo(
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Folder for the demo workspace (recreated).")] = Path("serein-demo"),
    fast: Annotated[bool, typer.Option("--fast", help="Less data: the variant the tests run.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole loop: ingest, profile, train, serve, traffic, drift, alert, retrain, hot swap."""
    from serein.demo.runner import DemoSizes, run_demo

    console.print(f"[bold]serein demo[/bold] in {workspace.resolve()}")
    summary = run_demo(workspace, DemoSizes.fast() if fast else DemoSizes(), say=console.print)
    console.print(
        f"\n[bold]done in {summary['seconds']:.1f} s[/bold]: dataset versions {summary['dataset_versions']}, "
        f"model versions {summary['versions']}, champion v{summary['champion_before']} → v{summary['champion_after']}, "
        f"{summary['predictions_logged']} predictions logged, {len(summary['alerts'])} alert(s)"
    )
    for name, path in summary["reports"].items():
        console.print(f"  report [cyan]{name}[/cyan]: {path}")
    if as_json:
        print_json(summary)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
