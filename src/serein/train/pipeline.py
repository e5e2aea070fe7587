"""The fitted artifact: one scikit-learn Pipeline (ColumnTransformer + estimator) on raw rows.

Serving feeds it the same raw feature columns as training, so there is no separate
preprocessing code to keep in step. Numeric columns get a median imputer (and a standard
scaler unless ``preprocessing.scale: false``); categorical columns get a most-frequent imputer and
a one-hot encoder that ignores categories it never saw. Datetime columns are never raw features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serein.errors import UsageError

IDENTIFIER_MIN_ROWS = 50  # below this, a column of distinct text values may still be a category
IDENTIFIER_DISTINCT_SHARE = 0.95

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from serein.data.contract import Contract


def resolve_features(frame: pd.DataFrame, target: str, contract: Contract | None,
                     requested: list[str] | None, notes: list[str] | None = None) -> list[str]:
    """The feature columns: ``requested``, else the contract's columns, else every data column;
    never the target, never a datetime column (and asking for one is an error). By default,
    columns no model can learn from (``unusable_reason``) are left out too, each with a line
    in ``notes``; a column listed in ``requested`` is always kept."""
    import pandas as pd

    def is_datetime(col: str) -> bool:
        if contract is not None and col in contract.columns:
            return contract.columns[col].type == "datetime"
        return pd.api.types.is_datetime64_any_dtype(frame[col])

    if requested is not None:
        missing = [c for c in requested if c not in frame.columns]
        if missing:
            raise UsageError(f"feature(s) {', '.join(map(repr, missing))} are not in the data",
                             hint=f"columns are: {', '.join(map(str, frame.columns))}")
        if target in requested:
            raise UsageError(f"the target {target!r} is listed among the features", hint="remove it from 'features'")
        dated = [c for c in requested if is_datetime(c)]
        if dated:
            raise UsageError(f"datetime column(s) {', '.join(map(repr, dated))} cannot be raw features",
                             hint="derive numeric features from them (e.g. day of week) or drop them from 'features'")
        return list(requested)
    candidates = [c for c in (contract.columns if contract is not None else frame.columns) if c in frame.columns]
    features = []
    for col in (str(c) for c in candidates if c != target and not is_datetime(c)):
        reason = unusable_reason(frame[col], contract.columns.get(col) if contract is not None else None)
        if reason is None:
            features.append(col)
        elif notes is not None:
            notes.append(f"column {col!r} left out of the features: {reason} (list it under 'features' to keep it)")
    if not features:
        raise UsageError("no feature columns left besides the target",
                         hint="the data needs at least one non-datetime column with values; or list 'features' in the recipe")
    return features


def unusable_reason(values: pd.Series, column: Any = None) -> str | None:
    """Why a column makes no default feature, or None: it has no values at all, or it is text
    with a distinct value on (nearly) every row — an identifier, which one-hot encoding would turn
    into one useless column per row. ``column`` is its contract entry, if any: a text column
    whose contract lists the allowed categories is always kept.

    >>> import pandas as pd
    >>> unusable_reason(pd.Series([None, None]))
    'it has no values'
    >>> unusable_reason(pd.Series([f"id-{i}" for i in range(100)]))
    'it looks like an identifier (100 distinct values in 100 rows)'
    >>> unusable_reason(pd.Series(["a", "b"] * 50)) is None
    True
    """
    import pandas as pd

    present = values.dropna()
    if present.empty:
        return "it has no values"
    numeric = column.numeric if column is not None else (
        pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype))
    if numeric or (column is not None and getattr(column, "allowed", None)) or pd.api.types.is_bool_dtype(values.dtype):
        return None
    distinct = int(present.astype(str).nunique())
    if len(present) >= IDENTIFIER_MIN_ROWS and distinct >= IDENTIFIER_DISTINCT_SHARE * len(present):
        return f"it looks like an identifier ({distinct} distinct values in {len(present)} rows)"
    return None


def split_kinds(frame: pd.DataFrame, features: list[str], contract: Contract | None) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` feature names, by contract type where known, else by dtype."""
    import pandas as pd

    numeric, categorical = [], []
    for col in features:
        if contract is not None and col in contract.columns:
            is_num = contract.columns[col].numeric
        else:
            dtype = frame[col].dtype
            is_num = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        (numeric if is_num else categorical).append(col)
    return numeric, categorical


def build_pipeline(numeric: list[str], categorical: list[str], estimator: Any, scale: bool = True) -> Pipeline:
    """An unfitted Pipeline ``preprocess -> estimator`` over the named raw columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        num_steps.append(("scale", StandardScaler()))
    branches = []
    if numeric:
        branches.append(("numeric", Pipeline(num_steps), numeric))
    if categorical:
        branches.append(("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]), categorical))
    return Pipeline([("preprocess", ColumnTransformer(branches)), ("estimator", estimator)])


def is_fitted(estimator: Any) -> bool:
    """Whether a scikit-learn estimator (or pipeline) has been fitted."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:
        raise UsageError(f"{type(estimator).__name__} is not a scikit-learn estimator",
                         hint="pass a Pipeline or estimator with fit/predict") from None
    return True


def fit_frame(pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as ``pipeline`` should be fitted on it: when the estimator reading the raw columns
    is a HistGradientBoosting model that takes its categorical features from the columns' dtype
    (``categorical_features="from_dtype"``, scikit-learn's default), its text columns become
    pandas categoricals. A dataset gives text columns back as text, whatever dtype the frame
    had when it was ingested, and such a model reads text as numbers; fitted on categoricals, it
    predicts from the same columns as text (its own encoder maps them, an unseen value counts as
    missing), so only the fit needs this. Any other pipeline gets ``frame`` unchanged.

    >>> import pandas as pd
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> frame = pd.DataFrame({"x": [1.0, 2.0], "city": ["lyon", None]})
    >>> fit_frame(HistGradientBoostingClassifier(), frame).dtypes.astype(str).tolist()
    ['float64', 'category']
    """
    from pandas.api.types import is_object_dtype, is_string_dtype
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    reader = pipeline.steps[0][1] if isinstance(pipeline, Pipeline) and len(pipeline.steps) == 1 else pipeline
    if not isinstance(reader, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return frame
    if not (isinstance(reader.categorical_features, str) and reader.categorical_features == "from_dtype"):
        return frame
    text = [c for c in frame.columns if is_object_dtype(frame[c]) or is_string_dtype(frame[c])]
    return frame.astype({c: "category" for c in text}) if text else frame


def input_columns(pipeline: Any) -> list[str] | None:
    """The raw columns a pipeline reads, fitted or not, if they can be known: those its leading
    ColumnTransformer selects by name when it drops the rest (a column it never reads is no
    input a client should have to send), else those a fitted pipeline saw (``feature_names_in_``).

    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.linear_model import LinearRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> input_columns(make_pipeline(make_column_transformer((StandardScaler(), ["age", "income"]),
    ...                                                     (OneHotEncoder(), "city")), LinearRegression()))
    ['age', 'income', 'city']
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = pipeline.steps[0][1] if isinstance(pipeline, Pipeline) else pipeline
    if isinstance(first, ColumnTransformer) and isinstance(first.remainder, str) and first.remainder == "drop":
        selected: list[str] = []
        for _, transformer, columns in first.transformers:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            names = [columns] if isinstance(columns, str) else list(columns) if isinstance(columns, (list, tuple)) else None
            if names is None or not all(isinstance(n, str) for n in names):
                selected = []  # chosen by position, mask or callable: fall back to what fitting saw
                break
            selected += [n for n in names if n not in selected]
        if selected:
            return selected
    names = getattr(pipeline, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]
