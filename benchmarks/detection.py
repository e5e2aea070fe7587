"""Detection benchmark: serein's streaming detectors next to raw River ADWIN on streams with known
change points, and serein's window drift on no-drift and shifted 10k-row windows.

Run: ``.venv/bin/python -m benchmarks.detection [--seeds 30]`` (``make bench-detection``).

1. Error streams. A model (a depth-8 decision tree fitted on 1,500 pre-change rows, its holdout
   error on 1,500 more as the reference) scores a River stream whose
   concept changes at a known position: SEA and Agrawal through ``ConceptDriftStream`` (abrupt:
   width 50, the least above its overflow limit at this position; gradual: width 1,000), and
   ``FriedmanDrift`` (global abrupt drift, regression: absolute errors). Controls: the same
   generators without a change. Per seed and stream: the delay of the first alarm in the
   degrading direction after the change (serein: the first of ADWIN, Page-Hinkley and CUSUM to
   report a *rise*; raw ADWIN: its first detection of any kind), missed changes (no alarm within
   5,000 values) and false alarms per 10k values (alarms before the change, and on controls).
2. Window drift (``serein.monitor.drift``) at 10k-row windows: on no-drift streams the share of
   (feature, window) cells flagged; on shifted windows, whether each 0.5σ numeric shift and each
   categorical shift with JS ≥ 0.1 is caught.

Medians over seeds; targets: serein's median delay ≤ ADWIN's, false alerts on ≤ 1 % of no-drift
cells, every shift caught.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from collections.abc import Iterator

import numpy as np

HORIZON = 5_000  # values after the change within which an alarm counts as a detection
TRAIN = 3_000
CHANGE = 5_000
LENGTH = 10_000


def _frame(stream: Iterator, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(itertools.islice(stream, n))
    keys = list(rows[0][0])
    X = np.array([[float(x[k]) for k in keys] for x, _ in rows])
    return X, np.array([float(y) for _, y in rows])


def _streams(seed: int) -> dict[str, tuple[Iterator, bool, int]]:
    """name -> (stream, is it a regression, where its change starts among the scored values:
    CHANGE, or half a width earlier for a gradual change, where 12 % of rows are new already)."""
    from river.datasets import synth

    start = TRAIN + CHANGE
    out = {}
    for width, kind in ((50, "abrupt"), (1000, "gradual")):  # width >= 4·position/709: River overflows below
        at = CHANGE - (width // 2 if kind == "gradual" else 0)
        out[f"SEA {kind}"] = (synth.ConceptDriftStream(synth.SEA(variant=0, seed=seed), synth.SEA(variant=2, seed=seed + 1),
                                                       position=start, width=width, seed=seed), False, at)
        out[f"Agrawal {kind}"] = (synth.ConceptDriftStream(synth.Agrawal(0, seed=seed), synth.Agrawal(2, seed=seed + 1),
                                                           position=start, width=width, seed=seed), False, at)
    out["Friedman abrupt"] = (synth.FriedmanDrift(drift_type="gra", position=(start, start + 10**9), seed=seed), True, CHANGE)
    return out


def _controls(seed: int) -> dict[str, tuple[Iterator, bool]]:
    from river.datasets import synth

    return {"SEA": (synth.SEA(variant=0, seed=seed), False), "Agrawal": (synth.Agrawal(0, seed=seed), False),
            "Friedman": (synth.FriedmanDrift(drift_type="gra", position=(10**9, 2 * 10**9), seed=seed), True)}


def _errors(stream: Iterator, regression: bool, seed: int) -> tuple[np.ndarray, float, float]:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    X, y = _frame(stream, TRAIN + LENGTH)
    model = (DecisionTreeRegressor if regression else DecisionTreeClassifier)(max_depth=8, random_state=seed)
    model.fit(X[:TRAIN // 2], y[:TRAIN // 2])
    hold = model.predict(X[TRAIN // 2:TRAIN])
    pred = model.predict(X[TRAIN:])
    if regression:
        ref = np.abs(hold - y[TRAIN // 2:TRAIN])
        return np.abs(pred - y[TRAIN:]), float(ref.mean()), float(ref.std())
    p = float((hold != y[TRAIN // 2:TRAIN]).mean())
    return (pred != y[TRAIN:]).astype(float), p, math.sqrt(p * (1 - p))


def _alarms(errors: np.ndarray, mean: float, std: float) -> tuple[list[int], list[int]]:
    """Alarm positions: serein (rises only, any detector) and raw River ADWIN (any detection)."""
    from river.drift import ADWIN

    from serein.monitor.detectors import DetectorSettings, StreamDetectors

    ours = StreamDetectors(DetectorSettings(), mean=mean, std=std)
    raw = ADWIN()
    mine, theirs = [], []
    for i, v in enumerate(errors):
        if any(c.direction == "up" for c in ours.update(v)):
            mine.append(i)
        raw.update(v)
        if raw.drift_detected:
            theirs.append(i)
    return mine, theirs


def _score(alarms: list[int], change: int | None) -> tuple[float | None, int]:
    """(delay or None if missed, false alarms) for one stream."""
    false = [a for a in alarms if change is None or a < change]
    if change is None:
        return None, len(false)
    hit = [a - change for a in alarms if change <= a < change + HORIZON]
    return (hit[0] if hit else None), len(false)


def error_streams(seeds: int) -> None:
    rows: dict[str, dict[str, list]] = {}
    for seed in range(seeds):
        for name, (stream, regression, at) in _streams(seed).items():
            errors, mean, std = _errors(stream, regression, seed)
            for who, alarms in zip(("serein", "ADWIN"), _alarms(errors, mean, std), strict=True):
                delay, false = _score(alarms, at)
                rows.setdefault(name, {}).setdefault(who, []).append((delay, false, at))
        for name, (stream, regression) in _controls(seed).items():
            errors, mean, std = _errors(stream, regression, seed)
            for who, alarms in zip(("serein", "ADWIN"), _alarms(errors, mean, std), strict=True):
                rows.setdefault(f"{name} (no drift)", {}).setdefault(who, []).append((None, len(alarms), len(errors)))
    print(f"\nerror streams: change at value {CHANGE} of {LENGTH}, {seeds} seeds; delay = median over detected seeds")
    print(f"{'stream':<22}{'detector':<9}{'median delay':>13}{'missed':>8}{'false/10k':>11}")
    delays: dict[str, list[float]] = {"serein": [], "ADWIN": []}
    false_rate: dict[str, list[float]] = {"serein": [], "ADWIN": []}
    for name, by in rows.items():
        for who, results in by.items():
            got = [d for d, _, _ in results if d is not None]
            missed = sum(1 for d, _, c in results if d is None and "no drift" not in name)
            per10k = statistics.median(f / c * 10_000 for _, f, c in results)
            delays[who] += got
            false_rate[who].append(per10k)
            med = f"{statistics.median(got):.0f}" if got else "-"
            print(f"{name:<22}{who:<9}{med:>13}{missed:>8}{per10k:>11.2f}")
    ours, theirs = statistics.median(delays["serein"]), statistics.median(delays["ADWIN"])
    print(f"\nmedian delay over all detected changes: serein {ours:.0f}, ADWIN {theirs:.0f} "
          f"(ratio {ours / theirs:.2f}; target <= 1)")
    print(f"median false alarms per 10k: serein {statistics.median(false_rate['serein']):.2f}, "
          f"ADWIN {statistics.median(false_rate['ADWIN']):.2f} (ADWIN counts falls of the error too)")


def window_drift(seeds: int, windows: int = 3, n: int = 10_000) -> None:
    from serein.monitor.drift import feature_drift, js_distance
    from serein.monitor.profile import categorical_profile, numeric_profile

    cats = np.array(list("abcdefgh"))
    probs = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02])
    cells = flagged = 0
    shifts = caught = 0
    js_seen = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ref = {"normal": rng.normal(0, 1, n), "lognormal": rng.lognormal(0, 1, n), "uniform": rng.uniform(0, 10, n),
               "cat": rng.choice(cats, n, p=probs)}
        profiles = {k: (categorical_profile(v) if k == "cat" else numeric_profile(v)) for k, v in ref.items()}
        for _ in range(windows):
            cur = {"normal": rng.normal(0, 1, n), "lognormal": rng.lognormal(0, 1, n), "uniform": rng.uniform(0, 10, n),
                   "cat": rng.choice(cats, n, p=probs)}
            for k, v in cur.items():
                cells += 1
                flagged += bool(feature_drift(profiles[k], v)["drifted"])
        sd = {k: float(np.std(ref[k])) for k in ("normal", "lognormal", "uniform")}
        shifted = {"normal": rng.normal(0, 1, n) + 0.5 * sd["normal"],
                   "lognormal": rng.lognormal(0, 1, n) + 0.5 * sd["lognormal"],
                   "uniform": rng.uniform(0, 10, n) + 0.5 * sd["uniform"]}
        moved = probs.copy()
        moved[0], moved[-1] = moved[0] - 0.17, moved[-1] + 0.17  # JS distance about 0.2
        shifted["cat"] = rng.choice(cats, n, p=moved)
        js_seen.append(js_distance(probs, moved))
        for k, v in shifted.items():
            shifts += 1
            caught += bool(feature_drift(profiles[k], v)["drifted"])
    print(f"\nwindow drift at {n}-row windows, {seeds} seeds: false alerts on {flagged}/{cells} no-drift "
          f"(feature, window) cells = {flagged / cells:.2%} (target <= 1%)")
    print(f"0.5σ numeric shifts and categorical shifts (JS {min(js_seen):.2f}) caught: {caught}/{shifts} (target all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    t0 = time.perf_counter()
    error_streams(args.seeds)
    window_drift(args.seeds)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
