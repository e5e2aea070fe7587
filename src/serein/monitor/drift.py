"""Drift of a window of data against a reference profile, feature by feature.

Decisions rest on *distances* with fixed thresholds, not on p-values: on 100k rows a test rejects
a 0.02σ shift nobody cares about, while a distance stays as small as the shift. Each distance also
has a *noise floor*, its 99.9th percentile when nothing changed, which grows as the window shrinks;
the threshold used is ``max(threshold, noise floor)``, so small windows need a larger change to
fire and large windows fire on the documented threshold alone. Below ``min_count`` non-missing
values a feature gets no verdict (``status: "insufficient"``).

Numeric features (on the reference's quantile bins, see ``serein.monitor.profile``):

- PSI, population stability index, ``Σ (c_i - r_i) ln(c_i / r_i)`` over bin proportions smoothed
  by half a count per bin: drift at 0.2, warning at 0.1 (the usual credit-scoring bands). Noise
  floor ``χ²_{k-1}(0.999) · (1/n_ref + 1/n_cur)``: PSI is a symmetrised KL divergence, whose null
  distribution is that of a chi-square statistic scaled by the sample sizes.
- Normalised Wasserstein distance: W1 between the reference's and the window's mid-point quantile
  functions, divided by the reference standard deviation; drift at 0.1 (a tenth of a σ moved on
  average). Noise floor ``4 · sqrt(1/n_ref + 1/n_cur)`` (simulated 99.9th percentile ≈ 3.5 for
  normal and lognormal data).

Categorical features (on the reference's top categories, ``__other__`` and ``__unseen__``):

- Jensen–Shannon distance, base 2 (in [0, 1]): drift at 0.1. Noise floor
  ``sqrt(χ²_{k-1}(0.999) · (1/n_ref + 1/n_cur) / (8 ln 2))`` (the JS divergence is about an eighth
  of a chi-square statistic).
- PSI as for numeric features.
- Unseen categories: share of the window's values not among the reference's categories; drift at
  1 % when at least 5 such values were seen (a single typo does not fire). When the reference kept
  only its top categories the rate is an upper bound and marked ``approximate``.

Every feature: missing-rate change, drift when the absolute change is at least 0.05 *and* a
two-proportion test (Fisher's exact) gives p < 0.001 (so a tiny window whose 2 of 10 values are
missing does not fire). A feature that drifted on its missing rate alone (its values' distribution
did not, or had too few values to judge) has ``method`` ``missing_rate``, ``score`` the absolute
change and ``threshold`` ``missing_change``: the fields name what decided the verdict, as a test's
do on a small window, and a drifted feature's score is past its threshold whatever decided it.

Small windows (fewer than ``test_below`` = 1,000 non-missing values) are judged by tests instead
of distances. Below 1,000 values the Wasserstein noise floor ``4·sqrt(1/n)`` is above 0.12, more
than its 0.1 threshold, and the PSI and JS floors approach theirs: the distances can no longer
see the shifts their thresholds name, while a test's p-value still accounts for the sample size.
(Above it, the reverse holds: a test flags shifts nobody cares about.) Then:

- numeric — two-sample Kolmogorov–Smirnov (``scipy.stats.ks_2samp``) of the window against the
  reference sample kept in the profile (``serein.monitor.profile.SAMPLE_SIZE`` rows; profiles
  without one use the 100 mid-point quantiles, a conservative stand-in);
- categorical — chi² test of homogeneity (``scipy.stats.chi2_contingency``) of the reference's
  and the window's counts over the categories seen on either side (``__unseen__`` included).

The p-values of one run are corrected for the number of features tested: Bonferroni by default
(``p_correction: bonferroni``: the chance of *any* false alarm in a run stays below
``test_alpha`` = 0.01), or Benjamini–Hochberg (``p_correction: bh``: the expected share of false
alarms among the flagged features stays below ``test_alpha``). The outputs' parts (predicted
classes and scores) form their own family. A feature judged by a test has ``test`` and ``method``
``ks`` or ``chi2``, ``score`` the corrected p-value and ``threshold`` ``test_alpha``: it drifts when
the score is *below* the threshold (``direction: "below"``); the distances are still reported.

>>> round(psi([50, 50], [60, 40], alpha=0), 4)
0.0405
>>> round(js_distance([1, 0], [0, 1]), 3)
1.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serein.column_stats import numeric_summary
from serein.errors import UsageError
from serein.monitor.gamma import chi2_upper_quantile
from serein.monitor.profile import OTHER, UNSEEN, category_counts, column_names, mid_levels, numeric_values

SMOOTHING = 0.5  # pseudo-count added to every bin before PSI
MISSING_RATE = "missing_rate"  # the method of a verdict the missing rate alone decided
FISHER_TIE = 1e-7  # relative difference under which two tables' probabilities count as equal
CORRECTIONS = ("bonferroni", "bh")


@dataclass(frozen=True)
class Thresholds:
    """The drift thresholds, overridable in ``serein.yaml`` under ``monitor.thresholds``."""

    psi: float = 0.2
    psi_warning: float = 0.1
    wasserstein: float = 0.1
    js: float = 0.1
    unseen_rate: float = 0.01
    unseen_min_count: int = 5
    missing_change: float = 0.05
    missing_p_value: float = 0.001
    min_count: int = 50
    test_below: int = 1000
    test_alpha: float = 0.01
    p_correction: str = "bonferroni"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Thresholds:
        """Thresholds from a mapping; unknown keys and non-numbers are named in a UsageError."""
        config = dict(config or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise UsageError(f"monitor.thresholds: unknown key(s) {', '.join(unknown)}",
                             hint=f"known keys are {', '.join(known)}")
        values: dict[str, Any] = {}
        for key, value in config.items():
            if key == "p_correction":
                if value not in CORRECTIONS:
                    raise UsageError(f"monitor.thresholds.p_correction must be one of {', '.join(CORRECTIONS)}, got {value!r}")
                values[key] = value
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"monitor.thresholds.{key} must be a non-negative number, got {value!r}")
            values[key] = int(value) if key.endswith(("count", "below")) else float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- distances -----------------------------------------------------------------------------
def _proportions(counts: Sequence[float], alpha: float) -> np.ndarray:
    c = np.asarray(counts, dtype=float) + alpha
    return c / c.sum()


def psi(ref_counts: Sequence[float], cur_counts: Sequence[float], alpha: float = SMOOTHING) -> float:
    """Population stability index of two count vectors over the same bins, each bin smoothed by
    ``alpha`` counts (so an empty bin on one side gives a large but finite term). Bins empty on
    both sides are left out: they say nothing, and smoothing them would only add noise."""
    ref_arr, cur_arr = np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)
    used = (ref_arr + cur_arr) > 0
    r, c = _proportions(ref_arr[used], alpha), _proportions(cur_arr[used], alpha)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> float:
    """Jensen–Shannon distance, base 2, of two count vectors (no smoothing needed: 0 log 0 = 0).
    Equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p, q = _proportions(ref_counts, 0.0), _proportions(cur_counts, 0.0)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.0, 0.5 * kl(p) + 0.5 * kl(q)))


