"""Data quality of a window: the vectorised checks (Arrow compute, pandera only for suspects) give
the same violation counts per check as pandera's validation of the whole frame, on every kind of
check a contract can hold, and a window read the way ``--current`` reads it (text as categoricals)
is judged like the plain frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serein.data.contract import Contract
from serein.data.validation import validate
from serein.monitor.quality import validate_window, window_quality

N = 50_000
CONTRACT = Contract.from_dict({
    "columns": {
        "amount": {"type": "float", "min": 0.0, "max": 1000.0, "nullable": False},
        "age": {"type": "integer", "min": 18, "max": 99},
        "ratio": {"type": "float", "non_negative": True, "completeness": 0.99},
        "city": {"type": "string", "allowed": ["paris", "lyon", "nice"], "unseen": "flag"},
        "tier": {"type": "string", "allowed": ["a", "b"], "unseen": "reject"},
        "code": {"type": "string", "regex": r"[A-Z]{2}\d{3}$"},
        "limit": {"type": "float"},
    },
    "rules": [{"name": "cap", "left": "amount", "op": "<=", "right": "limit"}],
})


def _window(seed: int) -> pd.DataFrame:
    """A window breaking every kind of check at a known rate."""
    rng = np.random.default_rng(seed)
    amount = rng.uniform(-50, 1100, N)
    amount[rng.random(N) < 0.01] = np.nan  # not nullable
    age = rng.integers(10, 110, N)
    ratio = rng.normal(1.0, 1.0, N)
    ratio[rng.random(N) < 0.02] = np.nan  # completeness 0.98 < 0.99
    city = rng.choice(["paris", "lyon", "nice", "rome", None], N, p=[0.5, 0.2, 0.2, 0.07, 0.03])
    tier = rng.choice(["a", "b", "c"], N, p=[0.6, 0.35, 0.05])
    code = np.array([f"{a}{b}{n:03d}" for a, b, n in zip(rng.choice(list("ABz"), N), rng.choice(list("XY"), N),
                                                         rng.integers(0, 1000, N))], dtype=object)
    limit = rng.uniform(800, 1200, N)
    return pd.DataFrame({
        "amount": amount, "age": age, "ratio": ratio, "city": pd.Series(city, dtype="str"),
        "tier": pd.Series(tier, dtype="str"), "code": pd.Series(code, dtype="str"), "limit": limit,
    })


def _counts(findings: list[dict]) -> dict[tuple, int]:
    return {(f["column"], f["check"]): f["count"] for f in findings}


@pytest.mark.parametrize("categorical", [False, True])
def test_vectorised_counts_equal_pandera_counts(categorical: bool) -> None:
    frame = _window(0)
    window = frame.astype({c: "category" for c in ("city", "tier", "code")}) if categorical else frame
    exact = validate(frame, CONTRACT)
    fast = validate_window(window, CONTRACT)
    assert fast.data is None  # the vectorised path ran (pandera saw only the suspect rows)
    assert _counts(fast.failures) == _counts(exact.failures)
    assert _counts(fast.warnings) == _counts(exact.warnings)
    np.testing.assert_array_equal(fast.bad_rows, exact.bad_rows)
    # every kind of check fired, with the count computed here independently of both
    counts = _counts(exact.failures)
    a = frame["amount"]
    assert counts[("amount", "min")] == int((a < 0).sum()) and counts[("amount", "max")] == int((a > 1000).sum())
    assert counts[("amount", "not_null")] == int(a.isna().sum())
    assert counts[("age", "min")] == int((frame["age"] < 18).sum()) and counts[("age", "max")] == int((frame["age"] > 99).sum())
    assert counts[("ratio", "non_negative")] == int((frame["ratio"] < 0).sum())
    assert counts[("ratio", "completeness")] == int(frame["ratio"].isna().sum())
    assert counts[("tier", "allowed")] == int((frame["tier"] == "c").sum())
    assert counts[("code", "regex")] == int((~frame["code"].str.match(r"[A-Z]{2}\d{3}$")).sum())
    assert counts[(None, "rule:cap")] == int((a > frame["limit"]).sum())
    assert _counts(exact.warnings)[("city", "unseen")] == int((frame["city"] == "rome").sum())


def test_window_quality_rates_and_breaches_are_those_of_the_counts() -> None:
    frame = _window(1)
    q = window_quality(frame, CONTRACT)
    by_name = {c["name"]: c for c in q["checks"]}
    assert by_name["tier: allowed"]["rate"] == pytest.approx((frame["tier"] == "c").mean())
    assert by_name["city: unseen"]["severity"] == "warning" and "city: unseen" in q["breached"]
    assert "ratio: completeness" in q["breached"]  # 98 % non-null on 50k rows is surely below 0.99
    assert q["bad_rows"] == int(validate(frame, CONTRACT).n_bad)


def test_a_column_of_mixed_types_falls_back_to_pandera_with_the_same_verdict() -> None:
    contract = Contract.from_dict({"columns": {"age": {"type": "integer", "min": 0}}})
    frame = pd.DataFrame({"age": pd.Series([1, "x", -3, 4, None], dtype=object)})
    fast, exact = validate_window(frame, contract), validate(frame, contract)
    assert _counts(fast.failures) == _counts(exact.failures) == {("age", "type"): 1, ("age", "min"): 1}
    # numbers the contract calls integers but that arrive as floats (a nullable column): same counts
    frame = pd.DataFrame({"age": [1.0, np.nan, -3.0, 2.5]})
    assert _counts(validate_window(frame, contract).failures) == _counts(validate(frame, contract).failures)


def test_range_screens_skipped_by_a_columns_extremes_give_pandera_counts() -> None:
    """The screen tests a numeric column's range only where its minimum and maximum leave it
    open: infinities, values just past a bound, an integer column, an all-null and an all-NaN
    column, and columns within their range all give pandera's counts."""
    contract = Contract.from_dict({"columns": {
        "inside": {"type": "float", "min": -5.0, "max": 5.0, "nullable": False},
        "edges": {"type": "float", "min": 0.0, "max": 1.0},
        "infinite": {"type": "float", "max": 1e6},
        "count": {"type": "integer", "non_negative": True, "max": 10, "nullable": False},
        "empty": {"type": "float", "min": 0.0},
        "nan": {"type": "float", "max": 1.0, "nullable": False},
    }})
    rng = np.random.default_rng(7)
    n = 2_000
    edges = rng.uniform(0, 1, n)
    edges[[3, 50]] = [-1e-12, 1.0 + 1e-12]
    infinite = rng.normal(size=n)
    infinite[[7, 8]] = [np.inf, -np.inf]
    count = rng.integers(0, 11, n)
    count[[1, 2, 3]] = [-1, 11, 10]
    frame = pd.DataFrame({"inside": rng.uniform(-5, 5, n), "edges": edges, "infinite": infinite, "count": count,
                          "empty": pd.Series([None] * n, dtype="float64"), "nan": np.full(n, np.nan)})
    fast, exact = validate_window(frame, contract), validate(frame, contract)
    assert fast.data is None
    assert _counts(fast.failures) == _counts(exact.failures)
    np.testing.assert_array_equal(fast.bad_rows, exact.bad_rows)
    counts = _counts(exact.failures)
    assert counts[("edges", "min")] == counts[("edges", "max")] == 1
    assert counts[("infinite", "type")] == 2 and counts[("count", "non_negative")] == counts[("count", "max")] == 1
    assert counts[("nan", "not_null")] == n and ("inside", "min") not in counts and ("empty", "min") not in counts
