"""Drift on 1M vs 1M rows x 25 columns: ``serein monitor --current`` against Evidently's
DataDriftPreset and a plain scipy KS + chi-square floor, in the same run.

    .venv/bin/python -m benchmarks.drift [--rows 1000000] [--repeat 3] [--no-evidently]

Data (generated once, cached as Parquet under ``~/.cache/serein-bench/drift``): 20 numeric
columns (normal, lognormal, integer codes; one with 2 % nulls) and 5 categorical ones (5 to 200
categories), plus a binary target. The current batch injects shifts of known size:

- real: ``n0`` +0.5 sigma, ``n1`` lognormal median x1.5, ``n2`` integer range 0-29 -> 0-35,
  ``n9`` +0.25 sigma, ``c0`` category frequencies reversed, ``c3`` a new category at 15 %;
- negligible: ``n12`` +0.03 sigma, ``n4`` lognormal x1.02, ``n6`` sigma x1.03, ``c1`` 3 % mixed towards
  uniform (a test at p < 0.05 rejects all of them at this size; nobody should be paged);
- the other 15 columns are unchanged.

Contenders, each a subprocess reading the same two files, timed from start to exit, peak RSS
from ``wait4``:

(a) ``serein monitor NAME --current current.parquet --json`` against a model (HistGradientBoosting)
    registered on the reference, its profile built at registration (the one-time profile build
    on the full reference is timed separately, in-process): the raw batch, which serein scores
    for prediction drift and the CBPE estimate, as ``serein predict`` does (the version's batch
    plan: numpy preprocessing, the trees as look-up tables);
(a') the same on the batch as ``serein predict`` wrote it (its features plus ``prediction``,
    ``proba_*`` and ``model_version``, made once and cached): what a production batch looks like
    once scored, and the like-for-like case, since Evidently's preset scores nothing;
(b) Evidently 0.7 ``DataDriftPreset`` with its defaults, in its own venv (``benchmarks.evidently_env``);
(c) the floor: ``scipy.stats.ks_2samp`` per numeric column and a chi-square test of the
    category counts per categorical column, p < 0.05, no correction.

Medians over ``--repeat`` runs for serein and the floor; Evidently runs once (it takes minutes).
Also timed: ``serein --help`` and a bare interpreter importing what a monitoring run on a scored
batch imports (``RUN_IMPORTS``), the fixed cost every run pays before reading a row. serein's
modules are compiled to bytecode before each round, as installing the package does (``bytecode``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.evidently_env import CACHE

HERE = Path(__file__).resolve().parents[1]
DATA = CACHE / "drift"
MODEL = "drift-bench"
TARGET = "y"
CATEGORIES = {"c0": 5, "c1": 20, "c2": 200, "c3": 3, "c4": 8}
REAL = {"n0", "n1", "n2", "n9", "c0", "c3"}
DATA_VERSION = 2  # of the current batch's shifts (the reference, and the model registered on it, never change)
NEGLIGIBLE = {"n4", "n6", "n12", "c1"}
# what `serein monitor --current` on a scored batch imports (no pandas: the batch stays Arrow and
# numpy, and the contract's screen brings pandas only for suspect rows; no pydantic: typer < 0.29);
# a raw batch adds onnx and onnxruntime to set its scorer up
RUN_IMPORTS = ("pyarrow.parquet", "sqlalchemy", "typer", "yaml")


# -- data ----------------------------------------------------------------------------------
SHIFT = {0: 0.5, 9: 0.25, 12: 0.03}  # normal columns: mean moved by this many sigma
SCALE = {6: 1.03}  # normal columns: sigma multiplied
MEDIAN = {1: 1.5, 4: 1.02}  # lognormal columns: every value multiplied
HIGH = {2: 36}  # integer codes: range 0..HIGH-1 instead of 0..29


def _numeric(rng: np.random.Generator, i: int, n: int, current: bool) -> np.ndarray:
    """Column ``n{i}``: normal (i % 3 == 0), lognormal (1) or integer codes (2), shifted in the
    current batch as the tables above say."""
    kind = i % 3
    if kind == 0:
        return rng.normal(SHIFT.get(i, 0.0) if current else 0.0, SCALE.get(i, 1.0) if current else 1.0, n)
    if kind == 1:
        return rng.lognormal(0.0, 0.7, n) * (MEDIAN.get(i, 1.0) if current else 1.0)
    return rng.integers(0, HIGH.get(i, 30) if current else 30, n).astype(float)


def _categorical(rng: np.random.Generator, name: str, n: int, current: bool) -> np.ndarray:
    k = CATEGORIES[name]
    p = np.arange(k, 0, -1.0)
    p /= p.sum()
    labels = [f"v{t}" for t in range(k)]
    if current and name == "c0":
        p = p[::-1]
    if current and name == "c1":
        p = 0.97 * p + 0.03 / k
    if current and name == "c3":
        p, labels = np.append(0.85 * p, 0.15), [*labels, "v_new"]
    return np.asarray(labels, dtype=object)[rng.choice(len(p), n, p=p)]


def make_frame(n: int, seed: int, current: bool):
    """One batch: 20 numeric, 5 categorical columns and (reference only) the binary target."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"n{i}": _numeric(rng, i, n, current) for i in range(20)}
    data["n3"][rng.random(n) < 0.02] = np.nan
    for name in CATEGORIES:
        data[name] = pd.Series(_categorical(rng, name, n, current), dtype="str")
    frame = pd.DataFrame(data)
    if not current:
        logit = 0.8 * data["n0"] - 0.5 * np.log(data["n1"]) + 0.05 * data["n2"] - 0.75 + 0.6 * (data["c0"] == "v0")
        frame[TARGET] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def data_files(n: int) -> tuple[Path, Path]:
    """Reference and current Parquet files of ``n`` rows each, generated on first use."""
    folder = DATA / f"{n}"
    ref, cur = folder / "reference.parquet", folder / f"current-v{DATA_VERSION}.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    if not ref.exists():
        print(f"generating {n:,} reference rows in {folder}", flush=True)
        make_frame(n, 0, current=False).to_parquet(ref)
    if not cur.exists():
        make_frame(n, 1, current=True).to_parquet(cur)
    return ref, cur


