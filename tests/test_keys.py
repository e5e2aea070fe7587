"""``serein keys create/list/revoke`` in real subprocesses on a real operational store."""

from __future__ import annotations

import json
import subprocess
import sys

from serein.keys import TOKEN, active_keys, hash_secret, verify
from serein.workspace import Workspace


def keys(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serein", "keys", *args, "-w", str(ws.root)],
                          check=False, capture_output=True, text=True, timeout=120)


def test_create_list_revoke(workspace: Workspace) -> None:
    made = keys(workspace, "create", "--scope", "predict", "--scope", "feedback", "--name", "web shop", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    token = created["key"]
    assert TOKEN.fullmatch(token) and created["scopes"] == ["feedback", "predict"] and created["active"]
    key_id, secret = TOKEN.fullmatch(token).groups()
    assert created["key_id"] == key_id

    stored = workspace.store.api_keys()
    assert [r["key_hash"] for r in stored] == [hash_secret(secret)]  # only the hash is kept
    assert secret not in json.dumps(stored)
    assert verify(active_keys(workspace.store), token)["scopes"] == ["feedback", "predict"]

    plain = keys(workspace, "create", "--scope", "admin")
    assert plain.returncode == 0, plain.stderr
    admin_token = plain.stdout.strip()  # the key alone on stdout, the advice on stderr
    assert TOKEN.fullmatch(admin_token) and "not shown again" in plain.stderr

    listed = keys(workspace, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["keys"]
    assert [(r["name"], r["scopes"]) for r in rows] == [("web shop", ["feedback", "predict"]), (None, ["admin"])]
    assert secret not in listed.stdout and "key_hash" not in listed.stdout
    table = keys(workspace, "list")
    assert key_id in table.stdout and "web shop" in table.stdout and secret not in table.stdout

    revoked = keys(workspace, "revoke", key_id, "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    assert verify(active_keys(workspace.store), token) is None
    assert verify(active_keys(workspace.store), admin_token) is not None
    every = json.loads(keys(workspace, "list", "--all", "--json").stdout)["keys"]
    assert [r["active"] for r in every] == [False, True]


def test_bad_input_is_one_clear_line(workspace: Workspace) -> None:
    bad_scope = keys(workspace, "create", "--scope", "root")
    assert bad_scope.returncode == 2 and bad_scope.stderr.startswith("error: unknown scope(s) 'root'")
    assert "predict, feedback, admin" in bad_scope.stderr and "Traceback" not in bad_scope.stderr
    full_key = keys(workspace, "revoke", "serein_0123456789abcdef_" + "0" * 64)
    assert full_key.returncode == 2 and full_key.stderr.startswith("error: no API key with id 'serein_0123")
    assert "16 hex digits after 'serein_'" in full_key.stderr
    assert workspace.store.api_keys() == []
