"""Detection benchmark: serein's streaming detectors next to raw River ADWIN on streams with known
change points, and serein's window drift on no-drift and shifted 10k-row windows.

Run: ``.venv/bin/python -m benchmarks.detection [--seeds 30]`` (``make bench-detection``).

1. Error and score streams. A model (a depth-8 decision tree fitted on 1,500 pre-change rows, its
   holdout errors on 1,500 more as the reference: the error rate, or the absolute errors' mean and
   σ) scores a River stream that changes at a known position. Concept drift on the error stream:
   SEA and Agrawal through ``ConceptDriftStream`` (abrupt: width 50, the least above its overflow
   limit at this position; gradual: width 1,000) and ``FriedmanDrift`` (global abrupt drift,
   regression: absolute errors). Feature drift on the score stream (the predicted values): the
   Friedman stream with its two strongest inputs moved by 0.5 σ (abrupt). Controls: the same
   generators without a change. Per seed and stream: the delay of the first alarm in the
   degrading direction (serein: the first of ADWIN, Page-Hinkley and CUSUM to report a *rise*,
   on the score stream a move either way; raw ADWIN: its first detection of any kind) from the
   change point (a gradual change: its middle less half a width, where 12 % of rows are new),
   an alarm after the onset but before that point counting as delay 0; missed changes (no alarm
   within 5,000 values); false alarms per 10k values before the onset (where under 0.25 % of rows
   are new: 1.5 widths before the middle) and on the controls.
2. Window drift (``serein.monitor.drift``) at 10k-row windows: on no-drift streams the share of
   (feature, window) cells flagged; on shifted windows, whether each 0.5σ numeric shift and each
   categorical shift with JS ≥ 0.1 is caught.

Medians over seeds; targets: serein's median delay ≤ ADWIN's and its false alarms per 10k no worse
than ADWIN's on every stream type, false alerts on ≤ 1 % of no-drift cells, every shift caught.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

HORIZON = 5_000  # values after the change within which an alarm counts as a detection
TRAIN = 3_000
CHANGE = 5_000
LENGTH = 10_000


ONSET_WIDTHS = 1.5  # a gradual change starts 1.5 widths before its middle (under 0.25 % new rows)
SHIFT = 0.5 * math.sqrt(1 / 12)  # 0.5 σ of a uniform [0, 1] input


@dataclass
class Case:
    """One stream: its task, which of the model's streams is watched, the change point among the
    scored values (None for a control) and the onset before which an alarm is false."""

    name: str
    stream: Iterator
    regression: bool
    watch: str = "error"  # or "score": the predicted values
    at: int | None = None
    onset: int | None = None


def _frame(stream: Iterator, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(itertools.islice(stream, n))
    keys = list(rows[0][0])
    X = np.array([[float(x[k]) for k in keys] for x, _ in rows])
    return X, np.array([float(y) for _, y in rows])


def _shifted(stream: Iterator, at: int, keys: tuple[int, ...], by: float) -> Iterator:
    """``stream`` with inputs ``keys`` moved by ``by`` from row ``at`` on: feature drift, same concept."""
    for i, (x, y) in enumerate(stream):
        yield ({k: v + by if i >= at and k in keys else v for k, v in x.items()}, y)


def _cases(seed: int) -> list[Case]:
    """The changing streams and the controls of one seed."""
    from river.datasets import synth

    start = TRAIN + CHANGE
    never = (10**9, 2 * 10**9)
    cases = []
    for width, kind in ((50, "abrupt"), (1000, "gradual")):  # width >= 4·position/709: River overflows below
        at = CHANGE - (width // 2 if kind == "gradual" else 0)
        onset = CHANGE - int(ONSET_WIDTHS * width)
        cases.append(Case(f"SEA {kind}", synth.ConceptDriftStream(
            synth.SEA(variant=0, seed=seed), synth.SEA(variant=2, seed=seed + 1),
            position=start, width=width, seed=seed), False, at=at, onset=onset))
        cases.append(Case(f"Agrawal {kind}", synth.ConceptDriftStream(
            synth.Agrawal(0, seed=seed), synth.Agrawal(2, seed=seed + 1),
            position=start, width=width, seed=seed), False, at=at, onset=onset))
    cases.append(Case("Friedman abrupt", synth.FriedmanDrift(drift_type="gra", position=(start, start + 10**9), seed=seed),
                      True, at=CHANGE, onset=CHANGE))
    # Friedman's y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise: move x3 and x4
    cases.append(Case("Friedman inputs 0.5σ", _shifted(synth.FriedmanDrift(drift_type="gra", position=never, seed=seed),
                                                       start, (3, 4), SHIFT), True, "score", at=CHANGE, onset=CHANGE))
    cases += [Case("SEA (no drift)", synth.SEA(variant=0, seed=seed), False),
              Case("Agrawal (no drift)", synth.Agrawal(0, seed=seed), False),
              Case("Friedman (no drift)", synth.FriedmanDrift(drift_type="gra", position=never, seed=seed), True),
              Case("Friedman scores (no drift)", synth.FriedmanDrift(drift_type="gra", position=never, seed=seed),
                   True, "score")]
    return cases


def _watched(case: Case, seed: int) -> tuple[np.ndarray, tuple[float, float, int], bool]:
    """The watched values after training, the reference (mean, σ, n) from the holdout, and
    whether they are 0/1."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from serein.monitor.detectors import rate_std

    X, y = _frame(case.stream, TRAIN + LENGTH)
    model = (DecisionTreeRegressor if case.regression else DecisionTreeClassifier)(max_depth=8, random_state=seed)
    half = TRAIN // 2
    model.fit(X[:half], y[:half])
    hold, pred = model.predict(X[half:TRAIN]), model.predict(X[TRAIN:])
    if case.watch == "score":
        return pred, (float(hold.mean()), float(hold.std(ddof=1)), hold.size), False
    if case.regression:
        ref = np.abs(hold - y[half:TRAIN])
        return np.abs(pred - y[TRAIN:]), (float(ref.mean()), float(ref.std()), ref.size), False
    wrong = float((hold != y[half:TRAIN]).sum())
    return (pred != y[TRAIN:]).astype(float), (wrong / hold.size, rate_std(wrong, hold.size), hold.size), True


