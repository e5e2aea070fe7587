"""Recipes: the YAML (or dict) description of a training job, checked strictly.

A typo in a key is an error naming the key and the valid ones, so a recipe never silently trains
something other than what its author meant. ``--set key=value`` overrides use dotted keys and YAML
values.

>>> r = Recipe.from_dict({"name": "credit-default", "data": "credit", "target": "default",
...                       "task": "classification"}, overrides=["split.test_size=0.3"])
>>> r.split.test_size, r.gate.metric, r.estimator.cls
(0.3, 'roc_auc', 'sklearn.ensemble.HistGradientBoostingClassifier')
>>> Recipe.from_dict({"name": "m", "target": "y", "task": "classification", "seeds": 1})
Traceback (most recent call last):
serein.errors.UsageError: recipe: unknown key(s) 'seeds' (valid keys: data, estimator, features, gate, metrics, name, preprocessing, seed, split, target, task)
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serein.data.refs import DatasetRef, check_name
from serein.errors import NotFoundError, UsageError
from serein.train.metrics import DEFAULT_GATE_METRIC, DEFAULT_METRICS, check_metric
from serein.yaml_loader import load_yaml

TASKS = ("classification", "regression")
SPLIT_METHODS = ("random", "time")
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
# Trees split on thresholds, so scaling changes nothing for them, except that ONNX Runtime's
# float32 arithmetic then puts scaled values on the other side of thresholds (measured: 0.3 % of
# labels flipped): ``preprocessing.scale: auto`` leaves them unscaled.
TREE_MODULES = ("sklearn.ensemble.", "sklearn.tree.", "xgboost.", "lightgbm.", "catboost.")
# Absolute margins in the gate metric's own units.
DEFAULT_MIN_IMPROVEMENT = {"classification": 0.01, "regression": 0.0}
DEFAULT_MAX_REGRESSION = 0.005

TOP_KEYS = {"name", "data", "target", "task", "features", "preprocessing", "estimator", "split",
            "seed", "metrics", "gate"}
SECTION_KEYS = {
    "preprocessing": {"scale"},
    "estimator": {"class", "params"},
    "split": {"method", "test_size", "column"},
    "gate": {"metric", "min_improvement_over_baseline", "max_regression_vs_champion"},
}


def _check_keys(where: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (valid keys: {', '.join(sorted(allowed))})"
        )


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``data`` with each ``dotted.key=value`` applied (values parsed as YAML).

    >>> apply_overrides({"estimator": {"params": {}}}, ["estimator.params.max_iter=50"])
    {'estimator': {'params': {'max_iter': 50}}}
    """
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad override {item!r}", hint="write --set key=value, e.g. --set estimator.params.max_iter=50")
        try:
            value = load_yaml(raw)
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"bad override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def import_estimator(path: str) -> type:
    """The estimator class named by a dotted path such as ``sklearn.linear_model.Ridge``."""
    module_name, _, attr = str(path).rpartition(".")
    hint = "give the full dotted path of a scikit-learn compatible estimator class, e.g. sklearn.ensemble.HistGradientBoostingClassifier"
    if not module_name:
        raise UsageError(f"estimator.class {path!r} is not a dotted path", hint=hint)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"estimator.class {path!r}: cannot import module {module_name!r} ({exc})", hint=hint) from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type) or not hasattr(cls, "fit"):
        raise UsageError(f"estimator.class {path!r}: {module_name} has no estimator class {attr!r}", hint=hint)
    return cls


@dataclass
class EstimatorSpec:
    cls: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, task: str, seed: int) -> Any:
        """A fresh, unfitted estimator; ``random_state`` defaults to the recipe seed."""
        from sklearn.base import is_classifier, is_regressor

        cls = import_estimator(self.cls)
        params = dict(self.params)
        try:
            valid = cls().get_params()
        except Exception:  # an estimator whose constructor needs arguments: let it say so below
            valid = {}
        if "random_state" in valid and "random_state" not in params:
            params["random_state"] = seed
        try:
            est = cls(**params)
        except TypeError as exc:
            names = ", ".join(sorted(valid)) or "see its documentation"
            raise UsageError(f"estimator.params for {self.cls}: {exc}", hint=f"valid parameters: {names}") from None
        expected = is_classifier if task == "classification" else is_regressor
        if not expected(est):
            raise UsageError(
                f"estimator {self.cls} is not a {'classifier' if task == 'classification' else 'regressor'}",
                hint=f"task is {task!r}: pick a matching estimator or change the task",
            )
        return est


@dataclass
class SplitSpec:
    method: str = "random"
    test_size: float = 0.2
    column: str | None = None


@dataclass
class GateSpec:
    metric: str
    min_improvement_over_baseline: float
    max_regression_vs_champion: float


