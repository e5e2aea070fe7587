"""Reference profiles: small, JSON-serialisable, and faithful to the data they summarise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serein.data.contract import Contract
from serein.errors import UsageError
from serein.monitor.profile import SAMPLE_SIZE, build_profile, numeric_profile

CONTRACT = Contract.from_dict({"columns": {
    "age": {"type": "float"}, "term_months": {"type": "integer"}, "purpose": {"type": "string"},
    "income": {"type": "float"}, "applied_at": {"type": "datetime"},
}})


@pytest.fixture(scope="module")
def profile(credit_df: pd.DataFrame) -> dict:
    scores = np.random.default_rng(0).random(len(credit_df))
    return build_profile(credit_df, CONTRACT, "classification", predictions=(scores > 0.5).astype(int),
                         scores=scores, labels=credit_df["default"], classes=[0, 1])


def test_profile_is_small_json_without_rows(profile: dict, credit_df: pd.DataFrame) -> None:
    summaries = {k: v for k, v in profile.items() if k != "sample"}
    assert len(json.dumps(summaries)) < 20_000  # no rows beyond the fixed-size sample
    sample = profile["sample"]
    assert sample["n"] == min(SAMPLE_SIZE, len(credit_df))
    assert all(len(values) == sample["n"] for values in sample["columns"].values())
    assert json.loads(json.dumps(profile)) == profile
    assert set(profile["features"]) == {"age", "term_months", "purpose", "income"}  # datetime skipped
    assert profile["n_rows"] == len(credit_df)


def test_numeric_summary_matches_the_data(profile: dict, credit_df: pd.DataFrame) -> None:
    age = profile["features"]["age"]
    x = credit_df["age"].dropna().to_numpy()
    assert age["null_rate"] == pytest.approx(credit_df["age"].isna().mean())
    assert age["mean"] == pytest.approx(x.mean()) and age["std"] == pytest.approx(x.std(ddof=1))
    assert sum(age["counts"]) == x.size
    assert len(age["counts"]) == len(age["edges"]) + 1 <= 11
    # each decile bin holds about a tenth of the values (ties in rounded ages blur it a bit)
    assert max(age["counts"]) < 0.2 * x.size
    assert np.all(np.diff(age["edges"]) > 0)


def test_tied_values_give_fewer_bins(profile: dict) -> None:
    term = profile["features"]["term_months"]
    assert term["edges"] == [12.0, 24.0, 36.0, 60.0]
    assert term["counts"][-1] == 0  # nothing above the largest term


def test_categories_predictions_labels_and_performance(profile: dict, credit_df: pd.DataFrame) -> None:
    purpose = profile["features"]["purpose"]
    assert purpose["categories"] == credit_df["purpose"].value_counts().to_dict()
    assert purpose["other"] == 0
    pred = profile["prediction"]
    assert pred["classes"] == [0, 1] and set(pred["predicted"]["categories"]) == {"0", "1"}
    assert sum(pred["scores"]["counts"]) == len(credit_df)
    assert profile["labels"]["categories"]["1"] == int(credit_df["default"].sum())
    # random scores: AUC near 0.5, accuracy near 0.5
    assert 0.45 < profile["performance"]["roc_auc"] < 0.55
    assert set(profile["performance"]) == {"accuracy", "f1", "roc_auc", "log_loss", "calibration_error"}


def test_top_k_keeps_the_most_frequent_and_counts_the_rest() -> None:
    values = [f"c{i}" for i in range(60) for _ in range(60 - i)]
    c = Contract.from_dict({"columns": {"c": {"type": "string"}}})
    p = build_profile(pd.DataFrame({"c": values}), c, "regression", predictions=np.zeros(len(values)))
    cats = p["features"]["c"]
    assert len(cats["categories"]) == 50 and "c0" in cats["categories"] and "c59" not in cats["categories"]
    assert cats["other"] == sum(60 - i for i in range(50, 60))
    assert cats["n_categories"] == 60


def test_empty_numeric_column() -> None:
    p = numeric_profile([None, None])
    assert p["null_rate"] == 1.0 and p["edges"] == [] and p["mean"] is None


def test_bad_inputs_are_named() -> None:
    with pytest.raises(UsageError, match="'income'"):
        build_profile(pd.DataFrame({"age": [1.0]}), CONTRACT.select(["age", "income"]), "regression", [1.0])
    with pytest.raises(UsageError, match="predictions has 2 values"):
        build_profile(pd.DataFrame({"age": [1.0]}), CONTRACT.select(["age"]), "regression", [1.0, 2.0])
    with pytest.raises(UsageError, match="unknown task"):
        build_profile(pd.DataFrame({"age": [1.0]}), CONTRACT.select(["age"]), "ranking", [1.0])
