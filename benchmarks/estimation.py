"""Estimation benchmark: serein's CBPE estimate of a classifier's performance without labels,
against the realized performance and NannyML's CBPE on the same chunks.

Run: ``.venv/bin/python -m benchmarks.estimation [--seeds 5]`` (``make bench-estimation``).

Streams (no internet: River's synthetic generators and scikit-learn's ``make_classification``):

- *covariate shift* (the concept P(y | x) fixed, only P(x) moves): ``make_classification``
  (binary and 3 classes), River ``SEA``, ``Hyperplane`` and ``RandomRBF`` (3 classes). Each
  analysis chunk is drawn from a fresh pool of the stationary stream, rows picked without
  replacement with weight ``exp(s · z)``, where z is the row's standardised features projected on
  a random direction and the tilt s grows from 0 (the first ``CLEAN`` chunks) to ``TILT``; selection
  on x alone leaves P(y | x) untouched, so calibrated scores stay calibrated.
- *concept drift* (what CBPE cannot see): ``ConceptDriftStream`` SEA variant 0 → 3 (gradual) and
  Agrawal function 0 → 2 (abrupt), both after ``CLEAN`` chunks; ``RandomRBFDrift`` (3 classes, its
  centroids moving from the first row on).

Per stream, seed and model (HistGradientBoosting; scaled LogisticRegression): the model is fitted
on ``N_TRAIN`` rows, the next ``N_REF`` rows are the holdout (serein's ``fit_calibration`` on it,
as registration does; NannyML's reference period), then ``N_CHUNKS`` chunks of ``CHUNK`` rows
follow. On each chunk: serein's ``estimate_performance`` (accuracy, ROC AUC, F1; multi-class
macro), NannyML's ``CBPE`` with its defaults (in its own venv, ``benchmarks.nannyml_env``) and
the realized value from the labels. Printed per stream and metric (medians over seeds and both
models): mean absolute error of each estimate vs realized and the ratio serein/NannyML; coverage,
the share of chunks whose realized value lies inside serein's 95 % interval (and inside the
interval without the calibration's bootstrap refits, the labels' chance alone: serein before they
were added; NannyML's confidence band beside it); and the alerts: NannyML's alert rate vs the rate of chunks whose *realized*
value falls below NannyML's own threshold, serein's ``estimated_performance_drop`` rule (top of
the interval below holdout − 0.05) vs realized below holdout − 0.05.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serein.monitor.cbpe import estimate_performance, fit_calibration
from serein.monitor.performance import TOLERANCE

N_TRAIN = 5_000
N_REF = 5_000
CHUNK = 1_000
N_CHUNKS = 16
CLEAN = 4  # chunks before any drift
POOL = 8  # a covariate-shift chunk is drawn from POOL × CHUNK fresh rows
TILT = 2.5  # the last chunk's tilt, in standard deviations of the projection
METRICS = ("accuracy", "roc_auc", "f1")
MODELS = ("hgb", "logreg")

Sampler = Callable[[int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Stream:
    """A labelled stream: the base period (training and holdout rows) and the analysis chunks."""

    X: np.ndarray
    y: np.ndarray
    chunks: list[tuple[np.ndarray, np.ndarray]]


def _river(generator: Iterator) -> Sampler:
    """A sampler taking the next n rows of a River generator as arrays (labels as ints)."""

    def take(n: int) -> tuple[np.ndarray, np.ndarray]:
        rows = list(itertools.islice(generator, n))
        X = np.array([[float(v) for v in x.values()] for x, _ in rows])
        return X, np.array([int(y) for _, y in rows])

    return take


def _array(X: np.ndarray, y: np.ndarray) -> Sampler:
    """A sampler taking consecutive rows of pre-generated arrays."""
    position = [0]

    def take(n: int) -> tuple[np.ndarray, np.ndarray]:
        start = position[0]
        position[0] += n
        return X[start:start + n], y[start:start + n]

    return take


def covariate_shift(sample: Sampler, seed: int) -> Stream:
    """A stationary stream whose chunks are drawn with weight exp(s · z) (see the module docstring)."""
    rng = np.random.default_rng(seed)
    X, y = sample(N_TRAIN + N_REF)
    mean, sd = X.mean(axis=0), X.std(axis=0) + 1e-12
    direction = rng.normal(size=X.shape[1])
    direction /= np.linalg.norm(direction)
    chunks = []
    for i in range(N_CHUNKS):
        tilt = TILT * max(0, i - CLEAN + 1) / (N_CHUNKS - CLEAN)
        Xp, yp = sample(POOL * CHUNK)
        z = ((Xp - mean) / sd) @ direction
        w = np.exp(tilt * (z - z.max()))
        pick = rng.choice(len(yp), CHUNK, replace=False, p=w / w.sum())
        chunks.append((Xp[pick], yp[pick]))
    return Stream(X, y, chunks)


def sequential(sample: Sampler) -> Stream:
    """A stream taken in order: base period first, then the chunks."""
    X, y = sample(N_TRAIN + N_REF)
    return Stream(X, y, [sample(CHUNK) for _ in range(N_CHUNKS)])


def _make_classification(n_classes: int, seed: int) -> Sampler:
    from sklearn.datasets import make_classification

    n = N_TRAIN + N_REF + N_CHUNKS * POOL * CHUNK
    X, y = make_classification(n_samples=n, n_features=10, n_informative=6, n_redundant=2, n_classes=n_classes,
                               n_clusters_per_class=2 if n_classes == 2 else 1, flip_y=0.03, class_sep=0.8,
                               random_state=seed)
    return _array(X, y)


def _scenarios() -> dict[str, tuple[str, Callable[[int], Stream]]]:
    """Stream name → (kind, seed → stream)."""
    from river.datasets import synth

    drift_at = N_TRAIN + N_REF + CLEAN * CHUNK
    return {
        "make_classification binary": ("covariate", lambda s: covariate_shift(_make_classification(2, s), s)),
        "make_classification 3-class": ("covariate", lambda s: covariate_shift(_make_classification(3, s), s)),
        "SEA": ("covariate", lambda s: covariate_shift(_river(iter(synth.SEA(variant=0, noise=0.1, seed=s))), s)),
        "Hyperplane": ("covariate", lambda s: covariate_shift(_river(iter(synth.Hyperplane(
            seed=s, n_features=10, noise_percentage=0.05))), s)),
        "RandomRBF 3-class": ("covariate", lambda s: covariate_shift(_river(iter(synth.RandomRBF(
            seed_model=s, seed_sample=s, n_classes=3, n_features=10))), s)),
        "SEA 0→3 gradual": ("concept", lambda s: sequential(_river(iter(synth.ConceptDriftStream(
            stream=synth.SEA(variant=0, noise=0.1, seed=s), drift_stream=synth.SEA(variant=3, noise=0.1, seed=s + 1),
            position=drift_at + 2 * CHUNK, width=4 * CHUNK, seed=s))))),
        "Agrawal 0→2 abrupt": ("concept", lambda s: sequential(_river(iter(synth.ConceptDriftStream(
            stream=synth.Agrawal(classification_function=0, seed=s),
            drift_stream=synth.Agrawal(classification_function=2, seed=s + 1),
            position=drift_at, width=200, seed=s))))),
        "RandomRBFDrift 3-class": ("concept", lambda s: sequential(_river(iter(synth.RandomRBFDrift(
            seed_model=s, seed_sample=s, n_classes=3, n_features=10, change_speed=0.00002))))),
    }


def _model(name: str, seed: int) -> Any:
    """A fresh classifier: HistGradientBoosting (``hgb``) or scaled LogisticRegression."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "hgb":
        return HistGradientBoostingClassifier(random_state=seed)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def realized(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, ROC AUC and F1 (binary: positive class; multi-class: macro, one-vs-rest AUC)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    binary = n_classes == 2
    out = {"accuracy": float(accuracy_score(y, pred)),
           "f1": float(f1_score(y, pred, average="binary" if binary else "macro",
                                labels=None if binary else list(range(n_classes)), zero_division=0))}
    try:
        out["roc_auc"] = float(roc_auc_score(y, proba[:, 1]) if binary else
                               roc_auc_score(y, proba, multi_class="ovr", labels=list(range(n_classes))))
    except ValueError:  # a class absent from the chunk
        out["roc_auc"] = float("nan")
    return out


@dataclass
class Run:
    """One (stream, seed, model): per metric and chunk the realized value and serein's estimate."""

    holdout: dict[str, float]
    realized: dict[str, np.ndarray]
    serein: dict[str, np.ndarray]  # chunks × (value, low, high)
    serein_bare: dict[str, np.ndarray]  # the same without the calibration's bootstrap refits
    nannyml: dict[str, dict[str, np.ndarray]] | None = None


def run_one(stream: Stream, model_name: str, seed: int, job: Path) -> Run:
    """Fit, calibrate on the holdout, estimate every chunk; writes NannyML's inputs to ``job``."""
    model = _model(model_name, seed).fit(stream.X[:N_TRAIN], stream.y[:N_TRAIN])
    classes = list(model.classes_)
    X_ref, y_ref = stream.X[N_TRAIN:], stream.y[N_TRAIN:]
    ref_proba = model.predict_proba(X_ref)
    ref_pred = model.predict(X_ref)
    calibration = fit_calibration(y_ref, ref_proba, classes)
    index = {c: i for i, c in enumerate(classes)}
    truth: dict[str, list[float]] = {m: [] for m in METRICS}
    bare = {k: v for k, v in calibration.items() if k != "bootstrap"}  # interval of the labels' chance alone
    estimates: dict[str, list[list[float]]] = {m: [] for m in METRICS}
    bare_estimates: dict[str, list[list[float]]] = {m: [] for m in METRICS}
    ana_proba, ana_pred, ana_chunk = [], [], []
    for i, (Xc, yc) in enumerate(stream.chunks):
        proba, pred = model.predict_proba(Xc), model.predict(Xc)
        actual = realized(np.vectorize(index.get)(yc), proba, np.vectorize(index.get)(pred), len(classes))
        est = estimate_performance(calibration, proba, pred, seed=seed + i)["metrics"]
        est_bare = estimate_performance(bare, proba, pred, seed=seed + i)["metrics"]
        for m in METRICS:
            truth[m].append(actual[m])
            estimates[m].append([est[m]["value"], est[m]["low"], est[m]["high"]])
            bare_estimates[m].append([est_bare[m]["value"], est_bare[m]["low"], est_bare[m]["high"]])
        ana_proba.append(proba)
        ana_pred.append(pred)
        ana_chunk.append(np.full(len(yc), i))
    holdout = realized(np.vectorize(index.get)(y_ref), ref_proba, np.vectorize(index.get)(ref_pred), len(classes))
    np.savez(job, classes=np.array([str(c) for c in classes]), ref_proba=ref_proba, ref_pred=np.vectorize(index.get)(ref_pred),
             ref_labels=np.vectorize(index.get)(y_ref),
             ana_proba=np.vstack(ana_proba), ana_pred=np.vectorize(index.get)(np.concatenate(ana_pred)),
             ana_chunk=np.concatenate(ana_chunk))
    return Run(holdout, {m: np.array(v) for m, v in truth.items()},
               {m: np.array(v, dtype=float) for m, v in estimates.items()},
               {m: np.array(v, dtype=float) for m, v in bare_estimates.items()})


def nannyml(jobs: dict[str, Path], workdir: Path) -> tuple[str, dict[str, dict[str, dict[str, np.ndarray]]], float]:
    """NannyML's per-chunk results for every job, run in its venv: (version, results, seconds)."""
    from benchmarks import nannyml_env

    manifest, out = workdir / "jobs.json", workdir / "nannyml.json"
    manifest.write_text(json.dumps({key: str(path) for key, path in jobs.items()}))
    subprocess.run([str(nannyml_env.python()), "-m", "benchmarks.nannyml_env", "run", str(manifest), str(out)],
                   check=True, cwd=Path(__file__).resolve().parent.parent)
    data = json.loads(out.read_text())
    results = {key: {m: {k: np.array(v, dtype=float) for k, v in cols.items()} for m, cols in per.items()}
               for key, per in data["results"].items()}
    return nannyml_env.version(), results, float(data["seconds"])


def _rate(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if flags.size else float("nan")


def summarise(runs: dict[str, Run], metric: str) -> dict[str, float]:
    """Medians over runs of one stream: MAE (serein, NannyML), coverage, alert and drop rates."""
    rows: dict[str, list[float]] = {}
    for run in runs.values():
        real = run.realized[metric]
        ok = np.isfinite(real)
        est, bare, nml = run.serein[metric][ok], run.serein_bare[metric][ok], run.nannyml[metric]
        real = real[ok]
        stats = {
            "mae_serein": np.mean(np.abs(est[:, 0] - real)),
            "mae_nannyml": np.mean(np.abs(nml["value"][ok] - real)),
            "cover_serein": _rate((est[:, 1] <= real) & (real <= est[:, 2])),
            "cover_bare": _rate((bare[:, 1] <= real) & (real <= bare[:, 2])),
            "cover_nannyml": _rate((nml["low"][ok] <= real) & (real <= nml["high"][ok])),
            "alert_nannyml": _rate(nml["alert"][ok] > 0),
            "drop_nannyml": _rate(real < nml["threshold"][ok]),
            "alert_serein": _rate(est[:, 2] < run.holdout[metric] - TOLERANCE),
            "drop_serein": _rate(real < run.holdout[metric] - TOLERANCE),
        }
        for k, v in stats.items():
            rows.setdefault(k, []).append(float(v))
    return {k: statistics.median(v) for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # HistGradientBoosting's OpenMP threads thrash on shared cores; one each is faster
    scenarios = _scenarios()
    runs: dict[str, dict[str, Run]] = {name: {} for name in scenarios}
    jobs: dict[str, Path] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, (_, make) in scenarios.items():
            t = time.perf_counter()
            for seed in range(1, args.seeds + 1):
                stream = make(seed)
                for model in MODELS:
                    key = f"{name}|{model}|{seed}"
                    jobs[key] = workdir / f"job{len(jobs)}.npz"
                    runs[name][key] = run_one(stream, model, seed, jobs[key])
            print(f"  {name}: {args.seeds} seeds × {len(MODELS)} models in {time.perf_counter() - t:.0f} s", flush=True)
        serein_seconds = time.perf_counter() - t0
        version, results, nml_seconds = nannyml(jobs, workdir)
    for name in runs:
        for key, run in runs[name].items():
            run.nannyml = results[key]
    print(f"\nserein CBPE vs NannyML {version} CBPE: {N_CHUNKS} chunks × {CHUNK} rows after {N_TRAIN} training and "
          f"{N_REF} holdout rows; medians over {args.seeds} seeds × {len(MODELS)} models "
          f"(serein incl. data and fits {serein_seconds:.0f} s, NannyML {nml_seconds:.0f} s)\n")
    head = (f"{'stream':<30}{'kind':<10}{'metric':<9}{'MAE serein':>11}{'MAE NML':>9}{'ratio':>7}"
            f"{'cover serein':>13}{'(no refits)':>12}{'cover NML':>10}")
    print(head)
    print("-" * len(head))
    pooled: dict[tuple[str, str], list[dict[str, float]]] = {}
    for name, (kind, _) in scenarios.items():
        for metric in METRICS:
            s = summarise(runs[name], metric)
            pooled.setdefault((kind, metric), []).append(s)
            print(f"{name:<30}{kind:<10}{metric:<9}{s['mae_serein']:>11.4f}{s['mae_nannyml']:>9.4f}"
                  f"{s['mae_serein'] / s['mae_nannyml']:>7.2f}{s['cover_serein']:>13.0%}{s['cover_bare']:>12.0%}"
                  f"{s['cover_nannyml']:>10.0%}")
    print("\nmedian over streams")
    for (kind, metric), rows in pooled.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        ratio = statistics.median(r["mae_serein"] / r["mae_nannyml"] for r in rows)
        print(f"  {kind:<10}{metric:<9} MAE serein {med['mae_serein']:.4f}  NannyML {med['mae_nannyml']:.4f}  "
              f"ratio {ratio:.2f}  coverage serein {med['cover_serein']:.0%} (no refits {med['cover_bare']:.0%})  "
              f"NannyML band {med['cover_nannyml']:.0%}")
    head = (f"\n{'alerts (share of chunks)':<30}{'metric':<9}{'NML alert':>10}{'NML drop':>9}"
            f"{'serein alert':>13}{'serein drop':>12}")
    print(head)
    print("-" * (len(head) - 1))
    for name in scenarios:
        for metric in METRICS:
            s = summarise(runs[name], metric)
            print(f"{name:<30}{metric:<9}{s['alert_nannyml']:>10.0%}{s['drop_nannyml']:>9.0%}"
                  f"{s['alert_serein']:>13.0%}{s['drop_serein']:>12.0%}")
    print("\nNML drop: realized below NannyML's own threshold; serein drop: realized below holdout − "
          f"{TOLERANCE} (the rule's tolerance); an alert should come with a drop.")


if __name__ == "__main__":
    main()
