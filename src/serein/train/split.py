"""Train/holdout splits: random (stratified for classification) or by time.

A time split trains on the past and evaluates on the most recent ``test_size`` share of rows, the
way the model will meet data in production.

>>> import pandas as pd
>>> df = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=10, freq="D"), "y": [0, 1] * 5})
>>> train, test = split_frame(df, "y", SplitSpec("time", 0.3, "t"), "classification", seed=0)
>>> len(train), len(test), bool(train["t"].max() < test["t"].min())
(7, 3, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serein.errors import UsageError
from serein.train.recipe import SplitSpec

if TYPE_CHECKING:
    import pandas as pd


def split_frame(frame: pd.DataFrame, target: str, spec: SplitSpec, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)`` rows of ``frame`` according to ``spec``."""
    import pandas as pd

    n_test = int(round(len(frame) * spec.test_size))
    if n_test < 1 or len(frame) - n_test < 2:
        raise UsageError(
            f"{len(frame)} rows cannot be split with test_size={spec.test_size}",
            hint="use more data or change split.test_size",
        )
    if spec.method == "time":
        column = spec.column
        if column not in frame.columns:
            raise UsageError(f"split.column {column!r} is not in the data", hint=f"columns are: {', '.join(map(str, frame.columns))}")
        when = frame[column]
        if not pd.api.types.is_datetime64_any_dtype(when):
            try:
                when = pd.to_datetime(when, utc=True)
            except (ValueError, TypeError):
                raise UsageError(f"split.column {column!r} does not hold timestamps") from None
        if when.isna().any():
            raise UsageError(f"split.column {column!r} has {int(when.isna().sum())} missing timestamps",
                             hint="fill them or use split.method: random")
        order = when.reset_index(drop=True).sort_values(kind="stable").index
        ordered = frame.iloc[order]
        train, test = ordered.iloc[:-n_test], ordered.iloc[-n_test:]
    else:
        from sklearn.model_selection import train_test_split

        stratify = None
        if task == "classification":
            counts = frame[target].value_counts()
            if counts.min() >= 2 and n_test >= len(counts):
                stratify = frame[target]
        train, test = train_test_split(frame, test_size=n_test, random_state=seed, stratify=stratify)
    if task == "classification":
        _check_classes(train, test, target)
    return train, test


def _check_classes(train: pd.DataFrame, test: pd.DataFrame, target: str) -> None:
    for part, rows in (("training", train), ("holdout", test)):
        if rows[target].nunique() < 2:
            raise UsageError(
                f"the {part} split holds a single class of {target!r} ({rows[target].iloc[0]!r})",
                hint="a classifier needs at least two classes on both sides: use more data, a larger "
                     "split.test_size or split.method: random",
            )
