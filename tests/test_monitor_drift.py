"""Drift statistics against independent computations, and their thresholds on large and small
samples (no-drift controls must stay quiet; real shifts must fire)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import (
    chi2_contingency,
    false_discovery_control,
    ks_2samp,
    wasserstein_distance,
)

from serein.errors import UsageError
from serein.monitor.drift import (
    Thresholds,
    categorical_drift,
    correct_p_values,
    features_drift,
    js_distance,
    label_drift,
    numeric_drift,
    prediction_drift,
    psi,
)
from serein.monitor.profile import (
    categorical_profile,
    numeric_profile,
    prediction_profile,
)

CATS = np.array(["a", "b", "c", "d", "e"])
PROBS = [0.4, 0.3, 0.2, 0.08, 0.02]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture(scope="module")
def normal_ref(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    x = rng.normal(10.0, 2.0, 200_000)
    return x, numeric_profile(x)


def test_psi_hand_worked() -> None:
    # bins 50/50 -> 60/40 without smoothing: 0.1 ln 1.2 + 0.1 ln 1.25
    assert psi([50, 50], [60, 40], alpha=0) == pytest.approx(0.1 * math.log(1.2) + 0.1 * math.log(1.25))
    # an empty reference bin is smoothed by half a count: r = (10.5, 0.5)/11, c = (5.5, 5.5)/11
    expected = (5.5 - 10.5) / 11 * math.log(5.5 / 10.5) + (5.5 - 0.5) / 11 * math.log(5.5 / 0.5)
    assert psi([10, 0], [5, 5]) == pytest.approx(expected)
    # bins empty on both sides are ignored
    assert psi([10, 0, 0], [5, 5, 0]) == pytest.approx(expected)


def test_js_matches_scipy(rng: np.random.Generator) -> None:
    for _ in range(5):
        p, q = rng.integers(0, 50, 6), rng.integers(0, 50, 6)
        assert js_distance(p, q) == pytest.approx(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def test_wasserstein_matches_scipy(rng: np.random.Generator, normal_ref: tuple[np.ndarray, dict]) -> None:
    x, ref = normal_ref
    for cur in (rng.normal(10.6, 2.0, 20_000), rng.normal(10.0, 3.0, 20_000), rng.lognormal(2.3, 0.2, 20_000)):
        exact = wasserstein_distance(x, cur) / x.std(ddof=1)
        assert numeric_drift(ref, cur)["wasserstein"] == pytest.approx(exact, rel=0.03)


def test_no_drift_on_large_samples(rng: np.random.Generator, normal_ref: tuple[np.ndarray, dict]) -> None:
    _, ref = normal_ref
    same = numeric_drift(ref, rng.normal(10.0, 2.0, 200_000))
    assert not same["drifted"] and same["status"] == "ok"
    assert same["psi"] < 0.001 and same["wasserstein"] < 0.01
    tiny = numeric_drift(ref, rng.normal(10.0 + 0.02 * 2.0, 2.0, 100_000))  # a 0.02 sigma shift
    assert not tiny["drifted"], tiny["reasons"]
    cref = categorical_profile(rng.choice(CATS, 200_000, p=PROBS))
    cat = categorical_drift(cref, rng.choice(CATS, 200_000, p=PROBS))
    assert not cat["drifted"] and cat["js"] < 0.01


def test_half_sigma_shift_fires(rng: np.random.Generator, normal_ref: tuple[np.ndarray, dict]) -> None:
    _, ref = normal_ref
    out = numeric_drift(ref, rng.normal(11.0, 2.0, 5_000))
    assert out["drifted"] and out["status"] == "drift"
    assert out["psi"] > 0.2 and out["wasserstein"] == pytest.approx(0.5, abs=0.05)
    assert out["mean"] == pytest.approx(11.0, abs=0.1) and sum(out["current_counts"]) == 5_000


def test_categorical_shift_fires(rng: np.random.Generator) -> None:
    ref_counts = np.array([4000, 3000, 2000, 800, 200])
    ref = categorical_profile(np.repeat(CATS, ref_counts))
    shifted = [0.25, 0.3, 0.3, 0.1, 0.05]
    out = categorical_drift(ref, rng.choice(CATS, 10_000, p=shifted))
    cur = np.array([out["current_counts"][c] for c in CATS])
    assert out["js"] == pytest.approx(jensenshannon(ref_counts / ref_counts.sum(), cur / cur.sum(), base=2))
    assert out["js"] >= 0.1 and out["drifted"] and "js" in out["reasons"][0]


def test_unseen_categories(rng: np.random.Generator) -> None:
    ref = categorical_profile(rng.choice(CATS, 10_000, p=PROBS))
    values = rng.choice(CATS, 2_000, p=PROBS).astype(object)
    values[:60] = "crypto"
    values[60:70] = "zz"
    out = categorical_drift(ref, values)
    assert out["unseen_count"] == 70 and out["unseen_rate"] == pytest.approx(0.035)
    assert out["unseen_examples"] == ["crypto", "zz"]
    assert out["current_counts"]["__unseen__"] == 70
    assert any(r.startswith("unseen rate") for r in out["reasons"])
    few = rng.choice(CATS, 2_000, p=PROBS).astype(object)
    few[:2] = "typo"  # two stray values: recorded, not an alert
    quiet = categorical_drift(ref, few)
    assert quiet["unseen_count"] == 2 and not quiet["drifted"]


def test_missing_rate_change(rng: np.random.Generator) -> None:
    base = rng.normal(size=20_000)
    base[:400] = np.nan
    ref = numeric_profile(base)
    window = rng.normal(size=5_000)
    window[:500] = np.nan  # 2 % -> 10 %
    out = numeric_drift(ref, window)
    assert out["missing_drift"] and out["null_rate"] == pytest.approx(0.1)
    assert out["reasons"] == ["missing rate 2.0% -> 10.0%"]
    small = rng.normal(size=10)
    small[:2] = np.nan  # 20 % missing in 10 rows: not significant
    tiny = numeric_drift(ref, small)
    assert not tiny["missing_drift"] and tiny["status"] == "insufficient" and not tiny["drifted"]


def test_small_windows_widen_thresholds(normal_ref: tuple[np.ndarray, dict]) -> None:
    _, ref = normal_ref
    rng = np.random.default_rng(7)
    distances = Thresholds(test_below=0)  # judge small windows by distances, to check their floors
    small = [numeric_drift(ref, rng.normal(10.0, 2.0, 100), distances) for _ in range(200)]
    assert small[0]["threshold"] > 0.2 and small[0]["wasserstein_threshold"] > 0.3
    assert sum(r["drifted"] for r in small) <= 2  # 99.9 % noise floors: false alarms are rare
    assert numeric_drift(ref, rng.normal(12.0, 2.0, 100), distances)["drifted"]  # a 1 sigma shift still fires


def test_small_numeric_windows_use_ks_against_the_reference_sample(normal_ref: tuple[np.ndarray, dict]) -> None:
    x, ref = normal_ref
    rng = np.random.default_rng(8)
    sample = x[:1000]
    cur = rng.normal(10.5, 2.0, 400)
    out = numeric_drift(ref, cur, sample=sample.tolist())
    expected = ks_2samp(sample, cur)
    assert out["method"] == "ks" and out["direction"] == "below" and out["threshold"] == 0.01
    assert out["statistic"] == pytest.approx(expected.statistic) and out["p_value"] == pytest.approx(expected.pvalue)
    assert out["drifted"] and out["reasons"][0].startswith("ks p ") and "psi" in out  # distances still reported
    quiet = [numeric_drift(ref, rng.normal(10.0, 2.0, 400), sample=sample.tolist()) for _ in range(100)]
    assert sum(q["drifted"] for q in quiet) <= 2  # alpha 0.01
    assert numeric_drift(ref, rng.normal(10.0, 2.0, 5_000), sample=sample.tolist())["method"] == "psi"


def test_small_categorical_windows_use_chi2(rng: np.random.Generator) -> None:
    ref_counts = np.array([4000, 3000, 2000, 800, 200])
    ref = categorical_profile(np.repeat(CATS, ref_counts))
    values = rng.choice(CATS, 300, p=[0.25, 0.3, 0.3, 0.1, 0.05])
    out = categorical_drift(ref, values)
    cur = np.array([out["current_counts"][c] for c in CATS])
    expected = chi2_contingency(np.array([ref_counts, cur]))
    assert out["method"] == "chi2" and out["p_value"] == pytest.approx(expected.pvalue)
    assert out["statistic"] == pytest.approx(expected.statistic) and out["drifted"]
    same = [categorical_drift(ref, rng.choice(CATS, 300, p=ref_counts / ref_counts.sum())) for _ in range(100)]
    assert sum(s["drifted"] for s in same) <= 2


def test_p_value_corrections_match_scipy(rng: np.random.Generator) -> None:
    p = rng.uniform(0, 0.2, 12)
    assert correct_p_values(p.tolist(), "bh") == pytest.approx(false_discovery_control(p).tolist())
    assert correct_p_values(p.tolist(), "bonferroni") == pytest.approx(np.minimum(1, p * 12).tolist())


def test_features_are_corrected_as_a_family(rng: np.random.Generator) -> None:
    """25 unchanged features in 300-row windows: with Bonferroni the family raises a false alarm
    in about 1 % of windows; without correction nearly every window would flag one."""
    import pandas as pd

    names = [f"x{i}" for i in range(25)]
    ref_frame = pd.DataFrame(rng.normal(size=(5_000, 25)), columns=names)
    profile = {"features": {n: numeric_profile(ref_frame[n]) for n in names},
               "sample": {"columns": {n: ref_frame[n].head(1000).tolist() for n in names}}}
    windows = [features_drift(profile, pd.DataFrame(rng.normal(size=(300, 25)), columns=names)) for _ in range(40)]
    flagged = sum(any(f["drifted"] for f in w.values()) for w in windows)
    raw = sum(any(f["p_value"] < 0.01 for f in w.values()) for w in windows)
    assert flagged <= 2 and raw >= 5
    first = windows[0]["x0"]
    assert first["p_adjusted"] == pytest.approx(min(1.0, first["p_value"] * 25))
    shifted = pd.DataFrame(rng.normal(size=(300, 25)), columns=names)
    shifted["x3"] += 0.6
    out = features_drift(profile, shifted)
    assert [n for n, f in out.items() if f["drifted"]] == ["x3"] and "25 tested" in out["x3"]["reasons"][0]


def test_label_drift(rng: np.random.Generator) -> None:
    profile = {"labels": categorical_profile(rng.choice(["0", "1"], 5_000, p=[0.8, 0.2]))}
    assert label_drift(profile, rng.choice([0, 1], 3_000, p=[0.5, 0.5]).tolist())["drifted"]
    assert not label_drift(profile, rng.choice([0, 1], 3_000, p=[0.8, 0.2]).tolist())["drifted"]
    assert label_drift(profile, [None, None]) is None and label_drift({"labels": None}, [1]) is None


def test_prediction_drift(rng: np.random.Generator) -> None:
    scores = rng.beta(2, 5, 20_000)
    ref = prediction_profile("classification", (scores > 0.5).astype(int), scores, classes=[0, 1])
    same = rng.beta(2, 5, 5_000)
    assert not prediction_drift(ref, (same > 0.5).astype(int), same)["drifted"]
    moved = rng.beta(3, 4, 5_000)
    out = prediction_drift(ref, (moved > 0.5).astype(int), moved)
    assert out["drifted"] and out["scores"]["drifted"] and out["classes"]["drifted"]
    reg = prediction_profile("regression", rng.normal(size=5_000))
    assert prediction_drift(reg, rng.normal(1.0, 1.0, 2_000))["values"]["drifted"]


def test_thresholds_from_config() -> None:
    assert Thresholds.from_config({"psi": 0.3, "min_count": 20}) == Thresholds(psi=0.3, min_count=20)
    assert Thresholds.from_config({"p_correction": "bh", "test_below": 500}) == Thresholds(p_correction="bh", test_below=500)
    with pytest.raises(UsageError, match="p_correction must be one of bonferroni, bh"):
        Thresholds.from_config({"p_correction": "holm"})
    with pytest.raises(UsageError, match="unknown key"):
        Thresholds.from_config({"pis": 0.3})
    with pytest.raises(UsageError, match="monitor.thresholds.js"):
        Thresholds.from_config({"js": "high"})


def test_missing_rate_p_value_is_fishers_exact_test() -> None:
    """The missing-rate test, summed over the hypergeometric support, equals
    ``scipy.stats.fisher_exact``'s two-sided p-value: ties, empty cells, tiny and million-row
    samples included."""
    from scipy.stats import fisher_exact

    from serein.monitor.drift import two_proportion_p

    rng = np.random.default_rng(3)
    tables = [(0, 10, 0, 10), (5, 10, 5, 10), (50, 100, 50, 100), (7, 7, 0, 9), (3, 500_000, 0, 1_000_000),
              (0, 500_000, 0, 1_000_000), (20_000, 1_000_000, 20_500, 1_000_000), (10_000, 490_000, 20_100, 979_900)]
    for n1, n2 in rng.integers(1, 400, (200, 2)):
        tables.append((int(rng.integers(0, n1 + 1)), int(n1), int(rng.integers(0, n2 + 1)), int(n2)))
    for x1, n1, x2, n2 in tables:
        expected = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue
        assert two_proportion_p(x1, n1, x2, n2) == pytest.approx(expected, rel=1e-6, abs=1e-300), (x1, n1, x2, n2)


def test_noise_floors_use_the_chi2_quantile() -> None:
    from scipy.stats import chi2

    from serein.monitor.drift import js_noise_floor, psi_noise_floor

    for k in (1, 2, 10, 51, 200):
        q = chi2.ppf(0.999, max(k - 1, 1))
        assert psi_noise_floor(k, 1000, 5000) == pytest.approx(q * (1 / 1000 + 1 / 5000), rel=1e-12)
        assert js_noise_floor(k, 1000, 5000) == pytest.approx(math.sqrt(q * (1 / 1000 + 1 / 5000) / (8 * math.log(2))), rel=1e-12)


def test_infinite_values_count_as_missing_not_as_the_top_bin() -> None:
    """Infinite values are no measurement (the contract's type check flags them): they count as
    missing, and the distances are those of the finite values — they used to fall in the top PSI
    bin and turn the Wasserstein distance, mean and std into NaN (null: no verdict), with numpy
    warnings on stderr."""
    import warnings

    rng = np.random.default_rng(3)
    ref = numeric_profile(rng.normal(size=5000))
    x = rng.normal(size=4000)
    with_inf = x.copy()
    with_inf[::10] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = numeric_drift(ref, with_inf)
    finite = numeric_drift(ref, x[np.isfinite(with_inf)])
    assert out["null_rate"] == pytest.approx(0.1) and out["drifted"] and out["missing_drift"]
    assert out["wasserstein"] == pytest.approx(finite["wasserstein"]) and math.isfinite(out["mean"])
    assert out["psi"] == pytest.approx(finite["psi"])


def test_a_verdict_the_missing_rate_alone_decided_names_it() -> None:
    """A feature whose values kept their distribution but whose missing rate moved drifts with
    ``method`` ``missing_rate``, its score (the absolute change) past its threshold: it used to say
    ``psi`` with a PSI under the threshold (or a test's p-value above alpha on a small window, or
    no score at all below min_count), so neither a reader nor the report's drift ratio could tell
    why it drifted. Tested windows keep their test's name for the family's correction."""
    import pandas as pd

    from serein.monitor.report import drift_ratio

    rng = np.random.default_rng(11)
    base = rng.normal(size=20_000)
    base[:400] = np.nan  # 2 % missing
    ref = numeric_profile(base)
    cats = np.repeat(CATS, [4000, 3000, 2000, 800, 200]).astype(object)
    cat_ref = categorical_profile(cats)
    large, small, tiny = (np.where(np.arange(n) < n // 2, np.nan, rng.normal(size=n)) for n in (5_000, 600, 60))
    cat_values = rng.permutation(cats)[:600]
    cat_values[:300] = None
    verdicts = {"numeric": numeric_drift(ref, large), "ks": numeric_drift(ref, small),
                "insufficient": numeric_drift(ref, tiny), "chi2": categorical_drift(cat_ref, cat_values)}
    for name, out in verdicts.items():
        assert out["drifted"] and out["reasons"][-1].startswith("missing rate"), name
        assert out["method"] == "missing_rate" and out["threshold"] == 0.05, name
        assert out["score"] == pytest.approx(abs(out["missing_change"])) and "direction" not in out, name
        assert drift_ratio(out) >= 1, name
    assert verdicts["numeric"]["psi"] < 0.2 and verdicts["numeric"]["status"] == "drift"
    assert verdicts["ks"]["test"] == "ks" and verdicts["ks"]["p_adjusted"] > 0.01
    assert verdicts["insufficient"]["status"] == "insufficient"
    both = numeric_drift(ref, np.where(np.arange(5_000) < 2_500, np.nan, rng.normal(2.0, 1.0, 5_000)))
    assert both["method"] == "psi" and both["score"] == both["psi"] >= both["threshold"]  # the distribution decided too
    # a family of tested features: each is corrected once per run, whatever decided its verdict
    profile = {"features": {"a": ref, "b": ref}}
    family = features_drift(profile, pd.DataFrame({"a": small, "b": rng.normal(size=600)}))
    assert family["a"]["method"] == "missing_rate" and family["b"]["method"] == "ks"
    assert family["a"]["p_adjusted"] == pytest.approx(min(1.0, 2 * family["a"]["p_value"]))
    assert not family["b"]["drifted"] and family["b"]["direction"] == "below"


def test_a_verdict_another_check_decided_names_it() -> None:
    """A numeric feature whose PSI stays under its threshold but whose Wasserstein distance does
    not (a few values moved far out: the top bin barely grows), and a categorical one drifted by
    its unseen-category rate alone, name the check that decided in ``method``, ``score`` and
    ``threshold``, so the report's drift ratio is at least 1; the primary score keeps its name."""
    from serein.monitor.report import drift_ratio

    rng = np.random.default_rng(3)
    ref = numeric_profile(rng.normal(size=20_000))
    current = rng.normal(size=20_000)
    current[:400] *= 60  # 2 % of the values far out
    out = numeric_drift(ref, current)
    assert out["drifted"] and out["psi"] < 0.2  # PSI's threshold
    assert out["method"] == "wasserstein" and out["score"] == out["wasserstein"] >= out["threshold"]
    assert drift_ratio(out) >= 1 and out["reasons"] == [f"wasserstein {out['wasserstein']:.3g} >= {out['threshold']:.3g}"]

    cats = np.repeat(CATS, [4000, 3000, 2000, 800, 200]).astype(object)
    values = rng.permutation(cats)
    values[:150] = "new"  # 1.5 % of an unseen category
    out = categorical_drift(categorical_profile(cats), values)
    assert out["drifted"] and out["js"] < 0.1 and out["psi"] < out["psi_threshold"]
    assert out["method"] == "unseen_rate" and out["score"] == out["unseen_rate"] >= out["threshold"]
    assert drift_ratio(out) >= 1

    steady = numeric_drift(ref, rng.normal(size=20_000))
    assert not steady["drifted"] and steady["method"] == "psi" and steady["score"] == steady["psi"]


def test_a_small_window_drifted_by_its_unseen_rate_alone_names_it() -> None:
    """A small window is judged by chi2 and the unseen-category rate. When the rate fires and the
    test does not (a small reference: six unseen values among 500 barely move a chi2 over 11
    categories), ``method``, ``score`` and ``threshold`` name the rate; the test's p stays in
    ``p_adjusted``. A window where the test decides keeps ``chi2``."""
    from serein.monitor.report import drift_ratio

    names = [f"c{i}" for i in range(10)]
    ref = categorical_profile(np.repeat(names, 100).astype(object))
    values = np.repeat(names, 50).astype(object)
    values[:6] = "new"
    out = categorical_drift(ref, values)
    assert out["test"] == "chi2" and out["p_adjusted"] >= 0.01, "the test alone would not fire"
    assert out["drifted"] and out["method"] == "unseen_rate" and out["threshold"] == 0.01
    assert out["score"] == out["unseen_rate"] == 6 / 500 and "direction" not in out and drift_ratio(out) >= 1
    assert out["reasons"] == ["unseen rate 0.012 >= 0.01"]

    values[:100] = "c0"  # c0 takes a fifth of the window: the test fires too
    values[:6] = "new"
    out = categorical_drift(ref, values)
    assert out["drifted"] and out["method"] == "chi2" and out["score"] == out["p_adjusted"] < out["threshold"]
    assert out["direction"] == "below" and out["reasons"][0].startswith("chi2 p ")