def wasserstein_normalised(ref_quantiles: Sequence[float], cur_quantiles: Sequence[float], ref_std: float) -> float:
    """W1 from two sets of quantiles at the same mid-point levels (the mean absolute difference of
    the quantile functions), divided by ``ref_std`` (a constant column gives 0 unless it moved)."""
    w = float(np.mean(np.abs(np.asarray(cur_quantiles) - np.asarray(ref_quantiles))))
    if ref_std and ref_std > 0:
        return w / ref_std
    return 0.0 if w == 0 else math.inf


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value that ``x1/n1`` and ``x2/n2`` are the same proportion: Fisher's exact test
    (unlike the z-test it stays honest for a handful of rows or a rare event), i.e. the total
    hypergeometric probability of the tables with the same margins that are no more likely than
    the observed one. That is ``scipy.stats.fisher_exact``'s two-sided p-value, summed here over
    the support with numpy (each probability from the previous one by the hypergeometric ratio):
    every run tests every feature's missing rate, and importing ``scipy.stats`` alone cost a
    monitoring run seconds (``scipy.special`` a tenth of one).

    >>> two_proportion_p(2, 100, 2, 10) < 0.05, two_proportion_p(1, 10, 1, 10)
    (True, 1.0)
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    total = x1 + x2  # the tables' first-column margin
    k = np.arange(max(0, total - n2), min(total, n1) + 1)
    # log P(k) from the first table's by the hypergeometric ratio P(k+1)/P(k), summed up
    j = k[:-1].astype(float)
    ratios = np.log((n1 - j) * (total - j) / ((j + 1.0) * (n2 - total + j + 1.0)))
    log_p = _log_choose(n1, int(k[0])) + _log_choose(n2, total - int(k[0])) - _log_choose(n1 + n2, total) \
        + np.concatenate(([0.0], np.cumsum(ratios)))
    # tables as likely as the observed one count too; the tolerance absorbs the sums' rounding
    as_extreme = log_p <= log_p[x1 - k[0]] + FISHER_TIE
    return float(min(1.0, np.exp(log_p[as_extreme]).sum()))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


