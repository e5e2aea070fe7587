"""The metrics a recipe may ask for, with their direction (is higher better?).

Light on purpose (no scikit-learn import): recipes are checked before anything heavy loads.

>>> higher_is_better("rmse"), higher_is_better("roc_auc")
(False, True)
>>> improvement("rmse", value=1.5, reference=2.0)
0.5
"""

from __future__ import annotations

from serein.errors import UsageError

# metric -> (task, higher_is_better, needs probabilities)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "roc_auc": ("classification", True, True),
    "accuracy": ("classification", True, False),
    "f1": ("classification", True, False),
    "precision": ("classification", True, False),
    "recall": ("classification", True, False),
    "log_loss": ("classification", False, True),
    "rmse": ("regression", False, False),
    "mae": ("regression", False, False),
    "r2": ("regression", True, False),
}
DEFAULT_METRICS = {
    "classification": ("roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
DEFAULT_GATE_METRIC = {"classification": "roc_auc", "regression": "rmse"}


def check_metric(name: str, task: str) -> str:
    """``name`` if it is a metric of ``task``, else a UsageError listing the valid ones."""
    valid = [m for m, (t, _, _) in METRICS.items() if t == task]
    if name not in valid:
        raise UsageError(f"unknown {task} metric {name!r}", hint=f"use one of {', '.join(valid)}")
    return name


def higher_is_better(name: str) -> bool:
    return METRICS[name][1]


def needs_proba(name: str) -> bool:
    return METRICS[name][2]


def improvement(name: str, value: float, reference: float) -> float:
    """How much better ``value`` is than ``reference`` (negative when worse), in metric units."""
    return value - reference if higher_is_better(name) else reference - value

