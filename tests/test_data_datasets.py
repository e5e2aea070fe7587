"""Datasets on real Delta tables: versions, time travel, contracts and quarantine."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from serein.data.datasets import DatasetStore
from serein.data.profiling import suggest_contract
from serein.errors import ConflictError, NotFoundError, UsageError, ValidationFailed
from serein.workspace import Workspace


@pytest.fixture
def store(workspace: Workspace) -> DatasetStore:
    return workspace.datasets


def test_versions_history_and_time_travel(store: DatasetStore, credit_df: pd.DataFrame, tmp_path: Path) -> None:
    first, second = credit_df.iloc[:1000], credit_df.iloc[1000:1500]
    path = tmp_path / "first.parquet"
    first.to_parquet(path)
    assert store.ingest(path, "credit").version == 0
    time.sleep(0.05)
    between = datetime.now(timezone.utc)
    time.sleep(0.05)
    assert store.ingest(second, "credit").version == 1
    assert store.ingest(credit_df.iloc[:10], "credit", mode="overwrite").version == 2

    assert [(h["version"], h["rows"], h["added"], h["mode"]) for h in store.history("credit")] == [
        (2, 10, 10, "overwrite"), (1, 1500, 500, "append"), (0, 1000, 1000, "append")]
    assert store.history("credit")[2]["source"] == str(path)
    assert store.list() == [{**store.list()[0], "name": "credit", "version": 2, "rows": 10, "contract": False}]

    v1 = store.load("credit@1")
    assert (v1.name, v1.version, len(v1.frame)) == ("credit", 1, 1500)
    # rows come back in ingest order with their values and UTC timestamps intact
    expected = first.reset_index(drop=True)
    expected["applied_at"] = expected["applied_at"].astype("datetime64[us, UTC]")  # Delta keeps microseconds
    pd.testing.assert_frame_equal(v1.frame.iloc[:1000], expected, check_dtype=False)
    assert str(v1.frame["applied_at"].dtype) == "datetime64[us, UTC]"
    assert store.load("credit@1").content_hash == v1.content_hash  # stable across reads
    assert store.load("credit").version == 2
    assert store.resolve(f"credit@{between.isoformat()}") == ("credit", 0)
    assert store.resolve("credit@2999-01-01T00:00") == ("credit", 2)
    assert list(store.load("credit@0", columns=["age", "region"]).frame.columns) == ["age", "region"]


def test_bad_references_name_what_exists(store: DatasetStore, credit_df: pd.DataFrame) -> None:
    with pytest.raises(NotFoundError, match="no dataset named 'credit'") as info:
        store.load("credit")
    assert "ingest one" in str(info.value)
    store.ingest(credit_df.iloc[:50], "credit")
    with pytest.raises(NotFoundError, match="known datasets: credit"):
        store.load("loans")
    with pytest.raises(NotFoundError, match="from 0 to 0 \\(latest\\)"):
        store.load("credit@99")
    with pytest.raises(NotFoundError, match="did not exist yet"):
        store.load("credit@2020-01-01")
    with pytest.raises(UsageError, match="no column\\(s\\) 'salary'"):
        store.load("credit", columns=["salary"])
    with pytest.raises(UsageError, match="invalid dataset name"):
        store.ingest(credit_df.iloc[:5], "../escape")
    with pytest.raises(UsageError, match="unknown ingest mode 'upsert'"):
        store.ingest(credit_df.iloc[:5], "credit", mode="upsert")
    with pytest.raises(UsageError, match="no rows"):
        store.ingest(credit_df.iloc[:0], "credit")
    assert [h["version"] for h in store.history("credit")] == [0]  # nothing stored was touched


def test_schema_merge_and_type_conflicts(store: DatasetStore) -> None:
    store.ingest(pd.DataFrame({"x": [1.5, 2.5]}), "t")
    store.ingest(pd.DataFrame({"x": [3, 4], "y": ["a", "b"]}), "t")  # int into float, new column
    frame = store.load("t").frame
    assert frame["x"].tolist() == [1.5, 2.5, 3.0, 4.0] and frame["y"].isna().tolist() == [True, True, False, False]
    with pytest.raises(ConflictError, match="column 'x' of dataset 't' is stored as double"):
        store.ingest(pd.DataFrame({"x": ["oops"]}), "t")
    with pytest.raises(UsageError, match="column 'z' mixes value types"):
        store.ingest(pd.DataFrame({"z": [1, "a"]}, dtype=object), "u")
    assert store.load("t").version == 1 and not store.exists("u")


def _batch(credit_df: pd.DataFrame) -> pd.DataFrame:
    """200 rows with four injected problems: rows 3, 7, 11 and 19."""
    batch = credit_df.iloc[2000:2200].reset_index(drop=True).astype({"term_months": object})
    batch.loc[3, "term_months"] = "abc"
    batch.loc[7, "region"] = None
    batch.loc[11, "loan_amount"] = -250.0
    batch.loc[19, "purpose"] = "crypto"
    return batch


def test_contract_quarantines_bad_rows(workspace: Workspace, credit_df: pd.DataFrame) -> None:
    store = workspace.datasets
    store.ingest(credit_df.iloc[:2000], "credit")
    contract = suggest_contract(store.load("credit").frame, dataset="credit")
    contract.columns["purpose"].unseen = "reject"
    contract.save(store.contract_path("credit"))
    assert store.contract("credit") == contract

    result = store.ingest(_batch(credit_df), "credit")
    assert (result.version, result.rows_read, result.accepted, result.quarantined) == (1, 200, 196, 4)
    assert result.accepted + result.quarantined == result.rows_read
    assert store.history("credit")[0]["quarantined"] == 4
    stored = store.load("credit@1").frame
    assert len(stored) == 2196 and stored["term_months"].dtype == "int64"  # cast to the contract type

    q = store.quarantined("credit")
    assert q["_row"].tolist() == [3, 7, 11, 19]
    assert q["_batch_version"].tolist() == [1, 1, 1, 1]
    assert q.loc[0, "term_months"] == "abc"  # kept exactly as it came
    assert q["_reason"].tolist() == [
        "term_months: not an integer (contract type integer)",
        "region: null where the column is not nullable",
        "loan_amount: below the contract minimum 0",
        "purpose: category not in the contract",
    ]
    assert str(q["_ingested_at"].dtype).startswith("datetime64") and set(q["_source"]) == {"DataFrame"}


def test_a_batch_with_no_good_row_writes_no_version(workspace: Workspace, credit_df: pd.DataFrame) -> None:
    store = workspace.datasets
    store.ingest(credit_df.iloc[:500], "credit")
    suggest_contract(credit_df.iloc[:500], dataset="credit").save(store.contract_path("credit"))
    bad = credit_df.iloc[500:520].assign(loan_amount=-1.0)
    with pytest.raises(ValidationFailed, match="all 20 rows .* broke the contract of 'credit'.*loan_amount"):
        store.ingest(bad, "credit")
    assert [h["version"] for h in store.history("credit")] == [0]
    q = store.quarantined("credit")
    assert len(q) == 20 and q["_batch_version"].isna().all()

    with pytest.raises(ValidationFailed, match="'bonus'.*does not know; nothing was written"):
        store.ingest(credit_df.iloc[520:530].assign(bonus=1), "credit")
    assert len(store.quarantined("credit")) == 20


def test_a_partial_batch_is_checked_on_the_columns_it_carries(workspace: Workspace, credit_df: pd.DataFrame) -> None:
    """Labelled traffic carries a model's inputs, not every column: ``partial=True`` accepts it
    (the rest stored as null) but still checks the columns it has; a full ingest refuses it."""
    store = workspace.datasets
    store.ingest(credit_df.iloc[:500], "credit")
    suggest_contract(credit_df.iloc[:500], dataset="credit").save(store.contract_path("credit"))
    traffic = credit_df.iloc[500:520].drop(columns=["region"])
    traffic.loc[traffic.index[:2], "loan_amount"] = -1.0
    with pytest.raises(ValidationFailed, match="region"):
        store.ingest(traffic, "credit")
    result = store.ingest(traffic, "credit", partial=True)
    assert (result.accepted, result.quarantined) == (18, 2)
    stored = store.load("credit").frame
    assert len(stored) == 518 and stored["region"].iloc[500:].isna().all()


def test_listing_ignores_the_quarantine_and_other_folders(workspace: Workspace, credit_df: pd.DataFrame) -> None:
    store = workspace.datasets
    assert store.list() == []
    Path(store.root, "not-a-table").mkdir(parents=True)
    store.ingest(credit_df.iloc[:5], "b")
    store.ingest(credit_df.iloc[:5], "a")
    assert [d["name"] for d in store.list()] == ["a", "b"]
    updated = datetime.fromisoformat(store.list()[0]["updated"])
    assert abs(updated - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_a_csv_batch_keeps_the_leading_zeros_of_a_contract_text_column(workspace: Workspace, tmp_path: Path) -> None:
    """Codes such as "07" in a column the contract holds as text are ingested as "07": CSV type
    inference read them as the number 7, which the contract then flagged as an unseen category."""
    store = workspace.datasets
    first = pd.DataFrame({"branch": ["07", "12", "07", "30"], "amount": [1.5, 2.0, 3.0, 4.5]})
    store.ingest(first, "codes")
    suggest_contract(first, dataset="codes").save(store.contract_path("codes"))
    batch = tmp_path / "batch.csv"
    batch.write_text("branch,amount\n07,2.5\n12,1.0\n")
    result = store.ingest(batch, "codes")
    assert (result.accepted, result.quarantined, result.warnings) == (2, 0, [])
    assert store.load("codes").frame["branch"].tolist() == ["07", "12", "07", "30", "07", "12"]
