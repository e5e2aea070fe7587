"""Windows as people write them: starts and ends (``30m``, ``24h``, ``7d`` ago or an ISO time)
and chunk sizes (``hourly``, ``daily``, a duration, or a number of rows).

>>> parse_duration("24h")
86400.0
>>> parse_since("2026-11-01T00:00", now=0.0)
1793491200.0
>>> parse_since("90s", now=1000.0)
910.0
>>> parse_chunk("hourly"), parse_chunk("500"), parse_chunk("6h")
(('time', 3600.0), ('rows', 500), ('time', 21600.0))
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from serein.errors import UsageError

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
NAMED_CHUNKS = {"hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0}
CHUNK_HINT = "use hourly, daily, weekly, a duration such as 6h, or a number of rows such as 1000"
HINT = "use a number and a unit s, m, h, d or w (e.g. 30m, 24h, 7d), or an ISO time such as 2026-11-01T00:00"


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text`` (``30m``, ``24h``, ``7d``, ``1.5h``); UsageError naming ``what`` otherwise."""
    match = DURATION_RE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"bad {what} {text!r}", hint=HINT)
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_since(text: str, now: float | None = None, what: str = "--since") -> float:
    """The UNIX time a window starts: ``now`` minus a duration, or an ISO time (UTC if naive)."""
    if DURATION_RE.match(str(text)):
        return (time.time() if now is None else now) - parse_duration(text, what)
    try:
        when = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise UsageError(f"bad {what} {text!r}: neither a duration nor an ISO time", hint=HINT) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_chunk(text: str) -> tuple[str, float | int]:
    """A chunk size: ``("time", seconds)`` for ``hourly``/``daily``/``weekly`` or a duration,
    ``("rows", n)`` for a positive whole number; UsageError otherwise."""
    value = str(text).strip().lower()
    if value in NAMED_CHUNKS:
        return "time", NAMED_CHUNKS[value]
    if value.isdigit():
        if int(value) <= 0:
            raise UsageError(f"bad --chunk {text!r}: a number of rows must be positive", hint=CHUNK_HINT)
        return "rows", int(value)
    if DURATION_RE.match(value):
        return "time", parse_duration(value, "--chunk")
    raise UsageError(f"bad --chunk {text!r}", hint=CHUNK_HINT)
