"""``serein retrain``: the champion's recipe on newer data, gated, promoted on success."""

from __future__ import annotations

from typing import Annotated

import typer

from serein.cli.common import JsonOpt, WorkspaceOpt, console, emit, open_workspace


def retrain(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    data: Annotated[str | None, typer.Option("--data", help="Dataset ref to train on (default: the recipe's dataset, latest).")] = None,
    feedback: Annotated[bool, typer.Option("--feedback/--no-feedback", help="Add labelled production traffic to the dataset first.")] = True,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain NAME's champion recipe, gate it against the champion, promote on success."""
    from serein.retrain.retrain import retrain as run_retrain

    ws = open_workspace(workspace)
    with console.status(f"retraining {name}") as status:
        result = run_retrain(ws, name, data=data, include_feedback=feedback,
                             progress=lambda msg: status.update(msg))
    out = result.to_dict()
    if as_json:
        emit(out, True)
        return
    verdict = "[green]promoted[/green]" if result.promoted else f"[red]not promoted[/red]: {result.reason}"
    console.print(f"{name}: new version v{result.new_version} on {result.dataset}@{result.dataset_version} "
                  f"(+{result.feedback_rows} labelled production rows) — {verdict}; "
                  f"champion v{result.champion_before} → v{result.champion_after}")
    if result.report_path:
        console.print(f"evaluation report: {result.report_path}")
    if not result.promoted:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain)
