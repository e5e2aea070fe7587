"""End to end: the fast demo through the real CLI, a real server process and real stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo_summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("demo") / "ws"
    done = subprocess.run(
        [sys.executable, "-m", "serein", "demo", "--fast", "--json", "--workspace", str(root)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_demo_runs_the_whole_loop(demo_summary: dict) -> None:
    s = demo_summary
    assert s["dataset"] == "credit" and s["model"] == "credit-default"
    assert len(s["dataset_versions"]) >= 3  # history, new labelled batch, labelled traffic
    assert len(s["versions"]) >= 2
    assert s["champion_before"] == 1
    assert s["champion_after"] == 2, s["steps"]
    assert s["served_after"] == 2  # the running server hot-swapped
    # every row sent was logged: fast sizes are 300 stable + 700 drifted (+1 probe)
    assert s["predictions_logged"] == 300 + 700 + 1
    assert s["feedback_logged"] > 0


def test_demo_detects_drift_and_alerts(demo_summary: dict) -> None:
    s = demo_summary
    assert s["drifted"], "the drifted window must show drifted features"
    assert any(a["rule"] == "feature_drift" for a in s["alerts"]), s["alerts"]
    quiet = next(x for x in s["steps"] if x["step"] == "monitor")
    assert "none" in quiet["detail"], quiet  # the stable window raised nothing


def test_demo_reports_are_self_contained(demo_summary: dict) -> None:
    assert {"evaluation_v1", "monitor_drift"} <= set(demo_summary["reports"])
    for path in demo_summary["reports"].values():
        page = Path(path).read_text()
        assert "<script src=" not in page and "plotly" in page.lower()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run([sys.executable, "-m", "serein", "demo", "--fast", "--workspace", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "not made by `serein demo`" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