# -- serein --------------------------------------------------------------------------------
def workspace(n: int, reference: Path) -> Path:
    """A workspace with ``drift-bench`` registered on the reference (trained on half, profiled on
    the other half), built on first use."""
    import pandas as pd

    from serein.api import train
    from serein.workspace import Workspace

    root = DATA / f"{n}" / "ws"
    stamp = root / ".registered"
    if stamp.exists():
        return root
    print(f"registering {MODEL} on the reference in {root} (first run only)", flush=True)
    ws = Workspace.init(root) if not (root / "serein.yaml").exists() else Workspace(root)
    recipe = {
        "name": MODEL, "data": MODEL, "target": TARGET, "task": "classification",
        "estimator": {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 40}},
        "split": {"method": "random", "test_size": 0.5}, "seed": 0,
        "gate": {"metric": "roc_auc", "min_improvement_over_baseline": 0.05},
    }
    result = train(recipe, data=pd.read_parquet(reference), workspace=ws)
    if not result.promoted:
        sys.exit(f"the benchmark model was not promoted: {result.gate.reasons}")
    stamp.write_text(f"{MODEL} v{result.version}\n")
    return root


def scored_batch(n: int, root: Path, current: Path) -> Path:
    """``current`` as ``serein predict`` writes it (features, outputs, model version), made once."""
    out = DATA / f"{n}" / f"current-v{DATA_VERSION}-scored.parquet"
    if not out.exists():
        print(f"scoring the current batch with serein predict into {out} (first run only)", flush=True)
        subprocess.run([str(Path(sys.executable).with_name("serein")), "predict", MODEL, "--input", str(current),
                        "--output", str(out), "--workspace", str(root)], check=True, capture_output=True)
    return out


