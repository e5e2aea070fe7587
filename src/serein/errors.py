"""The errors serein raises on purpose.

Every entry point (CLI, Python API, HTTP) turns these into one clear line: what is wrong and how to
fix it. The CLI exits with ``exit_code``; the HTTP layer answers with ``http_status``. Anything
else escaping to a user is a bug.
"""

from __future__ import annotations


class SereinError(Exception):
    """A failure the user can act on. ``hint`` says how to fix it."""

    exit_code = 1
    http_status = 500

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(SereinError):
    """Bad input from the caller: a malformed ref, a bad recipe, a wrong option."""

    exit_code = 2
    http_status = 400


class NotFoundError(UsageError):
    """A named thing (dataset, version, model, alert, request id) does not exist."""

    http_status = 404


class ConflictError(SereinError):
    """The request is understood but refused by the current state (e.g. promoting a failed gate)."""

    http_status = 409


class ValidationFailed(SereinError):
    """Data broke its contract."""

    http_status = 422
