"""Lineage: where a model came from, recorded as run tags.

Dataset name, version and content hash (of the WHOLE training data, not MLflow's 10k-row digest),
contract hash, the git commit and dirty flag of the code that trained it, the seed and the versions
of the packages that matter for reloading the model.

>>> info = git_info("/")
>>> sorted(info)
['commit', 'dirty']
>>> "scikit-learn" in package_versions()
True
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

PACKAGES = ("serein", "scikit-learn", "numpy", "pandas", "mlflow", "skops", "skl2onnx", "onnx", "onnxruntime")
UNKNOWN = "unknown"


def git_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``{"commit", "dirty"}`` of the git repository holding ``cwd`` (default: the current
    directory); both ``"unknown"`` outside a repository or without git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd or os.getcwd(), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = UNKNOWN if status is None else str(bool(status.strip())).lower()
    return {"commit": commit.strip(), "dirty": dirty}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a model version depends on (plus Python)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = UNKNOWN
    return out


def lineage_tags(dataset: str | None, dataset_version: int | None, data_hash: str, contract_hash: str,
                 seed: int, contract_source: str) -> dict[str, str]:
    """The ``serein.*`` lineage tags of a training run."""
    git = git_info()
    tags = {
        "serein.dataset": dataset or "(in-memory frame)",
        "serein.dataset_version": UNKNOWN if dataset_version is None else str(dataset_version),
        "serein.data_hash": data_hash,
        "serein.contract_hash": contract_hash,
        "serein.contract_source": contract_source,
        "serein.git_commit": git["commit"],
        "serein.git_dirty": git["dirty"],
        "serein.seed": str(seed),
    }
    tags.update({f"serein.pkg.{k}": v for k, v in package_versions().items()})
    return tags