def profile_build_seconds(reference: Path, root: Path) -> float:
    """The one-time cost: ``build_profile`` on the whole reference with the model's outputs."""
    import pandas as pd

    from serein.batch import ChunkScorer
    from serein.monitor.profile import build_profile
    from serein.workspace import Workspace

    loaded = Workspace(root).registry.load(MODEL, "champion")
    frame = pd.read_parquet(reference)
    predictions, proba = ChunkScorer(loaded, prefer_onnx=True).score(frame[loaded.features])
    start = time.perf_counter()
    build_profile(frame[loaded.features], loaded.contract, "classification", predictions, scores=proba[:, 1],
                  classes=loaded.classes)
    return time.perf_counter() - start


# -- measuring -----------------------------------------------------------------------------
def bytecode() -> None:
    """Write the bytecode of serein's modules, as installing a package does (pip compiles what it
    installs, as it did Evidently's venv). Imported from a checkout with PYTHONDONTWRITEBYTECODE
    set, or after an edit made its cache stale, serein would otherwise compile every module it
    imports from source in every timed run (0.1-0.2 s of a one-second run), a cost no installed
    deployment pays. Up-to-date files are skipped, so calling it before each round is cheap."""
    import compileall

    compileall.compile_dir(HERE / "src" / "serein", quiet=1)


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of ``cmd``, run through a fresh wrapper process
    (``benchmarks.drift rss``) so the peak RSS is this command's alone; the wall time is the
    command's own, from its start to its exit, measured by the wrapper (the wrapper's start, an
    interpreter importing numpy, is no contender's time); exits on failure."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.drift", "rss", "--", *cmd],
                          capture_output=True, text=True, cwd=HERE)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = proc.stdout.rstrip().splitlines()
    measured = json.loads(lines[-1])
    return measured["wall_s"], measured["max_rss_mb"], "\n".join(lines[:-1])


