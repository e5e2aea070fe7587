"""NannyML in its own virtual environment, for the estimation benchmark.

NannyML 0.13 needs ``pandas<3`` (serein uses pandas 3), so ``benchmarks.side_venv`` installs it in
``~/.cache/serein-bench/nannyml-venv`` on first use. ``python -m benchmarks.nannyml_env`` only
creates the venv; ``python -m benchmarks.nannyml_env run JOBS OUT`` is what runs *inside* it
(invoked by ``benchmarks.estimation``): for each job (an ``.npz`` of a model's reference and
analysis probabilities), NannyML's CBPE fitted on the reference period and estimated on the
analysis chunks, written as JSON to OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import side_venv

NAME = "nannyml-venv"
REQUIREMENTS = ["nannyml==0.13.*", "pandas<3", "pyarrow", "statsmodels"]  # nannyml imports statsmodels undeclared
METRICS = ("accuracy", "roc_auc", "f1")


def python() -> Path:
    """The venv's interpreter (created on first use)."""
    return side_venv.python(NAME, REQUIREMENTS)


def version() -> str:
    """The NannyML version installed in the venv."""
    return side_venv.version(python(), "nannyml")


def _frame(job: Any, period: str) -> Any:
    """A NannyML frame of one period (``ref`` or ``ana``) of a job: predicted class, per-class
    probabilities and, for the reference, the labels (binary: 0/1; multi-class: class names)."""
    import pandas as pd

    classes = [str(c) for c in job["classes"]]
    proba, pred = job[f"{period}_proba"], job[f"{period}_pred"]
    binary = len(classes) == 2
    frame = pd.DataFrame({"y_pred": pred if binary else [classes[i] for i in pred]})
    if binary:
        frame["y_pred_proba"] = proba[:, 1]
    else:
        for k, name in enumerate(classes):
            frame[f"proba_{name}"] = proba[:, k]
    if f"{period}_labels" in job:
        labels = job[f"{period}_labels"]
        frame["y_true"] = labels if binary else [classes[i] for i in labels]
    return frame


def _estimate(path: str) -> dict[str, Any]:
    """NannyML CBPE with its defaults, chunked as the job's analysis chunks, fitted on the
    reference period; per metric and chunk the estimate, its confidence band, the lower
    threshold and NannyML's alert flag."""
    import nannyml as nml
    import numpy as np

    job = dict(np.load(path))
    classes = [str(c) for c in job["classes"]]
    binary = len(classes) == 2
    size = int(np.bincount(job["ana_chunk"]).max())
    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba" if binary else {name: f"proba_{name}" for name in classes},
        y_pred="y_pred", y_true="y_true", metrics=list(METRICS), chunk_size=size,
        problem_type="classification_binary" if binary else "classification_multiclass",
    )
    estimator.fit(_frame(job, "ref"))
    result = estimator.estimate(_frame(job, "ana")).filter(period="analysis").to_df()
    out: dict[str, Any] = {}
    for metric in METRICS:
        cols = result[metric]
        out[metric] = {
            "value": cols["value"].astype(float).tolist(),
            "low": cols["lower_confidence_boundary"].astype(float).tolist(),
            "high": cols["upper_confidence_boundary"].astype(float).tolist(),
            "threshold": cols["lower_threshold"].astype(float).tolist(),
            "alert": cols["alert"].astype(float).tolist(),
        }
    return out


def run(jobs: str, out: str) -> None:
    """Inside the venv: every job named in the JSON file ``jobs`` (key → ``.npz`` of
    ``benchmarks.estimation``) estimated; results written to ``out`` as JSON."""
    import os
    import time
    import warnings

    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # offline: no analytics upload attempts
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    results = {key: _estimate(path) for key, path in json.loads(Path(jobs).read_text()).items()}
    Path(out).write_text(json.dumps({"results": results, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(*sys.argv[2:])
    else:
        print(f"nannyml {version()} in {python().parent.parent}")
