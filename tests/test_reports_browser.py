"""The HTML reports in a real browser (headless Chromium driven by Playwright), offline: every chart
draws, no script raises, and the page asks for nothing beyond its own file (plotly.js is inline).

Skipped where Playwright or a Chromium binary is missing (``apt-get install -y chromium``;
``SEREIN_CHROMIUM`` names another binary)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from serein.demo.credit import make_credit
from serein.monitor.monitor import run_monitor
from serein.workspace import Workspace
from conftest import TRAINED_MODEL

CHROMIUM = os.environ.get("SEREIN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# at least the charts expected, and every chart drawn: otherwise the check could run before the
# page's scripts had made any chart (every() of nothing is true) and count none
EVERY_CHART_DRAWN = ("(least) => { const charts = [...document.querySelectorAll('.plotly-graph-div')];"
                     " return charts.length >= least && charts.every(chart => chart.querySelector('svg.main-svg')); }")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no Chromium binary (apt-get install -y chromium, or set SEREIN_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
        yield chromium
        chromium.close()


def charts_drawn(browser: Any, path: Path, least: int = 1) -> int:
    """Open ``path`` with the network cut off; returns how many charts it drew, after checking that
    at least ``least`` charts and every chart drew and nothing failed (script errors, console
    errors, requests off the file)."""
    page = browser.new_page()
    problems: list[str] = []
    page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
    page.on("requestfailed", lambda request: problems.append(f"request {request.url[:120]}"))
    page.on("pageerror", lambda error: problems.append(f"script error {error}"))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_function(EVERY_CHART_DRAWN, arg=least, timeout=15_000)
    charts = page.locator(".plotly-graph-div").count()
    page.close()
    assert problems == []
    return charts


def test_the_evaluation_report_draws_offline(browser: Any, trained_workspace: Workspace) -> None:
    path = trained_workspace.reports_dir / f"{TRAINED_MODEL}-v1-evaluation.html"
    assert charts_drawn(browser, path) >= 2


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A champion (logistic regression) trained on the stable regime, in a workspace of its own."""
    from serein import api

    ws = Workspace.init(tmp_path_factory.mktemp("browser") / "ws")
    api.train({"name": "credit", "target": "default", "task": "classification",
               "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}},
              data=make_credit(3000, seed=0).drop(columns=["applied_at"]), workspace=ws)
    return ws


def test_a_chunked_monitoring_report_draws_every_chart_offline(browser: Any, monitored: Workspace,
                                                                tmp_path: Path) -> None:
    """Drift per feature, outputs, realized and estimated performance per chunk, alerts."""
    batch = pd.concat([make_credit(900, seed=41), make_credit(900, start="2026-07-01", drift=True, seed=42)])
    batch.to_parquet(tmp_path / "batch.parquet")
    result = run_monitor(monitored, "credit", current=str(tmp_path / "batch.parquet"), chunk="300",
                         report=tmp_path / "monitor.html")
    assert result.chunks and result.drifted and result.alerts
    assert charts_drawn(browser, Path(result.report)) > len(result.features)


def test_the_report_of_a_one_row_batch_draws_offline(browser: Any, monitored: Workspace, tmp_path: Path) -> None:
    """Undefined metrics (ROC AUC of one row) and no distribution verdicts still make a page."""
    make_credit(5, seed=43).iloc[[0]].to_parquet(tmp_path / "one.parquet")
    started = time.time()
    result = run_monitor(monitored, "credit", current=str(tmp_path / "one.parquet"), report=tmp_path / "one.html")
    assert result.n_rows == 1 and Path(result.report).stat().st_mtime >= started - 1
    # one row has no distribution to draw: the page's only chart is the alert timeline, there
    # when the model has alerts (as after the test above, not when this test runs alone)
    expected = 1 if monitored.alerts.list(model="credit") else 0
    assert charts_drawn(browser, Path(result.report), least=expected) == expected
