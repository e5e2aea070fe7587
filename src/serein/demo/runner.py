"""The demo: the whole loop on the bundled loan data, with a real server on loopback.

ingest → profile (contract) → train → serve → traffic → feedback → monitor (quiet) →
drifted traffic → monitor (drift, alert) → new labelled data → retrain → gate → promote →
the running server hot-swaps to the new champion.

Every step uses the same public functions as the CLI; the server is a real ``serein serve``
process, and traffic goes over HTTP. The demo folder is recreated on each run (only a folder
that a previous demo made, or an empty one, is ever cleared).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from serein.errors import SereinError, UsageError

MARKER = ".serein/demo-workspace"
DATASET = "credit"
MODEL = "credit-default"


@dataclass
class DemoSizes:
    """How much data the demo makes. ``fast()`` is the variant the tests run."""

    history: int = 20_000       # stable period used for the first model
    new_batch: int = 6_000      # labelled data arriving from the drifted period
    stable_traffic: int = 600   # requests' rows before the drift
    drift_traffic: int = 1_500  # requests' rows after the drift
    feedback_share: float = 0.8

    @classmethod
    def fast(cls) -> DemoSizes:
        return cls(history=4_000, new_batch=2_000, stable_traffic=300, drift_traffic=700)


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class DemoRun:
    root: Path
    steps: list[Step] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)


def prepare_folder(root: Path) -> None:
    """Make ``root`` an empty demo workspace; refuse to clear a folder the demo did not make."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise UsageError(
                f"{root} is not empty and was not made by `serein demo`",
                hint="pass --workspace with a new or empty folder",
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(root: Path, port: int, log_path: Path, timeout: float = 90.0) -> Iterator[str]:
    """A real ``serein serve`` process on loopback; yields its base URL, stops it on exit."""
    import httpx

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serein", "serve", "--workspace", str(root), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SereinError(f"the demo server exited with code {proc.returncode}", hint=f"see {log_path}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SereinError(f"the demo server was not ready after {timeout:.0f} s", hint=f"see {log_path}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def send_traffic(client: Any, url: str, frame: Any, features: list[str], target: str, feedback_share: float,
                 seed: int) -> tuple[int, int, set[int]]:
    """POST ``frame``'s rows in requests of 1–25 rows; send ground truth for a share of requests.

    Returns (rows predicted, labels sent, versions seen).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    records = frame[features].astype(object).where(frame[features].notna(), None).to_dict("records")
    labels = frame[target].tolist()
    sent = labelled = 0
    versions: set[int] = set()
    feedback: list[dict[str, Any]] = []
    while sent < len(records):
        size = int(rng.integers(1, 26))
        batch = records[sent:sent + size]
        resp = client.post(f"{url}/v1/models/{MODEL}/predict", json={"instances": batch})
        if resp.status_code != 200:
            raise SereinError(f"the demo server answered {resp.status_code}: {resp.text[:300]}")
        body = resp.json()
        versions.add(int(body["version"]))
        if rng.random() < feedback_share:
            feedback.append({"request_id": body["request_id"], "label": labels[sent:sent + len(batch)]})
            labelled += len(batch)
        sent += len(batch)
    for start in range(0, len(feedback), 50):
        resp = client.post(f"{url}/v1/models/{MODEL}/feedback", json=feedback[start:start + 50])
        if resp.status_code != 200:
            raise SereinError(f"feedback was refused ({resp.status_code}): {resp.text[:300]}")
    return sent, labelled, versions


def wait_until_logged(store: Any, expected: int, timeout: float = 60.0) -> None:
    """Wait until the store holds ``expected`` prediction rows: the server ships its durable log
    to the store in the background, and a monitor reads the store."""
    deadline = time.monotonic() + timeout
    while (logged := store.count_predictions(MODEL)) < expected:
        if time.monotonic() > deadline:
            raise SereinError(f"only {logged} of {expected} predictions reached the store within {timeout:.0f} s",
                              hint="see the server log, .serein/demo-server.log in the demo folder")
        time.sleep(0.1)


def _recipe_path() -> Path:
    return Path(str(resources.files("serein.demo").joinpath("recipe.yaml")))


def run_demo(root: Path, sizes: DemoSizes | None = None, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole loop in ``root``; returns the summary (see ``serein demo --json``)."""
    import httpx
    import numpy as np

    from serein.demo.credit import TARGET, make_credit
    from serein.monitor.monitor import run_monitor
    from serein.retrain.retrain import retrain
    from serein.train.recipe import Recipe
    from serein.train.trainer import train
    from serein.workspace import Workspace

    sizes = sizes or DemoSizes()
    say = say or (lambda _m: None)
    root = root.resolve()
    prepare_folder(root)
    ws = Workspace.init(root, project="serein-demo")
    (root / MARKER).touch()
    run = DemoRun(root)
    t_start = time.perf_counter()

    def step(name: str, detail: str, t0: float) -> None:
        run.steps.append(Step(name, time.perf_counter() - t0, detail))
        say(f"[bold green]✓[/bold green] [bold]{name}[/bold] — {detail} [dim]({time.perf_counter() - t0:.1f} s)[/dim]")

    # 1. Data: the first half-year of applications, as a CSV export would deliver it.
    t0 = time.perf_counter()
    data_dir = root / "incoming"
    data_dir.mkdir()
    history_csv = data_dir / "applications-2026H1.csv"
    make_credit(sizes.history, start="2026-01-01", days=181, seed=11).to_csv(history_csv, index=False)
    first = ws.datasets.ingest(history_csv, DATASET)
    step("ingest", f"{history_csv.name}: {first.accepted} rows → {DATASET}@{first.version}", t0)

    # 2. Contract: suggested from the data, written beside the code for review.
    from serein.data.profiling import suggest_contract
    from serein.data.validation import validate

    t0 = time.perf_counter()
    loaded = ws.datasets.load(DATASET)
    contract = suggest_contract(loaded.frame, dataset=DATASET)
    contract_path = contract.save(ws.contracts_dir / f"{DATASET}.yaml")
    report = validate(loaded.frame, contract)
    step("profile", f"contract with {len(contract.columns)} columns → {contract_path.relative_to(root)}; "
                    f"check {'passed' if report.ok else 'FAILED'}", t0)

    # 3. Train the first model; it passes its gate and becomes champion.
    t0 = time.perf_counter()
    first_model = train(ws, Recipe.load(_recipe_path()), progress=None)
    if first_model.report_path:
        run.reports["evaluation_v1"] = first_model.report_path
    step("train", f"{MODEL} v{first_model.version}: roc_auc {first_model.metrics.get('roc_auc', float('nan')):.3f} "
                  f"(baseline {first_model.baseline_metrics.get('roc_auc', float('nan')):.3f}), gate "
                  f"{'passed' if first_model.gate.passed else 'failed'}, alias {first_model.alias}", t0)
    if not first_model.promoted:
        raise SereinError("the demo's first model did not pass its gate", hint="; ".join(first_model.gate.reasons))
    features = ws.registry.load(MODEL).features

    # 4. Serve it: a real server process on loopback.
    t0 = time.perf_counter()
    port = free_port()
    with running_server(root, port, ws.state_dir / "demo-server.log") as url, httpx.Client(timeout=30) as client:
        step("serve", f"serein serve on {url} (champion v{first_model.version})", t0)

        # 5. Traffic in the stable regime, with ground truth for most of it; monitoring stays quiet.
        t0 = time.perf_counter()
        stable = make_credit(sizes.stable_traffic, start="2026-07-01", days=14, seed=21)
        n1, l1, _ = send_traffic(client, url, stable, features, TARGET, sizes.feedback_share, seed=1)
        wait_until_logged(ws.store, n1)
        step("traffic", f"{n1} rows predicted, {l1} labels fed back (stable period)", t0)

        t0 = time.perf_counter()
        quiet = run_monitor(ws, MODEL, last=n1, report=ws.reports_dir / "monitor-stable.html").to_dict()
        run.reports["monitor_stable"] = str(quiet.get("report"))
        step("monitor", f"stable window of {quiet['n_rows']} rows: drifted features {quiet['drifted'] or 'none'}", t0)

        # 6. The population shifts: incomes fall, a new loan purpose appears, defaults rise.
        t0 = time.perf_counter()
        drifted = make_credit(sizes.drift_traffic, start="2026-08-01", days=14, drift=True, seed=22)
        n2, l2, _ = send_traffic(client, url, drifted, features, TARGET, sizes.feedback_share, seed=2)
        wait_until_logged(ws.store, n1 + n2)
        step("traffic", f"{n2} rows predicted, {l2} labels fed back (drifted period)", t0)

        # Both periods as a series of chunks: drift and performance over time, the onset visible.
        t0 = time.perf_counter()
        chunk_rows = max(100, (n1 + n2) // 10)
        timeline = run_monitor(ws, MODEL, last=n1 + n2, chunk=str(chunk_rows),
                               report=ws.reports_dir / "monitor-timeline.html").to_dict()
        run.reports["monitor_timeline"] = str(timeline.get("report"))
        onset = next((i for i, c in enumerate(timeline["chunks"]) if c["drifted"]), None)
        step("monitor", f"{len(timeline['chunks'])} chunks of {chunk_rows} rows over both periods: first drifted "
                        f"chunk {'none' if onset is None else onset + 1} (the drift began after row {n1})", t0)

        t0 = time.perf_counter()
        loud = run_monitor(ws, MODEL, last=n2, report=ws.reports_dir / "monitor-drift.html").to_dict()
        run.reports["monitor_drift"] = str(loud.get("report"))
        step("monitor", f"drifted window of {loud['n_rows']} rows: drifted {', '.join(loud['drifted']) or 'none'}; "
                        f"{len(loud['alerts'])} alert(s)", t0)

        # 7. Labelled data from the new regime arrives (with a few broken rows), then retrain.
        t0 = time.perf_counter()
        batch = make_credit(sizes.new_batch, start="2026-07-01", days=31, drift=True, seed=12)
        broken = np.random.default_rng(3).choice(len(batch), size=5, replace=False)
        batch.loc[broken[:3], "income"] = -1000.0  # impossible: the contract says non-negative
        batch.loc[broken[3:], "region"] = None  # the contract says always present
        batch_path = data_dir / "applications-2026-07.parquet"
        batch.to_parquet(batch_path, index=False)
        second = ws.datasets.ingest(batch_path, DATASET)
        step("ingest", f"{batch_path.name}: {second.rows_read} rows read, {second.accepted} accepted, "
                       f"{second.quarantined} quarantined → {DATASET}@{second.version}", t0)

        t0 = time.perf_counter()
        outcome = retrain(ws, MODEL)
        if outcome.report_path:
            run.reports[f"evaluation_v{outcome.new_version}"] = outcome.report_path
        step("retrain", f"v{outcome.new_version} on {DATASET}@{outcome.dataset_version} "
                        f"(+{outcome.feedback_rows} labelled production rows): gate "
                        f"{'passed' if outcome.gate.get('passed') else 'failed'}"
                        + (f" → promoted to champion" if outcome.promoted else f" ({outcome.reason})"), t0)

        # 8. The running server notices the moved alias and swaps without a restart.
        t0 = time.perf_counter()
        served = first_model.version
        deadline = time.monotonic() + 30
        while served != outcome.champion_after and time.monotonic() < deadline:
            time.sleep(0.25)
            served = int(client.get(f"{url}/v1/models/{MODEL}").json()["version"])
        probe = client.post(f"{url}/v1/models/{MODEL}/predict", json={"instances": drifted[features].head(1)
                            .astype(object).where(drifted[features].head(1).notna(), None).to_dict("records")})
        probe_version = int(probe.json()["version"]) if probe.status_code == 200 else None
        step("hot swap", f"server now answers with v{probe_version} "
                         f"({time.perf_counter() - t0:.1f} s after promotion)", t0)

    history = ws.datasets.history(DATASET)
    summary = {
        "workspace": str(root),
        "dataset": DATASET,
        "dataset_versions": sorted(int(h["version"]) for h in history),
        "model": MODEL,
        "versions": [v.version for v in ws.registry.versions(MODEL)],
        "champion_before": first_model.version,
        "champion_after": outcome.champion_after,
        "served_after": probe_version,
        "predictions_logged": ws.store.count_predictions(MODEL),
        "feedback_logged": ws.store.count_feedback(MODEL),
        "drifted": loud["drifted"],
        "alerts": [
            {k: a.get(k) for k in ("id", "rule", "feature", "severity", "status", "message")}
            for a in ws.alerts.list(model=MODEL)
        ],
        "reports": run.reports,
        "steps": [{"step": s.name, "seconds": round(s.seconds, 3), "detail": s.detail} for s in run.steps],
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    return summary
