"""``serein models ...``: registered models, their versions, promotion and rollback."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from serein.cli.common import JsonOpt, WorkspaceOpt, console, emit, fmt_time, open_workspace

models_app = typer.Typer(help="Registered models: list, versions, show, promote, rollback.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Registered model name.", show_default=False)]


def _registry(workspace: Any) -> Any:
    return open_workspace(workspace).registry


@models_app.command("list")
def list_models(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Every registered model with its latest version, champion and challenger."""
    rows = _registry(workspace).list_models()
    if as_json:
        emit({"models": rows}, True)
        return
    emit([{**r, "updated_at": fmt_time(r["updated_at"])} for r in rows], False, title="models")


@models_app.command()
def versions(name: NameArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The versions of NAME, oldest first, with aliases and gate verdicts."""
    found = _registry(workspace).versions(name)
    if as_json:
        emit({"model": name, "versions": [v.to_dict() for v in found]}, True)
        return
    emit([{**v.summary(), "created_at": fmt_time(v.created_at)} for v in found], False,
         columns=["version", "aliases", "gate", "dataset", "created_at"],
         title=f"{name} versions")


@models_app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION (e.g. credit@champion).", show_default=False)],
    version: Annotated[str | None, typer.Argument(help="Version or alias (alternative to NAME@...).", show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One version: aliases, gate verdict, holdout metrics, lineage and sha256."""
    from serein.errors import UsageError
    from serein.registry.registry import split_ref

    name, at = split_ref(ref)
    if at is not None and version is not None:
        raise UsageError(f"give the version either as {ref} or as a second argument, not both")
    info = _registry(workspace).get(name, version or at, with_metrics=True)
    if as_json:
        emit(info.to_dict(), True)
        return
    tags = info.tags
    reasons = json.loads(tags.get("serein.gate.reasons", "[]"))
    emit({
        "model": f"{info.name} v{info.version}",
        "aliases": ", ".join(info.aliases) or "none",
        "gate": f"{'passed' if info.gate_passed else 'failed'} on {tags.get('serein.gate.metric')} "
                f"({tags.get('serein.gate.value')} vs baseline {tags.get('serein.gate.baseline')})",
        "gate reasons": "\n".join(reasons),
        "metrics": "\n".join(f"{k} = {v:.4f}" for k, v in sorted(info.metrics.items())),
        "dataset": f"{tags.get('serein.dataset')}@{tags.get('serein.dataset_version')} (sha256 {tags.get('serein.data_hash', '')[:16]})",
        "contract": f"{tags.get('serein.contract_hash', '')[:16]} ({tags.get('serein.contract_source', '?')})",
        "git": f"{tags.get('serein.git_commit')} dirty={tags.get('serein.git_dirty')}",
        "onnx": tags.get("serein.onnx", ""),
        "sha256": tags.get("serein.sha256", ""),
        "forced": tags.get("serein.force_reason", ""),
        "run": info.run_id,
        "created": fmt_time(info.created_at),
    }, False, title="model version")


@models_app.command()
def promote(
    name: NameArg,
    version: Annotated[str, typer.Argument(help="Version number (or alias, e.g. challenger) to make champion.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Promote even though the version failed its gate (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the gate is overridden (recorded as a tag).", show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make VERSION the champion (the server follows the alias)."""
    info = _registry(workspace).promote(name, version, force=force, reason=reason)
    if as_json:
        emit(info.to_dict(), True)
        return
    console.print(f"[green]{name} v{info.version} is now the champion[/green]" + (" (forced)" if force else ""))


@models_app.command()
def rollback(name: NameArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Put the previous champion of NAME back."""
    info = _registry(workspace).rollback(name)
    if as_json:
        emit(info.to_dict(), True)
        return
    console.print(f"[green]{name} v{info.version} is the champion again[/green]")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
