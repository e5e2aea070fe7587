"""Multivariate drift by a domain classifier: can a model tell the window's rows from the
reference's? Per-feature drift misses a change in how features move together (income and loan
amount each unchanged, their ratio shifted); a classifier trained to separate the two samples sees
it. Its cross-validated ROC AUC is 0.5 when nothing changed and approaches 1 as the two
populations part.

The reference side is the profile's fixed-size sample (``serein.monitor.profile.SAMPLE_SIZE``
holdout rows, stored at registration: monitoring never reloads training data); the window side is
a random sample of the same size. Numeric features are used as they are (missing stays missing),
categorical ones as ordinal codes over the categories of both samples (a tree can still isolate
any category); a gradient-boosted tree model (``HistGradientBoostingClassifier``, 50 shallow
trees) is scored by 5-fold stratified cross-validation.

Threshold: drift when the AUC is at least ``max(0.55, 0.5 + 3.09 · se₀)``, ``se₀`` the AUC's
standard error when nothing changed, ``sqrt((n₁ + n₀ + 1) / (12 n₁ n₀))`` (Mann–Whitney): the
0.1 % false-alarm floor for small samples, and an AUC of 0.55 — a classifier barely better than a
coin — as the smallest separation worth a look. Optional (``--multivariate``): it costs seconds,
not milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

AUC_THRESHOLD = 0.55
Z_NULL = 3.09  # one-sided 0.1 %
FOLDS = 5


def null_auc_se(n1: int, n0: int) -> float:
    """Standard error of the ROC AUC of an uninformative score with ``n1`` and ``n0`` rows.

    >>> round(null_auc_se(1000, 1000), 4)
    0.0129
    """
    return math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))


def _encode(ref: pd.DataFrame, cur: pd.DataFrame, kinds: Mapping[str, str]) -> np.ndarray:
    """Both samples as one float matrix: numbers as they are, categories as shared ordinal codes."""
    import pandas as pd

    from serein.monitor.profile import numeric_values

    both = pd.concat([ref, cur], ignore_index=True)
    columns = []
    for name, kind in kinds.items():
        if kind == "numeric":
            columns.append(numeric_values(both[name]))
        else:
            text = both[name].where(both[name].isna(), both[name].astype(str))
            codes = pd.Categorical(text).codes.astype(float)
            codes[codes < 0] = np.nan
            columns.append(codes)
    return np.column_stack(columns)


def domain_classifier_drift(profile: Mapping[str, Any], X: pd.DataFrame, seed: int = 0) -> dict[str, Any] | None:
    """The domain classifier's cross-validated ROC AUC between the profile's reference sample and
    (a sample of) the window ``X``, with its threshold and verdict; None without a reference
    sample or with too few rows on either side (fewer than 50)."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    columns = (profile.get("sample") or {}).get("columns") or {}
    kinds = {name: f["kind"] for name, f in profile["features"].items() if name in columns and name in X.columns}
    if not kinds:
        return None
    ref = pd.DataFrame({name: columns[name] for name in kinds})
    cur = X[list(kinds)]
    if len(cur) > len(ref):
        cur = cur.sample(len(ref), random_state=seed)
    if min(len(ref), len(cur)) < 50:
        return None
    data = _encode(ref, cur.reset_index(drop=True), kinds)
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    model = HistGradientBoostingClassifier(max_iter=50, max_leaf_nodes=8, learning_rate=0.1,
                                           early_stopping=False, random_state=seed)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # OpenMP threads on shared cores cost far more than they save here
        proba = cross_val_predict(model, data, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    threshold = max(AUC_THRESHOLD, 0.5 + Z_NULL * null_auc_se(len(cur), len(ref)))
    drifted = auc >= threshold
    return {"method": "domain_classifier", "score": auc, "threshold": threshold, "drifted": bool(drifted),
            "n_reference": len(ref), "n_current": len(cur), "features": list(kinds),
            "reasons": [f"domain classifier ROC AUC {auc:.3f} >= {threshold:.3f}"] if drifted else []}
