"""Dataset references: ``NAME`` (latest), ``NAME@3`` (version 3) or ``NAME@2026-11-01T00:00:00``
(the version current at that time).

>>> DatasetRef.parse("credit@3")
DatasetRef(name='credit', version=3, timestamp=None)
>>> DatasetRef.parse("credit@2026-11-01T00:00").timestamp
'2026-11-01T00:00:00+00:00'
>>> str(DatasetRef.parse("credit"))
'credit'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from serein.errors import UsageError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str, what: str = "dataset") -> str:
    """Return ``name`` if it is a valid name for a dataset or model, else raise UsageError."""
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"invalid {what} name {name!r}",
            hint="use a letter followed by letters, digits, '_', '-' or '.' (at most 128)",
        )
    return name


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int | None = None
    timestamp: str | None = None  # ISO 8601, UTC

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        if not isinstance(text, str) or not text.strip():
            raise UsageError("empty dataset reference", hint="use NAME, NAME@VERSION or NAME@ISO-TIMESTAMP")
        name, sep, at = text.strip().partition("@")
        check_name(name)
        if not sep:
            return cls(name)
        if at.isdigit():
            return cls(name, version=int(at))
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(
                f"bad dataset reference {text!r}: {at!r} is neither a version number nor an ISO timestamp",
                hint="use NAME@3 or NAME@2026-11-01T00:00:00",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return cls(name, timestamp=when.astimezone(timezone.utc).isoformat())

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.timestamp is not None:
            return f"{self.name}@{self.timestamp}"
        return self.name
