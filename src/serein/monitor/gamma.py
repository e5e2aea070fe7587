"""The chi-square distribution's upper quantile in pure Python: what the drift thresholds' noise
floors need of scipy (``scipy.stats.chi2.ppf``), without importing scipy on every monitoring run.

The regularized upper incomplete gamma function ``Q(a, x)`` is summed by its power series below
``x = a + 1`` and by its continued fraction (modified Lentz) above, both to double precision
(Numerical Recipes, 3rd ed., §6.2); the quantile is found by Newton's method on ``Q`` from the
Wilson–Hilferty approximation, safeguarded by bisection.

>>> round(chi2_upper_quantile(0.05, 1), 6)   # the familiar 3.841459
3.841459
>>> round(upper_gamma(1.0, 2.0), 12) == round(math.exp(-2.0), 12)
True
"""

from __future__ import annotations

import math

EPS = 1e-16
TINY = 1e-300
MAX_TERMS = 10_000


def _series(a: float, x: float) -> float:
    """The regularized lower incomplete gamma ``P(a, x)`` by its series (converges fast for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(MAX_TERMS):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _continued_fraction(a: float, x: float) -> float:
    """``Q(a, x)`` by its continued fraction (modified Lentz; converges fast for x > a + 1)."""
    b = x + 1.0 - a
    c = 1.0 / TINY
    d = 1.0 / b
    h = d
    for i in range(1, MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = TINY if abs(d) < TINY else d
        c = b + an / c
        c = TINY if abs(c) < TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def upper_gamma(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function ``Q(a, x) = Γ(a, x) / Γ(a)`` (``scipy.special.gammaincc``)."""
    if x <= 0:
        return 1.0
    return 1.0 - _series(a, x) if x < a + 1.0 else _continued_fraction(a, x)


def chi2_upper_quantile(p: float, dof: float) -> float:
    """The ``x`` with ``P(χ²_dof > x) = p`` (``scipy.special.chdtri(dof, p)``, i.e.
    ``scipy.stats.chi2.ppf(1 - p, dof)``), for 0 < p < 1 and dof > 0."""
    if not (0.0 < p < 1.0) or dof <= 0:
        raise ValueError(f"need 0 < p < 1 and dof > 0, got p={p!r}, dof={dof!r}")
    a = dof / 2.0
    z = _normal_upper_quantile(p)
    x = max(dof * (1.0 - 2.0 / (9.0 * dof) + z * math.sqrt(2.0 / (9.0 * dof))) ** 3, 1e-8)  # Wilson–Hilferty
    low, high = 0.0, math.inf  # Q decreases in x: Q(low) > p > Q(high)
    for _ in range(200):
        excess = upper_gamma(a, x / 2.0) - p
        if excess > 0:
            low = x
        else:
            high = x
        density = math.exp((a - 1.0) * math.log(x / 2.0) - x / 2.0 - math.lgamma(a)) / 2.0  # -dQ/dx
        step = excess / density if density > 0 else math.inf
        candidate = x + step
        if not (low < candidate < high):  # Newton left the bracket: bisect (or double) instead
            candidate = (low + high) / 2.0 if math.isfinite(high) else 2.0 * x
        if abs(candidate - x) <= 1e-15 * x:
            return candidate
        x = candidate
    return x


def _normal_upper_quantile(p: float) -> float:
    """An approximate standard normal upper quantile (Abramowitz & Stegun 26.2.23, |error| < 4.5e-4):
    only the starting point of the Newton iteration above."""
    q = min(p, 1.0 - p)
    t = math.sqrt(-2.0 * math.log(q))
    z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t ** 3)
    return z if p <= 0.5 else -z