@dataclass
class Recipe:
    """A validated training recipe. ``raw`` keeps the (overridden) mapping it came from."""

    name: str
    target: str
    task: str
    data: str | None
    features: list[str] | None
    scale: bool  # standard-scale numeric features (``auto``: not for tree ensembles)
    estimator: EstimatorSpec
    split: SplitSpec
    seed: int
    metrics: list[str]
    gate: GateSpec
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> Recipe:
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"recipe file {p} not found", hint="see examples/credit/recipe.yaml for a template")
        try:
            data = load_yaml(p.read_text())
        except yaml.YAMLError as exc:
            raise UsageError(f"recipe {p} is not valid YAML: {exc}") from None
        return cls.from_dict(data, overrides, where=f"recipe {p.name}")

    @classmethod
    def from_dict(cls, data: Any, overrides: list[str] | None = None, where: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a mapping of settings")
        data = apply_overrides(data, list(overrides or []))
        _check_keys(where, data, TOP_KEYS)
        for section, allowed in SECTION_KEYS.items():
            value = data.get(section)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise UsageError(f"{where}: {section!r} must be a mapping with keys {', '.join(sorted(allowed))}")
            _check_keys(f"{where}: {section}", value, allowed)

        for key in ("name", "target", "task"):
            if not data.get(key):
                raise UsageError(f"{where}: {key!r} is required")
        name = check_name(str(data["name"]), "model")
        task = str(data["task"])
        if task not in TASKS:
            raise UsageError(f"{where}: task {task!r} is not supported", hint=f"use one of {', '.join(TASKS)}")
        data_ref = data.get("data")
        if data_ref is not None:
            DatasetRef.parse(str(data_ref))

        features = data.get("features")
        if features is not None and (not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features)):
            raise UsageError(f"{where}: 'features' must be a non-empty list of column names (or left out for all)")

        pre = data.get("preprocessing") or {}
        scale = pre.get("scale", "auto")
        if not isinstance(scale, bool) and scale != "auto":
            raise UsageError(f"{where}: preprocessing.scale must be true, false or auto, got {scale!r}")

        est = data.get("estimator") or {}
        params = est.get("params") or {}
        if not isinstance(params, dict):
            raise UsageError(f"{where}: estimator.params must be a mapping of parameter to value")
        estimator = EstimatorSpec(str(est.get("class") or DEFAULT_ESTIMATORS[task]), params)
        import_estimator(estimator.cls)
        if scale == "auto":
            scale = not estimator.cls.startswith(TREE_MODULES)

        split = SplitSpec(**(data.get("split") or {}))
        if split.method not in SPLIT_METHODS:
            raise UsageError(f"{where}: split.method {split.method!r} is not supported", hint=f"use one of {', '.join(SPLIT_METHODS)}")
        if not isinstance(split.test_size, (int, float)) or not 0.0 < float(split.test_size) < 1.0:
            raise UsageError(f"{where}: split.test_size must be a fraction between 0 and 1, got {split.test_size!r}")
        split.test_size = float(split.test_size)
        if split.method == "time" and not split.column:
            raise UsageError(f"{where}: a time split needs split.column (the timestamp column)")

        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise UsageError(f"{where}: seed must be an integer, got {seed!r}")

        metrics = data.get("metrics") or list(DEFAULT_METRICS[task])
        if not isinstance(metrics, list):
            raise UsageError(f"{where}: 'metrics' must be a list of metric names")
        for m in metrics:
            check_metric(m, task)

        g = data.get("gate") or {}
        gate = GateSpec(
            metric=check_metric(str(g.get("metric", DEFAULT_GATE_METRIC[task])), task),
            min_improvement_over_baseline=_number(where, "gate.min_improvement_over_baseline",
                                                  g.get("min_improvement_over_baseline", DEFAULT_MIN_IMPROVEMENT[task])),
            max_regression_vs_champion=_number(where, "gate.max_regression_vs_champion",
                                               g.get("max_regression_vs_champion", DEFAULT_MAX_REGRESSION)),
        )
        if gate.metric not in metrics:
            metrics = [*metrics, gate.metric]
        return cls(name=name, target=str(data["target"]), task=task, data=None if data_ref is None else str(data_ref),
                   features=features, scale=scale, estimator=estimator, split=split, seed=seed, metrics=list(metrics),
                   gate=gate, raw=data)

    def to_dict(self) -> dict[str, Any]:
        """The recipe with every default filled in (what is stored with the model version)."""
        return {
            "name": self.name,
            "data": self.data,
            "target": self.target,
            "task": self.task,
            "features": self.features,
            "preprocessing": {"scale": self.scale},
            "estimator": {"class": self.estimator.cls, "params": dict(self.estimator.params)},
            "split": {"method": self.split.method, "test_size": self.split.test_size, "column": self.split.column},
            "seed": self.seed,
            "metrics": list(self.metrics),
            "gate": {
                "metric": self.gate.metric,
                "min_improvement_over_baseline": self.gate.min_improvement_over_baseline,
                "max_regression_vs_champion": self.gate.max_regression_vs_champion,
            },
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"{where}: {key} must be a non-negative number, got {value!r}")
    return float(value)
