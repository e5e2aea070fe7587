"""The quality gate: may this model replace what serves now?

It passes when the model beats the dummy baseline by at least the recipe's margin on the gate
metric AND is not worse than the current champion (evaluated on the same holdout) by more than
the tolerance. Margins are in the metric's own units; the metric's direction is known.

>>> from serein.train.recipe import GateSpec
>>> v = decide(GateSpec("roc_auc", 0.05, 0.01), value=0.80, baseline=0.5, champion_value=0.805)
>>> v.passed, len(v.reasons)
(True, 2)
>>> decide(GateSpec("rmse", 0.0, 0.01), value=3.0, baseline=2.5).passed
False
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from serein.train.metrics import higher_is_better, improvement
from serein.train.recipe import GateSpec


@dataclass
class GateVerdict:
    """The outcome, with one human-readable reason per check (passed or not)."""

    passed: bool
    reasons: list[str]
    metric: str
    value: float
    baseline: float
    champion_value: float | None = None
    champion_version: int | None = None
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(spec: GateSpec, value: float, baseline: float, champion_value: float | None = None,
           champion_version: int | None = None, champion_error: str | None = None) -> GateVerdict:
    """Apply ``spec`` to the model's gate-metric ``value``; ``champion_error`` says why the
    current champion could not be evaluated on this holdout (which fails the gate: the
    comparison the gate promises was not made)."""
    m = spec.metric
    direction = "higher" if higher_is_better(m) else "lower"
    reasons: list[str] = []
    passed = True
    if not math.isfinite(value):
        passed = False
        reasons.append(f"{m} of the model is undefined on this holdout")
    else:
        gain = improvement(m, value, baseline)
        ok = gain >= spec.min_improvement_over_baseline and gain > 0
        passed &= ok
        reasons.append(
            f"{'beats' if ok else 'does not beat'} the baseline: {m} {value:.4f} vs {baseline:.4f} "
            f"({direction} is better; improvement {gain:+.4f}, required > 0 and >= {spec.min_improvement_over_baseline:g})"
        )
    if champion_error is not None:
        passed = False
        reasons.append(f"champion v{champion_version} could not be compared on this holdout: {champion_error}")
    elif champion_value is not None and math.isfinite(value):
        loss = -improvement(m, value, champion_value)
        ok = loss <= spec.max_regression_vs_champion
        passed &= ok
        reasons.append(
            f"{'within' if ok else 'worse than'} tolerance of champion v{champion_version}: {m} {value:.4f} vs "
            f"{champion_value:.4f} (regression {max(loss, 0.0):.4f}, allowed {spec.max_regression_vs_champion:g})"
        )
    elif champion_value is None and champion_version is None:
        reasons.append("no champion yet: nothing to compare against")
    return GateVerdict(
        passed=bool(passed), reasons=reasons, metric=m, value=float(value), baseline=float(baseline),
        champion_value=None if champion_value is None else float(champion_value), champion_version=champion_version,
        thresholds={"min_improvement_over_baseline": spec.min_improvement_over_baseline,
                    "max_regression_vs_champion": spec.max_regression_vs_champion},
    )
