"""The serving protocols side by side: the same rows through every body format serein accepts.

    .venv/bin/python -m benchmarks.protocols [--rows 100] [--connections 4] [--duration 3] [--rounds 2]
                                             [--durability off|strict|written|relaxed]   (or `make bench-protocols`)

One ``serein serve`` (one worker, loopback) serves the serving benchmark's pipeline
(``benchmarks.serving.build_workspace``), and ``wrk`` drives each path in turn with the same
``--rows`` rows: ``/v1`` ``instances`` (the baseline), MLflow's ``/invocations`` as
``dataframe_records``, ``dataframe_split``, ``instances``, columnar ``inputs`` and ``text/csv``,
and the Open Inference Protocol's ``/v2/models/NAME/infer`` (one input per column, JSON). Rounds
are interleaved; the medians are printed with each path's ratio to ``/v1``. The log is off by
default, so the numbers are the cost of each format's decoding and checking, not of the log.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.serving import LUA, MODEL, build_workspace, find_wrk, free_port, run_wrk, start, stop, wait_ready


def v2_datatype(values: list[Any]) -> str:
    """The Open Inference Protocol datatype of a column's values (nulls aside)."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


def bodies(rows: list[dict[str, Any]]) -> dict[str, tuple[str, bytes, str]]:
    """Per path label: (URL path, body, content type), all holding ``rows``."""
    names = list(rows[0])
    columns = {name: [row[name] for row in rows] for name in names}
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    v1, mlflow, v2 = f"/v1/models/{MODEL}/predict", "/invocations", f"/v2/models/{MODEL}/infer"
    as_json = "application/json"
    return {
        "/v1 instances": (v1, json.dumps({"instances": rows}).encode(), as_json),
        "/invocations dataframe_records": (mlflow, json.dumps({"dataframe_records": rows}).encode(), as_json),
        "/invocations dataframe_split": (mlflow, json.dumps({"dataframe_split": {
            "columns": names, "data": [[row[name] for name in names] for row in rows]}}).encode(), as_json),
        "/invocations instances": (mlflow, json.dumps({"instances": rows}).encode(), as_json),
        "/invocations inputs (columnar)": (mlflow, json.dumps({"inputs": columns}).encode(), as_json),
        "/invocations text/csv": (mlflow, text.getvalue().encode(), "text/csv"),
        "/v2 infer": (v2, json.dumps({"inputs": [
            {"name": name, "shape": [len(rows)], "datatype": v2_datatype(values), "data": values}
            for name, values in columns.items()]}).encode(), as_json),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100, help="rows per request (default 100, at most 100)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions (default 2)")
    parser.add_argument("--durability", default="off", choices=["off", "strict", "written", "relaxed"],
                        help="the prediction log's durability (default off: the formats' own cost)")
    args = parser.parse_args()
    if not 1 <= args.rows <= 100:
        sys.exit("--rows must be from 1 to 100 (the benchmark's frame has 100 rows)")
    wrk = find_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="serein-bench-protocols-"))
    try:
        print(f"building the workspace in {tmp} (train + register, ~30 s) ...", flush=True)
        ws, rows = build_workspace(tmp / "ws")
        paths = bodies(rows[:args.rows])
        for i, (label, (_, body, media)) in enumerate(paths.items()):
            (tmp / f"body-{i}").write_bytes(body)
            (tmp / f"post-{i}.lua").write_text(LUA.replace("application/json", media))
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SEREIN_SERVE__DURABILITY": args.durability}
        proc = start([sys.executable, "-m", "serein", "serve", "-w", str(ws.root), "--port", str(port),
                      "--workers", "1", "--model", MODEL], env, tmp / "server.log")
        base = f"http://127.0.0.1:{port}"
        results: dict[str, list[dict[str, float]]] = {label: [] for label in paths}
        try:
            wait_ready(base + paths["/v1 instances"][0], paths["/v1 instances"][1], proc, tmp / "server.log")
            for round_ in range(args.rounds):
                for i, (label, (path, _, _)) in enumerate(paths.items()):
                    r = run_wrk(wrk, base + path, tmp / f"body-{i}", args.connections, args.duration,
                                tmp / f"post-{i}.lua")
                    results[label].append(r)
                    print(f"round {round_ + 1}/{args.rounds}  {label:32s} {r['rps']:8.1f} req/s  "
                          f"p50 {r['p50_ms']:6.2f} ms  failed {r['failed']:.0f}", flush=True)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {label: {m: statistics.median(r[m] for r in runs) for m in runs[0]} for label, runs in results.items()}
    base_rps = med["/v1 instances"]["rps"]
    print(f"\n{args.rows}-row requests, c={args.connections}, log {args.durability}, medians of {args.rounds} "
          f"rounds of {args.duration} s:")
    for label, m in med.items():
        print(f"  {label:32s} {m['rps']:8.1f} req/s  p50 {m['p50_ms']:6.2f} ms  {m['rps'] / base_rps:5.2f}x /v1  "
              f"failed {m['failed']:.0f}")


if __name__ == "__main__":
    main()
