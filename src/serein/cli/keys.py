"""``serein keys ...``: API keys for the service (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer

from serein.cli.common import JsonOpt, WorkspaceOpt, console, emit, err_console, fmt_time, open_workspace

keys_app = typer.Typer(help="API keys with scopes for `serein serve` (serve.auth: true).", no_args_is_help=True)


@keys_app.command()
def create(
    scope: Annotated[list[str], typer.Option("--scope", help="predict, feedback or admin; repeat for several.",
                                             show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="What the key is for (shown in listings).",
                                             show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from serein.keys import create_key

    info, token = create_key(open_workspace(workspace).store, scope, name=name)
    if as_json:
        emit({**info, "key": token}, True)
        return
    console.print(token, highlight=False)
    err_console.print(f"key {info['key_id']} with scope(s) {', '.join(info['scopes'])}: store it now, it is not "
                      "shown again. Send it as `Authorization: Bearer KEY` or `X-API-Key: KEY`.", highlight=False)


@keys_app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The keys (ids, names, scopes, dates; never the secrets)."""
    from serein.keys import list_keys as stored_keys

    rows = stored_keys(open_workspace(workspace).store, include_revoked=all_keys)
    if as_json:
        emit({"keys": rows}, True)
        return
    emit([{**r, "scopes": ",".join(r["scopes"]), "created_at": fmt_time(r["created_at"]),
           "revoked_at": fmt_time(r["revoked_at"])} for r in rows], False,
         columns=["key_id", "name", "scopes", "created_at"] + (["revoked_at"] if all_keys else []), title="API keys")


@keys_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`serein keys list`).", show_default=False)],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key; running servers refuse it within a few seconds."""
    from serein.keys import revoke_key

    info = revoke_key(open_workspace(workspace).store, key_id)
    if as_json:
        emit(info, True)
        return
    console.print(f"key {info['key_id']} revoked at {fmt_time(info['revoked_at'])} UTC")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
