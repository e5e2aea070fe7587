"""Chunk boundaries, chunk specs, data quality rates against counts done by hand, and the domain
classifier on joint drift that no single feature shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serein.data.contract import Contract
from serein.errors import UsageError
from serein.monitor.chunks import split_chunks
from serein.monitor.multivariate import domain_classifier_drift
from serein.monitor.profile import categorical_profile, numeric_profile
from serein.monitor.quality import quality_settings, window_quality
from serein.monitor.window import parse_chunk

HOUR = 3600.0


def test_time_chunks_align_to_utc_hours_and_skip_empty_ones() -> None:
    base = 1_790_000_000.0 - 1_790_000_000.0 % HOUR  # an exact hour
    ts = np.array([base + 5, base + 3599, base + 3600, base + 3 * HOUR + 1, base + 3 * HOUR + 2, base + 10])
    chunks = split_chunks(ts, parse_chunk("hourly"))
    assert [c.start for c in chunks] == [base, base + HOUR, base + 3 * HOUR]  # hour 2 had no traffic
    assert [c.end - c.start for c in chunks] == [HOUR] * 3
    assert [sorted(c.rows.tolist()) for c in chunks] == [[0, 1, 5], [2], [3, 4]]  # a late row joins its hour
    assert sum(c.rows.size for c in chunks) == ts.size
    daily = split_chunks(ts, parse_chunk("daily"))
    assert len(daily) == 1 and daily[0].start % 86400 == 0


def test_row_chunks_keep_the_remainder() -> None:
    ts = np.arange(10, dtype=float)
    chunks = split_chunks(ts, parse_chunk("4"))
    assert [c.rows.tolist() for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [(c.start, c.end) for c in chunks] == [(0.0, 3.0), (4.0, 7.0), (8.0, 9.0)]
    with pytest.raises(UsageError, match="time chunks need timestamps"):
        split_chunks(None, parse_chunk("daily"), n=10)


@pytest.mark.parametrize("bad", ["0", "-3", "fortnightly", "3x"])
def test_bad_chunk_specs(bad: str) -> None:
    with pytest.raises(UsageError, match="bad --chunk"):
        parse_chunk(bad)


def test_quality_rates_per_check() -> None:
    contract = Contract.from_dict({"columns": {
        "age": {"type": "integer", "min": 18, "max": 99},
        "city": {"type": "string", "allowed": ["Lyon", "Oslo"], "unseen": "flag"},
        "income": {"type": "float", "completeness": 0.9},
    }})
    n = 400
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(18, 99, n), "city": rng.choice(["Lyon", "Oslo"], n),
                      "income": rng.normal(50, 5, n)})
    X.loc[:11, "age"] = 5          # 12 rows below min: 3 %
    X.loc[20:21, "city"] = "Rome"  # 2 unseen: a warning, under min_count
    X.loc[30:69, "income"] = None  # 10 % missing against a 0.9 bound: inside the window's noise
    q = window_quality(X, contract)
    by_name = {c["name"]: c for c in q["checks"]}
    assert by_name["age: min"]["count"] == 12 and by_name["age: min"]["rate"] == pytest.approx(0.03)
    assert by_name["age: min"]["breached"] and by_name["age: min"]["examples"] == [5]
    assert by_name["city: unseen"]["severity"] == "warning" and not by_name["city: unseen"]["breached"]
    assert q["breached"] == ["age: min"] and q["bad_rows"] == 12
    X.loc[30:129, "income"] = None  # 25 % missing: far below the bound
    worse = window_quality(X, contract)
    assert "income: completeness" in worse["breached"]
    assert window_quality(X.loc[100:], contract, max_rate=0.5)["breached"] == []
    with pytest.raises(UsageError, match="monitor.quality: unknown key"):
        quality_settings({"rate": 0.1})


def test_domain_classifier_sees_joint_drift() -> None:
    rng = np.random.default_rng(5)

    def frame(n: int, corr: float) -> pd.DataFrame:
        a = rng.normal(size=n)
        b = corr * a + np.sqrt(1 - corr ** 2) * rng.normal(size=n)
        return pd.DataFrame({"a": a, "b": b, "c": rng.choice(["x", "y"], n)})

    ref = frame(4000, 0.8)
    profile = {"features": {"a": numeric_profile(ref["a"]), "b": numeric_profile(ref["b"]), "c": categorical_profile(ref["c"])},
               "sample": {"columns": {k: ref[k].head(1000).tolist() for k in ref}}}
    same = domain_classifier_drift(profile, frame(2000, 0.8))
    assert not same["drifted"] and same["score"] < same["threshold"] and same["n_current"] == 1000
    flipped = domain_classifier_drift(profile, frame(2000, -0.8))  # each margin unchanged, the joint not
    assert flipped["drifted"] and flipped["score"] > 0.75
    assert domain_classifier_drift({"features": profile["features"]}, frame(100, 0.8)) is None
