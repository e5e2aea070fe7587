"""Contract suggestion (Deequ's rules) and whole-frame validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from serein.data.contract import Contract
from serein.data.profiling import RANGE_MARGIN, suggest_contract, wilson_lower_bound
from serein.data.validation import validate
from serein.errors import UsageError


@pytest.fixture(scope="module")
def contract(credit_df: pd.DataFrame) -> Contract:
    return suggest_contract(credit_df, dataset="credit")


def test_wilson_lower_bound_matches_a_hand_worked_value() -> None:
    # p = 0.9, n = 100, z = 1.96 worked by hand:
    #   z²/2n = 0.019208, p(1-p)/n + z²/4n² = 0.0009 + 0.00009604, sqrt = 0.0315601
    #   (0.9 + 0.019208 - 1.96 * 0.0315601) / (1 + 0.038416) = 0.857350 / 1.038416 = 0.825633
    assert wilson_lower_bound(90, 100) == pytest.approx(0.825633, abs=2e-6)
    assert wilson_lower_bound(100, 100) < 1.0  # even a perfect sample leaves doubt
    assert wilson_lower_bound(9000, 10000) > wilson_lower_bound(90, 100)  # more data, tighter


def test_suggestion_follows_deequs_rules(credit_df: pd.DataFrame, contract: Contract) -> None:
    cols = contract.columns
    assert {n: s.type for n, s in cols.items()} == {
        "applied_at": "datetime", "age": "float", "income": "float", "employment": "string",
        "home_ownership": "string", "purpose": "string", "region": "string", "credit_score": "float",
        "term_months": "integer", "loan_amount": "float", "debt_to_income": "float", "default": "integer",
    }
    assert cols["region"].nullable is False and cols["region"].completeness is None
    present = int(credit_df["income"].notna().sum())
    assert cols["income"].nullable is True
    assert cols["income"].completeness == math.floor(wilson_lower_bound(present, len(credit_df)) * 1e4) / 1e4
    assert cols["income"].completeness < present / len(credit_df)
    assert cols["purpose"].allowed == sorted(credit_df["purpose"].unique()) and cols["purpose"].unseen == "flag"
    assert cols["term_months"].non_negative and cols["term_months"].min == 0 and cols["term_months"].max == 108  # 60 + the span 48
    score = credit_df["credit_score"]
    span = score.max() - score.min()
    assert cols["credit_score"].min <= score.min() - RANGE_MARGIN * span + 1e-9
    assert cols["credit_score"].max >= score.max() + RANGE_MARGIN * span - 1e-9
    assert validate(credit_df, contract).ok  # the reference passes its own contract
    assert Contract.from_yaml(contract.to_yaml()) == contract


def test_identifiers_and_free_text_get_no_category_list() -> None:
    df = pd.DataFrame({"id": [f"u{i}" for i in range(300)], "tier": ["a", "b", "c"] * 100})
    c = suggest_contract(df)
    assert c.columns["id"].allowed is None  # every value a singleton
    assert c.columns["tier"].allowed == ["a", "b", "c"]
    with pytest.raises(UsageError, match="0 rows"):
        suggest_contract(df.head(0))


def _dirty(credit_df: pd.DataFrame) -> pd.DataFrame:
    """Six rows with one injected problem each in rows 1..4 (row 0 and 5 are clean)."""
    df = credit_df.head(6).reset_index(drop=True).astype({"term_months": object, "region": object})
    df = df.assign(age=df["age"].fillna(40.0), employment=df["employment"].fillna("employed"))
    df.loc[1, "term_months"] = "abc"  # not an integer
    df.loc[2, "region"] = None  # null in a non-nullable column
    df.loc[3, "loan_amount"] = -100.0  # negative in a non-negative column
    df.loc[4, "purpose"] = "crypto"  # unseen category
    return df.set_axis([10, 11, 12, 13, 14, 15])  # validation works on positions, not labels


def test_injected_bad_rows_are_found_with_reasons(credit_df: pd.DataFrame, contract: Contract) -> None:
    strict = Contract.from_dict({**contract.to_dict(), "columns": {
        **contract.to_dict()["columns"],
        "purpose": {**contract.to_dict()["columns"]["purpose"], "unseen": "reject"},
    }})
    report = validate(_dirty(credit_df), strict)
    assert not report.ok
    assert report.bad_rows.tolist() == [False, True, True, True, True, False]
    assert report.row_reasons == {
        1: "term_months: not an integer (contract type integer)",
        2: "region: null where the column is not nullable",
        3: "loan_amount: below the contract minimum 0",
        4: "purpose: category not in the contract",
    }
    by_check = {(f["column"], f["check"]): f for f in report.failures}
    assert by_check[("term_months", "type")]["examples"] == ["abc"]
    assert by_check[("purpose", "allowed")]["examples"] == ["crypto"]
    assert by_check[("loan_amount", "min")]["rows"] == [3]
    assert str(report.data["term_months"].dtype) == "Int64"  # cast to the contract type

    flagged = validate(_dirty(credit_df), contract)  # the suggested contract flags unseen categories
    assert flagged.bad_rows.tolist() == [False, True, True, True, False, False]
    assert [(w["column"], w["check"], w["count"]) for w in flagged.warnings] == [("purpose", "unseen", 1)]


def test_rules_regex_missing_unknown_and_completeness() -> None:
    c = Contract.from_dict({
        "columns": {
            "lo": {"type": "float"}, "hi": {"type": "float"},
            "code": {"type": "string", "regex": r"[A-Z]{2}\d+$"},
            "note": {"type": "string", "completeness": 0.9},
            "flag": {"type": "boolean", "nullable": False},
        },
        "rules": [{"name": "ordered", "left": "lo", "op": "<=", "right": "hi"}],
    })
    df = pd.DataFrame({
        "lo": [1.0, 5.0, None, 2.0], "hi": [2.0, 3.0, 1.0, 2.0],
        "code": ["AB1", "ab1", "CD22", None], "note": ["x", None, None, "y"],
        "flag": ["yes", "no", "maybe", True], "extra": [0, 0, 0, 0],
    })
    report = validate(df, c)
    assert report.row_reasons == {
        1: "code: does not match the pattern '[A-Z]{2}\\\\d+$'; rule ordered: lo <= hi broken",
        2: "flag: not a boolean (true/false, yes/no, 1/0) (contract type boolean)",
    }
    checks = {(f["column"], f["check"]): f["count"] for f in report.failures}
    assert checks[("note", "completeness")] == 2 and checks[("extra", "unknown_column")] == 0
    assert report.data["flag"].tolist()[:2] == [True, False]

    absent = validate(df.drop(columns=["note"]), c)  # nullable: read as all null
    assert absent.bad_rows.tolist() == [False, True, True, False]
    assert {(f["column"], f["check"], f["count"]) for f in absent.failures} >= {
        ("note", "missing_column", 4), ("note", "completeness", 4)}
    required = validate(df.drop(columns=["flag"]), c)  # not nullable: no row can be accepted
    assert required.bad_rows.all() and required.row_reasons[0] == "flag: column missing"


def test_validation_is_vectorised(credit_df: pd.DataFrame, contract: Contract) -> None:
    big = pd.concat([credit_df] * 50, ignore_index=True)  # 200k rows
    big.loc[::1000, "loan_amount"] = -1.0
    validate(big.head(100), contract)  # warm up imports
    import time

    start = time.perf_counter()
    report = validate(big, contract)
    elapsed = time.perf_counter() - start
    assert report.n_bad == 200 and np.flatnonzero(report.bad_rows)[:2].tolist() == [0, 1000]
    assert elapsed < 5.0, f"validating 200k rows took {elapsed:.2f}s"
