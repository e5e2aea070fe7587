"""What a loaded model version carries: the fitted pipeline and everything needed to serve and
monitor it without going back to the training data.

The pipeline is the one heavy part: deserializing it imports scikit-learn and skops (seconds of a
CLI run) although a monitoring run that scores through the ONNX export never touches it. So it is
held as a :class:`PipelineFile` (the verified skops file) and deserialized on first access to
``LoadedModel.pipeline``, after its sha256 is checked once more.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serein.data.contract import Contract
from serein.errors import SereinError


class PipelineFile:
    """A serialized (skops) pipeline whose sha256 was recorded at registration; :meth:`load`
    deserializes it once, refusing a file whose content no longer matches."""

    def __init__(self, path: str | Path, sha256: str, trusted: list[str], label: str) -> None:
        self.path = Path(path)
        self.sha256 = sha256
        self.trusted = trusted
        self.label = label  # "NAME vVERSION", for messages
        self._pipeline: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    def load(self) -> Any:
        """The fitted pipeline (deserialized on the first call, shared afterwards)."""
        with self._lock:
            if self._pipeline is None:
                import skops.io

                from serein.registry.artifacts import sha256_file

                actual = sha256_file(self.path)
                if actual != self.sha256:
                    raise SereinError(
                        f"{self.label}: {self.path} has sha256 {actual[:16]}..., but {self.sha256[:16]}... was "
                        "recorded at registration: refusing to load a changed model file",
                        hint="restore the original artifact or register a new version",
                    )
                self._pipeline = skops.io.load(self.path, trusted=self.trusted)
            return self._pipeline


@dataclass
class LoadedModel:
    """A registered model version, verified against its recorded sha256 and loaded.

    ``pipeline`` is the whole fitted sklearn pipeline (preprocessing + estimator); it takes a
    DataFrame of the raw ``features`` columns. It may be given as a :class:`PipelineFile`, which
    is deserialized on first access (see the module docstring). ``contract`` covers exactly
    those features. ``classes`` is the estimator's ``classes_`` for classifiers, None for
    regressors. ``onnx_path`` points at the verified ONNX export, or is None when the pipeline
    did not convert (``tags["serein.onnx"]`` says why).
    """

    name: str
    version: int
    run_id: str
    pipeline: Any = field(repr=False, compare=False)
    contract: Contract
    features: list[str]
    target: str
    task: str
    classes: list[Any] | None
    onnx_path: str | None
    profile: dict[str, Any]
    recipe: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def pipeline_loaded(self) -> bool:
        """Whether the pipeline is in memory (not a :class:`PipelineFile` still to deserialize)."""
        held = self.__dict__["_pipeline"]
        return not isinstance(held, PipelineFile) or held.loaded

    def loaded(self, pipeline: bool = True) -> LoadedModel:
        """This model, its pipeline deserialized first when ``pipeline`` (so a failure to
        deserialize surfaces at load time, as callers that serve expect)."""
        if pipeline:
            _ = self.pipeline
        return self


def _get_pipeline(self: LoadedModel) -> Any:
    held = self.__dict__["_pipeline"]
    return held.load() if isinstance(held, PipelineFile) else held


def _set_pipeline(self: LoadedModel, value: Any) -> None:
    self.__dict__["_pipeline"] = value


# The dataclass's __init__ assigns ``self.pipeline``: through this property a PipelineFile is kept
# as it is and deserialized when the pipeline is first read.
LoadedModel.pipeline = property(_get_pipeline, _set_pipeline, doc="The fitted pipeline (deserialized on first use).")  # type: ignore[assignment]
