"""The per-request validator compiled from a contract: a catalogue of malformed rows, each of
which must be rejected naming the right row and field, and of suspicious rows that must pass
flagged."""

from __future__ import annotations

import time

import numpy as np
import pytest

from serein.data.contract import Contract
from serein.serve.validation import MAX_PROBLEMS, RequestInvalid, RowValidator

CONTRACT = Contract.from_dict({
    "unknown_fields": "reject",
    "columns": {
        "age": {"type": "integer", "nullable": False, "min": 18, "max": 90},
        "income": {"type": "float", "non_negative": True},
        "purpose": {"type": "string", "allowed": ["car", "home"], "unseen": "flag"},
        "region": {"type": "string", "allowed": ["north", "south"], "unseen": "reject"},
        "code": {"type": "string", "regex": r"[A-Z]{2}\d{3}$"},
        "active": {"type": "boolean"},
        "seen_at": {"type": "datetime"},
    },
    "rules": [{"name": "income_below_cap", "left": "income", "op": "<=", "right": 1_000_000}],
})
GOOD = {"age": 30, "income": 52000.5, "purpose": "car", "region": "north", "code": "AB123",
        "active": True, "seen_at": "2026-11-01T12:00:00Z"}


@pytest.fixture(scope="module")
def validator() -> RowValidator:
    return RowValidator(CONTRACT)


def only_problem(validator: RowValidator, row: object) -> dict:
    with pytest.raises(RequestInvalid) as caught:
        validator.validate([GOOD, row])
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0]["row"] == 1
    return problems[0]


def test_good_rows_come_out_column_wise(validator: RowValidator) -> None:
    batch = validator.validate([GOOD, {**GOOD, "age": 41.0, "income": 7, "active": None}])
    assert batch.n_rows == 2 and batch.flags == []
    assert batch.columns["age"].tolist() == [30, 41] and batch.columns["age"].dtype == np.int64
    assert batch.columns["income"].tolist() == [52000.5, 7.0] and batch.columns["income"].dtype == np.float64
    assert batch.columns["active"] == [True, None]
    assert batch.columns["seen_at"][0].isoformat() == "2026-11-01T12:00:00+00:00"
    assert list(batch.columns) == list(CONTRACT.columns)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("income", "1.5", "expected a number, got a string"),
        ("income", True, "expected a number, got a boolean"),
        ("age", False, "expected an integer, got a boolean"),
        ("age", "30", "expected an integer, got a string"),
        ("age", 30.5, "expected an integer, got a number with a fraction"),
        ("age", 2**64 - 1, "expected an integer within the 64-bit range"),
        ("age", 1e30, "expected an integer within the 64-bit range"),
        ("age", float("nan"), "expected an integer, got NaN or Infinity"),
        ("income", float("nan"), "expected a finite number, got NaN or Infinity"),
        ("income", float("inf"), "expected a finite number, got NaN or Infinity"),
        ("income", {"value": 1}, "expected a number, got an object"),
        ("income", [1.0], "expected a number, got a list"),
        ("purpose", 3, "expected a string, got an integer"),
        ("active", 1, "expected a boolean, got an integer"),
        ("active", "true", "expected a boolean, got a string"),
        ("seen_at", "yesterday", "expected an ISO 8601 date-time string"),
        ("seen_at", 1700000000, "expected an ISO 8601 date-time string, got an integer"),
        ("age", None, "null is not allowed (the column is not nullable)"),
        ("region", "west", "category not in the contract (2 allowed values)"),
        ("code", "ab123", "does not match the pattern"),
    ],
)
def test_malformed_value_is_rejected_naming_its_field(validator: RowValidator, field: str, value: object,
                                                      expected: str) -> None:
    problem = only_problem(validator, {**GOOD, field: value})
    assert problem["field"] == field
    assert problem["problem"].startswith(expected)


def test_missing_field_is_rejected_even_when_nullable(validator: RowValidator) -> None:
    row = {k: v for k, v in GOOD.items() if k != "income"}
    assert only_problem(validator, row) == {"row": 1, "field": "income", "problem": "required field is missing"}


def test_unknown_field_rejected_or_ignored_by_policy(validator: RowValidator) -> None:
    problem = only_problem(validator, {**GOOD, "zip": "69001"})
    assert problem["field"] == "zip" and problem["problem"].startswith("unknown field")
    lenient = RowValidator(Contract.from_dict({**CONTRACT.to_dict(), "unknown_fields": "ignore"}))
    assert lenient.validate([{**GOOD, "zip": "69001"}]).columns.keys() == CONTRACT.columns.keys()


def test_non_object_row_is_rejected(validator: RowValidator) -> None:
    problem = only_problem(validator, [30, 52000.5])
    assert problem["field"] is None and problem["problem"] == "expected an object of feature values, got a list"
    assert only_problem(validator, None)["problem"] == "expected an object of feature values, got null"


def test_suspicious_values_pass_flagged(validator: RowValidator) -> None:
    rows = [GOOD, {**GOOD, "age": 95, "income": -3.0, "purpose": "crypto"}, {**GOOD, "income": 2e6}]
    batch = validator.validate(rows)
    assert batch.columns["purpose"] == ["car", "crypto", "car"]
    assert [(f["row"], f["field"]) for f in batch.flags] == [
        (1, "age"), (1, "income"), (1, "purpose"), (2, "income")]
    messages = [f["problem"] for f in batch.flags]
    assert messages[0] == "above the contract maximum 90"
    assert messages[1].startswith("negative")
    assert messages[2].startswith("unseen category")
    assert "income_below_cap" in messages[3]