def rss_wrapper(cmd: list[str]) -> None:
    """Run ``cmd``, pass its stdout through, then print its wall time and peak RSS as a JSON line."""
    import resource

    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    sys.stdout.write(proc.stdout)
    print(json.dumps({"wall_s": wall, "max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
    sys.exit(proc.returncode)


# -- the floor -----------------------------------------------------------------------------
def floor(reference: str, current: str) -> None:
    """KS per numeric column, chi-square per categorical column, p < 0.05: one JSON line."""
    import pandas as pd
    from scipy import stats

    ref, cur = pd.read_parquet(reference), pd.read_parquet(current)
    columns = {}
    for name in cur.columns:
        if name in CATEGORIES:
            counts = pd.concat([ref[name].value_counts(), cur[name].value_counts()], axis=1).fillna(0).to_numpy()
            p = float(stats.chi2_contingency(counts.T).pvalue)
            stat = "chi2"
        else:
            p = float(stats.ks_2samp(ref[name].dropna().to_numpy(), cur[name].dropna().to_numpy()).pvalue)
            stat = "ks"
        columns[name] = {"method": stat, "p_value": p, "drifted": p < 0.05}
    print(json.dumps({"columns": columns}))


# -- report --------------------------------------------------------------------------------
def _flagged(columns: dict[str, dict]) -> list[str]:
    return sorted((name for name, c in columns.items() if c["drifted"]), key=lambda s: (s[0], int(s[1:])))


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently (minutes at 1M rows)")
    args = parser.parse_args(argv)

    reference, current = data_files(args.rows)
    root = workspace(args.rows, reference)
    build = [profile_build_seconds(reference, root) for _ in range(args.repeat)]

    scored = scored_batch(args.rows, root, current)
    serein = str(Path(sys.executable).with_name("serein"))

    def monitor(batch: Path) -> list[str]:
        return [serein, "monitor", MODEL, "--current", str(batch), "--json", "--workspace", str(root)]

    runs, scored_runs, help_runs, import_runs = [], [], [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine
        bytecode()
        runs.append(timed(monitor(current)))
        scored_runs.append(timed(monitor(scored)))
        help_runs.append(timed([serein, "--help"]))
        import_runs.append(timed([sys.executable, "-c", f"import {', '.join(RUN_IMPORTS)}"]))
    result = json.loads(runs[-1][2].strip().splitlines()[-1])
    scored_result = json.loads(scored_runs[-1][2].strip().splitlines()[-1])
    if "predictions)" not in scored_result["window"]["source"]:
        sys.exit(f"serein rescored the scored batch: {scored_result['window']['source']}")
    serein_cols = {name: {"drifted": f["drifted"]} for name, f in result["features"].items()}
    scored_cols = {name: {"drifted": f["drifted"]} for name, f in scored_result["features"].items()}
    floor_runs = [timed([sys.executable, "-m", "benchmarks.drift", "floor", str(reference), str(current)])
                  for _ in range(args.repeat)]
    floor_cols = json.loads(floor_runs[-1][2].strip().splitlines()[-1])["columns"]

    rows = [("serein monitor --current (raw batch)", _median([r[0] for r in runs]), _median([r[1] for r in runs]),
             _flagged(serein_cols), f"median of {args.repeat}"),
            ("serein monitor --current (scored batch)", _median([r[0] for r in scored_runs]),
             _median([r[1] for r in scored_runs]), _flagged(scored_cols), f"median of {args.repeat}"),
            ("scipy KS + chi2, p<0.05", _median([r[0] for r in floor_runs]), _median([r[1] for r in floor_runs]),
             _flagged(floor_cols), f"median of {args.repeat}")]
    evidently_cols = None
    if not args.no_evidently:
        from benchmarks import evidently_env

        out = DATA / f"{args.rows}" / "evidently.json"
        wall, rss, _ = timed([str(evidently_env.python()), "-m", "benchmarks.evidently_env", "run",
                              str(reference), str(current), str(out)])
        evidently_cols = json.loads(out.read_text())["columns"]
        rows.append((f"Evidently {evidently_env.version()} DataDriftPreset", wall, rss, _flagged(evidently_cols), "one run"))

    print(f"\ndrift: {args.rows:,} vs {args.rows:,} rows x 25 columns; real shifts {sorted(REAL)}, "
          f"negligible {sorted(NEGLIGIBLE)}")
    print(f"profile build on the reference (once, at registration): median {_median(build):.2f} s "
          f"over {args.repeat} runs")
    print(f"{'contender':<40} {'wall s':>8} {'peak MB':>8}  flagged")
    for name, wall, rss, flagged, note in rows:
        print(f"{name:<40} {wall:8.2f} {rss:8.0f}  {len(flagged)}: {', '.join(flagged)}  ({note})")
    print(f"fixed cost of a run: `serein --help` {_median([r[0] for r in help_runs]):.2f} s, importing "
          f"{', '.join(RUN_IMPORTS)} {_median([r[0] for r in import_runs]):.2f} s (medians of {args.repeat})")
    if evidently_cols is not None:
        ev_wall, ev_rss = rows[3][1], rows[3][2]
        for name, wall, rss, flagged, _ in rows[:2]:
            print(f"{name} vs Evidently: {ev_wall / wall:.0f}x faster (target >= 100x), "
                  f"{rss / ev_rss:.2f} of its peak memory (target <= 0.33), "
                  f"same columns flagged: {flagged == _flagged(evidently_cols)}")
        for name in sorted(set(_flagged(serein_cols)) ^ set(_flagged(evidently_cols))):
            f, e = result["features"][name], evidently_cols[name]
            print(f"  {name}: serein {f['status']} ({f.get('method')} {f.get('score')}, "
                  f"wasserstein {f.get('wasserstein')}), Evidently {e['method']} {e['score']:.4f} "
                  f"(threshold {e['threshold']})")
    false_alarms = sorted(set(_flagged(floor_cols)) - REAL)
    print(f"the floor flags {len(_flagged(floor_cols))} columns, {len(false_alarms)} of them without a real shift "
          f"({', '.join(false_alarms)}): the useless alarm; serein's scores on those:")
    for name in false_alarms:
        f = result["features"][name]
        print(f"  {name}: {f.get('method')} {f.get('score'):.4g} (threshold {f.get('threshold'):.3g})"
              + (f", wasserstein {f['wasserstein']:.4f}" if f.get("wasserstein") is not None else "")
              + f", floor p = {floor_cols[name]['p_value']:.2g}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["floor"]:
        floor(*sys.argv[2:4])
    elif sys.argv[1:2] == ["rss"]:
        rss_wrapper(sys.argv[3:])
    else:
        main()
