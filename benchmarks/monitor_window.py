"""Monitor-window benchmark: a monitoring run costs O(window), not O(log), and a chunked series
costs about one assessment per chunk.

Run: ``.venv/bin/python -m benchmarks.monitor_window [--days 10] [--per-day 10000] [--repeat 3]``
(``make bench-monitor-window``).

A credit model (logistic regression on the bundled demo data) is registered in a fresh
workspace; ``days × per-day`` predictions are logged over the past ``days`` days (SQLite store),
the last day from the drifted regime, every row with a feedback label. Timed, in the same run,
medians of ``--repeat`` runs:

1. ``run_monitor --since 24h`` (one day of rows out of ``days``) against ``--cumulative`` (the
   whole log): the ratio should track the share of rows read, not stay near 1;
2. ``--since 24h --chunk hourly``: 24 chunks, each with drift, performance (bootstrap intervals),
   CBPE and quality, against the unchunked day — the cost per chunk;
3. the bootstrap standard errors of one 1,500-row labelled window, vectorised (``weighted_metrics``)
   against a per-resample loop over scikit-learn's metrics (the baseline).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DAY = 86400.0


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _setup(root: Path, days: int, per_day: int):
    from serein import api
    from serein.demo.credit import make_credit
    from serein.workspace import Workspace

    ws = Workspace.init(root / "ws")
    api.train({"name": "credit", "target": "default", "task": "classification",
               "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}},
              data=make_credit(4000, seed=0).drop(columns=["applied_at"]), workspace=ws)
    model = ws.registry.load("credit")
    now = time.time()
    for day in range(days):
        drifted = day == days - 1
        frame = make_credit(per_day, start="2026-07-01" if drifted else "2026-01-01", drift=drifted, seed=100 + day)
        X = frame[model.features]
        proba = model.pipeline.predict_proba(X)
        inputs = X.astype(object).where(X.notna(), None).to_dict("records")
        start = now - (days - day) * DAY
        step = DAY / per_day
        ws.store.log_predictions([
            {"request_id": f"d{day}-{i}", "model": "credit", "version": model.version, "inputs": row,
             "prediction": model.classes[int(p.argmax())], "probabilities": p.tolist(), "score": float(p[1]),
             "ts": start + i * step}
            for i, (row, p) in enumerate(zip(inputs, proba))
        ])
        ws.store.add_feedback([{"request_id": f"d{day}-{i}", "model": "credit", "label": int(y)}
                               for i, y in enumerate(frame["default"])])
    return ws


def _bootstrap_baseline(labels, preds, scores, n_boot: int = 100) -> None:
    """The per-resample loop: scikit-learn's metrics on each resample's rows."""
    from sklearn import metrics

    rng = np.random.default_rng(0)
    for _ in range(n_boot):
        idx = rng.integers(0, labels.size, labels.size)
        y, p, s = labels[idx], preds[idx], scores[idx]
        metrics.accuracy_score(y, p)
        metrics.f1_score(y, p, zero_division=0)
        metrics.roc_auc_score(y, s)
        metrics.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from serein.monitor.monitor import run_monitor
    from serein.monitor.performance import standard_errors

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ws = _setup(Path(tmp), args.days, args.per_day)
        print(f"setup: {args.days * args.per_day} logged rows in {time.perf_counter() - t0:.1f} s")
        day = _median_time(lambda: run_monitor(ws, "credit", since="24h"), args.repeat)
        whole = _median_time(lambda: run_monitor(ws, "credit", cumulative=True), args.repeat)
        chunked = _median_time(lambda: run_monitor(ws, "credit", since="24h", chunk="hourly"), args.repeat)
        result = run_monitor(ws, "credit", since="24h", chunk="hourly").to_dict()
    n_chunks = len(result["chunks"])
    print(f"{'run':<36}{'median s':>10}{'rows':>10}")
    print(f"{'--since 24h':<36}{day:>10.2f}{args.per_day:>10}")
    print(f"{'--cumulative (whole log)':<36}{whole:>10.2f}{args.days * args.per_day:>10}")
    print(f"{'--since 24h --chunk hourly':<36}{chunked:>10.2f}{args.per_day:>10}")
    print(f"window/whole-log time ratio {day / whole:.2f} (row share {1 / args.days:.2f})")
    print(f"chunked/unchunked {chunked / day:.2f} for {n_chunks} chunks: {(chunked - day) / n_chunks * 1000:.0f} ms per chunk")

    rng = np.random.default_rng(1)
    n = 1500
    scores = rng.random(n)
    labels = (rng.random(n) < scores).astype(int)
    preds = (scores > 0.5).astype(int)
    fast = _median_time(lambda: standard_errors("classification", labels, preds, scores, [0, 1]), args.repeat)
    slow = _median_time(lambda: _bootstrap_baseline(labels, preds, scores), args.repeat)
    print(f"bootstrap SE of a {n}-row window (100 resamples): vectorised {fast * 1000:.0f} ms, "
          f"per-resample loop {slow * 1000:.0f} ms, speed-up {slow / fast:.0f}x")


if __name__ == "__main__":
    main()
