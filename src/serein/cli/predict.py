"""``serein predict``: score a file or dataset with a registered model version (batch)."""

from __future__ import annotations

from typing import Annotated

import typer

from serein.cli.common import JsonOpt, WorkspaceOpt, console, emit, keep_freed_memory, open_workspace


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(
        model: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION (default: the champion).",
                                             show_default=False)],
        input: Annotated[str, typer.Option("--input", "-i", help="Dataset ref NAME@V, a Delta folder, or a "
                                                                  "Parquet/CSV file.", show_default=False)],
        output: Annotated[str, typer.Option("--output", "-o", help="PATH.parquet, PATH.csv, a Delta folder, or "
                                                                    "dataset:NAME.", show_default=False)],
        chunk_size: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = 100_000,
        id_column: Annotated[str | None, typer.Option(help="Copy only this input column (else all of them).",
                                                      show_default=False)] = None,
        runtime: Annotated[str, typer.Option(help="auto (ONNX Runtime where a verified export exists) or "
                                                  "sklearn.")] = "auto",
        mode: Annotated[str, typer.Option(help="append or overwrite (Delta/dataset outputs; files are only "
                                               "replaced with overwrite).")] = "append",
        threads: Annotated[int | None, typer.Option(min=1, help="Chunks scored at once (default: CPU count).",
                                                    show_default=False)] = None,
        workspace: WorkspaceOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Score INPUT with MODEL in chunks and write predictions with the model version; rows that
        break the contract are set aside with their reasons."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from serein.batch import predict_batch

        keep_freed_memory()
        ws = open_workspace(workspace)
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                      TimeElapsedColumn(), console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("scoring", total=None)
            result = predict_batch(ws, model, input, output, chunk_rows=chunk_size, id_column=id_column,
                                   runtime=runtime, mode=mode, threads=threads,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
        if as_json:
            emit(result.to_dict(), True)
            return
        rate = result.rows_read / result.seconds if result.seconds else 0.0
        where = f" (version {result.output_version})" if result.output_version is not None else ""
        console.print(f"scored {result.rows_scored:,} of {result.rows_read:,} rows with {result.model} "
                      f"v{result.version} ({result.runtime}) in {result.seconds:.1f} s, {rate:,.0f} rows/s "
                      f"-> {result.output}{where}", highlight=False)
        if result.rows_rejected:
            console.print(f"[yellow]{result.rows_rejected:,} row(s) were set aside in {result.rejected_to}: they broke "
                          "the contract or the model has no finite prediction for them[/yellow]", highlight=False)
            for problem, count in sorted(result.problems.items()):
                console.print(f"  {problem}: {count:,}", highlight=False)
