"""The bundled demo dataset: loan applications with a default label, over time.

Numeric and categorical columns, missing values, a time column, and (with ``drift=True``) a later
period in which the applicant population and the default mechanism change: incomes fall, credit
scores drop, a new loan purpose appears and defaults rise. The generator is seeded, so the same
arguments give the same rows everywhere.

>>> df = make_credit(1000, seed=1)
>>> df.shape
(1000, 12)
>>> sorted(df["home_ownership"].dropna().unique())
['mortgage', 'own', 'rent']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EMPLOYMENT = ["employed", "self-employed", "unemployed", "retired", "student"]
HOME = ["rent", "own", "mortgage"]
PURPOSE = ["car", "home", "education", "business", "debt_consolidation", "medical"]
REGION = ["north", "south", "east", "west"]
TARGET = "default"
TIME_COLUMN = "applied_at"


def make_credit(
    n: int = 20_000,
    start: str = "2026-01-01",
    days: int = 180,
    drift: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` loan applications spread over ``days`` days from ``start``.

    With ``drift=True`` the rows come from the shifted regime (covariate and concept drift).
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    offsets = np.sort(rng.uniform(0, days * 86400, n))
    applied_at = t0 + pd.to_timedelta(offsets, unit="s")

    age = rng.normal(41, 12, n).clip(18, 90).round().astype(float)
    employment = rng.choice(EMPLOYMENT, n, p=[0.62, 0.14, 0.07, 0.1, 0.07])
    income_scale = np.select(
        [employment == "unemployed", employment == "student", employment == "retired"], [0.35, 0.3, 0.7], 1.0
    )
    income = rng.lognormal(mean=10.7, sigma=0.45, size=n) * income_scale
    home = rng.choice(HOME, n, p=[0.42, 0.2, 0.38])
    purpose_p = [0.3, 0.15, 0.1, 0.12, 0.28, 0.05]
    purpose = rng.choice(PURPOSE, n, p=purpose_p).astype(object)
    region = rng.choice(REGION, n, p=[0.3, 0.25, 0.25, 0.2])
    credit_score = rng.normal(680, 60, n)
    term = rng.choice([12, 24, 36, 60], n, p=[0.15, 0.3, 0.35, 0.2])
    loan_amount = (income * rng.uniform(0.05, 0.6, n)).round(-2)
    open_accounts = rng.poisson(4, n)

    if drift:
        income = income * 0.72
        credit_score = credit_score - 45
        loan_amount = loan_amount * 1.3
        crypto = rng.random(n) < 0.12
        purpose[crypto] = "crypto"

    credit_score = credit_score.clip(300, 850).round()
    dti = (loan_amount / term * 12) / income + rng.normal(0.1, 0.05, n).clip(0, None)

    logit = (
        -1.6
        - 0.012 * (credit_score - 680)
        + 2.2 * (dti - 0.35)
        - 0.015 * (age - 41)
        + np.select([employment == "unemployed", employment == "student"], [1.0, 0.4], 0.0)
        + np.where(home == "own", -0.35, 0.0)
        + 0.015 * (term - 36)
        + np.where(purpose == "business", 0.3, 0.0)
    )
    if drift:
        # Concept drift: the same applicant is riskier, and risk grows with the loan amount.
        logit = logit + 0.6 + np.where(purpose == "crypto", 1.2, 0.0)
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    df = pd.DataFrame(
        {
            TIME_COLUMN: applied_at,
            "age": age,
            "income": income.round(2),
            "employment": employment.astype(object),
            "home_ownership": home.astype(object),
            "purpose": purpose,
            "region": region.astype(object),
            "credit_score": credit_score,
            "term_months": term.astype("int64"),
            "loan_amount": loan_amount,
            "debt_to_income": dti.round(4),
            TARGET: default.astype("int64"),
        }
    )
    # Missing values, as real application forms have them.
    for col, rate in (("age", 0.02), ("income", 0.05), ("employment", 0.03), ("debt_to_income", 0.01)):
        mask = rng.random(n) < rate
        df.loc[mask, col] = None
    return df
