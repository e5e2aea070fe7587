"""Data quality of production traffic: the model's contract checked on a window of inputs.

The same contract that validated the training data and every serving request is run on the
window as a whole (an Arrow table as read from a batch, or logged traffic converted to one), one
call per window, compiled to vectorised Arrow compute over whole columns
(``serein.data.validation.validate_arrow``: ranges, nulls, categories, regexes once per distinct
value, rules; the screen's results read from Arrow's buffers, so a window that breaks no row-level
check never imports pandas); pandera gives the exact verdict for the rows that screen flags, and checks the
whole window when a column's type is not its contract's (numbers stored as text, say) or the
frame does not convert to Arrow. The counts per check are pandera's either way. Serving rejects broken rows, so what shows up here is what serving lets through with a
flag — values beyond ``min``/``max``, unseen categories under ``unseen: flag`` — and what only a
batch can show: completeness below the contract's bound, a rule broken by many rows at once.

Each check's *violation rate* is the share of the window's rows it failed (dataset-level checks
such as completeness count once, at rate 1). A check is *breached* when its rate is at least
``max_rate`` (default 1 %) and at least ``min_count`` rows (default 5) failed it — a single odd
row is news for the log, not for a pager. Completeness is judged with the window's size in mind:
its rate is the null share, and it is breached only when even the optimistic end of the window's
non-null share (Wilson upper bound, z = 3.09, one-sided 0.1 %) is below the contract's bound —
the bound was itself a lower confidence bound on the reference, and a window of a few thousand
rows wobbles around it — and at least ``min_count`` values are missing (Wilson's bound is far
too narrow on a handful of rows: one null in a one-row window would breach a 95 % bound).
Breaches raise the ``data_quality`` alert.

>>> import pandas as pd
>>> from serein.data.contract import Contract
>>> c = Contract.from_dict({"columns": {"age": {"type": "integer", "min": 18}}})
>>> q = window_quality(pd.DataFrame({"age": [17, 30, 40, 16, 15, 14, 13, 50]}), c)
>>> q["checks"][0]["check"], q["checks"][0]["rate"], q["breached"]
('min', 0.625, ['age: min'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from serein.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from serein.data.contract import Contract
    from serein.data.validation import ValidationReport

MAX_RATE = 0.01
MIN_COUNT = 5
Z_COMPLETENESS = 3.09


def quality_settings(config: Mapping[str, Any] | None) -> dict[str, float]:
    """``monitor.quality`` from ``serein.yaml`` (``max_rate``, ``min_count``), checked."""
    settings = {"max_rate": MAX_RATE, "min_count": MIN_COUNT}
    config = dict(config or {})
    unknown = sorted(set(config) - set(settings))
    if unknown:
        raise UsageError(f"monitor.quality: unknown key(s) {', '.join(unknown)}", hint="known keys are max_rate, min_count")
    for key, value in config.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UsageError(f"monitor.quality.{key} must be a non-negative number, got {value!r}")
        settings[key] = value
    return settings


def check_name(entry: Mapping[str, Any]) -> str:
    """``column: check`` (or the rule's check name alone)."""
    return f"{entry['column']}: {entry['check']}" if entry.get("column") else str(entry["check"])


def validate_window(X: pd.DataFrame | pa.Table, contract: Contract) -> ValidationReport:
    """The contract's findings on the window ``X``, a pandas frame or an Arrow table (see the
    module docstring)."""
    import pyarrow as pa

    from serein.data.validation import validate, validate_arrow

    if isinstance(X, pa.Table):
        return validate_arrow(X, contract)
    try:
        table = pa.Table.from_pandas(X, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):  # e.g. numbers and text in one column
        return validate(X, contract)
    return validate_arrow(table, contract)


def window_quality(X: pd.DataFrame | pa.Table, contract: Contract, max_rate: float = MAX_RATE,
                   min_count: int = MIN_COUNT) -> dict[str, Any]:
    """Violation rates per contract check on the window ``X`` (failures and warnings), the share
    of rows with any failure, and the checks ``breached`` (rate ≥ ``max_rate`` and count ≥
    ``min_count``)."""
    from serein.data.profiling import wilson_lower_bound

    n = len(X)
    report = validate_window(X, contract)
    checks = []
    for severity, entries in (("failure", report.failures), ("warning", report.warnings)):
        for entry in entries:
            count = int(entry["count"]) if entry["count"] else n  # dataset-level checks: the whole window
            rate = count / n if n else 0.0
            breached = rate >= max_rate and count >= min_count
            if entry["check"] == "completeness":
                bound = contract.columns[entry["column"]].completeness or 0.0
                breached = count >= min_count and 1 - wilson_lower_bound(count, n, Z_COMPLETENESS) < bound
            checks.append({"check": entry["check"], "column": entry.get("column"), "name": check_name(entry),
                           "severity": severity, "count": count, "rate": rate,
                           "examples": entry.get("examples", [])[:5], "message": entry.get("message"),
                           "breached": bool(breached)})
    return {
        "n_rows": n,
        "bad_rows": report.n_bad,
        "bad_row_rate": report.n_bad / n if n else 0.0,
        "checks": checks,
        "breached": [c["name"] for c in checks if c["breached"]],
        "max_rate": max_rate,
        "min_count": min_count,
    }
