"""``serein data ...`` end to end, in real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def _serein(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serein", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _json(done: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ws_dir(tmp_path_factory: pytest.TempPathFactory, credit_df: pd.DataFrame) -> Path:
    root = tmp_path_factory.mktemp("cli")
    assert _serein("init", str(root), cwd=root).returncode == 0
    credit_df.iloc[:1500].to_csv(root / "jan.csv", index=False)
    batch = credit_df.iloc[1500:1600].reset_index(drop=True).astype({"credit_score": object})
    batch.loc[5, "credit_score"] = "abc"
    batch.loc[9, "loan_amount"] = -10.0
    batch.to_json(root / "feb.jsonl", orient="records", lines=True, date_format="iso")
    return root


def test_ingest_profile_and_check(ws_dir: Path) -> None:
    done = _serein("data", "ingest", "jan.csv", "--name", "credit", "--json", cwd=ws_dir)
    assert done.returncode == 0, done.stderr
    assert _json(done) | {"failures": []} == {"dataset": "credit", "version": 0, "rows_read": 1500, "accepted": 1500,
                                               "quarantined": 0, "failures": [], "warnings": []}

    done = _serein("data", "profile", "credit", "--write", "contracts/credit.yaml", cwd=ws_dir)
    assert done.returncode == 0 and (ws_dir / "contracts" / "credit.yaml").is_file()
    done = _serein("data", "profile", "credit", "--write", "contracts/credit.yaml", cwd=ws_dir)
    assert done.returncode == 1 and "already exists" in done.stderr  # a reviewed contract is never clobbered

    done = _serein("data", "ingest", "feb.jsonl", "--name", "credit", cwd=ws_dir)
    assert done.returncode == 0, done.stderr
    assert "98 of 100 rows accepted, 2 quarantined" in done.stdout

    listing = _json(_serein("data", "list", "--json", cwd=ws_dir))
    assert [(d["name"], d["version"], d["rows"], d["contract"]) for d in listing["datasets"]] == [("credit", 1, 1598, True)]
    history = _json(_serein("data", "history", "credit", "--json", cwd=ws_dir))
    assert [(v["version"], v["source"], v["quarantined"]) for v in history["versions"]] == [
        (1, "feb.jsonl", 2), (0, "jan.csv", 0)]
    shown = _json(_serein("data", "show", "credit@0", "--head", "2", "--json", cwd=ws_dir))
    assert shown["rows"] == 1500 and len(shown["head"]) == 2 and len(shown["content_hash"]) == 64
    quarantined = _json(_serein("data", "quarantine", "credit", "--json", cwd=ws_dir))
    assert [r["_row"] for r in quarantined["head"]] == [5, 9]

    strict = ws_dir / "strict.yaml"
    strict.write_text("columns:\n  loan_amount: {type: float, max: 1000}\nunknown_fields: ignore\n")
    done = _serein("data", "check", "credit@0", "--contract", str(strict), "--json", cwd=ws_dir)
    assert done.returncode == 1
    report = _json(done)
    assert report["ok"] is False and report["failures"][0]["check"] == "max"
    assert "breaks its contract" in done.stderr and "Traceback" not in done.stderr
    assert _serein("data", "check", "credit", cwd=ws_dir).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "ingest", "jan.csv", "--name", "credit", "--mode", "merge"), "unknown ingest mode 'merge'"),
        (("data", "ingest", "nope.csv", "--name", "credit"), "file nope.csv not found"),
        (("data", "show", "credit@99"), "has no version 99"),
        (("data", "history", "loans"), "no dataset named 'loans'"),
        (("data", "show", "credit@soon"), "neither a version number nor an ISO timestamp"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(ws_dir: Path, args: tuple[str, ...], message: str) -> None:
    done = _serein(*args, cwd=ws_dir)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()) and done.stderr.startswith("error:")  # rich wraps at 80
    assert "Traceback" not in done.stderr
