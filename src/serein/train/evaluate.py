"""Holdout evaluation of a fitted model, and the dummy baseline every model must beat.

Classification: roc_auc (binary, or one-vs-rest averaged over classes), accuracy, f1, precision,
recall (for the second class of a binary problem, macro-averaged otherwise) and log_loss.
Regression: rmse, mae, r2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from serein.errors import UsageError
from serein.train.metrics import needs_proba

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Evaluation:
    """What a model did on the holdout: its metrics and raw outputs (kept for the report and the
    reference profile). ``proba`` columns follow ``classes``."""

    metrics: dict[str, float]
    predictions: np.ndarray
    proba: np.ndarray | None = None
    classes: list[Any] | None = None

    @property
    def scores(self) -> np.ndarray | None:
        """One score per row: the positive-class probability (binary) or the top probability."""
        if self.proba is None:
            return None
        return self.proba[:, 1] if self.proba.shape[1] == 2 else self.proba.max(axis=1)


def baseline_estimator(task: str) -> Any:
    """The dummy every model must beat: class priors, or the training mean."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor(strategy="mean")


def check_metrics_supported(model: Any, metrics: list[str]) -> None:
    """Refuse probability metrics for a model without ``predict_proba``, before fitting."""
    if hasattr(model, "predict_proba"):
        return
    wanted = [m for m in metrics if needs_proba(m)]
    if wanted:
        raise UsageError(
            f"metric(s) {', '.join(wanted)} need predicted probabilities, which {type(model).__name__} does not give",
            hint="remove them from 'metrics' (and pick another gate.metric) or use an estimator with predict_proba",
        )


def evaluate(model: Any, X: pd.DataFrame, y: pd.Series, task: str, metrics: list[str]) -> Evaluation:
    """``metrics`` of a fitted ``model`` on the rows ``X`` with true values ``y``."""
    predictions = np.asarray(model.predict(X))
    if task == "regression":
        return Evaluation(_regression_metrics(np.asarray(y, dtype=float), predictions.astype(float), metrics), predictions)
    classes = [_plain(c) for c in model.classes_]
    proba = np.asarray(model.predict_proba(X)) if hasattr(model, "predict_proba") else None
    return Evaluation(_classification_metrics(np.asarray(y), predictions, proba, classes, metrics),
                      predictions, proba, classes)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _regression_metrics(y: np.ndarray, pred: np.ndarray, wanted: list[str]) -> dict[str, float]:
    from sklearn import metrics as skm

    funcs = {
        "rmse": lambda: skm.root_mean_squared_error(y, pred),
        "mae": lambda: skm.mean_absolute_error(y, pred),
        "r2": lambda: skm.r2_score(y, pred),
    }
    return {m: float(funcs[m]()) for m in wanted}


def _classification_metrics(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                            classes: list[Any], wanted: list[str]) -> dict[str, float]:
    from sklearn import metrics as skm

    binary = len(classes) == 2
    avg: dict[str, Any] = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}

    def roc_auc() -> float:
        assert proba is not None
        present = set(np.unique(y).tolist())
        if len(present) < 2:
            return float("nan")
        if binary:
            return skm.roc_auc_score(y == classes[1], proba[:, 1])
        if present != set(classes):
            # one-vs-rest needs every class in the holdout; average over the present ones
            keep = [i for i, c in enumerate(classes) if c in present]
            return float(np.mean([skm.roc_auc_score(y == classes[i], proba[:, i]) for i in keep]))
        return skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)

    funcs = {
        "roc_auc": roc_auc,
        "accuracy": lambda: skm.accuracy_score(y, pred),
        "f1": lambda: skm.f1_score(y, pred, zero_division=0, **avg),
        "precision": lambda: skm.precision_score(y, pred, zero_division=0, **avg),
        "recall": lambda: skm.recall_score(y, pred, zero_division=0, **avg),
        "log_loss": lambda: skm.log_loss(y, proba, labels=classes),
    }
    return {m: float(funcs[m]()) for m in wanted}
