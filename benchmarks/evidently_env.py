"""Evidently in its own virtual environment, for the drift benchmark.

Evidently 0.7 does not import with pandas 3 (which serein uses), so the benchmark installs
``evidently==0.7.*`` with ``pandas<3`` into a separate venv under ``~/.cache/serein-bench`` on first
use (``benchmarks.side_venv``; pip, a minute or two) and runs Evidently there in a subprocess. ``python -m
benchmarks.evidently_env`` only creates the venv; ``python -m benchmarks.evidently_env run REF CUR
OUT`` is what runs *inside* it (invoked by ``benchmarks.drift``): DataDriftPreset on two Parquet
files, its per-column verdicts written as JSON to OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import side_venv
from benchmarks.side_venv import CACHE

VENV = CACHE / "evidently-venv"
REQUIREMENTS = ["evidently==0.7.*", "pandas<3", "pyarrow"]


def python() -> Path:
    """The venv's interpreter, creating the venv and installing Evidently when missing."""
    return side_venv.python(VENV.name, REQUIREMENTS)


def version() -> str:
    """The Evidently version installed in the venv."""
    return side_venv.version(python(), "evidently")


def run(reference: str, current: str, out: str) -> None:
    """Inside the venv: DataDriftPreset with its defaults on the two files; writes
    ``{"columns": {name: {"method", "score", "threshold", "drifted"}}, "seconds": {...}}``."""
    import time

    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    ref, cur = pd.read_parquet(reference), pd.read_parquet(current)
    t1 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    t2 = time.perf_counter()
    columns = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            threshold = config.get("threshold")
            score = float(metric["value"])
            method = str(config.get("method"))
            # p-value methods ("K-S p_value", ...) drift below the threshold, distances at or above it
            drifted = score < threshold if "p_value" in method else score >= threshold
            columns[config["column"]] = {"method": method, "score": score, "threshold": threshold, "drifted": drifted}
    Path(out).write_text(json.dumps({"columns": columns, "seconds": {"read": t1 - t0, "report": t2 - t1}}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        run(*sys.argv[2:])
    else:
        print(f"evidently {version()} in {VENV}")
