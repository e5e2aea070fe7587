"""Streaming detectors: CUSUM by hand, Page-Hinkley against River's own test on the same
standardised stream, ADWIN against raw River, scale-freeness, references from a profile, and
resuming from the stored JSON state gives the same changes as one pass over the whole stream."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from river.drift import ADWIN, PageHinkley

from serein.errors import UsageError
from serein.monitor.detectors import Cusum, DetectorSettings, Scale, StreamDetectors, rate_std, references


def _stream(seed: int = 0) -> np.ndarray:
    """0/1 errors: 10 % for 3,000 values, 30 % for 3,000, then 5 % for 3,000."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(3000) < 0.1, rng.random(3000) < 0.3, rng.random(3000) < 0.05].astype(float)


def test_cusum_by_hand() -> None:
    # mean 10, σ 2 exact (no n: no widening), blocks of 2: block means 10, 13, 13, ... -> z = 0, 2.12, 2.12
    c = Cusum(k=0.5, h=3.0, scale=Scale(mean=10.0, std=2.0), block=2)
    out = [c.update(x) for x in [9, 11, 13, 13, 12, 14, 7, 7]]
    # S+ : 0 -> 1.62 -> 3.24 > 3: "up" after the 3rd block, then the level is re-learnt (warm-up)
    assert out[:6] == [None, None, None, None, None, "up"]
    assert c.scale.mean is None and c.s_pos == c.s_neg == 0.0
    assert out[6:] == [None, None]
    # a reference mean from n = 8 values widens k by 2·√(2/8) = 1: z = 2.12 now adds 0.62 a block
    wide = Cusum(k=0.5, h=3.0, scale=Scale(mean=10.0, std=2.0, n=8), block=2)
    assert wide.allowance == pytest.approx(1.5)
    assert [wide.update(x) for x in [9, 11, 13, 13, 12, 14]] == [None] * 6
    assert wide.s_pos == pytest.approx(2 * (3 / math.sqrt(2) - 1.5))
    # warm-up of 4 values learns mean and per-value σ (sample std), then blocks start
    w = Cusum(k=0.5, h=3.0, scale=Scale(warmup=4), block=2)
    for x in [1.0, 3.0, 1.0, 3.0]:
        assert w.update(x) is None
    assert w.scale.mean == pytest.approx(2.0) and w.scale.std == pytest.approx(np.std([1, 3, 1, 3], ddof=1))
    # k' = 0.5 + 2·√(2/4) = 1.914; a block mean 5 σ_block low: S- = 5 - 1.914 = 3.09 > 3: "down"
    low = 2.0 - 5 * w.scale.std / np.sqrt(2)
    assert [w.update(low), w.update(low)] == [None, "down"]


def test_binary_warm_up_never_learns_a_zero_sigma() -> None:
    s = Scale(warmup=100, binary=True)
    for _ in range(100):
        s.learn(0.0)
    assert s.mean == 0.0 and s.std == pytest.approx(math.sqrt((1 / 102) * (101 / 102))) and s.n == 100
    assert rate_std(0, 1498) == pytest.approx(math.sqrt(1 / 1500 * 1499 / 1500))


def _river_ph_changes(x: np.ndarray, mean: float, std: float, s: DetectorSettings) -> list[int]:
    """Page-Hinkley changes computed independently: River's test on clip((x - mean)/σ); after each
    change, idle for ``warmup`` values whose sample mean and σ standardise the rest."""
    out, i = [], 0
    while i < len(x):
        ph = PageHinkley(min_instances=s.ph_min_instances, delta=s.ph_delta, threshold=s.ph_threshold)
        for j in range(i, len(x)):
            ph.update(float(np.clip((x[j] - mean) / std, -s.clip, s.clip)))
            if ph.drift_detected:
                out.append(j)
                break
        else:
            return out
        learn = x[j + 1:j + 1 + s.warmup]
        if len(learn) < s.warmup:
            return out
        mean, std = float(learn.mean()), float(learn.std(ddof=1))
        i = j + 1 + s.warmup
    return out


def test_page_hinkley_is_river_on_the_standardised_stream() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(50, 8, 4000), rng.normal(56, 8, 3000), rng.normal(44, 12, 3000)]
    s = DetectorSettings(warmup=500)
    d = StreamDetectors(s, mean=50.0, std=8.0, n=2000)
    mine = [c for i, v in enumerate(x) for c in d.update(v) if c.detector == "page_hinkley"]
    expected = _river_ph_changes(x, 50.0, 8.0, s)
    assert [c.index for c in mine] == expected and len(expected) >= 2
    assert mine[0].direction == "up" and 4000 <= mine[0].index < 4300
    assert mine[0].before == pytest.approx(x[:mine[0].index].mean())


