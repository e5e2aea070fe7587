"""Serving benchmark: ``serein serve`` against ``mlflow models serve`` on the same registered model.

    .venv/bin/python -m benchmarks.serving [--duration 5] [--runs 3] [--estimator hgb|forest|logistic]

One pipeline (ColumnTransformer + HistGradientBoosting, 20 raw features: the bundled credit data
plus 10 extra columns) is trained and registered once in a temporary workspace. Both servers then
serve its champion with one worker each on loopback, and ``wrk`` (Debian's, with a Lua script for
the POST bodies) drives them: 1-row requests at concurrency 1 and 16, 100-row requests at
concurrency 4. serein runs with each prediction-log durability: ``strict`` (the default: on disk,
``fdatasync``-ed, before the answer), ``written`` (handed to the kernel: survives a killed
server), ``relaxed`` (queued) and ``off`` (no log: the cost of logging). MLflow runs with
``OMP_NUM_THREADS=1`` too (its best setting on a small shared machine). Every scenario is
repeated ``--runs`` times, interleaved, and the medians are printed with the ratios against
MLflow measured in the same run, plus the in-process floors (the raw ONNX Runtime call, the
scikit-learn pipeline) and the cost of one ``fdatasync`` on the workspace's disk.

The cost of logging (1 - throughput with the ``strict`` log / throughput with the log off) is a
ratio of two throughputs that each swing by a third between minutes on a shared machine, so it
is also measured in pairs: ``serein off`` and ``serein strict`` run side by side (each idle while
the other is driven) and every scenario alternates between them ``--pairs`` times (off then
strict, strict then off, ...), seconds apart; the cost is the median of the pairs' costs, and
every pair is printed so the noise shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

MODEL = "credit-default"
LUA = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non2xx": %d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""
SCENARIOS = [("1 row, c=1", 1, 1), ("1 row, c=16", 1, 16), ("100 rows, c=4", 100, 4)]
DURABILITIES = ["strict", "written", "relaxed", "off"]


def find_wrk() -> str:
    """The ``wrk`` binary, or exit with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("this benchmark needs wrk: install it with `apt-get install -y wrk` (Debian/Ubuntu) "
                 "or from https://github.com/wg/wrk")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def benchmark_frame(n: int) -> Any:
    """The credit data with 10 extra columns (8 numeric, 2 categorical): 20 raw features."""
    from serein.demo.credit import make_credit

    frame = make_credit(n, seed=0)
    rng = np.random.default_rng(1)
    for i in range(8):
        frame[f"x{i}"] = rng.normal(size=n).round(4)
    frame["channel"] = rng.choice(["web", "branch", "phone", "partner"], size=n)
    frame["segment"] = rng.choice([f"s{i}" for i in range(12)], size=n)
    return frame


ESTIMATORS = {  # --estimator: the model behind the same preprocessing
    "hgb": {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 100}},
    "forest": {"class": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 100, "random_state": 0}},
    "logistic": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
}


def build_workspace(root: Path, estimator: str = "hgb") -> tuple[Any, list[dict[str, Any]]]:
    """A workspace with the benchmark model registered as champion; returns it and 100 rows."""
    import pandas as pd

    from serein.data.profiling import suggest_contract
    from serein.train.recipe import Recipe
    from serein.train.trainer import train
    from serein.workspace import Workspace

    ws = Workspace.init(root)
    frame = benchmark_frame(8000)
    suggest_contract(frame, dataset="bench").save(ws.datasets.contract_path("bench"))
    ws.datasets.ingest(frame, "bench")
    recipe = Recipe.from_dict({"name": MODEL, "data": "bench", "target": "default", "task": "classification",
                               "estimator": ESTIMATORS[estimator],
                               "split": {"method": "time", "column": "applied_at", "test_size": 0.2}})
    result = train(ws, recipe, promote=True)
    assert result.alias == "champion", result.gate
    features = ws.registry.load(MODEL).features
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in frame[features].iloc[:100].to_dict("records")]
    return ws, rows


