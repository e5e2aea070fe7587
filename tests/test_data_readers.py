"""Reading CSV, Parquet and JSON Lines files, and refusing bad ones with a clear error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from serein.data.hashing import frame_hash
from serein.data.readers import read_table
from serein.errors import NotFoundError, UsageError


@pytest.fixture(scope="module")
def sample(credit_df: pd.DataFrame) -> pd.DataFrame:
    return credit_df.head(200)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".jsonl"])
def test_formats_round_trip(tmp_path: Path, sample: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / f"batch{suffix}"
    if suffix == ".parquet":
        sample.to_parquet(path)
    elif suffix == ".jsonl":
        sample.to_json(path, orient="records", lines=True, date_format="iso", date_unit="us")
    else:
        sample.to_csv(path, index=False)
    df = read_table(path)
    assert list(df.columns) == list(sample.columns)
    assert len(df) == len(sample)
    assert str(df["applied_at"].dtype) == "datetime64[us, UTC]"
    assert (df["applied_at"] == sample["applied_at"].dt.floor("us")).all()
    assert df["age"].isna().sum() == sample["age"].isna().sum()
    assert df["employment"].isna().sum() == sample["employment"].isna().sum()  # empty text is null
    pd.testing.assert_series_equal(df["income"], sample["income"], check_dtype=False)


def test_timezones_become_utc_and_text_dates_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"at": "2026-03-01T12:00:00+01:00", "d": "2026-03-01", "s": "2026-03-01 or so"}\n'
                    '{"at": "2026-03-01T12:00:00Z", "d": null, "s": "x"}\n')
    df = read_table(path)
    assert df["at"].tolist() == [pd.Timestamp("2026-03-01T11:00Z"), pd.Timestamp("2026-03-01T12:00Z")]
    assert str(df["d"].dtype) == "datetime64[us, UTC]" and df["d"].isna().tolist() == [False, True]
    assert df["s"].tolist() == ["2026-03-01 or so", "x"]  # text that is not all dates stays text


def test_a_number_column_with_text_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text("age,city\n31,Lyon\nabc,Oslo\n")
    assert read_table(path)["age"].tolist() == ["31", "abc"]


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("missing.csv", None, NotFoundError, "not found"),
        ("data.xlsx", b"x", UsageError, "unsupported file type"),
        ("empty.csv", b"", UsageError, "is empty"),
        ("header.csv", b"a,b\n", UsageError, "has no rows"),
        ("broken.parquet", b"not parquet at all", UsageError, "not a readable parquet file"),
        ("broken.jsonl", b'{"a": 1}\n{"a": \n', UsageError, "not a readable jsonl file"),
    ],
)
def test_bad_files_are_refused_by_name(tmp_path: Path, name: str, content: bytes | None,
                                       error: type[Exception], message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message) as info:
        read_table(path)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "named", "fix"),
    [
        ("semicolons.csv", "age;city;income\n31;Lyon;1200\n44;Oslo;900\n", "';'", "sep=';'"),
        ("decimal-commas.csv", "age;city;income\n31;Lyon;1200,5\n44;Oslo;900\n", "';'", "decimal=','"),
        ("tabs.csv", "age\tcity\n31\tLyon\n", "'\\t'", "sep='\\t'"),
        ("tabs.csv.gz", "age\tcity\n31\tLyon\n", "'\\t'", "sep='\\t'"),
    ],
)
def test_a_csv_separated_otherwise_than_by_commas_is_refused_naming_its_separator(
        tmp_path: Path, name: str, content: str, named: str, fix: str) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        import gzip

        path.write_bytes(gzip.compress(content.encode()))
    else:
        path.write_text(content)
    with pytest.raises(UsageError) as info:
        read_table(path)
    assert info.value.message.startswith(f"{path} is not comma-separated: its header row is one field")
    assert f"look separated by {named}, not by commas" in info.value.message
    assert fix in info.value.hint


def test_a_one_column_csv_whose_name_holds_a_semicolon_is_read(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text('"note; kept"\na;b\nc\n')
    assert read_table(path)["note; kept"].tolist() == ["a;b", "c"]


def test_frame_hash_covers_every_row_and_ignores_the_index(credit_df: pd.DataFrame) -> None:
    big = credit_df
    assert frame_hash(big) == frame_hash(big.copy().set_axis(range(100, 100 + len(big))))
    changed = big.copy()
    changed.loc[changed.index[-1], "income"] = 1.0  # far beyond the first 10,000 rows' worth
    assert frame_hash(changed) != frame_hash(big)
    assert frame_hash(big.rename(columns={"age": "years"})) != frame_hash(big)
    assert frame_hash(big.astype({"term_months": "float64"})) != frame_hash(big)