def test_adwin_is_raw_river_and_levels_are_right() -> None:
    x = _stream()
    raw = ADWIN()
    adwin_at = [i for i, v in enumerate(x) if (raw.update(v), raw.drift_detected)[1]]
    d = StreamDetectors(DetectorSettings(), mean=0.1, std=0.3, n=3000, binary=True)
    changes = [c for i, v in enumerate(x) for c in d.update(v, ref_id=i + 100)]
    assert [c.index for c in changes if c.detector == "adwin"] == adwin_at and adwin_at
    # direction and levels: each detector sees the rise 10 % -> 30 % and, later, the fall
    for name in ("adwin", "page_hinkley", "cusum"):
        mine = [c for c in changes if c.detector == name]
        rise = [c for c in mine if 3000 <= c.index < 4000]
        assert rise and rise[0].direction == "up" and rise[0].ref_id == rise[0].index + 100
        assert mine[-1].direction == "down" and mine[-1].index >= 6000
        assert not [c for c in mine if c.index < 3000]  # quiet before the change
    first = next(c for c in changes if c.detector == "adwin")
    assert first.before == pytest.approx(0.1, abs=0.03) and first.after > first.before


def test_page_hinkley_and_cusum_are_scale_free() -> None:
    rng = np.random.default_rng(4)
    x = np.r_[rng.gamma(2.0, 1.0, 5000), rng.gamma(2.0, 1.5, 3000)]  # absolute-error-like, σ grows
    found = []
    for a, b in ((1.0, 0.0), (1000.0, 0.0), (0.001, 7.0)):
        d = StreamDetectors(DetectorSettings(), mean=a * 2.0 + b, std=a * math.sqrt(2.0), n=1500)
        found.append([(c.detector, c.index, c.direction) for v in a * x + b for c in d.update(v)
                      if c.detector != "adwin"])
    assert found[0] and found[0] == found[1] == found[2]
    assert {d for d, i, up in found[0] if up == "up" and 5000 <= i < 5500} == {"page_hinkley", "cusum"}


def test_references_from_a_profile() -> None:
    rng = np.random.default_rng(5)
    err = rng.normal(0, 3, 800)
    perf = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean()))}
    values = {"kind": "numeric", "count": 800, "n_nulls": 0, "mean": 4.0, "std": 2.0}
    reg = references({"n_rows": 800, "performance": perf, "prediction": {"kind": "regression", "values": values}},
                     "regression")
    assert reg["error"][0] == pytest.approx(np.abs(err).mean()) and reg["error"][2] == 800
    assert reg["error"][1] == pytest.approx(np.abs(err).std())  # population σ of |error|
    assert reg["score"] == (4.0, 2.0, 800)
    cls = references({"n_rows": 1000, "performance": {"accuracy": 1.0}}, "classification")
    assert cls["error"] == (0.0, pytest.approx(rate_std(0, 1000)), 1000) and cls["score"] == (None, None, None)
    assert references(None, "regression") == {"error": (None, None, None), "score": (None, None, None)}


@pytest.mark.parametrize("cut", [1, 700, 2999, 3150, 4500, 8999])
def test_resume_from_json_state_equals_one_run(cut: int) -> None:
    x = _stream(1)
    settings = DetectorSettings(warmup=800)  # cut 700 lands inside the warm-up
    one = StreamDetectors(settings, binary=True)
    whole = [c.to_dict() for v in x for c in one.update(v)]
    first = StreamDetectors(settings, binary=True)
    part = [c.to_dict() for v in x[:cut] for c in first.update(v)]
    state = json.loads(json.dumps(first.state()))  # through JSON, as the store keeps it
    second = StreamDetectors(settings, binary=True)
    assert second.restore(state)
    part += [c.to_dict() for v in x[cut:] for c in second.update(v)]
    assert part == whole and any(c["detector"] == "page_hinkley" for c in whole)
    assert second.state() == one.state()


def test_bad_or_foreign_state_starts_fresh() -> None:
    d = StreamDetectors(DetectorSettings())
    for v in _stream()[:500]:
        d.update(v)
    good = json.loads(json.dumps(d.state()))
    assert not StreamDetectors(DetectorSettings(cusum_h=4.0)).restore(good)  # other settings
    for broken in ({**good, "adwin_history": "not base64!"}, {**good, "ph": {"test": {"n": 1}}}, {**good, "cusum": {}},
                   {**good, "v": 99}, {}):
        fresh = StreamDetectors(DetectorSettings())
        assert not fresh.restore(broken) and fresh.n == 0


def test_adwin_history_is_capped() -> None:
    d = StreamDetectors(DetectorSettings(adwin_history=500))
    for v in np.random.default_rng(2).random(3000) < 0.1:
        d.update(float(v))
    assert len(d.history) <= 1000 and len(json.loads(json.dumps(d.state()))["adwin_history"]) <= 500 * 8 * 4 // 3 + 4


@pytest.mark.parametrize("config, match", [
    ({"cusum_k": -1}, "monitor.detectors.cusum_k must be a positive number"),
    ({"cusum_block": 2.5}, "cusum_block must be a positive integer"),
    ({"adwin": 1}, "unknown key"),
])
def test_settings_are_checked(config: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        DetectorSettings.from_config(config)