def start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, body: bytes, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit(f"the server at {url} did not answer within {timeout} s:\n{log_path.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_wrk(wrk: str, url: str, body_file: Path, connections: int, duration: int, script: Path) -> dict[str, float]:
    threads = min(connections, 2)
    out = subprocess.run([wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                          "-s", str(script), url], capture_output=True, text=True,
                         env={**os.environ, "BENCH_BODY": str(body_file)}, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        sys.exit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line[6:])
    return {"rps": result["requests"] / (result["duration_us"] / 1e6), "p50_ms": result["p50_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000, "failed": result["errors"] + result["non2xx"]}


def floors(ws: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    """In-process medians (µs): the raw ONNX Runtime call on the whole export, serein's validate +
    predict as the server runs it (numpy preprocessing and the export's estimator part, per the
    version's batch plan), and the scikit-learn pipeline, for 1 and 100 rows."""
    from serein.batch import plan_path
    from serein.serve.models import prepare
    from serein.serve.runtime import OnnxRuntime, SklearnRuntime

    model = ws.registry.load(MODEL)
    served = prepare(model, threads=1, plan_file=plan_path(ws, model))
    assert model.onnx_path, "the benchmark model should have a verified ONNX export"
    whole = OnnxRuntime(model.onnx_path, model.contract, model.classes)
    out: dict[str, float] = {}
    sklearn = SklearnRuntime(model.pipeline, model.contract, model.classes)
    for n in (1, 100):
        batch = served.validator.validate(rows[:n])
        feed = whole.feed(batch.columns, n)
        out[f"onnx_{n}"] = _median_us(lambda: whole.session.run(None, feed))
        out[f"serein_{n}"] = _median_us(lambda: served.score(rows[:n]))
        out[f"sklearn_{n}"] = _median_us(lambda: sklearn.predict(batch.columns, n), repeat=60)
    return out


def _median_us(call: Any, repeat: int = 2000) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def fdatasync_ms(directory: Path, n: int = 100) -> float:
    """The median cost of appending 1 KiB and ``fdatasync``-ing it, on ``directory``'s disk."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 1024)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1000


def paired_costs(wrk: str, servers: dict[str, tuple[list[str], dict[str, str], str]], bodies: dict[tuple[str, int], Path],
                 script: Path, tmp: Path, pairs: int, duration: int) -> dict[str, list[tuple[dict[str, float], dict[str, float]]]]:
    """Per scenario, ``pairs`` (off, strict) results of back-to-back wrk runs against the two
    servers running side by side, the order alternating from pair to pair."""
    names = ["serein off", "serein strict"]
    procs = {}
    out: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {}
    try:
        for name in names:
            command, env, url = servers[name]
            log_path = tmp / f"paired-{name.replace(' ', '-')}.log"
            procs[name] = start(command, env, log_path)
            wait_ready(url, bodies["serein", 1].read_bytes(), procs[name], log_path)
        for label, n, connections in SCENARIOS:
            for pair in range(pairs):
                result = {}
                for name in names if pair % 2 == 0 else names[::-1]:
                    result[name] = run_wrk(wrk, servers[name][2], bodies["serein", n], connections, duration, script)
                off, strict = result["serein off"], result["serein strict"]
                out.setdefault(label, []).append((off, strict))
                print(f"pair {pair + 1}/{pairs}  {label:14s} off {off['rps']:8.1f} req/s  strict {strict['rps']:8.1f} req/s  "
                      f"cost {100 * (1 - strict['rps'] / off['rps']):5.1f}%  failed {off['failed'] + strict['failed']:.0f}",
                      flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of every scenario (default 3)")
    parser.add_argument("--pairs", type=int, default=6,
                        help="back-to-back (off, strict) pairs per scenario measuring the cost of logging (default 6)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument("--estimator", choices=sorted(ESTIMATORS), default="hgb",
                        help="the model behind the pipeline's preprocessing (default hgb: HistGradientBoosting)")
    args = parser.parse_args()
    wrk = find_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="serein-bench-"))
    print(f"building the workspace in {tmp} (train + register, ~30 s) ...", flush=True)
    ws, rows = build_workspace(tmp / "ws", args.estimator)
    script = tmp / "post.lua"
    script.write_text(LUA)
    bodies = {}
    for kind, key in (("serein", "instances"), ("mlflow", "dataframe_records")):
        for n in (1, 100):
            path = tmp / f"{kind}-{n}.json"
            path.write_bytes(json.dumps({key: rows[:n]}).encode())
            bodies[kind, n] = path

    floor = floors(ws, rows)
    fsync = fdatasync_ms(ws.state_dir)
    base_env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    servers: dict[str, tuple[list[str], dict[str, str], str]] = {}
    port = free_port()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    servers["mlflow"] = ([mlflow_bin, "models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager", "local",
                          "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                         {**base_env, "MLFLOW_TRACKING_URI": ws.tracking_uri,  # its uvicorn is beside it:
                          "PATH": f"{Path(mlflow_bin).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                          "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"},
                         f"http://127.0.0.1:{port}/invocations")
    for durability in DURABILITIES:
        port = free_port()
        servers[f"serein {durability}"] = (
            [sys.executable, "-m", "serein", "serve", "-w", str(ws.root), "--port", str(port), "--workers", "1"],
            {**base_env, "SEREIN_SERVE__DURABILITY": durability},
            f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict")

    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    log_lines: dict[str, list[str]] = {}
    for run in range(args.runs):
        for name, (command, env, url) in servers.items():
            kind = "mlflow" if name == "mlflow" else "serein"
            log_path = tmp / f"{name.replace(' ', '-')}-{run}.log"
            proc = start(command, env, log_path)
            try:
                wait_ready(url, bodies[kind, 1].read_bytes(), proc, log_path)
                for label, n, connections in SCENARIOS:
                    r = run_wrk(wrk, url, bodies[kind, n], connections, args.duration, script)
                    results.setdefault((name, label), []).append(r)
                    print(f"run {run + 1}/{args.runs}  {name:15s} {label:14s} {r['rps']:9.1f} req/s  "
                          f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  failed {r['failed']:.0f}", flush=True)
            finally:
                stop(proc)
            log_lines.setdefault(name, []).extend(
                x for x in log_path.read_text(errors="replace").splitlines() if "group commit" in x)

    paired = paired_costs(wrk, servers, bodies, script, tmp, args.pairs, args.duration) if args.pairs else {}
    if paired:
        log_lines["serein strict (pairs)"] = [x for x in (tmp / "paired-serein-strict.log").read_text(errors="replace")
                                              .splitlines() if "group commit" in x]

    med = {key: {m: statistics.median(r[m] for r in runs) for m in runs[0]} for key, runs in results.items()}
    print(f"\nmedians of {args.runs} runs of {args.duration:g} s each (wrk, 1 worker per server, loopback)\n")
    print(f"{'server':16s} {'scenario':15s} {'req/s':>9s} {'rows/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'failed':>6s} {'vs mlflow':>10s}")
    for name in servers:
        for label, n, _ in SCENARIOS:
            m = med[name, label]
            ratio = m["rps"] / med["mlflow", label]["rps"]
            print(f"{name:16s} {label:15s} {m['rps']:9.1f} {m['rps'] * n:10.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f} "
                  f"{m['failed']:6.0f} {ratio:9.1f}x")
    print("\nthe cost of logging (1 - throughput with the log on / with it off: of the table's medians, then per\n"
          "round, each round's servers a minute apart):")
    for durability in DURABILITIES[:-1]:
        costs = []
        for label, _, _ in SCENARIOS:
            cost = 1 - med[f"serein {durability}", label]["rps"] / med["serein off", label]["rps"]
            rounds = "/".join(f"{100 * (1 - on['rps'] / off['rps']):.0f}" for on, off in
                              zip(results[f"serein {durability}", label], results["serein off", label], strict=True))
            costs.append(f"{label}: {100 * cost:.1f}% ({rounds})")
        print(f"  {durability:8s} " + "   ".join(costs))
    if paired:
        print(f"\nthe cost of logging, strict, measured in {args.pairs} back-to-back pairs per scenario (median of the\n"
              "pairs' costs; each pair's cost in parentheses; median req/s of each side):")
        for label, pairs_ in paired.items():
            costs = [1 - strict["rps"] / off["rps"] for off, strict in pairs_]
            print(f"  {label:14s} {100 * statistics.median(costs):5.1f}%  "
                  f"({' '.join(f'{100 * c:.0f}' for c in costs)})  "
                  f"off {statistics.median(off['rps'] for off, _ in pairs_):.0f}  "
                  f"strict {statistics.median(strict['rps'] for _, strict in pairs_):.0f} req/s")
    print("\nin-process floors (median per call, single thread):")
    for n in (1, 100):
        print(f"  {n:3d} row(s): raw ONNX Runtime (whole export) {floor[f'onnx_{n}']:8.1f} µs   serein validate+predict "
              f"{floor[f'serein_{n}']:8.1f} µs   scikit-learn pipeline {floor[f'sklearn_{n}']:8.1f} µs")
    print(f"\none fdatasync on the workspace's disk: {fsync:.2f} ms (median of 100): the floor of a strict "
          "answer at concurrency 1")
    for name, lines in log_lines.items():
        for line in lines:  # JSON log lines: the message, without the closing quote and brace
            message = line.split("prediction log: ", 1)[-1].removesuffix('"}')
            print(f"  {name}: {message}")
    targets = [
        ("1-row throughput at c=16 >= 30x MLflow", med["serein strict", "1 row, c=16"]["rps"] / med["mlflow", "1 row, c=16"]["rps"], 30),
        ("100-row rows/s at c=4 >= 20x MLflow", med["serein strict", "100 rows, c=4"]["rps"] / med["mlflow", "100 rows, c=4"]["rps"], 20),
    ]
    print("\ntargets (serein with the default strict durability):")
    for text, value, goal in targets:
        print(f"  {text}: {value:.1f}x {'met' if value >= goal else 'NOT met'}")
    for name in ("serein strict", "serein written"):
        p50 = med[name, "1 row, c=1"]["p50_ms"]
        print(f"  p50 at c=1 <= 1.5 ms ({name.split()[1]}): {p50:.2f} ms {'met' if p50 <= 1.5 else 'NOT met'}")
    if paired:
        cost = statistics.median(1 - strict["rps"] / off["rps"] for off, strict in paired["1 row, c=16"])
        how = f"median of {args.pairs} back-to-back pairs"
    else:
        cost = 1 - med["serein strict", "1 row, c=16"]["rps"] / med["serein off", "1 row, c=16"]["rps"]
        how = "of the table's medians"
    print(f"  logging costs <= 10% of throughput (strict, 1 row, c=16, {how}): {100 * cost:.1f}% "
          f"{'met' if cost <= 0.10 else 'NOT met'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
