"""Loading training data from CSV: validated against a spec, or with a spec inferred.

Every problem is a `DataError` whose message names the file, the column and, where
there is one, the 1-based line of the CSV (the header is line 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from riskserve.model.specs import Feature, FeatureKind, ModelSpec


class DataError(ValueError):
    """The data cannot be used for training; the message says where and why."""


def _csv_line(frame_index: int) -> int:
    return int(frame_index) + 2  # header is line 1, first data row line 2


def read_csv(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return frame


def binary_target(
    frame: pd.DataFrame, target: str, source: str, positive: str | None = None
) -> pd.Series:
    """The target as 0/1. The positive class (the event: fraud, default) is `positive`
    when given (compared as text), else 1/True, else the larger of the two values."""
    if target not in frame.columns:
        raise DataError(f"{source}: column {target!r} (the target) is missing")
    column = frame[target]
    missing = column.isna().to_numpy()
    if missing.any():
        line = _csv_line(frame.index[int(np.argmax(missing))])
        raise DataError(
            f"{source}: column {target!r} (the target) is empty at line {line}"
        )
    classes = sorted(column.unique().tolist(), key=str)
    if len(classes) != 2:
        shown = ", ".join(map(str, classes[:5])) + (", ..." if len(classes) > 5 else "")
        raise DataError(
            f"{source}: column {target!r} (the target) must have exactly two classes, "
            f"found {len(classes)} ({shown})"
        )
    if positive is not None:
        matches = [c for c in classes if str(c).strip() == positive.strip()]
        if not matches:
            raise DataError(
                f"{source}: the positive class {positive!r} is not a value of column "
                f"{target!r} (the target); its values are "
                + ", ".join(repr(str(c)) for c in classes)
            )
        return (column == matches[0]).astype(np.int64)
    lowered = {str(c).strip().lower() for c in classes}
    if (
        lowered == {"0", "1"}
        or lowered == {"false", "true"}
        or lowered == {"0.0", "1.0"}
    ):
        positive = next(
            c for c in classes if str(c).strip().lower() in {"1", "true", "1.0"}
        )
    else:
        positive = max(classes, key=str)
    return (column == positive).astype(np.int64)


def _numeric_column(frame: pd.DataFrame, feature: Feature, source: str) -> pd.Series:
    raw = frame[feature.name]
    if raw.dtype == bool:
        return raw.astype(np.float64)
    if raw.dtype == object:
        lowered = raw.astype("string").str.strip().str.lower()
        raw = raw.where(~lowered.isin(["true", "false"]), lowered == "true")
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
    if bad.any():
        first = int(bad.to_numpy().argmax())
        raise DataError(
            f"{source}: column {feature.name!r} is numeric but line "
            f"{_csv_line(frame.index[first])} holds {raw.iloc[first]!r}"
        )
    values = values.astype(np.float64)
    if not feature.nullable and values.isna().any():
        first = int(values.isna().to_numpy().argmax())
        raise DataError(
            f"{source}: column {feature.name!r} is empty at line "
            f"{_csv_line(frame.index[first])}, and it may not be missing"
        )
    return values


def validate(frame: pd.DataFrame, spec: ModelSpec, source: str) -> pd.DataFrame:
    """The spec's features, typed: numeric as float64 (NaN = missing), strings as str."""
    missing = [f.name for f in spec.features if f.name not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: column {missing[0]!r} of the {spec.name} spec is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    typed = {}
    for feature in spec.features:
        if feature.kind == "categorical":
            typed[feature.name] = frame[feature.name].fillna("").astype(str).str.strip()
        else:
            typed[feature.name] = _numeric_column(frame, feature, source)
    return pd.DataFrame(typed, index=frame.index)


def load_training_data(
    path: Path, spec: ModelSpec, target: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and 0/1 target of a CSV validated against `spec`."""
    frame = read_csv(path)
    source = str(path)
    y = binary_target(frame, target or spec.target, source)
    return validate(frame, spec, source), y


def infer_spec(
    frame: pd.DataFrame,
    name: str,
    target: str,
    categorical: Iterable[str] = (),
    numeric: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> ModelSpec:
    """A spec for any CSV: numeric by dtype, other columns categorical, overridable.

    Identifier-like columns (a unique string per row) are left out, since a model cannot
    learn from them; name them in `drop` to leave out others.
    """
    categorical, numeric, drop = set(categorical), set(numeric), set(drop)
    unknown = (categorical | numeric | drop) - set(frame.columns)
    if unknown:
        raise DataError(
            f"column {sorted(unknown)[0]!r} named in the options is not in the data"
        )
    features = []
    for column in frame.columns:
        if column == target or column in drop:
            continue
        series = frame[column]
        kind: FeatureKind
        if column in categorical:
            kind = "categorical"
        elif (
            column in numeric
            or pd.api.types.is_numeric_dtype(series)
            or series.dtype == bool
        ):
            kind = "binary" if set(series.dropna().unique()) <= {0, 1} else "numeric"
        else:
            if series.nunique(dropna=True) == len(series) and len(series) > 20:
                continue  # an id column
            kind = "categorical"
        if kind == "categorical":
            cats = tuple(sorted(series.dropna().astype(str).str.strip().unique()))
            features.append(
                Feature(column, "categorical", categories=cats, nullable=True)
            )
        else:
            values = pd.to_numeric(series, errors="coerce")
            features.append(
                Feature(
                    column,
                    kind,
                    minimum=float(values.min()),
                    maximum=float(values.max()),
                    nullable=True,
                )
            )
    if not features:
        raise DataError(f"no feature columns besides the target {target!r}")
    return ModelSpec(name=name, target=target, features=tuple(features))


def data_hash(features: pd.DataFrame, target: pd.Series) -> str:
    """A short content hash of exactly the rows a model was trained and tested on."""
    digest = hashlib.sha256()
    digest.update(
        pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes()
    )
    digest.update(pd.util.hash_pandas_object(target, index=False).to_numpy().tobytes())
    digest.update(",".join(features.columns).encode())
    return digest.hexdigest()[:16]