def test_problems_are_capped_and_never_echo_values(validator: RowValidator) -> None:
    secret = "s3cr3t-value-that-must-not-come-back"
    rows = [{**GOOD, "income": secret, "region": secret, "code": secret} for _ in range(50)]
    with pytest.raises(RequestInvalid) as caught:
        validator.validate(rows)
    problems = caught.value.problems
    assert len(problems) == MAX_PROBLEMS
    assert secret not in repr(problems) and secret not in str(caught.value)
    assert caught.value.message.startswith("20+ problem(s) in the instances (details list the first 20), "
                                           "first at row 0, field 'income'")


def test_long_unknown_field_name_is_shortened(validator: RowValidator) -> None:
    problem = only_problem(validator, {**GOOD, "x" * 5000: 1})
    assert len(problem["field"]) < 80


def test_example_columns_hold_one_typed_value_per_feature(validator: RowValidator) -> None:
    columns = validator.example_columns()
    assert list(columns) == list(CONTRACT.columns)
    assert columns["age"].tolist() == [18] and columns["region"] == ["north"] and columns["active"] == [False]


def test_costs_microseconds_per_row(validator: RowValidator) -> None:
    rows = [dict(GOOD) for _ in range(2000)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        validator.validate(rows)
        best = min(best, time.perf_counter() - start)
    per_row_us = best / len(rows) * 1e6
    assert per_row_us < 50, f"{per_row_us:.1f} µs per row"


# (field, value, the problem it must be reported with) for rows built from GOOD
CORRUPTIONS = [
    ("age", "30", "expected an integer, got a string"),
    ("age", 30.5, "expected an integer, got a number with a fraction"),
    ("age", None, "null is not allowed (the column is not nullable)"),
    ("income", True, "expected a number, got a boolean"),
    ("income", float("inf"), "expected a finite number, got NaN or Infinity"),
    ("region", "west", "category not in the contract (2 allowed values)"),
    ("code", "ab123", "does not match the pattern '[A-Z]{2}\\\\d{3}$'"),
    ("active", 1, "expected a boolean, got an integer"),
]


@pytest.mark.parametrize("seed", range(6))
def test_problems_come_in_row_then_contract_order_whatever_the_mix(validator: RowValidator, seed: int) -> None:
    """Random corruptions, several per row and in any column: the problems listed are exactly the
    injected ones, ordered by row and then contract order, cut at MAX_PROBLEMS."""
    rng = np.random.default_rng(seed)
    n_rows = int(rng.integers(1, 40))
    rows, expected = [], []
    order = list(CONTRACT.columns)
    for i in range(n_rows):
        row = dict(GOOD)
        picked = sorted({int(k) for k in rng.integers(0, len(CORRUPTIONS), size=int(rng.integers(0, 3)))})
        injected = {}
        for k in picked:
            field, value, problem = CORRUPTIONS[k]
            row[field], injected[field] = value, problem
        if rng.random() < 0.1:
            del row["seen_at"]
            injected["seen_at"] = "required field is missing"
        expected += [{"row": i, "field": f, "problem": injected[f]} for f in order if f in injected]
        rows.append(row)
    if not expected:
        assert validator.validate(rows).n_rows == n_rows
        return
    with pytest.raises(RequestInvalid) as caught:
        validator.validate(rows)
    assert caught.value.problems == expected[:MAX_PROBLEMS]
    if len(expected) >= MAX_PROBLEMS:
        last = expected[MAX_PROBLEMS - 1]["row"]
        more = sum(p["row"] <= last for p in expected) > MAX_PROBLEMS or last + 1 < n_rows
        assert ("+ problem(s)" in caught.value.message) is more


def test_nulls_become_nan_and_pass_range_checks_and_rules() -> None:
    contract = Contract.from_dict({"columns": {
        "n": {"type": "integer", "min": 0}, "x": {"type": "float", "max": 1.0},
        "y": {"type": "float"}, "c": {"type": "string", "allowed": ["a"], "unseen": "flag"}},
        "rules": [{"name": "x_below_y", "left": "x", "op": "<", "right": "y"}]})
    batch = RowValidator(contract).validate([
        {"n": None, "x": None, "y": 1.0, "c": None},
        {"n": -2, "x": 3, "y": 2.5, "c": "b"},
        {"n": 4, "x": 0.5, "y": None, "c": "a"},
        {"n": 1.0, "x": 0.9, "y": 0.1, "c": "a"},
    ])
    assert batch.columns["n"].dtype == np.float64 and np.isnan(batch.columns["n"][0])
    assert batch.columns["n"][1:].tolist() == [-2.0, 4.0, 1.0]
    assert batch.columns["x"][1] == 3.0 and np.isnan(batch.columns["y"][2])
    assert [(f["row"], f["field"], f["problem"].split(" (")[0]) for f in batch.flags] == [
        (1, "n", "below the contract minimum 0"),
        (1, "x", "above the contract maximum 1"),
        (1, "c", "unseen category"),
        (1, "x", "breaks the contract rule 'x_below_y'"),
        (3, "x", "breaks the contract rule 'x_below_y'"),
    ]


def test_integers_beyond_exact_floats_keep_their_value_or_are_refused() -> None:
    v = RowValidator(Contract.from_dict({"columns": {"n": {"type": "integer"}, "x": {"type": "float"}}}))
    big = 2**62 + 1
    assert v.validate([{"n": big, "x": 1}]).columns["n"].tolist() == [big]
    with pytest.raises(RequestInvalid) as caught:
        v.validate([{"n": 2**63, "x": 10**400}])
    assert [p["problem"] for p in caught.value.problems] == [
        "expected an integer within the 64-bit range", "expected a number within the 64-bit floating-point range"]