def _alarms(values: np.ndarray, reference: tuple[float, float, int], binary: bool,
            either_way: bool) -> tuple[list[int], list[int]]:
    """Alarm positions: serein (rises only unless ``either_way``, any detector) and raw River
    ADWIN (any detection)."""
    from river.drift import ADWIN

    from serein.monitor.detectors import DetectorSettings, StreamDetectors

    ours = StreamDetectors(DetectorSettings(), *reference, binary=binary)
    raw = ADWIN()
    mine, theirs = [], []
    for i, v in enumerate(values.tolist()):
        if any(either_way or c.direction == "up" for c in ours.update(v)):
            mine.append(i)
        raw.update(v)
        if raw.drift_detected:
            theirs.append(i)
    return mine, theirs


def _score(alarms: list[int], case: Case, length: int) -> tuple[float | None, int, int]:
    """(delay or None if missed, false alarms, values where an alarm is false) for one stream."""
    if case.at is None or case.onset is None:
        return None, len(alarms), length
    hit = [max(0, a - case.at) for a in alarms if case.onset <= a < case.at + HORIZON]
    return (hit[0] if hit else None), sum(1 for a in alarms if a < case.onset), case.onset


def _family(case: Case) -> str:
    task = "regression" if case.regression else "classification"
    return f"{task} {case.watch}s"


def error_streams(seeds: int) -> None:
    rows: dict[str, dict[str, list]] = {}
    families: dict[str, str] = {}
    for seed in range(seeds):
        for case in _cases(seed):
            values, reference, binary = _watched(case, seed)
            families[case.name] = _family(case)
            for who, alarms in zip(("serein", "ADWIN"), _alarms(values, reference, binary, case.watch == "score"),
                                   strict=True):
                rows.setdefault(case.name, {}).setdefault(who, []).append(_score(alarms, case, values.size))
    print(f"\nstreams: change at value {CHANGE} of {LENGTH}, {seeds} seeds; delay = median over detected seeds; "
          "false/10k pooled over seeds")
    print(f"{'stream':<28}{'detector':<9}{'median delay':>13}{'missed':>8}{'false/10k':>11}")
    delays: dict[str, list[float]] = {"serein": [], "ADWIN": []}
    pooled: dict[tuple[str, str], list[int]] = {}
    for name, by in rows.items():
        for who, results in by.items():
            got = [d for d, _, _ in results if d is not None]
            missed = sum(1 for d, _, _ in results if d is None) if "no drift" not in name else 0
            false, span = sum(f for _, f, _ in results), sum(c for _, _, c in results)
            totals = pooled.setdefault((families[name], who), [0, 0])
            totals[0], totals[1] = totals[0] + false, totals[1] + span
            delays[who] += got
            med = f"{statistics.median(got):.0f}" if got else "-"
            print(f"{name:<28}{who:<9}{med:>13}{missed:>8}{false / span * 10_000:>11.2f}")
    print("\nfalse alarms per 10k values, pooled per stream type (before the onset, and on controls):")
    for family in sorted({f for f, _ in pooled}):
        (f1, n1), (f2, n2) = pooled[(family, "serein")], pooled[(family, "ADWIN")]
        print(f"  {family:<26} serein {f1 / n1 * 10_000:.2f} ({f1} in {n1:,} values)   "
              f"ADWIN {f2 / n2 * 10_000:.2f} ({f2})")
    ours, theirs = statistics.median(delays["serein"]), statistics.median(delays["ADWIN"])
    print(f"\nmedian delay over all detected changes: serein {ours:.0f}, ADWIN {theirs:.0f} "
          f"(ratio {ours / max(theirs, 1):.2f}; target <= 1)")


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
