"""Streaming detectors: CUSUM by hand, the River wrappers against raw River, and resuming from the
stored JSON state gives the same changes as one pass over the whole stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river.drift import ADWIN, PageHinkley

from serein.errors import UsageError
from serein.monitor.detectors import Cusum, DetectorSettings, StreamDetectors


def _stream(seed: int = 0) -> np.ndarray:
    """0/1 errors: 10 % for 3,000 values, 30 % for 3,000, then 5 % for 3,000."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(3000) < 0.1, rng.random(3000) < 0.3, rng.random(3000) < 0.05].astype(float)


def test_cusum_by_hand() -> None:
    # mean 10, σ 2, blocks of 2: block means 10, 13, 13, 7, 5, 5 -> z = 0, 2.12, 2.12, -2.12, -3.54, -3.54
    c = Cusum(k=0.5, h=3.0, mean=10.0, std=2.0, block=2)
    out = [c.update(x) for x in [9, 11, 13, 13, 12, 14, 7, 7, 5, 5, 5, 5]]
    # S+ : 0 -> 1.62 -> 3.24 > 3: "up" after the 3rd block, then the level is re-learnt (warm-up)
    assert out[:6] == [None, None, None, None, None, "up"]
    assert c.mean is None and c.s_pos == c.s_neg == 0.0
    assert out[6:] == [None] * 6
    # with warm-up: 2 blocks of 2 values learn mean and per-value σ (sample std of the 4 values)
    w = Cusum(k=0.5, h=3.0, block=2, warmup=2)
    for x in [1.0, 3.0, 1.0, 3.0]:
        assert w.update(x) is None
    assert w.mean == pytest.approx(2.0) and w.std == pytest.approx(np.std([1, 3, 1, 3], ddof=1))
    # block mean 2 - 4 * (σ/√2) ~ z = -4 -> S- = 3.5 > 3: "down"
    low = 2.0 - 4 * w.std / np.sqrt(2)
    assert [w.update(low), w.update(low)] == [None, "down"]


def test_wrappers_agree_with_raw_river() -> None:
    x = _stream()
    raw_adwin, raw_ph = ADWIN(), PageHinkley()
    adwin_at, ph_at = [], []
    for i, v in enumerate(x):
        raw_adwin.update(v)
        raw_ph.update(v)
        if raw_adwin.drift_detected:
            adwin_at.append(i)
        if raw_ph.drift_detected:
            ph_at.append(i)
    d = StreamDetectors(DetectorSettings(), mean=0.1, std=0.3)
    changes = [c for i, v in enumerate(x) for c in d.update(v, ref_id=i + 100)]
    assert [c.index for c in changes if c.detector == "adwin"] == adwin_at
    assert [c.index for c in changes if c.detector == "page_hinkley"] == ph_at
    assert adwin_at and ph_at
    # direction and levels: the first change of each is the rise 10 % -> 30 %, the last the fall
    for name in ("adwin", "page_hinkley", "cusum"):
        mine = [c for c in changes if c.detector == name]
        rise = [c for c in mine if 3000 <= c.index < 4000]
        assert rise and rise[0].direction == "up" and rise[0].ref_id == rise[0].index + 100
        assert mine[-1].direction == "down" and mine[-1].index >= 6000
    first = next(c for c in changes if c.detector == "adwin")
    assert first.before == pytest.approx(0.1, abs=0.03) and first.after > first.before


@pytest.mark.parametrize("cut", [1, 2999, 3150, 4500, 8999])
def test_resume_from_json_state_equals_one_run(cut: int) -> None:
    x = _stream(1)
    one = StreamDetectors(DetectorSettings(), mean=0.1, std=0.3)
    whole = [c.to_dict() for v in x for c in one.update(v)]
    first = StreamDetectors(DetectorSettings(), mean=0.1, std=0.3)
    part = [c.to_dict() for v in x[:cut] for c in first.update(v)]
    state = json.loads(json.dumps(first.state()))  # through JSON, as the store keeps it
    second = StreamDetectors(DetectorSettings(), mean=0.1, std=0.3)
    assert second.restore(state)
    part += [c.to_dict() for v in x[cut:] for c in second.update(v)]
    assert part == whole
    assert second.state() == one.state()


def test_bad_or_foreign_state_starts_fresh() -> None:
    d = StreamDetectors(DetectorSettings())
    for v in _stream()[:500]:
        d.update(v)
    good = json.loads(json.dumps(d.state()))
    assert not StreamDetectors(DetectorSettings(cusum_h=4.0)).restore(good)  # other settings
    for broken in ({**good, "adwin_history": "not base64!"}, {**good, "ph": {"n": 1}}, {**good, "cusum": {}},
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
