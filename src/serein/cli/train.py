"""``serein train RECIPE.yaml``: fit, evaluate, gate and register a model version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from serein.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

if TYPE_CHECKING:
    from serein.train.trainer import TrainResult


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see examples/credit/recipe.yaml).")],
        data: Annotated[str | None, typer.Option("--data", help="Dataset ref: NAME, NAME@VERSION or NAME@TIMESTAMP (default: the recipe's data).",
                                                 show_default=False)] = None,
        overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: --set estimator.params.max_iter=50 (YAML value; repeatable).",
                                                            show_default=False)] = None,
        workspace: WorkspaceOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Train a recipe: fit on the training split, evaluate against a dummy baseline and the
        champion, apply the quality gate, log the MLflow run and register a version (champion
        when there is none, challenger otherwise, no alias when the gate fails). Exits with 1
        when the gate fails (the version is registered all the same)."""
        from serein.train.recipe import Recipe
        from serein.train.trainer import train as run_training

        parsed = Recipe.load(recipe, overrides or [])
        ws = open_workspace(workspace)
        if as_json:
            result = run_training(ws, parsed, data_ref=data)
            print_json(result.to_dict())
        else:
            with console.status("training", spinner="dots") as status:
                def progress(msg: str) -> None:
                    console.print(f"[dim]·[/dim] {msg}", highlight=False)
                    status.update(msg)

                result = run_training(ws, parsed, data_ref=data, progress=progress)
            _print_result(result)
        if not result.gate.passed:
            raise typer.Exit(1)


def _print_result(result: TrainResult) -> None:
    from rich.table import Table

    v = result.gate
    console.print(f"[bold]{result.model}[/bold] v{result.version} · run {result.run_id} · "
                  f"data {result.dataset or '(frame)'}@{result.dataset_version if result.dataset_version is not None else '?'}")
    table = Table(title="holdout metrics")
    table.add_column("metric")
    table.add_column("model")
    table.add_column("baseline")
    if result.champion_metrics is not None:
        table.add_column(f"champion v{v.champion_version}")
    for name, value in result.metrics.items():
        row = [name, f"{value:.4f}", f"{result.baseline_metrics[name]:.4f}"]
        if result.champion_metrics is not None:
            row.append(f"{result.champion_metrics[name]:.4f}")
        table.add_row(*row)
    console.print(table)
    colour = "green" if v.passed else "red"
    console.print(f"gate [{colour}]{'passed' if v.passed else 'FAILED'}[/{colour}] on {v.metric}:")
    for reason in v.reasons:
        console.print(f"  - {reason}", highlight=False)
    console.print(f"alias: {result.alias or 'none'} · onnx: {result.onnx}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(f"report: {result.report_path}", highlight=False)