# -- tests for small windows ---------------------------------------------------------------
def ks_test(ref_sample: Sequence[float], x: np.ndarray) -> tuple[float, float]:
    """``(statistic, p-value)`` of the two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``)."""
    from scipy.stats import ks_2samp

    ref = np.asarray([v for v in ref_sample if v is not None], dtype=float)
    ref = ref[~np.isnan(ref)]
    if ref.size == 0 or x.size == 0:
        return 0.0, 1.0
    res = ks_2samp(ref, x)
    return float(res.statistic), float(res.pvalue)


def chi2_test(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> tuple[float, float]:
    """``(statistic, p-value)`` of the chi² test of homogeneity of two count vectors over the same
    categories (``scipy.stats.chi2_contingency``; categories empty on both sides left out).

    >>> round(chi2_test([50, 50], [50, 50])[1], 3)
    1.0
    """
    from scipy.stats import chi2_contingency

    table = np.array([ref_counts, cur_counts], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    res = chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def correct_p_values(p_values: Sequence[float], method: str = "bonferroni") -> list[float]:
    """p-values adjusted for testing them together: ``bonferroni`` (``min(1, m·p)``) or ``bh``
    (Benjamini–Hochberg step-up adjusted p-values, as ``scipy.stats.false_discovery_control``).

    >>> correct_p_values([0.01, 0.04], "bonferroni")
    [0.02, 0.08]
    >>> correct_p_values([0.01, 0.04, 0.03], "bh")
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    if method == "bonferroni":
        return [float(v) for v in np.minimum(1.0, p * m)]
    if method != "bh":
        raise UsageError(f"unknown p-value correction {method!r}", hint=f"use one of {', '.join(CORRECTIONS)}")
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return [round(float(v), 15) for v in out]


def correct_tests(results: Mapping[str, dict[str, Any]], t: Thresholds = Thresholds()) -> None:
    """Correct the p-values of the results judged by a test (``test`` ``ks`` or ``chi2``) for
    their number, in place, and redo their verdicts at ``t.test_alpha``, with the checks that stay
    valid on small windows (``_window_checks``). When one of those decided without the test,
    ``method``, ``score`` and ``threshold`` name it, as ``_verdict`` does."""
    tested = [r for r in results.values() if r.get("test") is not None and r.get("p_value") is not None]
    for r, adjusted in zip(tested, correct_p_values([r["p_value"] for r in tested], t.p_correction)):
        test = r["test"]
        r.update(method=test, p_adjusted=adjusted, score=adjusted, threshold=t.test_alpha, direction="below")
        fired = [(name, value, threshold) for name, value, threshold in _window_checks(r, t) if value >= threshold]
        reasons = [f"{name} {value:.3g} >= {threshold:.3g}" for name, value, threshold in fired]
        if adjusted < t.test_alpha:
            reasons.insert(0, f"{test} p {adjusted:.3g} < {t.test_alpha:.3g} ({t.p_correction}, {len(tested)} tested)")
        elif fired:
            name, value, threshold = fired[0]
            r.update(method=name.replace(" ", "_"), score=value, threshold=threshold)
            del r["direction"]  # a rate drifts above its threshold
        _missing_verdict(r, reasons, t)
        r["status"] = "drift" if r["drifted"] else "ok"


def _window_checks(out: Mapping[str, Any], t: Thresholds) -> list[tuple[str, float, float]]:
    """The (name, value, threshold) checks of a feature's result besides its distances that stay
    valid on a small window: the unseen-category rate, once enough such values were seen (and
    the reference kept every category, or the rate would only be an upper bound)."""
    if out.get("unseen_approximate") is False and out["unseen_count"] >= t.unseen_min_count:
        return [("unseen rate", out["unseen_rate"], t.unseen_rate)]
    return []


def _use_test(out: dict[str, Any], method: str, statistic: float, p_value: float, t: Thresholds) -> None:
    """Make a small window's verdict rest on a test (and ``_window_checks``), corrected later for
    the family by ``correct_tests``."""
    out.update(test=method, statistic=statistic, p_value=p_value)
    correct_tests({"_": out}, t)


# -- noise floors --------------------------------------------------------------------------
def _chi2_999(dof: int) -> float:
    """The 99.9th percentile of χ² with ``dof`` degrees of freedom (``scipy.stats.chi2.ppf(0.999,
    dof)``, to 1e-12; see :func:`serein.monitor.gamma.chi2_upper_quantile`)."""
    return chi2_upper_quantile(0.001, max(dof, 1))


def psi_noise_floor(k: int, n_ref: int, n_cur: int) -> float:
    """99.9th percentile of PSI between two samples of one distribution over ``k`` bins."""
    return _chi2_999(k - 1) * (1 / max(n_ref, 1) + 1 / max(n_cur, 1))


def js_noise_floor(k: int, n_ref: int, n_cur: int) -> float:
    """99.9th percentile of the JS distance (base 2) between two samples of one distribution."""
    return math.sqrt(psi_noise_floor(k, n_ref, n_cur) / (8 * math.log(2)))


def wasserstein_noise_floor(n_ref: int, n_cur: int) -> float:
    """About the 99.9th percentile of the normalised W1 between two samples of one distribution."""
    return 4.0 * math.sqrt(1 / max(n_ref, 1) + 1 / max(n_cur, 1))


# -- per feature ---------------------------------------------------------------------------
def _missing(ref: Mapping[str, Any], n_missing: int, n: int, t: Thresholds) -> dict[str, Any]:
    ref_missing = int(ref.get("n_nulls", 0))
    ref_n = int(ref.get("count", 0))
    rate = n_missing / n if n else 0.0
    change = rate - float(ref.get("null_rate", 0.0))
    p_value = two_proportion_p(ref_missing, ref_n, n_missing, n)
    return {
        "null_rate_ref": float(ref.get("null_rate", 0.0)),
        "null_rate": rate,
        "missing_change": change,
        "missing_p_value": p_value,
        "missing_drift": bool(abs(change) >= t.missing_change and p_value < t.missing_p_value),
    }


def _missing_reason(out: Mapping[str, Any]) -> str:
    return f"missing rate {out['null_rate_ref']:.1%} -> {out['null_rate']:.1%}"


def _missing_verdict(out: dict[str, Any], reasons: list[str], t: Thresholds) -> None:
    """Fill ``reasons`` and ``drifted`` from the distribution's drift ``reasons`` and the
    missing-rate check. When the missing rate alone drifted, ``method``, ``score`` and
    ``threshold`` name it (the absolute change against ``t.missing_change``), so that they say
    why the feature drifted; the distribution's own score stays under its name (``psi``, ``js``,
    ``p_adjusted``)."""
    if out.get("missing_drift") and not reasons:
        out.update(method=MISSING_RATE, score=abs(out["missing_change"]), threshold=t.missing_change)
        out.pop("direction", None)  # a rate change drifts above its threshold, not below
    out["reasons"] = [*reasons, _missing_reason(out)] if out.get("missing_drift") else reasons
    out["drifted"] = bool(out["reasons"])


def _verdict(out: dict[str, Any], checks: list[tuple[str, float, float]], warning: bool,
             t: Thresholds) -> dict[str, Any]:
    """Fill ``reasons``, ``drifted`` and ``status`` from (name, value, threshold) checks, the
    primary one (``method``) first, and the missing-rate check. When another check decided
    without the primary one (the Wasserstein distance, the unseen-category rate, a categorical
    PSI), ``method``, ``score`` and ``threshold`` name the first that did, as for the missing
    rate: they say why the feature drifted (the primary score stays under its own name)."""
    fired = [(name, value, threshold) for name, value, threshold in checks if value >= threshold]
    if fired and fired[0][0] != checks[0][0]:
        name, value, threshold = fired[0]
        out.update(method=name.replace(" ", "_"), score=value, threshold=threshold)
    _missing_verdict(out, [f"{name} {value:.3g} >= {threshold:.3g}" for name, value, threshold in fired], t)
    out["status"] = "drift" if out["drifted"] else ("warning" if warning else "ok")
    return out


def _no_verdict(out: dict[str, Any], status: str, reason: str, t: Thresholds) -> dict[str, Any]:
    """A feature whose distribution cannot be judged (``status`` ``insufficient`` or ``skipped``,
    for ``reason``): only its missing rate can drift."""
    out["score"] = None
    _missing_verdict(out, [], t)
    out.update(status=status, reasons=[reason, *out["reasons"]])
    return out


def _insufficient(out: dict[str, Any], n_values: int, t: Thresholds) -> dict[str, Any] | None:
    if n_values >= t.min_count:
        return None
    reason = f"only {n_values} values (< min_count {t.min_count}): no distribution verdict"
    return _no_verdict(out, "insufficient", reason, t)


def numeric_drift(ref: Mapping[str, Any], values: Any, t: Thresholds = Thresholds(),
                  sample: Sequence[float] | None = None) -> dict[str, Any]:
    """Drift of numeric ``values`` against a numeric feature profile: PSI (primary score) and the
    normalised Wasserstein distance, with the missing-rate check (infinite values count as
    missing, as the profile counts them); below ``t.test_below`` values a KS test against the
    reference ``sample`` (or the profile's quantiles) decides instead."""
    raw = numeric_values(values)
    # infinite values are no measurements either (the contract flags them): missing, as NaN
    summary = numeric_summary(raw, mid_levels(), ref["edges"])
    n_values = summary.count
    ref_n = int(sum(ref["counts"]))
    out: dict[str, Any] = {"kind": "numeric", "method": "psi", "n": int(raw.size),
                           **_missing(ref, raw.size - n_values, raw.size, t)}
    if ref_n == 0:
        out["threshold"] = t.psi
        return _no_verdict(out, "skipped", "the reference has no values", t)
    floor = psi_noise_floor(len(ref["counts"]), ref_n, n_values)
    out["threshold"] = max(t.psi, floor)
    if (done := _insufficient(out, n_values, t)) is not None:
        return done
    counts = summary.counts
    out["score"] = out["psi"] = psi(ref["counts"], counts)
    out["current_counts"] = counts.tolist()
    out["wasserstein"] = wasserstein_normalised(ref["quantiles"], summary.quantiles, ref["std"])
    out["wasserstein_threshold"] = max(t.wasserstein, wasserstein_noise_floor(ref_n, n_values))
    out.update(mean_ref=ref["mean"], mean=summary.mean, std_ref=ref["std"], std=summary.std)
    if n_values < t.test_below:
        x = raw[np.isfinite(raw)]
        _use_test(out, "ks", *ks_test(ref["quantiles"] if sample is None else sample, x), t)
        return out
    return _verdict(out, [("psi", out["psi"], out["threshold"]),
                          ("wasserstein", out["wasserstein"], out["wasserstein_threshold"])],
                    warning=out["psi"] >= max(t.psi_warning, floor), t=t)


def categorical_drift(ref: Mapping[str, Any], values: Any, t: Thresholds = Thresholds()) -> dict[str, Any]:
    """Drift of categorical ``values`` against a categorical feature profile: JS distance (primary
    score), PSI, the unseen-category rate and the missing-rate check."""
    freq, n_missing = category_counts(values)
    n_values = sum(freq.values())
    n_total = n_values + n_missing
    ref_cats: dict[str, int] = dict(ref["categories"])
    names = [*ref_cats, OTHER, UNSEEN]
    ref_counts = np.array([*ref_cats.values(), int(ref.get("other", 0)), 0], dtype=float)
    approximate = int(ref.get("other", 0)) > 0
    out: dict[str, Any] = {"kind": "categorical", "method": "js", "n": int(n_total), **_missing(ref, n_missing, n_total, t)}
    k = int(np.count_nonzero(ref_counts)) + 1
    out["threshold"] = max(t.js, js_noise_floor(k, int(ref_counts.sum()), n_values))
    if (done := _insufficient(out, n_values, t)) is not None:
        return done
    outside = {name: count for name, count in freq.items() if name not in ref_cats}
    unseen_count = sum(outside.values())
    # values outside the kept categories fall in __other__ when the reference had such a bucket
    counts = np.array([*(freq.get(name, 0) for name in ref_cats),
                       unseen_count if approximate else 0, 0 if approximate else unseen_count], dtype=float)
    out["score"] = out["js"] = js_distance(ref_counts, counts)
    out["psi"] = psi(ref_counts, counts)
    floor = psi_noise_floor(k, int(ref_counts.sum()), n_values)
    out["psi_threshold"] = max(t.psi, floor)
    out["current_counts"] = dict(zip(names, counts.astype(int).tolist()))
    out["unseen_count"] = unseen_count
    out["unseen_rate"] = unseen_count / n_values
    out["unseen_examples"] = sorted(outside, key=outside.__getitem__, reverse=True)[:5]
    out["unseen_approximate"] = approximate
    if n_values < t.test_below:
        _use_test(out, "chi2", *chi2_test(ref_counts, counts), t)
        return out
    checks = [("js", out["js"], out["threshold"]), ("psi", out["psi"], out["psi_threshold"]), *_window_checks(out, t)]
    return _verdict(out, checks, warning=out["psi"] >= max(t.psi_warning, floor), t=t)


def feature_drift(ref: Mapping[str, Any], values: Any, t: Thresholds = Thresholds(),
                  sample: Sequence[Any] | None = None) -> dict[str, Any]:
    """Drift of one feature's window ``values`` against its profile (numeric or categorical)."""
    if ref["kind"] == "numeric":
        return numeric_drift(ref, values, t, sample)
    return categorical_drift(ref, values, t)


def _sample(profile: Mapping[str, Any], part: str, name: str | None = None) -> Sequence[Any] | None:
    """The reference sample of a feature (``part`` ``columns``) or of the outputs, if stored."""
    stored = (profile.get("sample") or {}).get(part)
    return stored.get(name) if name is not None and stored is not None else stored


def features_drift(profile: Mapping[str, Any], X: Any, t: Thresholds = Thresholds(),
                   threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Drift of every profiled feature present in ``X`` (a pandas frame or an Arrow table), tests
    corrected together. Features are judged concurrently on ``threads`` threads (default: one per
    core): the work on a column (Arrow conversion, comparisons, counting, sorting a few buckets)
    runs mostly without the GIL."""
    present = set(column_names(X))
    names = [name for name in profile["features"] if name in present]

    def judge(name: str) -> dict[str, Any]:
        return feature_drift(profile["features"][name], X[name], t, _sample(profile, "columns", name))

    with ThreadPoolExecutor(max_workers=max(1, min(len(names), threads or os.cpu_count() or 1))) as pool:
        out = dict(zip(names, pool.map(judge, names)))
    correct_tests(out, t)
    return out


def prediction_drift(ref: Mapping[str, Any], predictions: Any, scores: Any = None,
                     t: Thresholds = Thresholds(), profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Drift of a model's outputs against the profile's prediction distribution: predicted-class
    frequencies and scores for classifiers, predicted values for regressors. ``drifted`` is true
    when any part drifted. ``profile`` (the whole reference profile) supplies the reference
    sample for small windows' tests."""
    profile = profile or {}
    if ref["kind"] == "regression":
        parts = {"values": numeric_drift(ref["values"], predictions, t, _sample(profile, "predictions"))}
    else:
        parts = {"classes": categorical_drift(ref["predicted"], predictions, t)}
        if scores is not None and ref.get("scores") is not None:
            parts["scores"] = numeric_drift(ref["scores"], scores, t, _sample(profile, "scores"))
    correct_tests(parts, t)
    return {"drifted": any(p["drifted"] for p in parts.values()), **parts}


def label_drift(profile: Mapping[str, Any], labels: Any, t: Thresholds = Thresholds()) -> dict[str, Any] | None:
    """Drift of the labels that arrived against the holdout's label distribution (classes as
    categories, regression targets as numbers); None when the profile or the window has none."""
    ref = profile.get("labels")
    if ref is None or labels is None:
        return None
    known = pc.drop_null(labels) if isinstance(labels, pa.ChunkedArray) else [v for v in labels if v is not None]
    if not len(known):
        return None
    if ref["kind"] == "numeric":
        return numeric_drift(ref, known, t, _sample(profile, "labels"))
    return categorical_drift(ref, known, t)
