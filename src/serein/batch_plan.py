"""How batch scoring runs a model version on Arrow batches, worked out once and remembered.

Working it out (``serein.batch.ChunkScorer``) compiles the pipeline's preprocessing
(:class:`serein.arrow_features.ArrowFeatures`) from the fitted scikit-learn objects and checks the
estimator's part of the verified ONNX export against scikit-learn on the version's reference
sample: that deserializes the pipeline, importing scikit-learn and skops (~1.6 s of a CLI run,
longer than scoring a million rows). The outcome, an :class:`ArrowPlan`, is saved next to the
version's cached artifacts, keyed by the sha256 recorded for its pipeline file and its ONNX export
(and this module's ``PLAN_FORMAT``), so later runs set the same path up without scikit-learn. A
plan that is missing, unreadable or keyed to other artifacts is worked out again. When the
estimator is the trees' look-up tables, the compiled tables are kept too (``<plan>.tables.npz``,
their sha256 recorded in the plan): setting them up again from the export imports onnx and
compiles them (0.1-0.15 s of a run); tables that are missing, unreadable or not the ones the plan
recorded (replaced, or rewritten by another run meanwhile) are compiled again from the export.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from serein.arrow_features import ArrowFeatures
from serein.tree_tables import TableTrees

if TYPE_CHECKING:
    from serein.registry.loaded import LoadedModel

log = logging.getLogger(__name__)

PLAN_FORMAT = 4  # bump when what a saved plan means changes (2: tables merged up to 1 MB; 3: tables keep their
# layout; 4: the tables' sha256 in the plan)
ESTIMATORS = ("tables", "onnxruntime")  # serein.tree_tables.TableTrees, or ONNX Runtime on the estimator's part


@dataclass
class ArrowPlan:
    """The compiled preprocessing and the estimator that agreed with scikit-learn on the reference
    sample (one of ``ESTIMATORS``); ``estimator`` None: no Arrow path (the whole export scores).
    ``trees``: the compiled look-up tables of the ``tables`` estimator, when known."""

    features: ArrowFeatures | None
    estimator: str | None
    trees: TableTrees | None = None

    def save(self, path: Path, model: LoadedModel) -> None:
        """Write the plan for ``model`` to ``path``, and its tables beside it first (each
        atomically: a reader never sees half a file, and one between the two writes finds
        tables other than its plan recorded, which it compiles again)."""
        data = {"key": _key(model), "estimator": self.estimator,
                "features": None if self.features is None else self.features.to_dict(), "tables_sha256": None}
        if self.trees is not None:
            tables = io.BytesIO()
            np.savez(tables, **self.trees.to_arrays())
            data["tables_sha256"] = hashlib.sha256(tables.getbuffer()).hexdigest()
            _write(tables_path(path), model, lambda f: f.write(tables.getbuffer()))
        _write(path, model, lambda f: f.write(json.dumps(data).encode()))

    @classmethod
    def recall(cls, path: Path, model: LoadedModel) -> ArrowPlan | None:
        """The plan saved for ``model``'s current artifacts, or None."""
        try:
            data = json.loads(path.read_text())
            if data["key"] != _key(model) or data["estimator"] not in (*ESTIMATORS, None):
                return None
            features = None if data["features"] is None else ArrowFeatures.from_dict(data["features"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if (features is None) != (data["estimator"] is None):
            return None
        trees = _recall_trees(tables_path(path), data.get("tables_sha256")) if data["estimator"] == "tables" else None
        return cls(features, data["estimator"], trees)


def tables_path(plan: Path) -> Path:
    """Where the compiled tables of the plan saved at ``plan`` are kept."""
    return plan.with_name(f"{plan.stem}.tables.npz")


def _recall_trees(path: Path, sha256: str | None) -> TableTrees | None:
    """The tables saved at ``path`` when their sha256 is the one their plan recorded, or None."""
    try:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            log.info("the batch plan's tables at %s are not the ones it recorded; compiling them again", path)
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return TableTrees.from_arrays({name: arrays[name] for name in arrays.files})
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:  # missing, unreadable
        if not isinstance(exc, FileNotFoundError):
            log.info("could not read the batch plan's tables at %s (%s); compiling them again", path, exc)
        return None


def _write(path: Path, model: LoadedModel, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through a temporary file renamed into place; a failure (a read-only cache)
    is logged: it only costs the next run the work again."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as f:
            write(f)
        os.replace(partial, path)
    except OSError as exc:
        log.info("could not save the batch plan of %s v%s to %s (%s)", model.name, model.version, path, exc)
    finally:
        partial.unlink(missing_ok=True)


def _key(model: LoadedModel) -> dict[str, object]:
    """What a plan is valid for: the sha256 of the version's pipeline file and ONNX export."""
    from serein.registry.registry import ONNX_SHA_TAG, SHA_TAG

    return {"format": PLAN_FORMAT, "model": f"{model.name}@{model.version}",
            "pipeline_sha256": model.tags.get(SHA_TAG), "onnx_sha256": model.tags.get(ONNX_SHA_TAG)}
