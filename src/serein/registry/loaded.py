"""What a loaded model version carries: the fitted pipeline and everything needed to serve and
monitor it without going back to the training data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serein.data.contract import Contract


@dataclass
class LoadedModel:
    """A registered model version, verified against its recorded sha256 and loaded.

    ``pipeline`` is the whole fitted sklearn pipeline (preprocessing + estimator); it takes a
    DataFrame of the raw ``features`` columns. ``contract`` covers exactly those features.
    ``classes`` is the estimator's ``classes_`` for classifiers, None for regressors.
    ``onnx_path`` points at the verified ONNX export, or is None when the pipeline did not
    convert (``tags["serein.onnx"]`` says why).
    """

    name: str
    version: int
    run_id: str
    pipeline: Any
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
