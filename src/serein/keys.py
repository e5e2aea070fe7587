"""API keys with scopes, stored hashed in the operational store (table ``api_keys``).

A key is ``serein_<key id>_<secret>``: the key id (16 hex digits) is public and names the key in
listings and revocations; the secret (64 hex digits, 256 random bits) is shown once, when the key
is created, and only its sha256 is stored. A fast hash is enough here because the secret is
random, not a password: nobody can guess it from its hash, and checking a key costs
microseconds. Secrets are compared in constant time (``hmac.compare_digest``).

Scopes: ``predict`` (prediction routes), ``feedback`` (ground-truth labels) and ``admin``
(``/metrics`` and every other route). Any valid key may read model metadata.

>>> from serein.store import OperationalStore
>>> store = OperationalStore("sqlite://")
>>> info, token = create_key(store, ["predict"], name="web shop")
>>> verify(active_keys(store), token)["scopes"]
['predict']
>>> wrong = token[:-1] + ("1" if token.endswith("0") else "0")
>>> verify(active_keys(store), wrong) is None
True
>>> revoke_key(store, info["key_id"])["revoked_at"] is not None
True
>>> verify(active_keys(store), token) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from serein.errors import NotFoundError, UsageError
from serein.store import OperationalStore

SCOPES = ("predict", "feedback", "admin")
PREFIX = "serein_"
TOKEN = re.compile(r"serein_([0-9a-f]{16})_([0-9a-f]{64})")
KEY_ID = re.compile(r"[0-9a-f]{16}")
MAX_NAME = 200


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its sha256 in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes sorted and without duplicates, or ``UsageError`` naming an unknown one.

    >>> check_scopes(["predict", "admin", "predict"])
    ['admin', 'predict']
    """
    chosen = sorted(set(scopes))
    if not chosen:
        raise UsageError("a key needs at least one scope", hint=f"add --scope with one of {', '.join(SCOPES)}")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise UsageError(f"unknown scope(s) {', '.join(map(repr, unknown))}", hint=f"scopes are {', '.join(SCOPES)}")
    return chosen


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored key without its hash, scopes as a list (what listings show)."""
    return {"key_id": row["key_id"], "name": row["name"], "scopes": row["scopes"].split(),
            "created_at": row["created_at"], "revoked_at": row["revoked_at"],
            "active": row["revoked_at"] is None}


def create_key(store: OperationalStore, scopes: Sequence[str], name: str | None = None) -> tuple[dict[str, Any], str]:
    """A new key with ``scopes``: its public description and the full key (shown only now)."""
    chosen = check_scopes(scopes)
    if name is not None and len(name) > MAX_NAME:
        raise UsageError(f"the key name is longer than {MAX_NAME} characters")
    key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    row = store.add_api_key(key_id, hash_secret(secret), chosen, name)
    return public(row), f"{PREFIX}{key_id}_{secret}"


def list_keys(store: OperationalStore, include_revoked: bool = True) -> list[dict[str, Any]]:
    """Every key's description (never a secret or its hash), oldest first."""
    return [public(row) for row in store.api_keys(active_only=not include_revoked)]


def revoke_key(store: OperationalStore, key_id: str) -> dict[str, Any]:
    """Revoke a key by id (revoking it again changes nothing); running servers refuse it within
    their key cache's lifetime (``serein.serve.auth.CACHE_SECONDS``)."""
    row = next((r for r in store.api_keys() if r["key_id"] == key_id), None)
    if row is None:
        hint = "`serein keys list` shows the key ids" if KEY_ID.fullmatch(key_id) else \
            "a key id is the 16 hex digits after 'serein_' (`serein keys list` shows them)"
        raise NotFoundError(f"no API key with id {key_id[:40]!r}", hint=hint)
    if row["revoked_at"] is None:
        row = {**row, "revoked_at": store.revoke_api_key(key_id)}
    return public(row)


def active_keys(store: OperationalStore) -> dict[str, Mapping[str, Any]]:
    """The stored rows of the keys not revoked, by key id (what ``verify`` checks against)."""
    return {row["key_id"]: row for row in store.api_keys(active_only=True)}


def verify(active: Mapping[str, Mapping[str, Any]], token: str) -> dict[str, Any] | None:
    """The description of the active key ``token`` is, or None (malformed, unknown, revoked or a
    wrong secret). ``active`` maps key ids to stored rows, as ``active_keys`` returns."""
    match = TOKEN.fullmatch(token)
    if match is None:
        return None
    key_id, secret = match.groups()
    row = active.get(key_id)
    if row is None or row["revoked_at"] is not None:
        return None
    return public(row) if hmac.compare_digest(row["key_hash"], hash_secret(secret)) else None
